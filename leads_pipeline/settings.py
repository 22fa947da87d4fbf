"""Settings from ``LEADS_*`` environment variables (or a ``.env`` file in the working directory).

One place reads the environment, so every part of the project (CLI, Dagster resources, HTTP service) agrees on
the same values: ``Settings`` (pydantic-settings, in :mod:`leads_pipeline.settings_model`, imported on first use) and
``get_settings()``. Secrets are ``SecretStr`` so that printing or logging the settings never shows them. This module
imports nothing heavy, so that a quick command (``leads-pipeline stats``) can ask for the warehouse alone
(:func:`resolved_warehouse_url`) without paying for pydantic-settings.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from leads_pipeline.settings_model import Settings


from leads_pipeline.settings_defaults import DEFAULT_BUSY_TIMEOUT_SECONDS, DEFAULT_DATA_DIR, _default_data_dir  # noqa: F401


def __getattr__(name: str):
    """``Settings`` is imported on first use (``from leads_pipeline.settings import Settings`` still works)."""
    if name == "Settings":
        from leads_pipeline.settings_model import Settings

        return Settings
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (cached; tests call ``get_settings.cache_clear()`` after changing the env).

    ``LEADS_ENV_FILE`` names the dotenv file (default ``.env``; empty: none), so that tests and their subprocesses
    never read the developer's sandbox settings.
    """
    env_file = os.environ.get("LEADS_ENV_FILE", ".env")
    from leads_pipeline.settings_model import Settings

    return Settings(_env_file=env_file or None)


# ------------------------------------------------------------------------------------------- without pydantic-settings
# Importing pydantic-settings and building ``Settings`` costs 0.15–0.4 s (pydantic, its sources, asyncio, dotenv…):
# more than all of `leads-pipeline stats` may take (issue #14, P6: ≤ 0.3 s). The warehouse (``lib.warehouse``) needs
# two values only, so it asks for them here: read exactly as ``Settings`` reads them (``LEADS_`` + the field name in
# any case; the environment over the dotenv file named by ``LEADS_ENV_FILE``, default ``.env``, parsed by the same
# python-dotenv), and from ``Settings`` itself whenever it is loaded already, or when a value does not parse (so any
# error is Settings' own). leads_pipeline_tests/test_settings_quick.py holds both readers to the same answers.


def _raw(field: str) -> tuple[bool, str | None]:
    """(found, value) of setting ``field`` as ``Settings`` would see it before validation."""
    key = f"leads_{field}"
    found = [value for name, value in os.environ.items() if name.lower() == key]  # the last one wins, as there
    if found:
        return True, found[-1]
    env_file = os.environ.get("LEADS_ENV_FILE", ".env")
    path = Path(env_file).expanduser() if env_file else None
    if path is not None and (path.is_file() or path.is_fifo()):
        from dotenv import dotenv_values

        found = [value for name, value in dotenv_values(path, encoding="utf-8").items() if name.lower() == key]
        if found:
            return True, found[-1]
    return False, None


def resolved_warehouse_url() -> str:
    """``get_settings().resolved_warehouse_url``, without loading every setting when none is loaded yet."""
    if get_settings.cache_info().currsize:
        return get_settings().resolved_warehouse_url
    found, url = _raw("warehouse_url")
    if found and url is None:  # a bare `LEADS_WAREHOUSE_URL` line: let Settings say what it makes of it
        return get_settings().resolved_warehouse_url
    if url:
        return url
    found, data_dir = _raw("data_dir")
    if found and data_dir is None:
        return get_settings().resolved_warehouse_url
    return f"duckdb:///{((Path(data_dir) if found else DEFAULT_DATA_DIR) / 'leads.duckdb').resolve()}"


def warehouse_busy_timeout_seconds() -> float:
    """``get_settings().warehouse_busy_timeout_seconds``, likewise."""
    if not get_settings.cache_info().currsize:
        found, value = _raw("warehouse_busy_timeout_seconds")
        if not found:
            return DEFAULT_BUSY_TIMEOUT_SECONDS
        try:
            return float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            pass
    return float(get_settings().warehouse_busy_timeout_seconds)
