"""``leads-pipeline stats [--distributor KEY]``: the seed's lead counts, computed live from ``leads``."""

from __future__ import annotations

import json
import sys

import click

from leads_pipeline.lib.marts.analytics import live_stats
from leads_pipeline.lib.warehouse import connect


@click.command("stats")
@click.option("--distributor", "distributor", metavar="KEY", default=None, help="Only this distributor's leads.")
def stats(distributor: str | None) -> None:
    """Print {"total","new","assigned","contacted","converted","rejected"} for all leads (or one distributor)."""
    wh = connect()
    wh.migrate()
    with wh.transaction(read_only=True) as conn:
        result = live_stats(conn, distributor)
        known = distributor is None or result["total"] > 0 or bool(
            conn.scalar("SELECT count(*) FROM distributors WHERE key = ?", [distributor])
        )
    if not known:
        click.echo(json.dumps(result, indent=2))
        click.echo(
            f"Error: no distributor {distributor!r} and no leads for it; list the configured ones with "
            "`leads-pipeline distributors list`.",
            err=True,
        )
        sys.exit(1)
    click.echo(json.dumps(result, indent=2))
