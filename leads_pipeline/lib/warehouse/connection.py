"""One connection API over two backends: DuckDB (embedded default, one file) and PostgreSQL.

Why a thin wrapper of our own and not an ORM: every write in this project is set-based SQL (stage a batch, then one
``INSERT … ON CONFLICT`` / ``UPDATE … FROM``), and the two backends already agree on that SQL. The wrapper only
hides what differs: placeholders (write ``?``; PostgreSQL gets its own ``$n``, bound on the server: :mod:`.placeholders`),
how a batch is staged (DuckDB registers an Arrow table; PostgreSQL uses ``COPY``), and DuckDB's single-writer rule.
SQLAlchemy serves underneath where it is good at it (:mod:`.postgres`): URL parsing, and a connection pool.

DuckDB allows one process to hold the file open read-write, and then no other process may open it at all. So a
DuckDB connection is opened per transaction and closed right after, and every opening is serialised across processes
by a file lock beside the database (``<file>.lock``) and within the process by a lock (:mod:`.locking`), so that
Dagster runs, the CLI and the HTTP service take turns instead of failing with "Could not set lock on file"; a wait
past ``LEADS_WAREHOUSE_BUSY_TIMEOUT_SECONDS`` ends in :class:`WarehouseBusy`. Readers (notebooks, ``leads-pipeline
sql``) read a published read-only copy instead (:mod:`.snapshot`), so they never hold the live file.

Opening the file costs (a connection, the primary-key indexes loaded cold, a checkpoint on close), so a burst of
transactions — a sync's landing and processing, a bulk import, the webhook inbox writer under load — runs inside
:meth:`Warehouse.session`: one connection for the whole burst, each transaction still committed on its own, and the
locks held for that burst only. PostgreSQL sessions likewise hold one pooled connection.

The DuckDB file holds personal data, so it and what the warehouse creates beside it are private to their owner
(:mod:`.files`: directories 0700, files 0600).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from leads_pipeline.lib.memory import gc_paused

from . import locking
from .dialect import Dialect
from .errors import WarehouseBusy, WarehouseError
from .files import tighten, warn_if_readable
from .placeholders import numbered
from .staging import (
    TEXT_TYPES,
    arrow_table,
    batch_rows,
    duck_cast,
    duck_type,
    object_columns,
    objects_first,
    pg_rows,
    pg_type,
    text_column,
)

__all__ = ["Conn", "Dialect", "Warehouse", "WarehouseBusy", "WarehouseError", "connect", "duckdb_transaction"]

#: The default longest wait for the DuckDB file; ``LEADS_WAREHOUSE_BUSY_TIMEOUT_SECONDS`` sets it.
DUCKDB_LOCK_TIMEOUT_SECONDS = locking.DEFAULT_BUSY_TIMEOUT_SECONDS


def _pg_execute(raw: Any, sql: str, params: Sequence[Any] | None):
    """A raw psycopg cursor that ran ``sql``: ``?`` become ``$n`` bound by the server; ``%`` is never special."""
    import psycopg

    cur = psycopg.RawCursor(raw)
    if params:
        sql, count = numbered(sql)
        if count != len(params):
            cur.close()
            raise WarehouseError(f"The statement has {count} ? placeholder(s) but {len(params)} parameter(s) were "
                                 f"given: {sql[:200]}")
        cur.execute(sql, list(params))
    else:
        cur.execute(sql)
    return cur


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
        with _pg_execute(self.raw, sql, params) as cur:
            return cur.rowcount

    def query(self, sql: str, params: Sequence[Any] | None = None) -> list[dict[str, Any]]:
        if self.backend == "duckdb":
            cur = self.raw.execute(sql, params or [])
            cols = [d[0] for d in cur.description]
            return [dict(zip(cols, row)) for row in cur.fetchall()]
        with _pg_execute(self.raw, sql, params) as cur:
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
        with _pg_execute(self.raw, sql, params) as cur:
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
        ``bytes`` in column data). DuckDB scans the batch where it is — Arrow, or Python values as NumPy object
        columns (no per-row inserts; see :mod:`.staging` for which); PostgreSQL receives it through ``COPY``. The
        table replaces any earlier one of the same name in this transaction.

        ``copy=False`` (a batch that is only read, never updated): DuckDB queries Arrow data in place for the rest
        of the transaction instead of copying it into a temporary table (a given Arrow table's types must then be
        those of ``columns`` already; Python rows scanned as NumPy columns are copied). PostgreSQL always copies.
        """
        names = list(columns)
        if self.backend == "duckdb":
            if data is None or not hasattr(data, "column_names"):  # Python rows (module docstring of .staging)
                if objects_first(batch_rows(rows, data), copy):
                    self._stage_objects(name, columns, rows, data)
                    return
                with gc_paused():  # a batch is many small objects: no cyclic collection passes while converting it
                    data = arrow_table(columns, rows, data)
            table = data.select(names)
            if not copy:
                self.raw.execute(f"DROP TABLE IF EXISTS temp.main.{name}")  # a temporary table would shadow it
                self.raw.register(name, table)
                if name not in self._views:
                    self._views.append(name)
                return
            with self._registered(name, table) as view:
                casts = ", ".join(f'{duck_cast(c, columns[c], "")} AS "{c}"' for c in names)
                self.raw.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT {casts} FROM {view}")
            return
        cols_sql = ", ".join(f'"{c}" {pg_type(columns[c])}' for c in names)
        with self.raw.cursor() as cur:
            cur.execute(f"DROP TABLE IF EXISTS {name}")
            cur.execute(f"CREATE TEMP TABLE {name} ({cols_sql}) ON COMMIT DROP")
            with cur.copy(f"COPY {name} ({', '.join(chr(34) + c + chr(34) for c in names)}) FROM STDIN") as copy, \
                    gc_paused():
                for row in pg_rows(names, rows, data):
                    copy.write_row(row)

    def _stage_objects(self, name: str, columns: Mapping[str, str], rows: Sequence[Sequence[Any]] | None,
                       data: Mapping[str, Sequence[Any]] | None) -> None:
        """DuckDB: Python rows into the temporary table ``name``, scanned as NumPy object columns and cast to the
        staged types (what DuckDB made of each column decides the cast; bytes in a text column are UTF-8 text)."""
        if name in self._views:  # an Arrow batch of this name queried in place earlier in this transaction
            self.raw.unregister(name)
            self._views.remove(name)
        if not batch_rows(rows, data):
            cols_sql = ", ".join(f'"{c}" {duck_type(t)}' for c, t in columns.items())
            self.raw.execute(f"CREATE OR REPLACE TEMP TABLE {name} ({cols_sql})")
            return
        with gc_paused():  # a batch is many small objects: no cyclic collection passes while converting it
            arrays = object_columns(columns, rows, data)
        with self._registered(name, arrays) as view:
            scanned = {r[0]: r[1] for r in self.raw.execute(f"DESCRIBE SELECT * FROM {view}").fetchall()}
            blobs = [c for c, t in columns.items() if scanned[c] == "BLOB" and duck_type(t).upper() in TEXT_TYPES]
            for c in blobs:  # bytes among a text column's values (UTF-8 JSON in column data): decoded
                arrays[c] = text_column(arrays[c])
                scanned[c] = "VARCHAR"
            if blobs:
                self.raw.register(view, arrays)  # the decoded columns in place of the scanned ones
            casts = ", ".join(f'{duck_cast(c, t, scanned[c])} AS "{c}"' for c, t in columns.items())
            self.raw.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT {casts} FROM {view}")

    @contextmanager
    def _registered(self, name: str, batch: Any) -> Iterator[str]:
        """DuckDB: ``batch`` (Arrow, or NumPy columns) queryable as ``__stage_<name>`` for the block (a copy is made
        from it), then let go."""
        view = f"__stage_{name}"
        self.raw.register(view, batch)
        try:
            yield view
        finally:
            self.raw.unregister(view)


class Warehouse:
    """The warehouse named by a URL: ``duckdb:///abs/path.duckdb`` or ``postgresql://user@host:port/db``."""

    def __init__(self, url: str):
        self.url = url
        scheme = url.split("://", 1)[0].split("+")[0].lower() if "://" in url else ""
        if scheme == "duckdb":
            path = url[len("duckdb://") :]  # duckdb:///abs → /abs (the path as written, not make_url's database)
            if path.startswith("//"):  # duckdb:////abs (an absolute path after "duckdb:///") is the same file
                path = "/" + path.lstrip("/")
            if not path or path == "/":
                raise WarehouseError("A DuckDB warehouse URL needs a file: duckdb:///path/to/leads.duckdb")
            self.path: Path | None = Path(path)
            self.dialect = Dialect("duckdb")
        elif scheme in ("postgresql", "postgres"):
            self.path = None
            self.dialect = Dialect("postgres")
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
        if self.backend != "postgres":
            return self.url
        from . import postgres

        return postgres.hidden(self.url)

    @property
    def _pg_dsn(self) -> str:
        """A libpq connection string (with the password: never print it) for connections outside the pool."""
        from . import postgres

        return postgres.dsn(postgres.parse(self.url))

    def __repr__(self) -> str:  # never show a password
        return f"Warehouse({self.location!r})"

    # PostgreSQL: SQLAlchemy (its URL parser, its pool) is imported at the first connection, not here — a command
    # that never reaches the server (``--help``, a DuckDB warehouse) does not pay for the import.

    @contextmanager
    def session(self) -> Iterator[Warehouse]:
        """One connection for a burst of transactions in this thread: every :meth:`transaction` inside the block
        reuses it (each still commits or rolls back on its own). DuckDB: the file is opened once and the
        cross-process lock is held for the whole block — keep bursts short, other processes wait meanwhile.
        PostgreSQL: one pooled connection for the block. Sessions nest (the outermost one owns the connection);
        other threads are unaffected (they open their own, and on DuckDB wait for the lock).
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
        with self._pg_connection() as raw:
            local.session, local.depth = raw, 1
            try:
                yield self
            finally:
                local.session = None

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
                with duckdb_transaction(shared, self.dialect) as conn:
                    yield conn
                tighten(self._wal_path())
                return
            with self._duckdb_connection(read_only=read_only) as raw, duckdb_transaction(raw, self.dialect) as conn:
                yield conn
            return
        if shared is not None:
            with _pg_transaction(shared, self.dialect, read_only) as conn:
                yield conn
            return
        with self._pg_connection() as raw, _pg_transaction(raw, self.dialect, read_only) as conn:
            yield conn

    @contextmanager
    def reading(self) -> Iterator[Conn]:
        """A read-only transaction on a current schema, for commands that only read (``stats``): one opening of the
        file when the schema is current (the usual case) — the version is checked inside that same transaction
        (:func:`.migrations.is_current`), and only a warehouse that is behind, or new, is migrated before it. Where
        ``migrate()`` + ``transaction()`` opened the file twice, once read-write with DDL (issue #14, P6)."""
        from .migrations import is_current

        if self.backend != "duckdb" or (self.path is not None and self.path.exists()):
            with self.transaction(read_only=True) as conn:
                if is_current(conn):
                    yield conn
                    return
        self.migrate()
        with self.transaction(read_only=True) as conn:
            yield conn

    @contextmanager
    def _pg_connection(self):
        """A psycopg connection from the process's pool for this URL, returned (rolled back if needed) after."""
        from . import postgres

        proxy, raw = postgres.checkout(self.url, self.location)
        try:
            yield raw
        finally:
            proxy.close()

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
            raw = locking.connect_duckdb(duckdb, key, read_only)
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
        the file; yields its resolved path. Whoever replaces or copies the file (``compact``, ``snapshot``) does it
        inside this block. Waiting longer than the busy timeout raises :class:`WarehouseBusy`."""
        assert self.path is not None
        with locking.file_locked(self.path) as key:
            yield key

    def _wal_path(self) -> Path:
        assert self.path is not None
        return self.path.with_name(self.path.name + ".wal")

    def migrate(self) -> list[int]:
        """Bring the schema to the newest version; returns the versions applied now (see ``migrations``)."""
        from .migrations import apply_migrations

        return apply_migrations(self)


@contextmanager
def duckdb_transaction(raw: Any, dialect: Dialect) -> Iterator[Conn]:
    """One transaction on an open DuckDB connection ``raw``: committed when the block ends, rolled back if it raises;
    the Arrow batches staged in place (``Conn.stage(copy=False)``) are let go with it. :meth:`Warehouse.transaction`
    uses it, and so does the bulk import on its own connection with the warehouse attached."""
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


@contextmanager
def _pg_transaction(raw: Any, dialect: Dialect, read_only: bool) -> Iterator[Conn]:
    """One transaction on a psycopg connection: committed when the block ends, rolled back if it raises."""
    if read_only:
        raw.execute("SET TRANSACTION READ ONLY")
    try:
        yield Conn(raw, dialect)
    except BaseException:
        raw.rollback()
        raise
    raw.commit()


def _connect_duckdb_with_retry(duckdb, path: str, read_only: bool):
    """Kept for callers of the earlier name: :func:`.locking.connect_duckdb`."""
    return locking.connect_duckdb(duckdb, path, read_only)


def connect(url: str | None = None) -> Warehouse:
    """The warehouse of ``url`` or of the settings (``LEADS_WAREHOUSE_URL``; default a DuckDB file in ``data/``)."""
    if url is None:
        from leads_pipeline.settings import resolved_warehouse_url  # the same answer, without pydantic-settings

        url = resolved_warehouse_url()
    return Warehouse(url)
