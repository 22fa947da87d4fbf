"""Versioned schema migrations, one file per version, applied in order and recorded in ``schema_migrations``.

The schema is created and changed only here, never by hand: each ``vNNN_*.py`` has a ``NAME`` and a
``statements(dialect)`` returning its SQL, so one definition serves DuckDB and PostgreSQL. A change to the schema is a
new file added to :data:`MIGRATIONS`; a file that has shipped is never edited. Every table and column is documented in
``docs/schema.md`` (SQL is the analysts' interface).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from types import ModuleType
from typing import Any, Protocol

from ..dialect import Dialect
from . import (
    v001_core,
    v002_marts,
    v003_web_auth,
    v004_postgres_indexes,
    v005_raw_payload_zstd,
    v006_form_ownership,
    v007_sync_runs_per_run,
    v008_leads_not_rejects,
    v009_webhook_retries,
    v010_user_scopes,
    v011_sessions_and_logins,
    v012_bad_ids_findable,
    v013_conversion_events,
    v014_distributor_health,
    v015_form_questions,
    v016_funnel_reported_to_meta,
)


class _Migratable(Protocol):
    """What migrating needs of a warehouse (``connection.Warehouse``, which calls this module from ``migrate``)."""

    dialect: Dialect

    def transaction(self, read_only: bool = False) -> AbstractContextManager[Any]: ...


_FILES: list[ModuleType] = [
    v001_core, v002_marts, v003_web_auth, v004_postgres_indexes, v005_raw_payload_zstd,
    v006_form_ownership, v007_sync_runs_per_run, v008_leads_not_rejects, v009_webhook_retries,
    v010_user_scopes, v011_sessions_and_logins, v012_bad_ids_findable,
    v013_conversion_events,
    v014_distributor_health,
    v015_form_questions,
    v016_funnel_reported_to_meta,
]

#: (version, name, statements) in the order they apply; the version is the file's number. Sorted by version, so
#: files added to ``_FILES`` out of order (parallel work on migrations) still apply in number order.
MIGRATIONS: list[tuple[int, str, Callable[[Dialect], list[str]]]] = sorted(
    ((int(m.__name__.rsplit(".", 1)[1][1:4]), m.NAME, m.statements) for m in _FILES), key=lambda m: m[0]
)


def is_current(conn: Any) -> bool:
    """Whether every migration is applied, read inside the caller's (read-only) transaction: two small queries, no
    DDL — so a read-only command checks the schema in the same opening of the file as its own query and migrates
    only a warehouse that is behind or new (``Warehouse.reading``; issue #14, P6)."""
    if conn.backend == "duckdb":  # its catalog function: ~1 ms where information_schema.tables takes ~15 ms cold
        exists = conn.scalar("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'schema_migrations' "
                             "AND database_name = current_database() AND schema_name = current_schema()")
    else:  # resolved like the unqualified name in the queries (search_path)
        exists = conn.scalar("SELECT to_regclass('schema_migrations') IS NOT NULL")
    if not exists:
        return False
    done = {r["version"] for r in conn.query("SELECT version FROM schema_migrations")}
    return all(version in done for version, _, _ in MIGRATIONS)


def apply_migrations(wh: _Migratable) -> list[int]:
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
