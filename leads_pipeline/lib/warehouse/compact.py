"""Rewriting the warehouse's files, so that rows deleted (a privacy request's erasure) are gone from the disk too.

A ``DELETE`` removes rows from the tables, not their bytes from the files: DuckDB marks the blocks free and reuses
them later, without zeroing them, and ``CHECKPOINT`` does not promise otherwise; PostgreSQL leaves dead row versions
in the table's pages until ``VACUUM`` reuses them, and only ``VACUUM FULL`` writes the table anew. Someone who copies
``leads.duckdb`` (or a PostgreSQL data directory) could still read an erased person's e-mail. :func:`compact`
rewrites the files:

- DuckDB: the whole database is copied into a new file (``COPY FROM DATABASE``: tables, sequences with their
  current values, indexes, column compression), which then replaces the old one — under the warehouse's locks, so
  every other process waits meanwhile, and atomically (``os.replace``), so a crash leaves the old file or the new.
- PostgreSQL: ``VACUUM FULL`` of every table of the warehouse's schema (each is locked while it is rewritten).

Not reached by it: copies outside these files — backups and snapshots until they expire, PostgreSQL's write-ahead
log and replicas until they are recycled. ``docs/privacy.md`` says so to whoever answers a privacy request.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .connection import Warehouse, WarehouseError
from .locking import connect_duckdb
from .files import FILE_MODE

__all__ = ["CompactResult", "compact"]


@dataclass
class CompactResult:
    """What was rewritten: the DuckDB file (sizes before and after) or the PostgreSQL tables."""

    backend: str
    seconds: float
    path: str | None = None
    bytes_before: int | None = None
    bytes_after: int | None = None
    tables: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if v is not None and v != []}


def compact(wh: Warehouse) -> CompactResult:
    """Rewrite the warehouse's files without the bytes of deleted rows (see the module docstring)."""
    if wh.in_session:
        raise WarehouseError("compact() cannot run inside Warehouse.session(): the session holds the file open.")
    started = time.monotonic()
    if wh.backend == "duckdb":
        result = _compact_duckdb(wh)
    else:
        result = _vacuum_full(wh)
    result.seconds = round(time.monotonic() - started, 3)
    return result


def _compact_duckdb(wh: Warehouse) -> CompactResult:
    import duckdb

    assert wh.path is not None
    if not wh.path.exists():
        raise WarehouseError(f"There is no DuckDB warehouse at {wh.path} to compact.")
    with wh.file_locked() as key:
        fresh = Path(key + ".compact")
        for leftover in (fresh, fresh.with_name(fresh.name + ".wal")):  # a compaction that died half-way
            leftover.unlink(missing_ok=True)
        before = os.path.getsize(key)
        raw = connect_duckdb(duckdb, key, read_only=False)
        try:
            raw.execute("CHECKPOINT")  # the WAL folded into the file: the copy reads committed rows only
            name = raw.execute("SELECT current_database()").fetchone()[0]
            raw.execute(f"ATTACH '{_literal(str(fresh))}' AS leads_compacted")
            try:
                os.chmod(fresh, FILE_MODE)  # private before any row is copied into it
                raw.execute(f'COPY FROM DATABASE "{_ident(name)}" TO leads_compacted')
            finally:
                raw.execute("DETACH leads_compacted")
        except BaseException:
            raw.close()
            fresh.unlink(missing_ok=True)
            raise
        raw.close()
        _fsync(fresh)
        os.replace(fresh, key)
        _fsync(os.path.dirname(key))
        return CompactResult("duckdb", 0.0, path=key, bytes_before=before, bytes_after=os.path.getsize(key))


def _vacuum_full(wh: Warehouse) -> CompactResult:
    import psycopg

    with wh.transaction(read_only=True) as conn:
        schema = conn.scalar("SELECT current_schema()")
        tables = [r["table_name"] for r in conn.query(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() "
            "AND table_type = 'BASE TABLE' ORDER BY table_name")]
    # VACUUM cannot run inside a transaction block: a connection of its own, in autocommit.
    with psycopg.connect(wh._pg_dsn, autocommit=True) as raw:
        for table in tables:
            raw.execute(f'VACUUM FULL "{_ident(schema)}"."{_ident(table)}"')
    return CompactResult("postgres", 0.0, tables=tables)


def _literal(text: str) -> str:
    return text.replace("'", "''")


def _ident(name: str) -> str:
    return str(name).replace('"', '""')


def _fsync(path: Any) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
