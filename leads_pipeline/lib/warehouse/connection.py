"""One connection API over two backends: DuckDB (embedded default, one file) and PostgreSQL.

Why a thin wrapper of our own and not an ORM: every write in this project is set-based SQL (stage a batch, then one
``INSERT … ON CONFLICT`` / ``UPDATE … FROM``), and the two backends already agree on that SQL. The wrapper only
hides what differs: placeholders (write ``?``; PostgreSQL gets ``%s``), how a batch is staged (DuckDB registers an
Arrow table; PostgreSQL uses ``COPY``), and DuckDB's single-writer rule.

DuckDB allows one process to hold the file open read-write, and then no other process may open it at all. So a
DuckDB connection is opened per transaction and closed right after, and every opening is serialised across processes
by a file lock beside the database (``<file>.lock``) and within the process by a lock, so that Dagster runs, the
CLI, the HTTP service and notebooks take turns instead of failing with "Could not set lock on file".

Opening the file costs (a connection, the primary-key indexes loaded cold, a checkpoint on close), so a burst of
transactions — a sync's landing and processing, a bulk import, the webhook inbox writer under load — runs inside
:meth:`Warehouse.session`: one connection for the whole burst, each transaction still committed on its own, and the
locks held for that burst only. PostgreSQL sessions likewise reuse one connection.

The DuckDB file holds personal data, so it and what the warehouse creates beside it are private to their owner
(:mod:`.files`: directories 0700, files 0600).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import filelock

from leads_pipeline.lib.memory import gc_paused

from .dialect import Dialect
from .files import FILE_MODE, private_dir, tighten, warn_if_readable

# How long a DuckDB open waits for another process's transaction before giving up with a clear message.
DUCKDB_LOCK_TIMEOUT_SECONDS = 600.0

_process_locks: dict[str, threading.RLock] = {}
_process_locks_guard = threading.Lock()


class WarehouseError(RuntimeError):
    """A warehouse URL or connection problem, with a message that says what to do."""


def _json_as_text(data: bytes | str) -> str:
    return data.decode() if isinstance(data, (bytes, bytearray, memoryview)) else data


def _to_pg(sql: str, params: Sequence[Any] | None) -> str:
    """``?`` placeholders to psycopg's ``%s``; with parameters a literal ``%`` must be doubled, without it must not."""
    if not params:
        return sql
    return sql.replace("%", "%%").replace("?", "%s")


class Conn:
    """A connection inside one transaction. Rows come back as dicts keyed by column name."""

    def __init__(self, raw: Any, dialect: Dialect):
        self.raw = raw
        self.dialect = dialect
        self._views: list[str] = []  # DuckDB: Arrow data registered for this transaction (see ``stage(copy=False)``)

    @property
    def backend(self) -> str:
        return self.dialect.name

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> int:
        """Run one statement; returns the affected row count where the backend reports it (else -1)."""
        if self.backend == "duckdb":
            cur = self.raw.execute(sql, params or [])
            try:
                row = cur.fetchone() if cur.description and cur.description[0][0] == "Count" else None
            except Exception:  # noqa: BLE001 - statements without a result set
                row = None
            return int(row[0]) if row else -1
        with self.raw.cursor() as cur:
            cur.execute(_to_pg(sql, params), params or None)
            return cur.rowcount

    def query(self, sql: str, params: Sequence[Any] | None = None) -> list[dict[str, Any]]:
        if self.backend == "duckdb":
            cur = self.raw.execute(sql, params or [])
            cols = [d[0] for d in cur.description]
            return [dict(zip(cols, row)) for row in cur.fetchall()]
        with self.raw.cursor() as cur:
            cur.execute(_to_pg(sql, params), params or None)
            if cur.description is None:
                return []
            cols = [d.name for d in cur.description]
            return [dict(zip(cols, row)) for row in cur.fetchall()]

    def query_one(self, sql: str, params: Sequence[Any] | None = None) -> dict[str, Any] | None:
        rows = self.query(sql, params)
        return rows[0] if rows else None

    def scalar(self, sql: str, params: Sequence[Any] | None = None) -> Any:
        row = self.query_one(sql, params)
        return next(iter(row.values())) if row else None

    def query_columns(self, sql: str, params: Sequence[Any] | None = None) -> dict[str, list[Any]]:
        """The result as ``{column: [values…]}`` — for large results, without a dict per row (DuckDB via Arrow)."""
        if self.backend == "duckdb":
            if sql.lstrip()[:6].upper() == "SELECT":  # a lazy relation, materialised once, straight into Arrow
                table = self.raw.sql(sql, params=list(params) if params else None).to_arrow_table()
                return {name: table.column(i).to_pylist() for i, name in enumerate(table.column_names)}
            cur = self.raw.execute(sql, params or [])
            names = [d[0] for d in cur.description]
            rows = cur.fetchall()
            cols = list(zip(*rows)) if rows else [()] * len(names)
            return {name: list(col) for name, col in zip(names, cols)}
        with self.raw.cursor() as cur:
            cur.execute(_to_pg(sql, params), params or None)
            if cur.description is None:
                return {}
            names = [d.name for d in cur.description]
            rows = cur.fetchall()
        cols = list(zip(*rows)) if rows else [()] * len(names)
        return {name: list(col) for name, col in zip(names, cols)}

    def stage(self, name: str, columns: Mapping[str, str], rows: Sequence[Sequence[Any]] | None = None, *,
              data: Any = None, copy: bool = True) -> None:
        """Make a batch queryable as a temporary table ``name`` for set-based statements.

        ``columns`` maps column name → SQL type (``TEXT``, ``BIGINT``, ``BOOLEAN``, ``TIMESTAMPTZ``, ``JSON``). The
        batch is either ``rows`` (sequences in ``columns`` order) or ``data``: a ``pyarrow.Table`` or a mapping of
        column name → list of values (column-major, no transposition). JSON values are passed as strings (or UTF-8
        ``bytes`` in column data). DuckDB stages through Arrow (no per-row inserts); PostgreSQL through ``COPY``.
        The table replaces any earlier one of the same name in this transaction.

        ``copy=False`` (a batch that is only read, never updated): DuckDB queries the Arrow data in place for the
        rest of the transaction instead of copying it into a temporary table; the Arrow types must then be those of
        ``columns`` already. PostgreSQL always copies.
        """
        names = list(columns)
        if self.backend == "duckdb":
            with gc_paused():  # a batch is many small objects: no cyclic collection passes while converting it
                table = _arrow_table(columns, rows, data)
            if not copy:
                self.raw.execute(f"DROP TABLE IF EXISTS temp.main.{name}")  # a temporary table would shadow it
                self.raw.register(name, table)
                if name not in self._views:
                    self._views.append(name)
                return
            view = f"__stage_{name}"
            self.raw.register(view, table)
            casts = ", ".join(f'CAST("{c}" AS {_duck_type(columns[c])}) AS "{c}"' for c in names)
            self.raw.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT {casts} FROM {view}")
            self.raw.unregister(view)
            return
        cols_sql = ", ".join(f'"{c}" {_pg_type(columns[c])}' for c in names)
        with self.raw.cursor() as cur:
            cur.execute(f"DROP TABLE IF EXISTS {name}")
            cur.execute(f"CREATE TEMP TABLE {name} ({cols_sql}) ON COMMIT DROP")
            with cur.copy(f"COPY {name} ({', '.join(chr(34) + c + chr(34) for c in names)}) FROM STDIN") as copy, \
                    gc_paused():
                for row in _pg_rows(names, rows, data):
                    copy.write_row(row)


def _pg_rows(names: list[str], rows: Sequence[Sequence[Any]] | None, data: Any) -> Iterator[Sequence[Any]]:
    if data is None:
        yield from rows or ()
        return
    if hasattr(data, "column_names"):  # a pyarrow.Table
        cols = [data.column(c).to_pylist() for c in names]
    else:
        cols = [data[c] for c in names]
    for row in zip(*cols):
        yield [v.decode() if type(v) is bytes else v for v in row]


def _arrow_table(columns: Mapping[str, str], rows: Sequence[Sequence[Any]] | None, data: Any):
    import pyarrow as pa

    names = list(columns)
    if data is not None and hasattr(data, "column_names"):
        return data.select(names)
    if data is not None:
        cols = [data[c] for c in names]
    elif rows:
        cols = list(zip(*rows))  # one C-level transposition instead of a list comprehension per column
    else:
        cols = [()] * len(names)
    arrays = [pa.array(col, type=_arrow_type(columns[c])) for col, c in zip(cols, names)]
    return pa.Table.from_arrays(arrays, names=names)


def _duck_type(t: str) -> str:
    return {"JSON": "JSON"}.get(t.upper(), t)


def _pg_type(t: str) -> str:
    return {"JSON": "JSONB"}.get(t.upper(), t)


def _arrow_type(t: str):
    import pyarrow as pa

    return {
        "TEXT": pa.string(),
        "JSON": pa.string(),
        "BIGINT": pa.int64(),
        "INTEGER": pa.int64(),
        "DOUBLE": pa.float64(),
        "BOOLEAN": pa.bool_(),
        "TIMESTAMPTZ": pa.timestamp("us", tz="UTC"),
    }[t.upper()]


class Warehouse:
    """The warehouse named by a URL: ``duckdb:///abs/path.duckdb`` or ``postgresql://user@host:port/db``."""

    def __init__(self, url: str):
        self.url = url
        scheme = urlsplit(url).scheme.split("+")[0]
        if scheme == "duckdb":
            path = url[len("duckdb://") :]
            if path.startswith("/") and not path.startswith("//"):
                path = path  # duckdb:///abs → /abs
            if not path or path == "/":
                raise WarehouseError("A DuckDB warehouse URL needs a file: duckdb:///path/to/leads.duckdb")
            self.path: Path | None = Path(path)
            self.dialect = Dialect("duckdb")
        elif scheme in ("postgresql", "postgres"):
            self.path = None
            self.dialect = Dialect("postgres")
            self._pg_dsn = "postgresql://" + url.split("://", 1)[1]
        else:
            raise WarehouseError(
                f"Unsupported LEADS_WAREHOUSE_URL scheme {scheme!r}: use duckdb:///path.duckdb or postgresql://…"
            )

    @property
    def backend(self) -> str:
        return self.dialect.name

    @property
    def location(self) -> str:
        """The URL without its password, for messages to a person."""
        parts = urlsplit(self.url)
        return self.url if parts.password is None else self.url.replace(f":{parts.password}@", ":***@")

    def __repr__(self) -> str:  # never show a password
        return f"Warehouse({self.location!r})"

    @contextmanager
    def session(self) -> Iterator[Warehouse]:
        """One connection for a burst of transactions in this thread: every :meth:`transaction` inside the block
        reuses it (each still commits or rolls back on its own). DuckDB: the file is opened once and the
        cross-process lock is held for the whole block — keep bursts short, other processes wait meanwhile.
        PostgreSQL: one server connection instead of one per transaction. Sessions nest (the outermost one owns
        the connection); other threads are unaffected (they open their own, and on DuckDB wait for the lock).
        """
        local = self._local()
        if getattr(local, "session", None) is not None:
            local.depth += 1
            try:
                yield self
            finally:
                local.depth -= 1
            return
        if self.backend == "duckdb":
            with self._duckdb_connection() as raw:
                local.session, local.depth = raw, 1
                try:
                    yield self
                finally:
                    local.session = None
            return
        raw = self._pg_connect()
        local.session, local.depth = raw, 1
        try:
            yield self
        finally:
            local.session = None
            raw.close()

    def _local(self) -> threading.local:
        local = self.__dict__.get("_thread_local")
        if local is None:
            local = self.__dict__.setdefault("_thread_local", threading.local())
        return local

    @property
    def in_session(self) -> bool:
        """Whether this thread is inside :meth:`session`."""
        return getattr(self._local(), "session", None) is not None

    @contextmanager
    def transaction(self, read_only: bool = False) -> Iterator[Conn]:
        """A connection in one transaction: committed when the block ends, rolled back if it raises."""
        shared = getattr(self._local(), "session", None)
        if self.backend == "duckdb":
            if shared is not None:  # a session keeps the file open: its WAL may stay between transactions
                yield from _duckdb_transaction(shared, self.dialect)
                tighten(self._wal_path())
                return
            with self._duckdb_connection(read_only=read_only) as raw:
                yield from _duckdb_transaction(raw, self.dialect)
            return
        if shared is not None:
            yield from _pg_transaction(shared, self.dialect, read_only)
            return
        with self._pg_connect() as raw:
            yield from _pg_transaction(raw, self.dialect, read_only)

    def _pg_connect(self):
        import psycopg
        from psycopg.types.json import set_json_loads
        from psycopg.types.string import StrDumperUnknown

        raw = psycopg.connect(self._pg_dsn, autocommit=False)
        raw.adapters.register_dumper(str, StrDumperUnknown)  # lets a str fill JSONB/TIMESTAMPTZ columns
        set_json_loads(_json_as_text, raw)  # JSON columns come back as text, as from DuckDB
        with raw.cursor() as cur:
            cur.execute("SET TIME ZONE 'UTC'")
        raw.commit()
        return raw

    @contextmanager
    def _duckdb_connection(self, read_only: bool = False):
        """The file opened under the warehouse's locks (the process lock, then the cross-process file lock).

        Inside :meth:`session` (same thread) the session's connection is handed out instead.
        """
        import duckdb

        shared = getattr(self._local(), "session", None)
        if shared is not None:
            yield shared
            return
        assert self.path is not None
        with self.file_locked() as key:
            created = not self.path.exists()
            raw = _connect_duckdb_with_retry(duckdb, key, read_only)
            try:
                if created:  # before anything is written into it
                    tighten(self.path)
                else:
                    warn_if_readable(Path(key))
                raw.execute("SET TimeZone = 'UTC'")
                yield raw
            finally:
                raw.close()
                tighten(self._wal_path())  # normally gone after the closing checkpoint

    @contextmanager
    def file_locked(self) -> Iterator[str]:
        """DuckDB: hold the warehouse's locks (this process's, then the cross-process file lock) without opening
        the file; yields its resolved path. Whoever replaces the file (``compact``) does it inside this block."""
        assert self.path is not None
        private_dir(self.path.parent)
        key = str(self.path.resolve())
        with _process_locks_guard:
            plock = _process_locks.setdefault(key, threading.RLock())
        flock = filelock.FileLock(key + ".lock", timeout=DUCKDB_LOCK_TIMEOUT_SECONDS, thread_local=False,
                                  mode=FILE_MODE)
        with plock:
            try:
                flock.acquire()
            except filelock.Timeout as exc:
                raise WarehouseError(
                    f"The DuckDB warehouse {self.path} stayed locked by another process for "
                    f"{DUCKDB_LOCK_TIMEOUT_SECONDS:.0f}s; close notebooks or tools holding it, or use PostgreSQL."
                ) from exc
            try:
                yield key
            finally:
                flock.release()

    def _wal_path(self) -> Path:
        assert self.path is not None
        return self.path.with_name(self.path.name + ".wal")

    def migrate(self) -> list[int]:
        """Bring the schema to the newest version; returns the versions applied now (see ``migrations``)."""
        from .migrations import apply_migrations

        return apply_migrations(self)


def _duckdb_transaction(raw: Any, dialect: Dialect) -> Iterator[Conn]:
    raw.execute("BEGIN TRANSACTION")
    conn = Conn(raw, dialect)
    try:
        try:
            yield conn
        except BaseException:
            raw.execute("ROLLBACK")
            raise
        raw.execute("COMMIT")
    finally:
        for name in conn._views:  # Arrow batches registered in place are let go with the transaction
            raw.unregister(name)


def _pg_transaction(raw: Any, dialect: Dialect, read_only: bool) -> Iterator[Conn]:
    if read_only:
        with raw.cursor() as cur:
            cur.execute("SET TRANSACTION READ ONLY")
    try:
        yield Conn(raw, dialect)
    except BaseException:
        raw.rollback()
        raise
    raw.commit()


def _connect_duckdb_with_retry(duckdb, path: str, read_only: bool):
    """Open the file; a process outside our lock protocol (e.g. a DuckDB CLI) may hold it: wait, then explain."""
    deadline = time.monotonic() + 60
    delay = 0.05
    while True:
        try:
            return duckdb.connect(path, read_only=read_only)
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower() or time.monotonic() > deadline:
                raise WarehouseError(
                    f"Could not open the DuckDB warehouse {path}: another program holds it open "
                    "(a notebook or the DuckDB CLI?). Close it and try again."
                ) from exc
            time.sleep(delay)
            delay = min(delay * 2, 1.0)


def connect(url: str | None = None) -> Warehouse:
    """The warehouse of ``url`` or of the settings (``LEADS_WAREHOUSE_URL``; default a DuckDB file in ``data/``)."""
    if url is None:
        from leads_pipeline.settings import get_settings

        url = get_settings().resolved_warehouse_url
    return Warehouse(url)
