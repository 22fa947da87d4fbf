"""``leads-pipeline test-connection KEY`` and ``leads-pipeline sync KEY``: the seed's two buttons, on the command line."""

from __future__ import annotations

import sys

import click

from leads_pipeline.commands.common import echo_json, fail, warehouse
from leads_pipeline.lib.distributors import registry as distributors
from leads_pipeline.lib.ingest import sync as sync_lib


def _known(wh, key: str) -> None:
    try:
        distributors.get(wh, key)
    except distributors.DistributorNotFound as exc:
        fail(str(exc))


@click.command("test-connection")
@click.argument("key")
def test_connection(key: str) -> None:
    """Check a distributor's token, forms and lead access; prints {"success", "message"}."""
    wh = warehouse()
    _known(wh, key)
    result = sync_lib.test_connection(wh, key)
    if not result["success"]:
        fail(result["message"], result)
    echo_json(result)


#: Exit status of ``sync``: every Page and form synced / some failed (the rest synced) / the run failed.
EXIT_SUCCESS, EXIT_FAILED, EXIT_PARTIAL = 0, 1, 2


@click.command("sync")
@click.argument("key")
@click.option("--quiet", is_flag=True, help="No progress display on stderr.")
def sync(key: str, quiet: bool) -> None:
    """Sync one distributor now; prints {"success", "fetched", "stored", "errors", "message"}.

    \b
    Exit status:
      0  success: every Page and form was read
      2  partial: some Pages or forms failed (named in errors, with what to do); the others were synced
      1  failed: nothing could be synced (e.g. the token expired); the message says what to do
    """
    wh = warehouse()
    _known(wh, key)
    show = not quiet and sys.stderr.isatty()

    def progress(form_id: str, fetched: int) -> None:
        if show:
            click.echo(f"\r  form {form_id}: {fetched} leads read", err=True, nl=False)

    result = sync_lib.sync_distributor(wh, key, trigger="cli", on_page=progress)
    if show:
        click.echo("", err=True)
    if result.status == "failed":
        fail(result.message, result.seed_dict())
    from leads_pipeline.defs.events import record_cli_sync  # dagster only when an instance exists (events.py)

    record_cli_sync(key, result, wh=wh)
    echo_json(result.seed_dict())
    if result.partial:
        click.echo(f"Warning: {result.message}", err=True)
        sys.exit(EXIT_PARTIAL)
