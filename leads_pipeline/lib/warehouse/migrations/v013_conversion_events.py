"""Migration 13: the Conversions API for CRM — per-distributor settings and the outbox of stage events."""

from __future__ import annotations

from ..dialect import Dialect

NAME = "conversions api: settings per distributor and the conversion events outbox"


def statements(d: Dialect) -> list[str]:
    """``capi_settings`` and ``conversion_events`` (written by ``lib/capi``).

    Meta optimises Lead Ads for leads that convert only when the CRM reports each lead's stages back (Conversions API
    for CRM). ``capi_settings`` holds, per distributor, where to send them: the dataset id (NULL = off), an optional
    token of its own (Fernet-encrypted like ``distributors.token_encrypted``; NULL = the distributor's token), the
    CRM name Meta shows as ``lead_event_source``, which of our statuses become which event name, whether hashed
    email/phone go along (off by default), a test event code, and the delivery lease that keeps two senders of one
    distributor from sending the same events.

    ``conversion_events`` is a durable outbox: one row per stage a lead reached (its arrival, every status change and
    reopening), keyed by a deterministic ``event_id`` (SHA-256 of distributor, lead, stage and stage time), so
    scanning twice enqueues nothing twice and a row marked ``sent`` is never sent again. Rows are derived from
    ``leads.first_seen_at`` and ``lead_interactions``; nothing else writes them. PostgreSQL gets indexes for the
    enqueue scan (interactions by distributor and write time) and the pending queue; DuckDB scans columns.
    """
    j = d.json
    stmts = [
        f"""CREATE TABLE IF NOT EXISTS capi_settings (
            distributor TEXT PRIMARY KEY,
            dataset_id TEXT,
            token_encrypted TEXT,
            token_fingerprint TEXT,
            crm_name TEXT NOT NULL,
            stage_events {j} NOT NULL,
            hashed_contacts BOOLEAN NOT NULL DEFAULT FALSE,
            test_event_code TEXT,
            configured_at TIMESTAMPTZ,
            enqueued_at TIMESTAMPTZ,
            last_send_at TIMESTAMPTZ,
            last_error TEXT,
            lease_id TEXT,
            lease_until TIMESTAMPTZ,
            updated_at TIMESTAMPTZ NOT NULL DEFAULT CURRENT_TIMESTAMP
        )""",
        """CREATE TABLE IF NOT EXISTS conversion_events (
            event_id TEXT PRIMARY KEY,
            distributor TEXT NOT NULL,
            meta_lead_id TEXT NOT NULL,
            stage TEXT NOT NULL,
            event_name TEXT NOT NULL,
            event_time TIMESTAMPTZ NOT NULL,
            status TEXT NOT NULL DEFAULT 'pending',
            attempts INTEGER NOT NULL DEFAULT 0,
            last_error TEXT,
            created_at TIMESTAMPTZ NOT NULL DEFAULT CURRENT_TIMESTAMP,
            sent_at TIMESTAMPTZ,
            batch_id TEXT,
            fbtrace_id TEXT
        )""",
    ]
    if d.name == "postgres":
        stmts += [
            "CREATE INDEX IF NOT EXISTS conversion_events_lead ON conversion_events (meta_lead_id)",
            ("CREATE INDEX IF NOT EXISTS conversion_events_pending ON conversion_events (distributor, event_time) "
             "WHERE status = 'pending'"),
            ("CREATE INDEX IF NOT EXISTS lead_interactions_distributor_recorded ON lead_interactions "
             "(distributor, recorded_at)"),
            "CREATE INDEX IF NOT EXISTS leads_distributor_first_seen ON leads (distributor, first_seen_at)",
        ]
    return stmts
