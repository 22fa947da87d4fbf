"""Migration 4: PostgreSQL indexes for look-ups, deletes and the inbox."""

from __future__ import annotations

from ..dialect import Dialect

NAME = "PostgreSQL indexes for look-ups, deletes and the inbox"


def statements(d: Dialect) -> list[str]:
    """Indexes for the staff's look-ups, privacy deletes and the inbox sensor — on PostgreSQL only.

    DuckDB answers these with fast column scans, and every extra index there slows the bulk writes of a sync.
    ``raw_leads`` rows are marked processed in bulk, so autovacuum must visit it often or the partial index of
    unprocessed rows keeps pointing at dead tuples.
    """
    if d.name != "postgres":
        return []
    return [
        "CREATE INDEX IF NOT EXISTS leads_status ON leads (status)",
        "CREATE INDEX IF NOT EXISTS leads_distributor_created ON leads (distributor, created_time)",
        "CREATE INDEX IF NOT EXISTS leads_assigned_to ON leads (assigned_to)",
        "CREATE INDEX IF NOT EXISTS raw_leads_meta_lead_id ON raw_leads (meta_lead_id)",
        "CREATE INDEX IF NOT EXISTS rejected_leads_meta_lead_id ON rejected_leads (meta_lead_id)",
        "CREATE INDEX IF NOT EXISTS audit_log_entity ON audit_log (entity_type, entity_id)",
        "CREATE INDEX IF NOT EXISTS webhook_inbox_pending ON webhook_inbox (distributor, received_at) "
        "WHERE status = 'pending'",
        "CREATE INDEX IF NOT EXISTS webhook_inbox_unrouted ON webhook_inbox (page_id) WHERE status = 'unrouted'",
        "ALTER TABLE raw_leads SET (autovacuum_vacuum_scale_factor = 0.01, autovacuum_analyze_scale_factor = 0.02)",
    ]
