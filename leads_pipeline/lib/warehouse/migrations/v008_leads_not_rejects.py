"""Migration 8: leads with unreachable contacts kept; contact flags."""

from __future__ import annotations

from ..dialect import Dialect

NAME = "leads with unreachable contacts kept; contact flags"


def statements(d: Dialect) -> list[str]:
    """``leads`` gains ``status_reason`` (why the parser stored a lead as 'rejected': ``no valid contact``) and
    ``email_raw`` / ``phone_raw`` (a contact answer as typed when it does not validate; the flag analysts filter on).

    Quarantine (``rejected_leads``) is now only for records that cannot be a lead, so the rows quarantined as
    ``no_contact`` are leads: their raw rows are marked unprocessed again and the row in ``rejected_leads`` goes, so
    the next run's recovery (``ingest.process_raw``, which parses every unprocessed raw row of the distributor)
    stores each as a ``leads`` row with status 'rejected' — nothing is lost in between, the payload stays in
    ``raw_leads``. (DuckDB 2 adds columns to a table with a primary key in place.)
    """
    reopened = ("EXISTS (SELECT 1 FROM rejected_leads r WHERE r.reason = 'no_contact' "
                "AND r.distributor = raw_leads.distributor AND r.reject_key = raw_leads.raw_key)")
    return [
        "ALTER TABLE leads ADD COLUMN IF NOT EXISTS status_reason TEXT",
        "ALTER TABLE leads ADD COLUMN IF NOT EXISTS email_raw TEXT",
        "ALTER TABLE leads ADD COLUMN IF NOT EXISTS phone_raw TEXT",
        f"UPDATE raw_leads SET processed_at = NULL WHERE processed_at IS NOT NULL AND {reopened}",
        "DELETE FROM rejected_leads WHERE reason = 'no_contact' AND EXISTS (SELECT 1 FROM raw_leads w "
        "WHERE w.distributor = rejected_leads.distributor AND w.raw_key = rejected_leads.reject_key)",
    ]
