"""``leads-pipeline capi``: send lead stages to Meta's Conversions API for CRM, and see what waits.

Setting a distributor up is ``leads-pipeline distributors update KEY --capi-dataset-id ID [--capi-token-stdin]
[--crm-name NAME]`` (docs/conversions-api.md). ``send`` is what the Dagster asset ``meta_conversion_events`` runs;
from the CLI it is for a first try, or after fixing a token. Output is JSON; the exit status is 0 when everything
went, 2 when part did (events rejected or expired, or delivery stopped after some were sent), 1 when nothing could be
sent.
"""

from __future__ import annotations

import sys

import click

from leads_pipeline.commands.common import echo_json, fail, warehouse

_TOTALS = ("enqueued", "sent", "failed", "expired", "pending", "requests")


@click.group("capi")
def capi() -> None:
    """Meta Conversions API for CRM: report each lead's stages back to Meta (see docs/conversions-api.md)."""


@capi.command("send")
@click.argument("key", required=False)
def send(key: str | None) -> None:
    """Send the waiting events of KEY (default: every distributor with a dataset id) and print what happened."""
    from leads_pipeline.lib import capi as lib
    from leads_pipeline.lib.distributors.errors import DistributorError

    wh = warehouse()
    try:
        results = lib.send_all(wh, [key] if key else None)
    except DistributorError as exc:
        fail(str(exc))
    if key:
        result = results[0]
        echo_json(result.to_dict())
        if result.status == "not_configured":
            fail(result.message)
        if result.exit_code:
            click.echo(f"Error: {result.message}", err=True)
        sys.exit(result.exit_code)
    totals = {name: sum(getattr(r, name) for r in results) for name in _TOTALS}
    oldest = [r.oldest_pending_age_seconds for r in results if r.oldest_pending_age_seconds is not None]
    codes = [r.exit_code for r in results]
    status = "ok" if not any(codes) else ("failed" if all(c == 1 for c in codes) else "partial")
    message = (f"{totals['sent']} event(s) sent for {len(results)} distributor(s)." if results else
               "No distributor has a Conversions API dataset: set one with `leads-pipeline distributors update KEY "
               "--capi-dataset-id ID`.")
    echo_json({**totals, "status": status, "oldest_pending_age_seconds": max(oldest) if oldest else None,
               "message": message, "distributors": [r.to_dict() for r in results]})
    code = {"ok": 0, "partial": 2}.get(status, 1)
    if code:
        for r in results:
            if r.exit_code:
                click.echo(f"Error: {r.message}", err=True)
    sys.exit(code)


@capi.command("status")
@click.argument("key", required=False)
def status(key: str | None) -> None:
    """Each distributor's Conversions API settings (never a token) and its events by status."""
    from leads_pipeline.lib import capi as lib
    from leads_pipeline.lib.distributors import registry

    wh = warehouse()
    try:
        keys = [registry.get(wh, key).key] if key else [d.key for d in registry.list_all(wh)]
    except registry.DistributorError as exc:
        fail(str(exc))
    counts = lib.outbox_counts(wh)
    empty = {"pending": 0, "sent": 0, "failed": 0, "expired": 0, "oldest_pending_age_seconds": None}
    echo_json([{"key": k, "settings": lib.get(wh, k).to_dict(), "events": counts.get(k, empty)} for k in keys])
