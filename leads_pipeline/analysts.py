"""The notebooks' connection to the warehouse: ``query(sql, params) -> DataFrame`` and ``engine()``.

Beside a running pipeline a notebook must never hold the live DuckDB file: DuckDB has one writer, and a reader
that keeps the file open stalls every sync and marts run (see ``lib/warehouse/snapshot.py``). So on DuckDB both
functions read the readers' snapshot — a read-only copy the pipeline publishes after each marts run — which any
number of notebooks may keep open for as long as they like. When no snapshot exists yet, one is published first
(the live file is locked for the copy only, milliseconds); :func:`refresh` publishes a newer one on demand. On
PostgreSQL they read the live tables through a pooled SQLAlchemy engine, in read-only transactions.

Parameters are named, ``:name`` (SQLAlchemy's ``text()`` style), the same on both backends::

    from leads_pipeline import analysts
    daily = analysts.query("SELECT * FROM lead_daily WHERE day >= :since ORDER BY day", {"since": "2026-01-01"})

The warehouse is ``LEADS_WAREHOUSE_URL`` (default: the DuckDB file in the data directory), read via the settings.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["engine", "query", "refresh", "snapshot_path"]


def _warehouse():
    from leads_pipeline.lib.warehouse import connect

    return connect()


def snapshot_path(publish_if_missing: bool = True) -> Path | None:
    """The DuckDB snapshot the readers read (published now if there is none yet); None on PostgreSQL."""
    from leads_pipeline.lib.warehouse import WarehouseError, snapshot

    wh = _warehouse()
    path = snapshot.path_for(wh)
    if path is None or path.exists() or not publish_if_missing:
        return path
    if wh.path is None or not wh.path.exists():
        raise WarehouseError(f"There is no DuckDB warehouse at {wh.path} yet: run `make demo`, or set "
                             "LEADS_WAREHOUSE_URL to the warehouse to read.")
    return snapshot.publish(wh)


def refresh() -> Path | None:
    """Publish a new snapshot of the live DuckDB warehouse now (what the next :func:`query` reads); None on
    PostgreSQL, which is always live."""
    from leads_pipeline.lib.warehouse import snapshot

    return snapshot.publish(_warehouse())


def engine():
    """PostgreSQL: the SQLAlchemy engine (pooled) — ``pandas.read_sql(text(sql), engine())``. DuckDB: a read-only
    ``duckdb`` connection to the snapshot — ``engine().sql(sql).df()``; close it when done. It reads the snapshot
    of the moment it was opened; :func:`query` always reads the newest."""
    wh = _warehouse()
    if wh.backend == "postgres":
        from leads_pipeline.lib.warehouse import postgres

        return postgres.engine(wh.url)
    return _open_snapshot(snapshot_path())


def query(sql: str, params: dict[str, Any] | None = None):
    """The rows of ``sql`` as a ``pandas.DataFrame``; ``params`` fill ``:name`` placeholders. Opens and closes its
    connection each call (DuckDB: the snapshot; PostgreSQL: a pooled connection in a read-only transaction)."""
    import pandas as pd

    wh = _warehouse()
    if wh.backend == "postgres":
        from sqlalchemy import text

        from leads_pipeline.lib.warehouse import postgres

        with postgres.engine(wh.url).connect() as conn:
            conn.exec_driver_sql("SET TRANSACTION READ ONLY")
            frame = pd.read_sql(text(sql), conn, params=params or None)
            conn.rollback()
        return frame
    statement, values = duckdb_statement(sql, params)
    con = _open_snapshot(snapshot_path())
    try:
        return con.execute(statement, values).df()
    finally:
        con.close()


def duckdb_statement(sql: str, params: dict[str, Any] | None) -> tuple[str, list[Any]]:
    """``:name`` parameters as DuckDB's positional ``?``, translated by SQLAlchemy's compiler (which reads bind
    names the way ``text()`` does on PostgreSQL), not by a string replace."""
    if not params:
        return sql, []
    from sqlalchemy import text
    from sqlalchemy.dialects import sqlite  # a qmark-style compiler: DuckDB takes the same ``?``

    compiled = text(sql).bindparams(**params).compile(dialect=sqlite.dialect())
    return compiled.string, [compiled.params[name] for name in compiled.positiontup]


def _open_snapshot(path: Path | None):
    """A read-only connection to the snapshot file at ``path`` as it is now.

    Attached to a fresh in-memory database rather than ``duckdb.connect(path)``: DuckDB shares one open database
    per path within a process, so a connection kept open (``engine()``) would make every later ``connect(path)``
    read that same, older copy; an attachment opens the file the rename put there.
    """
    import duckdb

    con = duckdb.connect()
    literal = str(path).replace("'", "''")
    con.execute(f"ATTACH '{literal}' AS snapshot (READ_ONLY)")
    con.execute("USE snapshot")
    con.execute("SET TimeZone = 'UTC'")  # times as the marts compute them
    return con
