"""What every command shares: the migrated warehouse, JSON output, and failing with a message and exit status 1."""

from __future__ import annotations

import json
import sys
from typing import Any, NoReturn

import click

from leads_pipeline.lib.warehouse import Warehouse, connect


def warehouse() -> Warehouse:
    """The warehouse of the settings, migrated to the newest schema."""
    wh = connect()
    wh.migrate()
    return wh


def echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def fail(message: str, data: Any | None = None) -> NoReturn:
    """Print ``data`` (when given) as JSON on stdout, the message on stderr, and exit 1."""
    if data is not None:
        echo_json(data)
    click.echo(f"Error: {message}", err=True)
    sys.exit(1)


#: Commands whose output is the seed's JSON: on a warehouse error they still print it, with success false.
_SEED_JSON = {"sync": {"fetched": 0, "stored": 0}, "import": {"fetched": 0, "stored": 0}, "test-connection": {}}


def warehouse_failed(command: str | None, exc: Exception) -> NoReturn:
    """Every command's answer to a ``WarehouseError`` (e.g. ``WarehouseBusy``, a PostgreSQL that does not answer):
    its message — who waited for what, what to do — never a traceback; the seed's JSON commands print their JSON
    with ``success: false``; exit status 1. Called once, by the CLI's group (``cli.py``)."""
    message = str(exc)
    shape = _SEED_JSON.get(command or "")
    if shape is None:
        fail(message)
    data: dict[str, Any] = {"success": False, **shape}
    if "fetched" in shape:
        data["errors"] = [message]
    data["message"] = message
    fail(message, data)
