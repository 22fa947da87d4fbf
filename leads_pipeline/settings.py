"""Settings from ``LEADS_*`` environment variables (or a ``.env`` file in the working directory).

One place reads the environment, so every part of the project (CLI, Dagster resources, HTTP service) agrees on
the same values. Secrets are ``SecretStr`` so that printing or logging the settings never shows them.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict



def _default_data_dir() -> Path:
    """Where runtime data lives when ``LEADS_DATA_DIR`` is not set: anchored, never the current folder.

    A relative ``data`` made ``stats`` run from another folder open a new, empty warehouse and print zeros. From a
    source checkout (the editable install ``make`` creates) it is the checkout's ``data/``, where ``make demo``
    puts the demo; from an installed package, the user's data folder (``$XDG_DATA_HOME/leads_pipeline``).
    """
    checkout = Path(__file__).resolve().parents[1]
    if (checkout / "pyproject.toml").is_file() and (checkout / "workspace.yaml").is_file():
        return checkout / "data"
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "leads_pipeline"


DEFAULT_DATA_DIR = _default_data_dir()


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LEADS_", env_file=".env", extra="ignore")

    data_dir: Path = Field(DEFAULT_DATA_DIR, description="Runtime data: the DuckDB file, Dagster's local instance.")
    warehouse_url: str = Field(
        "",
        description="duckdb:///path/to/file.duckdb (default: leads.duckdb in the data directory) or "
                    "postgresql://user@host:port/db.",
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


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (cached; tests call ``get_settings.cache_clear()`` after changing the env).

    ``LEADS_ENV_FILE`` names the dotenv file (default ``.env``; empty: none), so that tests and their subprocesses
    never read the developer's sandbox settings.
    """
    env_file = os.environ.get("LEADS_ENV_FILE", ".env")
    return Settings(_env_file=env_file or None)
