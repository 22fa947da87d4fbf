"""Where a lead's personal data lives, and erasing it (a privacy / deletion request).

``PERSONAL_DATA_TABLES`` lists every ``(table, id_column)`` pair holding rows about one lead, keyed by its Meta lead
id. Whoever adds a per-lead table (a mart, an outbox, a match table…) adds it to the list *in this file* — not by
appending from their own module at import time, since a delete run from the CLI or the HTTP service may never import
that module; ``erase_lead`` then removes the lead's rows from it too. A listed table that does not exist (yet) is
skipped; a listed column that does not exist is an error, so a typo never silently leaves personal data behind.

Deleting is done by ``leads_pipeline.lib.crm.delete_lead`` / ``bulk(…, "delete")``, which erase and write the
``lead_tombstones`` row in the same transaction; ingest skips tombstoned ids, so the lead never comes back.

Not erased here: aggregate marts (``lead_stats``, ``conversion_funnel``, ``lead_daily``: counts only, no person),
``audit_log`` (it never holds a lead's personal data: statuses, user ids, reasons only), ``contacts`` (records
imported from the distributor's own CRM, a separate source; the lead's *link* to them, ``lead_contact_matches``, is
erased), and copies outside the warehouse (Dagster's event log only ever holds masked previews, see
``leads_pipeline/defs/metadata.py``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from leads_pipeline.lib.warehouse import Conn

# (table, column holding the Meta lead id). A table may appear more than once with different columns.
PERSONAL_DATA_TABLES: list[tuple[str, str]] = [
    ("leads", "meta_lead_id"),
    ("raw_leads", "meta_lead_id"),
    ("raw_leads", "raw_key"),  # the raw_key of a lead with an id is its Meta lead id
    ("rejected_leads", "meta_lead_id"),
    ("webhook_inbox", "leadgen_id"),
    ("lead_interactions", "meta_lead_id"),
    ("lead_scores", "meta_lead_id"),
    ("person_links", "meta_lead_id"),
    ("lead_contact_matches", "meta_lead_id"),
    ("notification_outbox", "meta_lead_id"),
]

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class PrivacyConfigError(RuntimeError):
    """``PERSONAL_DATA_TABLES`` names a column that does not exist, or a name that is not an identifier."""


def present_tables(conn: Conn) -> list[tuple[str, str]]:
    """The pairs of ``PERSONAL_DATA_TABLES`` whose table exists in this warehouse (duplicates removed)."""
    pairs = list(dict.fromkeys(PERSONAL_DATA_TABLES))
    for table, column in pairs:
        if not (_IDENT.match(table) and _IDENT.match(column)):
            raise PrivacyConfigError(f"PERSONAL_DATA_TABLES: {table!r}.{column!r} is not a plain identifier")
    rows = conn.query(
        "SELECT table_name, column_name FROM information_schema.columns "
        "WHERE table_schema = current_schema() AND table_catalog = current_database()"
    )
    columns: dict[str, set[str]] = {}
    for r in rows:
        columns.setdefault(str(r["table_name"]).lower(), set()).add(str(r["column_name"]).lower())
    present = []
    for table, column in pairs:
        cols = columns.get(table.lower())
        if cols is None:
            continue  # not created yet
        if column.lower() not in cols:
            raise PrivacyConfigError(
                f"PERSONAL_DATA_TABLES names {table}.{column}, but {table} has no column {column}: fix the list in "
                "leads_pipeline/lib/crm/privacy.py (nothing was erased)."
            )
        present.append((table, column))
    return present


def erase_lead(conn: Conn, lead_id: str) -> dict[str, int]:
    """Delete every row about ``lead_id`` from the personal-data tables, inside the caller's transaction.

    Returns rows deleted per table (-1 where the backend does not report a count).
    """
    counts: dict[str, int] = {}
    for table, column in present_tables(conn):
        n = conn.execute(f"DELETE FROM {table} WHERE {column} = ?", [str(lead_id)])
        counts[table] = counts.get(table, 0) + max(n, 0)
    return counts


def erase_leads(conn: Conn, lead_ids: Iterable[str]) -> dict[str, int]:
    """``erase_lead`` for many ids, set-based: the ids are staged once, then one DELETE per table."""
    ids = list(dict.fromkeys(str(i) for i in lead_ids))
    if not ids:
        return {}
    if len(ids) == 1:
        return erase_lead(conn, ids[0])
    conn.stage("privacy_erase_ids", {"meta_lead_id": "TEXT"}, [(i,) for i in ids])
    counts: dict[str, int] = {}
    for table, column in present_tables(conn):
        n = conn.execute(f"DELETE FROM {table} WHERE {column} IN (SELECT meta_lead_id FROM privacy_erase_ids)")
        counts[table] = counts.get(table, 0) + max(n, 0)
    return counts
