"""``leads-pipeline privacy find TEXT`` and ``leads-pipeline privacy compact``: the two halves of a privacy request
around ``lead delete``.

A person asks to be erased by name, e-mail or phone, not by a Meta lead id — and some of their records have no usable
id at all (quarantined as ``missing_id`` / ``bad_id``). ``find`` lists every record holding that text with the
handle ``lead delete`` takes. ``lead delete`` removes the rows; ``compact`` then rewrites the warehouse's files so the
erased bytes are gone from the disk too (docs/privacy.md).
"""

from __future__ import annotations

import click

from leads_pipeline.commands.common import echo_json, fail, warehouse
from leads_pipeline.commands.leads import as_option, current_actor, friendly, json_option


@click.group("privacy")
def privacy() -> None:
    """Privacy requests: find a person's records; rewrite the warehouse files after erasing them."""


@privacy.command("find")
@click.argument("text")
@json_option
@as_option
@friendly
def find_cmd(text: str, as_json: bool) -> None:
    """Every record holding TEXT (an e-mail, a phone number in any spacing, a name), with the handle to give to
    `leads-pipeline lead delete` — also for records without a usable lead id (superadmin)."""
    from leads_pipeline.lib.crm import privacy as lib_privacy

    found = lib_privacy.find(warehouse(), text, actor=current_actor())
    if as_json:
        echo_json(found)
        return
    if not found:
        click.echo("No record holds that text.")
        return
    for r in found:  # the handle whole (a `sha256:` one is 71 characters): it is what `lead delete` takes
        click.echo(f"{r['handle']}\n    distributor {r['distributor'] or '-'} · {', '.join(r['kinds'])} · in "
                   f"{', '.join(r['found_in'])}")
    click.echo("\nErase each with `leads-pipeline lead delete HANDLE --reason …`, then run "
               "`leads-pipeline privacy compact` so the erased rows are gone from the database files too.")


@privacy.command("compact")
@click.option("--yes", is_flag=True, help="Don't ask for confirmation.")
@json_option
def compact_cmd(yes: bool, as_json: bool) -> None:
    """Rewrite the warehouse's files without the bytes of deleted rows (DuckDB: a fresh copy of the file replaces it;
    PostgreSQL: VACUUM FULL of every table). Other processes wait meanwhile; run it after privacy deletions."""
    from leads_pipeline.lib.warehouse import WarehouseError
    from leads_pipeline.lib.warehouse.compact import compact

    if not yes:
        click.confirm("Rewrite the warehouse files now? Syncs, the HTTP service and notebooks wait until it is done",
                      abort=True, err=True)
    try:
        result = compact(warehouse())
    except WarehouseError as exc:
        fail(str(exc))
    if as_json:
        echo_json(result.to_dict())
    elif result.backend == "duckdb":
        click.echo(f"Rewrote {result.path}: {result.bytes_before:,} → {result.bytes_after:,} bytes in "
                   f"{result.seconds:.1f} s. Backups and copies made before still hold what was erased.")
    else:
        click.echo(f"VACUUM FULL of {len(result.tables)} tables in {result.seconds:.1f} s. Backups, replicas and "
                   "PostgreSQL's write-ahead log keep old row versions until they expire or are recycled.")
