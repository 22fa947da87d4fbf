"""Migration 9: webhook inbox retries with backoff."""

from __future__ import annotations

from ..dialect import Dialect

NAME = "webhook inbox retries with backoff"


def statements(d: Dialect) -> list[str]:
    """``webhook_inbox`` gains its retry schedule as columns, and the sync run that last handled each row.

    A lead Meta cannot serve yet (100/33 right after the event) is retried with backoff for hours, so the processor
    needs to know how many tries failed (``attempts``) and when the next is due (``next_attempt_at``; NULL = now)
    without parsing them out of the error text, as the first version did (``attempt N/M failed: …``): those counts
    are carried over. ``sync_id`` is the ``sync_runs`` row of the webhook run that processed the row.
    PostgreSQL: the pending index also serves the "due rows of a distributor" query.
    """
    attempt = ("CAST(regexp_extract(error, '^attempt ([0-9]+)/', 1) AS INTEGER)" if d.name == "duckdb"
               else "CAST(substring(error from '^attempt ([0-9]+)/') AS INTEGER)")
    stmts = [
        "ALTER TABLE webhook_inbox ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE webhook_inbox ADD COLUMN next_attempt_at TIMESTAMPTZ",
        "ALTER TABLE webhook_inbox ADD COLUMN sync_id TEXT",
        f"UPDATE webhook_inbox SET attempts = {attempt}, error = substr(error, strpos(error, ': ') + 2) "
        "WHERE status = 'pending' AND error LIKE 'attempt %/% failed: %'",
    ]
    if d.name == "postgres":
        stmts += [
            "DROP INDEX IF EXISTS webhook_inbox_pending",
            "CREATE INDEX IF NOT EXISTS webhook_inbox_pending ON webhook_inbox "
            "(distributor, next_attempt_at, received_at) WHERE status = 'pending'",
        ]
    return stmts
