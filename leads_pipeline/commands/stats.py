"""``leads-pipeline stats [--distributor KEY]``: the seed's lead counts, computed live from ``leads``."""

from __future__ import annotations

import json
import sys

import click

from leads_pipeline.lib.crm.rules import STATUSES
from leads_pipeline.lib.marts.analytics import live_stats
from leads_pipeline.lib.warehouse import connect


@click.command("stats")
@click.option("--distributor", "distributor", metavar="KEY", default=None, help="Only this distributor's leads.")
def stats(distributor: str | None) -> None:
    """Lead counts by status, as JSON: {"total","new","assigned","contacted","converted","rejected"}.

    Over all leads, or one distributor's. On a warehouse that holds no leads at all it says so on stderr (and where
    that warehouse is), so zeros from the wrong folder or an unset URL are not mistaken for an answer.
    """
    wh = connect()
    if wh.path is not None and not wh.path.exists():
        # No DuckDB file yet: nothing to count, and a command that only reads leaves no empty warehouse behind
        # (creating one took seconds of migrations; issue #14, P6).
        result = dict.fromkeys(("total", *STATUSES), 0)
        known = distributor is None
    else:
        with wh.reading() as conn:  # one read-only opening; migrates first only a warehouse that is behind
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
    if distributor is None and result["total"] == 0:
        click.echo(f"Note: the warehouse at {wh.location} holds no leads yet: run `make demo`, or add a distributor "
                   "and sync it (`leads-pipeline distributors add`, `leads-pipeline sync KEY`).", err=True)
