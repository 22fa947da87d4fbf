"""``leads-pipeline import PATH --distributor KEY [--format auto|jsonl|csv]``: leads from files, as a sync stores them."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import click

from leads_pipeline.commands.common import echo_json, fail, warehouse


@click.command("import")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--distributor", "-d", "distributor", required=True, help="Key of the distributor the leads belong to.")
@click.option("--format", "fmt", type=click.Choice(["auto", "jsonl", "csv"]), default="auto", show_default=True,
              help="jsonl: Graph API pages or one lead per line; csv: Meta's lead export (Ads Manager).")
@click.option("--workers", type=click.IntRange(min=0), default=None,
              help="Parsing processes (default: one per core for large files, none for small ones).")
@click.option("--quiet", is_flag=True, help="No progress display on stderr.")
def import_(path: Path, distributor: str, fmt: str, workers: int | None, quiet: bool) -> None:
    """Import leads from PATH for a distributor; prints {"success", "fetched", "stored", "errors", "message"}.

    The leads go through the same parsing, validation, deduplication and storage as a sync: leads already in the
    warehouse are skipped, malformed ones land in rejected_leads with their reason, deleted ones never come back.
    Unreadable lines are listed with their line numbers (the exit status is then 1). Re-running is safe."""
    from leads_pipeline.lib.ingest.importer import ImportError_, import_file

    wh = warehouse()
    show = not quiet and sys.stderr.isatty()  # a progress line on a terminal; nothing in pipes and logs
    total = path.stat().st_size if path.is_file() else 0
    started = time.monotonic()

    def progress(running: Any) -> None:
        if show:
            rate = running.fetched / max(time.monotonic() - started, 1e-6)
            click.echo(f"\r  {running.fetched:,} leads read ({rate:,.0f}/s), {running.stored:,} new stored "
                       f"— {total / 1e6:,.0f} MB file", err=True, nl=False)

    try:
        result = import_file(wh, path, distributor, fmt=fmt, workers=workers, on_progress=progress)
    except ImportError_ as exc:
        fail(str(exc))
    finally:
        if show:
            click.echo("", err=True)
    if not result.success:
        fail(result.message, result.seed_dict())
    from leads_pipeline.defs.events import record_cli_sync  # dagster only when an instance exists (events.py)

    record_cli_sync(distributor, result, wh=wh, source="cli import")
    echo_json(result.seed_dict())
