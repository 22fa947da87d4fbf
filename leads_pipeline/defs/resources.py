"""Resources: the warehouse and the Graph API, with their configuration as fields (shown in the UI's Resources tab).

Each field is bound in :func:`build_resources` (called by the ``LeadPipeline`` component) to an explicit value or
variable the component's YAML names, else to ``dg.EnvVar("LEADS_…")`` when the environment sets that variable
(Dagster then shows the variable's name and resolves its value in each run), and otherwise to the default the
settings give (``leads_pipeline.settings``: a DuckDB file under ``data/``, Meta's Graph API, v25.0 …), so
``make demo`` and ``make dev`` work with no configuration. Dagster has no optional ``EnvVar``: an ``EnvVar`` whose variable is unset
fails the run, hence the choice at load time.

Secrets (``LEADS_APP_SECRET``) are only ever an ``EnvVar`` or unset: a plain value would be shown in the UI and stored
in Dagster's run records. Unset (``None``) means "from the settings at run time" (a ``.env`` file that only the
settings read), which keeps the value out of Dagster altogether.
"""


import os
import threading
from typing import Any

import dagster as dg
from pydantic import Field, SecretStr

from leads_pipeline.lib.graph.factory import ClientFactory, settings_factory
from leads_pipeline.lib.warehouse import Warehouse, connect
from leads_pipeline.settings import Settings, get_settings

_migrated: set[str] = set()
_migrate_lock = threading.Lock()


class WarehouseResource(dg.ConfigurableResource):
    """The leads warehouse: a DuckDB file or PostgreSQL. The schema is migrated on first use in each process, so a
    new deployment needs no manual step."""

    url: str | None = Field(
        default=None,
        description="duckdb:///path/to/file.duckdb or postgresql://user@host:port/db (LEADS_WAREHOUSE_URL); "
        "unset: the settings' default, a DuckDB file under LEADS_DATA_DIR (data/leads.duckdb).",
    )

    def get(self) -> Warehouse:
        wh = connect(self.url or None)
        with _migrate_lock:
            if wh.url not in _migrated:
                wh.migrate()
                _migrated.add(wh.url)
        return wh


class GraphApiResource(dg.ConfigurableResource):
    """Meta's Graph API (or the built-in simulator). Access tokens are per distributor (stored encrypted in the
    warehouse), never part of this configuration. A field left unset takes the settings' value at run time."""

    base_url: str | None = Field(default=None, description="Graph API root (LEADS_GRAPH_BASE_URL), e.g. "
                                 "https://graph.facebook.com or the simulator's http://127.0.0.1:8765.")
    api_version: str | None = Field(default=None, description="Graph API version in every path "
                                    "(LEADS_GRAPH_API_VERSION), e.g. v25.0.")
    app_secret: str | None = Field(default=None, description="Meta app secret for appsecret_proof "
                                   "(LEADS_APP_SECRET); only ever an environment variable, never a value here.")
    page_limit: int | None = Field(default=None, description="`limit` per /{form-id}/leads page "
                                   "(LEADS_GRAPH_PAGE_LIMIT).")
    max_retries: int | None = Field(default=None, description="Retries of a transient error per request "
                                    "(LEADS_GRAPH_MAX_RETRIES).")
    timeout_seconds: float | None = Field(default=None, description="Per-request timeout "
                                          "(LEADS_GRAPH_TIMEOUT_SECONDS).")
    max_throttle_wait_seconds: float | None = Field(
        default=None, description="Longest wait for Meta's throttling window (LEADS_GRAPH_MAX_THROTTLE_WAIT_SECONDS).")
    token_cipher_key: str | None = Field(
        default=None, description="Fernet key(s) that decrypt the distributors' stored tokens (LEADS_SECRET_KEY); only "
        "ever an environment variable, never a value here. Unset: the settings' LEADS_SECRET_KEY.")

    def client_settings(self) -> Settings:
        """The settings with this resource's fields laid over them (what ``make_client`` and the sync read)."""
        if self.token_cipher_key and os.environ.get("LEADS_SECRET_KEY") != self.token_cipher_key:
            # The token cipher reads the settings (lib/security.py): a component that names another variable for
            # the key hands its value to this run's process under the settings' name.
            os.environ["LEADS_SECRET_KEY"] = self.token_cipher_key
            get_settings.cache_clear()
        s = get_settings()
        overrides: dict[str, Any] = {
            "graph_base_url": self.base_url,
            "graph_api_version": self.api_version,
            "graph_page_limit": self.page_limit,
            "graph_max_retries": self.max_retries,
            "graph_timeout_seconds": self.timeout_seconds,
            "graph_max_throttle_wait_seconds": self.max_throttle_wait_seconds,
        }
        update = {k: v for k, v in overrides.items() if v is not None}
        if self.app_secret:
            update["app_secret"] = SecretStr(self.app_secret)
        return s.model_copy(update=update)

    def client_factory(self) -> ClientFactory:
        """``token → GraphClient`` with this configuration (what ``sync_distributor`` and the inbox take)."""
        return settings_factory(self.client_settings())


def _env_or(name: str, default: Any, *, as_int: bool = False) -> Any:
    """``dg.EnvVar(name)`` when the environment sets ``name``, else ``default`` (see the module docstring)."""
    if os.environ.get(name):
        return dg.EnvVar.int(name) if as_int else dg.EnvVar(name)
    return default


def _named_env(name: str | None) -> dg.EnvVar | None:
    """``dg.EnvVar(name)`` when ``name`` is given and set in the environment, else None (the settings decide)."""
    return dg.EnvVar(name) if name and os.environ.get(name) else None


def build_resources(*, warehouse_url: str | None = None, warehouse_url_env: str | None = None,
                    graph_base_url: str | None = None, graph_api_version: str | None = None,
                    app_secret_env: str | None = None, token_cipher_key_env: str | None = None,
                    ) -> dict[str, dg.ConfigurableResource]:
    """The ``warehouse`` and ``graph`` resources. Explicit values (the component's YAML) win; names of environment
    variables become ``dg.EnvVar``s (secrets and URLs that may carry a password are only ever passed this way);
    anything else follows the LEADS_* environment and the settings' defaults, as described in the module docstring."""
    s = get_settings()
    # The default warehouse URL is shown only when it is the settings' own default (a DuckDB file path): a URL that
    # only a .env file sets may carry a password, so it stays unset here and the settings supply it at run time.
    default_url = s.resolved_warehouse_url if not s.warehouse_url else None
    url = warehouse_url or _named_env(warehouse_url_env) or _env_or("LEADS_WAREHOUSE_URL", default_url)
    graph = GraphApiResource(
        base_url=graph_base_url or _env_or("LEADS_GRAPH_BASE_URL", s.graph_base_url),
        api_version=graph_api_version or _env_or("LEADS_GRAPH_API_VERSION", s.graph_api_version),
        app_secret=_named_env(app_secret_env) or _env_or("LEADS_APP_SECRET", None),
        token_cipher_key=_named_env(token_cipher_key_env) if token_cipher_key_env != "LEADS_SECRET_KEY" else None,
        page_limit=_env_or("LEADS_GRAPH_PAGE_LIMIT", s.graph_page_limit, as_int=True),
        max_retries=_env_or("LEADS_GRAPH_MAX_RETRIES", s.graph_max_retries, as_int=True),
        # Dagster has no float EnvVar: the value the settings read (environment, .env or default) is shown.
        timeout_seconds=s.graph_timeout_seconds,
        max_throttle_wait_seconds=s.graph_max_throttle_wait_seconds,
    )
    return {"warehouse": WarehouseResource(url=url), "graph": graph}


def resources() -> dg.Definitions:
    """The resources as the environment configures them (what this project's ``defs/pipeline`` binds)."""
    return dg.Definitions(resources=build_resources())
