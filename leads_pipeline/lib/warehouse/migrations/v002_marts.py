"""Migration 2: analytics marts, CRM contacts, notification outbox."""

from __future__ import annotations

from ..dialect import Dialect

NAME = "analytics marts, CRM contacts, notification outbox"


def statements(d: Dialect) -> list[str]:
    """Analytics marts (stats, funnel, daily, scores, person links), CRM contacts and matches, notification outbox.

    The marts are rebuilt whole by ``leads_pipeline.lib.marts.analytics`` (DELETE + INSERT … SELECT in one transaction);
    every column is described in ``docs/analytics.md``.
    """
    j = d.json
    stmts: list[str] = []
    # Secondary indexes help PostgreSQL's lookups; DuckDB scans with zone maps and hash joins, and an ART index
    # would only slow its bulk rewrites, so these are created on PostgreSQL only.
    pg_indexes: list[str] = []
    stmts.append(
        """CREATE TABLE IF NOT EXISTS lead_stats (
            distributor TEXT PRIMARY KEY,
            total BIGINT NOT NULL,
            new BIGINT NOT NULL,
            assigned BIGINT NOT NULL,
            contacted BIGINT NOT NULL,
            converted BIGINT NOT NULL,
            rejected BIGINT NOT NULL,
            refreshed_at TIMESTAMPTZ NOT NULL
        )"""
    )
    # No primary key: form_id / campaign_id are NULL for some leads (organic leads have no campaign).
    stmts.append(
        """CREATE TABLE IF NOT EXISTS conversion_funnel (
            distributor TEXT NOT NULL,
            form_id TEXT,
            campaign_id TEXT,
            campaign_name TEXT,
            cohort_week DATE NOT NULL,
            leads BIGINT NOT NULL,
            reached_assigned BIGINT NOT NULL,
            reached_contacted BIGINT NOT NULL,
            converted BIGINT NOT NULL,
            rejected BIGINT NOT NULL,
            rate_assigned DOUBLE PRECISION,
            rate_contacted DOUBLE PRECISION,
            rate_converted DOUBLE PRECISION,
            median_hours_to_first_contact DOUBLE PRECISION,
            p90_hours_to_first_contact DOUBLE PRECISION,
            refreshed_at TIMESTAMPTZ NOT NULL
        )"""
    )
    pg_indexes.append(
        "CREATE INDEX IF NOT EXISTS conversion_funnel_dist_week ON conversion_funnel (distributor, cohort_week)"
    )
    stmts.append(
        """CREATE TABLE IF NOT EXISTS lead_daily (
            distributor TEXT NOT NULL,
            day DATE NOT NULL,
            new_leads BIGINT NOT NULL,
            organic_leads BIGINT NOT NULL,
            paid_leads BIGINT NOT NULL,
            contacted BIGINT NOT NULL,
            converted BIGINT NOT NULL,
            rejected BIGINT NOT NULL,
            refreshed_at TIMESTAMPTZ NOT NULL,
            PRIMARY KEY (distributor, day)
        )"""
    )
    stmts.append(
        f"""CREATE TABLE IF NOT EXISTS lead_scores (
            meta_lead_id TEXT PRIMARY KEY,
            distributor TEXT NOT NULL,
            score INTEGER NOT NULL,
            grade TEXT NOT NULL,
            reasons {j} NOT NULL DEFAULT '[]',
            scored_at TIMESTAMPTZ NOT NULL
        )"""
    )
    stmts.append(
        """CREATE TABLE IF NOT EXISTS person_links (
            person_id TEXT NOT NULL,
            meta_lead_id TEXT PRIMARY KEY,
            distributor TEXT NOT NULL,
            form_id TEXT,
            match_on TEXT NOT NULL,
            linked_at TIMESTAMPTZ NOT NULL
        )"""
    )
    pg_indexes.append("CREATE INDEX IF NOT EXISTS person_links_person ON person_links (person_id)")
    stmts.append(
        """CREATE TABLE IF NOT EXISTS contacts (
            contact_id TEXT PRIMARY KEY,
            external_id TEXT,
            name TEXT,
            email TEXT,
            phone TEXT,
            source TEXT NOT NULL,
            imported_at TIMESTAMPTZ NOT NULL,
            updated_at TIMESTAMPTZ NOT NULL
        )"""
    )
    pg_indexes.append("CREATE INDEX IF NOT EXISTS contacts_email ON contacts (email)")
    pg_indexes.append("CREATE INDEX IF NOT EXISTS contacts_phone ON contacts (phone)")
    pg_indexes.append("CREATE INDEX IF NOT EXISTS contacts_source_external ON contacts (source, external_id)")
    stmts.append(
        """CREATE TABLE IF NOT EXISTS lead_contact_matches (
            meta_lead_id TEXT NOT NULL,
            contact_id TEXT NOT NULL,
            match_on TEXT NOT NULL,
            matched_at TIMESTAMPTZ NOT NULL,
            PRIMARY KEY (meta_lead_id, contact_id)
        )"""
    )
    pre, idcol = d.identity_column("notification_outbox")
    stmts += pre
    stmts.append(
        f"""CREATE TABLE IF NOT EXISTS notification_outbox (
            {idcol},
            meta_lead_id TEXT NOT NULL,
            distributor TEXT NOT NULL,
            recipient TEXT NOT NULL,
            subject TEXT NOT NULL,
            body TEXT NOT NULL,
            status TEXT NOT NULL DEFAULT 'pending',
            attempts INTEGER NOT NULL DEFAULT 0,
            last_error TEXT,
            created_at TIMESTAMPTZ NOT NULL DEFAULT CURRENT_TIMESTAMP,
            last_attempt_at TIMESTAMPTZ,
            sent_at TIMESTAMPTZ,
            UNIQUE (meta_lead_id, recipient)
        )"""
    )
    pg_indexes.append("CREATE INDEX IF NOT EXISTS notification_outbox_status ON notification_outbox (status)")
    if d.name == "postgres":
        stmts += pg_indexes
    return stmts
