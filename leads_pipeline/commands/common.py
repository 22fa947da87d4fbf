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
