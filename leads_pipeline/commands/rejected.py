"""``leads-pipeline rejected list``: the quarantine — records that cannot be a lead, with the rule each broke."""

from __future__ import annotations

import click

from leads_pipeline.commands.common import echo_json, warehouse
from leads_pipeline.commands.leads import (
    as_option,
    authorize_read,
    current_actor,
    echo_table,
    friendly,
    group_as_option,
    json_option,
    plain,
)
from leads_pipeline.lib.crm.quarantine import REASONS, list_rejected


@click.group("rejected")
@group_as_option
def rejected() -> None:
    """The quarantine: records that cannot be a lead (no usable id, no created_time, answers not a list)."""


@rejected.command("list")
@click.option("--distributor", "-d", metavar="KEY", help="Only this distributor's records.")
@click.option("--reason", type=click.Choice(REASONS), help="Only records that broke this rule.")
@click.option("--limit", "-n", default=50, show_default=True, type=click.IntRange(1, 10_000))
@json_option
@as_option
@friendly
def list_cmd(distributor: str | None, reason: str | None, limit: int, as_json: bool) -> None:
    """List quarantined records, newest first, with why each was refused (never their answers).

    A lead without a usable email or phone is not here: it is a lead with status 'rejected' (`lead list --status
    rejected`), which staff can reopen.
    """
    wh = warehouse()
    authorize_read(wh, "lead.list")
    result = list_rejected(wh, actor=current_actor(), distributor=distributor, reason=reason, limit=limit)
    if as_json:
        echo_json(plain(result))
        return
    if not result["total"]:
        click.echo("Nothing is quarantined.")
        return
    counts = ", ".join(f"{n} {r}" for r, n in result["by_reason"].items())
    echo_table(result["items"], [("DISTRIBUTOR", "distributor"), ("ID AS SENT", "meta_lead_id"),
                                 ("KEY", "reject_key"), ("FORM", "form_id"), ("REASON", "reason"),
                                 ("DETAIL", "detail"), ("LAST SEEN", "last_seen_at")])
    shown = len(result["items"])
    click.echo(f"\n{result['total']} quarantined ({counts}); showing {shown}. "
               "A person's record: `leads-pipeline privacy find TEXT`.")
