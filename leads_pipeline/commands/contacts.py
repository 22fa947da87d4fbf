"""``leads-pipeline contacts import FILE [--source S]`` and ``leads-pipeline contacts match``: CRM linking."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from leads_pipeline.lib.crm.contacts import ContactsImportError, import_contacts, match_leads
from leads_pipeline.lib.warehouse import connect


def _warehouse():
    wh = connect()
    wh.migrate()
    return wh


@click.group("contacts")
def contacts() -> None:
    """CRM contacts: import them from a CSV export, and link leads to them by email or phone."""


@contacts.command("import")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--source", default="csv", show_default=True, help="Name of the CRM or export the file comes from.")
@click.option("--region", default="TR", show_default=True, help="Region for phone numbers without a country code.")
def import_(file: Path, source: str, region: str) -> None:
    """Import (upsert) contacts from FILE (headers like name,email,phone,external_id); prints the result as JSON.

    Bad rows are listed with their line numbers and skipped; the rest are imported. Re-importing updates contacts
    by external_id, else by email (else phone)."""
    try:
        result = import_contacts(_warehouse(), file, source, default_region=region or None)
    except ContactsImportError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(1)
    click.echo(json.dumps(result.to_dict(), indent=2, ensure_ascii=False))
    if result.rows and not result.imported:
        click.echo("Error: no row could be imported; see the errors above.", err=True)
        sys.exit(1)


@contacts.command("match")
def match() -> None:
    """Match leads to contacts (email first, then phone) and set leads.contact_id; prints {"matches": N}."""
    wh = _warehouse()
    n = match_leads(wh)
    with wh.transaction(read_only=True) as conn:
        linked = conn.scalar("SELECT count(DISTINCT meta_lead_id) FROM lead_contact_matches")
    click.echo(json.dumps({"matches": n, "leads_matched": int(linked or 0)}, indent=2))
