"""``Settings``: every ``LEADS_*`` setting, read by pydantic-settings (the environment, then a dotenv file).

Imported only when something needs the settings as a whole (``leads_pipeline.settings.Settings`` /
``get_settings()``): pydantic-settings costs more at import than a quick CLI command may take (issue #14, P6), so
``leads_pipeline.settings`` itself imports nothing heavy. Secrets are ``SecretStr`` so that printing or logging the
settings never shows them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from leads_pipeline.settings_defaults import DEFAULT_BUSY_TIMEOUT_SECONDS, DEFAULT_DATA_DIR

__all__ = ["Settings"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LEADS_", env_file=".env", extra="ignore")

    data_dir: Path = Field(DEFAULT_DATA_DIR, description="Runtime data: the DuckDB file, Dagster's local instance.")
    warehouse_url: str = Field(
        "",
        description="duckdb:///path/to/file.duckdb (default: leads.duckdb in the data directory) or "
                    "postgresql://user@host:port/db.",
    )
    webhook_process: Literal["service", "sensor"] = Field(
        "service", description="Who turns stored webhooks into leads: `service` — the receiver (`serve`) processes "
                               "what it stored, off the request, within seconds, and Dagster's inbox sensor is the "
                               "safety net; `sensor` — only the sensor's runs (docs/performance.md, P4)."
    )
    warehouse_busy_timeout_seconds: float = Field(
        DEFAULT_BUSY_TIMEOUT_SECONDS,
        description="Longest wait of a DuckDB open for another process before it fails with a message (WarehouseBusy) "
                    "naming who holds the file.",
    )
    graph_base_url: str = Field("https://graph.facebook.com", description="Meta Graph API root (or the simulator's).")
    graph_api_version: str = Field("v25.0", description="Graph API version used in every path.")
    graph_page_limit: int = Field(100, description="`limit` per /{form-id}/leads page.")
    graph_timeout_seconds: float = Field(30.0, description="Per-request timeout.")
    graph_max_retries: int = Field(6, description="Retries of transient errors per request.")
    graph_max_throttle_wait_seconds: float = Field(
        300.0, description="Longest wait for a throttling window before the distributor's sync fails."
    )
    sync_lookback_seconds: int = Field(
        600, description="Overlap re-read below the cursor, so late-visible leads are not missed (deduped by id)."
    )
    app_secret: SecretStr | None = Field(None, description="Meta app secret: appsecret_proof and webhook signatures.")
    secret_key: SecretStr | None = Field(None, description="Fernet key(s), comma-separated, for tokens at rest.")
    webhook_verify_token: SecretStr | None = Field(None, description="Token Meta echoes in the webhook handshake.")
    trusted_proxies: str = Field(
        "", description="Reverse proxies (addresses or networks, comma-separated) whose X-Forwarded-For the HTTP "
                        "service believes, to limit logins per client. Empty: the peer address is the client."
    )

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies_are_addresses(cls, value: str) -> str:
        """A typo here would silently make every client share the proxy's address (or trust a spoofed one)."""
        import ipaddress

        for part in value.replace(" ", ",").split(","):
            if part:
                try:
                    ipaddress.ip_network(part, strict=False)
                except ValueError:
                    raise ValueError(f"{part!r} is not an IP address or network (e.g. 127.0.0.1, 10.0.0.0/8, "
                                     "::1)") from None
        return value

    @property
    def resolved_warehouse_url(self) -> str:
        """The warehouse URL, defaulting to a DuckDB file under ``data_dir``."""
        if self.warehouse_url:
            return self.warehouse_url
        return f"duckdb:///{(self.data_dir / 'leads.duckdb').resolve()}"
