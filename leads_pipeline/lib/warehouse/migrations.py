"""Versioned schema migrations, applied in order and recorded in ``schema_migrations``.

The schema is created and changed only here, never by hand: each migration is a function of the backend's
``Dialect`` returning its statements, so one definition serves DuckDB and PostgreSQL. Add a new function to
``MIGRATIONS`` for every change; never edit one that has shipped. Every table and column is documented in
``docs/schema.md`` (SQL is the analysts' interface).
"""

from __future__ import annotations

from collections.abc import Callable

from .connection import Dialect, Warehouse


def _v1_core(d: Dialect) -> list[str]:
    """Distributors, raw and parsed leads, rejects, cursors, sync runs, interactions, users, audit, tombstones."""
    j = d.json
    stmts: list[str] = []

    stmts.append(
        f"""CREATE TABLE IF NOT EXISTS distributors (
            key TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            page_ids {j} NOT NULL DEFAULT '[]',
            form_ids {j} NOT NULL DEFAULT '[]',
            token_encrypted TEXT,
            token_fingerprint TEXT,
            default_region TEXT NOT NULL DEFAULT 'TR',
            sync_interval_minutes INTEGER NOT NULL DEFAULT 5,
            enabled BOOLEAN NOT NULL DEFAULT TRUE,
            notify_email TEXT,
            created_at TIMESTAMPTZ NOT NULL DEFAULT CURRENT_TIMESTAMP,
            updated_at TIMESTAMPTZ NOT NULL DEFAULT CURRENT_TIMESTAMP
        )"""
    )
    stmts.append(
        """CREATE TABLE IF NOT EXISTS distributor_forms (
            distributor TEXT NOT NULL,
            page_id TEXT NOT NULL,
            form_id TEXT NOT NULL,
            form_name TEXT,
            status TEXT,
            locale TEXT,
            leads_count BIGINT,
            discovered_at TIMESTAMPTZ NOT NULL DEFAULT CURRENT_TIMESTAMP,
            PRIMARY KEY (distributor, form_id)
        )"""
    )
    stmts.append(
        """CREATE TABLE IF NOT EXISTS sync_cursors (
            distributor TEXT NOT NULL,
            form_id TEXT NOT NULL,
            last_created_time BIGINT NOT NULL,
            updated_at TIMESTAMPTZ NOT NULL DEFAULT CURRENT_TIMESTAMP,
            PRIMARY KEY (distributor, form_id)
        )"""
    )
    stmts.append(
        f"""CREATE TABLE IF NOT EXISTS sync_runs (
            sync_id TEXT PRIMARY KEY,
            distributor TEXT NOT NULL,
            trigger TEXT NOT NULL DEFAULT 'manual',
            started_at TIMESTAMPTZ NOT NULL,
            finished_at TIMESTAMPTZ,
            success BOOLEAN,
            fetched INTEGER NOT NULL DEFAULT 0,
            stored INTEGER NOT NULL DEFAULT 0,
            rejected INTEGER NOT NULL DEFAULT 0,
            errors {j} NOT NULL DEFAULT '[]',
            message TEXT,
            graph_requests INTEGER NOT NULL DEFAULT 0
        )"""
    )
    pre, idcol = d.identity_column("raw_leads")
    stmts += pre
    stmts.append(
        f"""CREATE TABLE IF NOT EXISTS raw_leads (
            {idcol},
            sync_id TEXT NOT NULL,
            distributor TEXT NOT NULL,
            page_id TEXT,
            form_id TEXT,
            meta_lead_id TEXT,
            payload {j},
            fetched_at TIMESTAMPTZ NOT NULL,
            processed_at TIMESTAMPTZ
        )"""
    )
    stmts.append("CREATE INDEX IF NOT EXISTS raw_leads_unprocessed ON raw_leads (distributor, processed_at)")
    stmts.append(
        f"""CREATE TABLE IF NOT EXISTS leads (
            meta_lead_id TEXT PRIMARY KEY,
            distributor TEXT NOT NULL,
            page_id TEXT,
            form_id TEXT,
            ad_id TEXT,
            ad_name TEXT,
            adset_id TEXT,
            adset_name TEXT,
            campaign_id TEXT,
            campaign_name TEXT,
            created_time TIMESTAMPTZ NOT NULL,
            is_organic BOOLEAN,
            platform TEXT,
            full_name TEXT,
            first_name TEXT,
            last_name TEXT,
            email TEXT,
            phone TEXT,
            city TEXT,
            country TEXT,
            custom_fields {j} NOT NULL DEFAULT '{{}}',
            disclaimer_responses {j} NOT NULL DEFAULT '[]',
            status TEXT NOT NULL DEFAULT 'new',
            assigned_to TEXT,
            contact_id TEXT,
            first_seen_at TIMESTAMPTZ NOT NULL,
            updated_at TIMESTAMPTZ NOT NULL,
            status_changed_at TIMESTAMPTZ,
            first_contacted_at TIMESTAMPTZ
        )"""
    )
    stmts.append(
        f"""CREATE TABLE IF NOT EXISTS rejected_leads (
            distributor TEXT NOT NULL,
            reject_key TEXT NOT NULL,
            meta_lead_id TEXT,
            form_id TEXT,
            page_id TEXT,
            reason TEXT NOT NULL,
            detail TEXT,
            payload {j},
            sync_id TEXT,
            first_seen_at TIMESTAMPTZ NOT NULL,
            last_seen_at TIMESTAMPTZ NOT NULL,
            PRIMARY KEY (distributor, reject_key)
        )"""
    )
    stmts.append(
        """CREATE TABLE IF NOT EXISTS users (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            email TEXT NOT NULL UNIQUE,
            role TEXT NOT NULL,
            active BOOLEAN NOT NULL DEFAULT TRUE,
            created_at TIMESTAMPTZ NOT NULL DEFAULT CURRENT_TIMESTAMP
        )"""
    )
    pre, idcol = d.identity_column("lead_interactions")
    stmts += pre
    stmts.append(
        f"""CREATE TABLE IF NOT EXISTS lead_interactions (
            {idcol},
            meta_lead_id TEXT NOT NULL,
            distributor TEXT NOT NULL,
            kind TEXT NOT NULL,
            actor TEXT,
            from_status TEXT,
            to_status TEXT,
            assigned_to TEXT,
            direction TEXT,
            outcome TEXT,
            body TEXT,
            occurred_at TIMESTAMPTZ NOT NULL,
            recorded_at TIMESTAMPTZ NOT NULL DEFAULT CURRENT_TIMESTAMP,
            details {j}
        )"""
    )
    stmts.append("CREATE INDEX IF NOT EXISTS lead_interactions_lead ON lead_interactions (meta_lead_id)")
    pre, idcol = d.identity_column("audit_log")
    stmts += pre
    stmts.append(
        f"""CREATE TABLE IF NOT EXISTS audit_log (
            {idcol},
            occurred_at TIMESTAMPTZ NOT NULL DEFAULT CURRENT_TIMESTAMP,
            actor TEXT NOT NULL,
            action TEXT NOT NULL,
            entity_type TEXT NOT NULL,
            entity_id TEXT,
            before {j},
            after {j}
        )"""
    )
    stmts.append(
        """CREATE TABLE IF NOT EXISTS lead_tombstones (
            meta_lead_id TEXT PRIMARY KEY,
            distributor TEXT,
            deleted_at TIMESTAMPTZ NOT NULL,
            deleted_by TEXT,
            reason TEXT
        )"""
    )
    stmts.append(
        f"""CREATE TABLE IF NOT EXISTS webhook_inbox (
            leadgen_id TEXT PRIMARY KEY,
            page_id TEXT,
            form_id TEXT,
            ad_id TEXT,
            created_time BIGINT,
            distributor TEXT,
            received_at TIMESTAMPTZ NOT NULL,
            deliveries INTEGER NOT NULL DEFAULT 1,
            change {j},
            processed_at TIMESTAMPTZ,
            status TEXT NOT NULL DEFAULT 'pending',
            error TEXT
        )"""
    )
    return stmts


MIGRATIONS: list[tuple[int, str, Callable[[Dialect], list[str]]]] = [
    (1, "core tables", _v1_core),
]


def apply_migrations(wh: Warehouse) -> list[int]:
    """Apply every migration newer than the recorded version, each in its own transaction."""
    applied: list[int] = []
    with wh.transaction() as conn:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, "
            "applied_at TIMESTAMPTZ NOT NULL DEFAULT CURRENT_TIMESTAMP)"
        )
        done = {r["version"] for r in conn.query("SELECT version FROM schema_migrations")}
    for version, name, build in MIGRATIONS:
        if version in done:
            continue
        with wh.transaction() as conn:
            if conn.scalar("SELECT count(*) FROM schema_migrations WHERE version = ?", [version]):
                continue  # another process applied it meanwhile
            for stmt in build(wh.dialect):
                conn.execute(stmt)
            conn.execute("INSERT INTO schema_migrations (version, name) VALUES (?, ?)", [version, name])
        applied.append(version)
    return applied
