"""The warehouse writes of a sync: land raw pages, parse them into ``leads`` / ``rejected_leads``, record the run.

Every write is set-based — a batch is staged (``Conn.stage``) and each table gets one statement — and idempotent:

- :func:`land_raw_page` inserts a page into ``raw_leads`` keyed on ``(distributor, raw_key)`` (the Meta lead id, or
  ``sha256:<hash>`` of a payload without a usable id); a lead landed before is left alone. When given the page's
  ``cursor`` (the sync passes it with the *last* page of a form's pagination) it moves ``sync_cursors`` forward —
  never back — in the same transaction, so a cursor only ever covers committed leads.
- :func:`process_raw` parses unprocessed raw rows batch by batch, each batch in one transaction: valid leads are
  inserted into ``leads`` and never overwritten (a re-sync never touches what staff changed), ids in
  ``lead_tombstones`` are skipped (deleted leads never come back), malformed ones are upserted into
  ``rejected_leads`` (one row per payload; ``first_seen_at`` kept, ``last_seen_at`` moved), and the raw rows are
  marked processed. A crash anywhere leaves unprocessed rows for the next call; nothing is stored twice.

What each call reads, so that one new page costs about the same whatever the table sizes:

- ``land_raw_page`` — PostgreSQL: ``INSERT … ON CONFLICT DO NOTHING``, one primary-key (b-tree) probe per lead.
  DuckDB executes ``ON CONFLICT`` as a join that scans the key columns of the *whole* table, so there: (1) leads of
  the page among the newest ``RECENT_ROWS`` raw rows (the sync's lookback re-reads) are dropped with a scan that the
  min/max statistics of ``id`` (which grows with the table) limit to the newest row groups;
  (2) a plain ``INSERT`` checks each key in the primary-key index (ART); (3) only when that meets an older duplicate
  is the page written again with ``ON CONFLICT`` (a full key scan, rare). The cursor upsert is a key lookup.
- ``process_raw`` — the unprocessed rows: PostgreSQL walks the partial index ``raw_leads_unprocessed (distributor,
  id) WHERE processed_at IS NULL`` in id order; DuckDB reads the ``distributor``/``processed_at`` (and ``sync_id``)
  columns, skipping row groups by their statistics (sync ids are time-ordered, see :func:`new_sync_id`). ``leads``:
  PostgreSQL ``ON CONFLICT`` probes the primary key; DuckDB a plain ``INSERT`` (index checks), redone with
  ``ON CONFLICT`` only if a lead already exists. ``lead_tombstones`` is read whole (it stays small);
  ``rejected_leads`` is upserted with ``ON CONFLICT`` (a key scan on DuckDB; the table holds only malformed leads);
  marking rows processed is restricted to the batch's id range.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from leads_pipeline.lib.ingest.parse import LEAD_COLUMNS, _jsonable, gc_paused, lead_key, parse_lead_row
from leads_pipeline.lib.warehouse import Conn, Warehouse

__all__ = [
    "ProcessResult",
    "new_sync_id",
    "start_sync",
    "record_extract",
    "finish_sync",
    "finish_open_syncs",
    "land_raw_page",
    "get_cursor",
    "process_raw",
    "PreparedBatch",
    "prepare_batch",
    "store_batch",
    "count_rows",
]

DEFAULT_BATCH_SIZE = 50_000
# A DuckDB landing first looks for the page's leads among this many newest raw rows (a cheap, bounded scan).
RECENT_ROWS = 100_000


@dataclass
class ProcessResult:
    """What :func:`process_raw` did: new rows in ``leads``, rejected leads, tombstoned ids skipped, raw rows read."""

    stored: int = 0
    rejected: int = 0
    skipped_deleted: int = 0
    processed: int = 0

    def __add__(self, other: ProcessResult) -> ProcessResult:
        return ProcessResult(self.stored + other.stored, self.rejected + other.rejected,
                             self.skipped_deleted + other.skipped_deleted, self.processed + other.processed)


# ----------------------------------------------------------------------------------------------------------------------
# Text that both backends accept
# ----------------------------------------------------------------------------------------------------------------------


try:  # orjson: the same compact JSON text as json.dumps(ensure_ascii=False), 5-10x faster
    import orjson as _orjson

    _ORJSON_OPTS = _orjson.OPT_PASSTHROUGH_DATETIME | _orjson.OPT_PASSTHROUGH_DATACLASS | _orjson.OPT_PASSTHROUGH_SUBCLASS
    _orjson_dumps, _orjson_loads, _OrjsonError = _orjson.dumps, _orjson.loads, _orjson.JSONDecodeError
except ImportError:  # pragma: no cover - the standard library does the same, slower
    _orjson_dumps = _orjson_loads = None
    _OrjsonError = ValueError


def _dumps(value: Any) -> str:
    """Compact JSON text of ``value`` (non-JSON values made representable rather than failing)."""
    if _orjson_dumps is not None:
        try:  # anything orjson refuses (non-str keys, huge ints, surrogates, dates, objects) takes the path below
            return _orjson_dumps(value, option=_ORJSON_OPTS).decode()
        except TypeError:
            pass
    return _dumps_slow(value)


def _dumps_bytes(value: Any) -> bytes:
    """:func:`_dumps` as UTF-8 bytes (what Arrow takes without a copy through ``str``)."""
    if _orjson_dumps is not None:
        try:
            return _orjson_dumps(value, option=_ORJSON_OPTS)
        except TypeError:
            pass
    return _dumps_slow(value).encode("utf-8", "surrogatepass")


def _dumps_slow(value: Any) -> str:
    try:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError, RecursionError):
        try:
            return json.dumps(_jsonable(value), ensure_ascii=False, separators=(",", ":"))
        except RecursionError:  # a cyclic structure (never from JSON)
            return json.dumps(repr(value), ensure_ascii=False)


def _loads(text: Any) -> Any:
    """A stored payload decoded (``json.loads`` semantics; orjson first); text that is not JSON stays as it is."""
    if not isinstance(text, (str, bytes)):
        return text
    if _orjson_loads is not None:
        try:
            return _orjson_loads(text)
        except _OrjsonError:  # NaN, huge integers, unpaired surrogates, or not JSON at all: the standard library
            pass
    try:
        return json.loads(text)
    except ValueError:
        return text


def _clean_text(text: str) -> str:
    """``text`` without what PostgreSQL refuses (NUL characters, unpaired surrogates); JSON text stays valid."""
    if "\x00" in text:
        text = text.replace("\x00", "\ufffd")
    if "\\u0000" in text:
        text = text.replace("\\u0000", "\\ufffd")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "replace").decode("utf-8")
    return text


def _sanitise(rows: list[list], text_columns: Sequence[int]) -> bool:
    """Clean the text columns of ``rows`` in place; whether anything changed."""
    changed = False
    for r in rows:
        for i in text_columns:
            value = r[i]
            if value is not None:
                clean = _clean_text(value)
                if clean is not value and clean != value:
                    r[i] = clean
                    changed = True
    return changed


def _data_errors() -> tuple[type[BaseException], ...]:
    """Errors a backend raises for text it cannot store (then the batch is cleaned and written again)."""
    errors: list[type[BaseException]] = [UnicodeError, ValueError]
    try:
        import duckdb

        errors.append(duckdb.Error)
    except ImportError:  # pragma: no cover
        pass
    try:
        import psycopg

        errors.append(psycopg.DataError)
    except ImportError:  # pragma: no cover
        pass
    return tuple(errors)


def _is_duplicate_key(exc: BaseException) -> bool:
    """A plain INSERT met an existing primary key (DuckDB's ConstraintException)."""
    return type(exc).__name__ == "ConstraintException" and "duplicate key" in str(exc).lower()


def _now() -> datetime:
    return datetime.now(timezone.utc)


# ----------------------------------------------------------------------------------------------------------------------
# Sync runs
# ----------------------------------------------------------------------------------------------------------------------


def new_sync_id() -> str:
    """A unique, time-ordered sync id, e.g. ``20260601T123456123456Z-9f2c1a7b`` (sorts by start time)."""
    return f"{_now():%Y%m%dT%H%M%S%fZ}-{secrets.token_hex(4)}"


def start_sync(wh: Warehouse, distributor: str, trigger: str = "manual") -> str:
    """Open a ``sync_runs`` row (no result yet) and return its id."""
    sync_id = new_sync_id()
    with wh.transaction() as conn:
        conn.execute(
            "INSERT INTO sync_runs (sync_id, distributor, trigger, started_at) VALUES (?, ?, ?, ?)",
            [sync_id, distributor, trigger or "manual", _now()],
        )
    return sync_id


def _field(result: Any, name: str, default: Any = None) -> Any:
    if isinstance(result, dict):
        return result.get(name, default)
    return getattr(result, name, default)


def record_extract(wh: Warehouse, sync_id: str, extracted: Any) -> None:
    """Keep what the extract half of a run found (fetched, errors, Graph requests, fatal error) until it finishes.

    On a run without a result, ``message`` holds the extract's fatal error ('' when there was none); NULL means
    the extract never reported (the run died in it).
    """
    with wh.transaction() as conn:
        conn.execute(
            "UPDATE sync_runs SET fetched = ?, errors = ?, graph_requests = ?, message = ? "
            "WHERE sync_id = ? AND finished_at IS NULL",
            [int(_field(extracted, "fetched", 0) or 0), _dumps(list(_field(extracted, "errors", []) or [])),
             int(_field(extracted, "graph_requests", 0) or 0), _field(extracted, "fatal") or "", sync_id],
        )


def finish_sync(wh: Warehouse, sync_id: str, result: Any) -> None:
    """Record a run's result — the seed's object (``success, fetched, stored, errors, message``) plus ``rejected``
    and ``graph_requests`` — from a ``SyncResult`` or a dict."""
    with wh.transaction() as conn:
        _finish(conn, sync_id, result)


def _finish(conn: Conn, sync_id: str, result: Any) -> None:
    conn.execute(
        "UPDATE sync_runs SET finished_at = ?, success = ?, fetched = ?, stored = ?, rejected = ?, errors = ?, "
        "message = ?, graph_requests = ? WHERE sync_id = ?",
        [_now(), bool(_field(result, "success", False)), int(_field(result, "fetched", 0) or 0),
         int(_field(result, "stored", 0) or 0), int(_field(result, "rejected", 0) or 0),
         _dumps(list(_field(result, "errors", []) or [])), _field(result, "message"),
         int(_field(result, "graph_requests", 0) or 0), sync_id],
    )


def finish_open_syncs(wh: Warehouse, distributor: str, processed: ProcessResult | None) -> list:
    """Finish the distributor's runs that have no result yet (Dagster's two assets: extract, then load).

    The newest open run gets ``processed`` (what the load stored); older open runs — left by a crash or a retry —
    are closed as failed, their landed leads having been processed with the newest. Returns the ``SyncResult`` of
    each run closed, oldest first.
    """
    from leads_pipeline.lib.ingest.sync import ExtractResult, SyncResult, summarize  # the sync layer owns the message

    with wh.transaction() as conn:
        rows = conn.query(
            "SELECT sync_id, fetched, errors, graph_requests, message FROM sync_runs "
            "WHERE distributor = ? AND finished_at IS NULL ORDER BY started_at, sync_id",
            [distributor],
        )
        results = []
        newest = rows[-1]["sync_id"] if rows else None
        for row in rows:
            errors = row["errors"]
            errors = json.loads(errors) if isinstance(errors, str) else list(errors or [])
            extracted = ExtractResult(fetched=int(row["fetched"] or 0), graph_requests=int(row["graph_requests"] or 0),
                                      errors=errors, fatal=row["message"] or None)
            if row["sync_id"] == newest:
                result = summarize(distributor, row["sync_id"], extracted, processed or ProcessResult())
                if processed is None and extracted.fatal is None:
                    result.success = False
                    result.message = "Run ended before its leads were processed; the next run processes them."
            else:
                message = (f"Run did not finish (superseded by {newest}); the leads it landed were processed then."
                           if row["message"] is None else
                           f"Run did not finish its load (superseded by {newest}), which processed its leads.")
                result = SyncResult(success=False, fetched=extracted.fetched, stored=0, errors=errors,
                                    message=message, distributor=distributor, sync_id=row["sync_id"],
                                    graph_requests=extracted.graph_requests)
            _finish(conn, row["sync_id"], result)
            results.append(result)
    return results


_TABLE_RE = re.compile(r"[a-z_][a-z0-9_]*")


def count_rows(wh: Warehouse, table: str, distributor: str | None = None) -> int:
    """Rows in ``table`` (of one distributor when given; the table needs a ``distributor`` column then)."""
    if not _TABLE_RE.fullmatch(table):
        raise ValueError(f"not a table name: {table!r}")
    with wh.transaction(read_only=True) as conn:
        if distributor is None:
            return int(conn.scalar(f"SELECT count(*) FROM {table}") or 0)
        return int(conn.scalar(f"SELECT count(*) FROM {table} WHERE distributor = ?", [distributor]) or 0)


# ----------------------------------------------------------------------------------------------------------------------
# Landing
# ----------------------------------------------------------------------------------------------------------------------

# JSON columns are staged as TEXT and cast in the INSERT: DuckDB stages TEXT several times faster than JSON.
_RAW_STAGE = {"ord": "BIGINT", "distributor": "TEXT", "raw_key": "TEXT", "sync_id": "TEXT", "page_id": "TEXT",
              "form_id": "TEXT", "meta_lead_id": "TEXT", "payload": "TEXT"}


def land_raw_page(
    wh: Warehouse,
    *,
    sync_id: str,
    distributor: str,
    page_id: str | None,
    form_id: str | None,
    leads: Sequence[Any],
    cursor: int | None = None,
) -> int:
    """Insert one page of leads as received into ``raw_leads``; returns how many were new.

    With ``cursor`` (unix seconds: the newest ``created_time`` of the form's pagination, passed with its last
    page), ``sync_cursors(distributor, form_id)`` becomes max(stored, cursor) in the same transaction.
    """
    if cursor is not None and not form_id:
        raise ValueError("a cursor belongs to a form: land_raw_page(cursor=…) needs form_id")
    rows: dict[str, list] = {}
    with gc_paused():
        for lead in leads:
            key = lead_key(lead)
            if key in rows:
                continue  # the same lead twice in one page: keep the first
            lead_id = key if not key.startswith("sha256:") else None
            rows[key] = [len(rows), distributor, key, sync_id, page_id, form_id, lead_id, _dumps(lead)]
    staged = list(rows.values())
    merge = clean = False
    while True:
        try:
            return _land(wh, staged, distributor, form_id, cursor, merge=merge)
        except Exception as exc:
            if not merge and _is_duplicate_key(exc):
                merge = True  # a lead landed long ago came back: let ON CONFLICT sort it out
                continue
            # Text a backend refuses (a NUL character, an unpaired surrogate): stored cleaned rather than never.
            if not clean and isinstance(exc, _data_errors()) and _sanitise(staged, (4, 5, 7)):
                clean = True
                continue
            raise


def _land(wh: Warehouse, staged: list[list], distributor: str, form_id: str | None, cursor: int | None, *,
          merge: bool) -> int:
    new = 0
    with wh.transaction() as conn:
        if staged:
            conn.stage("raw_page", _RAW_STAGE, staged)
            # A lead deleted on request is never landed again (its payload is personal data): every path lands here.
            conn.execute("DELETE FROM raw_page WHERE raw_key IN (SELECT meta_lead_id FROM lead_tombstones)")
            columns = "distributor, raw_key, sync_id, page_id, form_id, meta_lead_id"
            if conn.backend == "duckdb" and not merge:
                # DuckDB runs ON CONFLICT as a join that scans the key columns of the whole table, so: drop the
                # leads among the newest landed rows (the sync's lookback re-reads; ids grow with the table, so
                # min/max statistics skip every older row group), then a plain INSERT, checked key by key against
                # the primary-key index. An older duplicate makes it fail; the caller retries with ON CONFLICT.
                newest = conn.scalar("SELECT max(id) FROM raw_leads")
                if newest is not None:
                    conn.execute(
                        "DELETE FROM raw_page WHERE raw_key IN (SELECT r.raw_key FROM raw_leads r WHERE r.id > ? "
                        "AND r.distributor = ? AND r.raw_key IN (SELECT raw_key FROM raw_page))",
                        [int(newest) - RECENT_ROWS, distributor],
                    )
                conflict = ""
            else:
                conflict = " ON CONFLICT (distributor, raw_key) DO NOTHING"
            new = _count(conn, conn.execute(
                f"INSERT INTO raw_leads ({columns}, payload, fetched_at) "
                f"SELECT {columns}, CAST(payload AS {conn.dialect.json}), ? FROM raw_page ORDER BY ord{conflict}",
                [_now()],
            ))
        if cursor is not None:
            conn.execute(
                "INSERT INTO sync_cursors (distributor, form_id, last_created_time, updated_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (distributor, form_id) DO UPDATE SET "
                "last_created_time = GREATEST(sync_cursors.last_created_time, excluded.last_created_time), "
                "updated_at = excluded.updated_at",
                [distributor, form_id, int(cursor), _now()],
            )
    return new


def _count(conn: Conn, affected: int) -> int:
    """Rows an INSERT wrote (both backends report it; -1 would mean "unknown", never expected here)."""
    if affected < 0:  # pragma: no cover - defensive
        raise RuntimeError("the backend did not report how many rows the INSERT wrote")
    return affected


def get_cursor(wh: Warehouse, distributor: str, form_id: str) -> int | None:
    """The form's cursor: the newest ``created_time`` (unix seconds) landed and committed, or None."""
    with wh.transaction(read_only=True) as conn:
        value = conn.scalar(
            "SELECT last_created_time FROM sync_cursors WHERE distributor = ? AND form_id = ?", [distributor, form_id]
        )
    return None if value is None else int(value)


# ----------------------------------------------------------------------------------------------------------------------
# Parsing a batch (shared by process_raw and the bulk path)
# ----------------------------------------------------------------------------------------------------------------------

_LEAD_TYPES = {"created_time": "TIMESTAMPTZ", "is_organic": "BOOLEAN"}
_LEAD_JSON = ("custom_fields", "disclaimer_responses")
_LEAD_STAGE = {c: _LEAD_TYPES.get(c, "TEXT") for c in LEAD_COLUMNS}  # JSON columns staged as TEXT (see _RAW_STAGE)
_LEAD_TEXT_COLUMNS = tuple(i for i, c in enumerate(LEAD_COLUMNS) if _LEAD_STAGE[c] == "TEXT")
_LEAD_COLS_SQL = ", ".join(LEAD_COLUMNS)


def _lead_select(json_type: str) -> str:
    return ", ".join(f"CAST({c} AS {json_type})" if c in _LEAD_JSON else c for c in LEAD_COLUMNS)


_CUSTOM_AT = LEAD_COLUMNS.index("custom_fields")
_DISCLAIMERS_AT = LEAD_COLUMNS.index("disclaimer_responses")

_REJECT_STAGE = {"distributor": "TEXT", "reject_key": "TEXT", "meta_lead_id": "TEXT", "form_id": "TEXT",
                 "page_id": "TEXT", "reason": "TEXT", "detail": "TEXT", "payload": "TEXT", "sync_id": "TEXT"}


def _parse_batch(distributor: str, region: str, payloads: Sequence[Any], texts: Sequence[Any],
                 page_ids: Sequence[str | None], form_ids: Sequence[str | None], sync_ids: Sequence[str | None],
                 ) -> tuple[list[list], list[list], list[int]]:
    """Parse decoded ``payloads`` (``texts``: the same leads as stored JSON text) into rows for ``leads``
    (:data:`_LEAD_STAGE` order, JSON columns as text) and ``rejected_leads`` (:data:`_REJECT_STAGE` order); also
    the positions of the valid ones."""
    leads: list[list] = []
    rejects: list[list] = []
    valid_at: list[int] = []
    ok, bad, at = leads.append, rejects.append, valid_at.append
    parse = parse_lead_row
    dumps = _dumps
    with gc_paused():
        for i, payload in enumerate(payloads):
            result = parse(payload, distributor, page_ids[i], region, form_ids[i])
            if type(result) is tuple:
                row = list(result)
                row[_CUSTOM_AT] = dumps(row[_CUSTOM_AT])
                disclaimers = row[_DISCLAIMERS_AT]
                row[_DISCLAIMERS_AT] = "[]" if not disclaimers else dumps(disclaimers)
                ok(row)
                at(i)
            else:
                text = texts[i]
                if type(text) is bytes:
                    text = text.decode("utf-8", "replace")
                elif not isinstance(text, str):
                    text = _dumps(result.payload)
                bad([distributor, result.reject_key, result.meta_lead_id, result.form_id, result.page_id,
                     result.reason, result.detail, text, sync_ids[i]])
    return leads, rejects, valid_at


def _store_parsed(conn: Conn, leads: Any, rejects: Any, *, merge: bool) -> tuple[int, int]:
    """Insert parsed leads (rows or an Arrow table; tombstoned ids skipped, existing leads never overwritten) and
    upsert rejects; returns (stored, skipped because tombstoned)."""
    stored = skipped = 0
    if _size(leads):
        conn.stage("parsed_leads", _LEAD_STAGE, **_data(leads), copy=False)
        skipped = int(conn.scalar(
            "SELECT count(*) FROM parsed_leads p JOIN lead_tombstones t ON t.meta_lead_id = p.meta_lead_id"
        ) or 0)
        # On DuckDB, ON CONFLICT scans every meta_lead_id of the table; a plain INSERT checks each new key in the
        # primary-key index instead, and the rare existing lead makes it fail (then the batch runs with ON CONFLICT).
        conflict = "" if conn.backend == "duckdb" and not merge else " ON CONFLICT (meta_lead_id) DO NOTHING"
        tombstones = ("" if not skipped else
                      " WHERE NOT EXISTS (SELECT 1 FROM lead_tombstones t WHERE t.meta_lead_id = p.meta_lead_id)")
        stored = _count(conn, conn.execute(
            f"INSERT INTO leads ({_LEAD_COLS_SQL}, status, first_seen_at, updated_at) "
            f"SELECT {_lead_select(conn.dialect.json)}, 'new', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP "
            f"FROM parsed_leads p{tombstones}{conflict}"
        ))
    if _size(rejects):
        if isinstance(rejects, list):
            rejects = list({r[1]: r for r in rejects}.values())  # one row per reject_key and statement
        conn.stage("rejected_batch", _REJECT_STAGE, **_data(rejects), copy=False)
        conn.execute(
            "INSERT INTO rejected_leads (distributor, reject_key, meta_lead_id, form_id, page_id, reason, detail, "
            "payload, sync_id, first_seen_at, last_seen_at) "
            "SELECT distributor, reject_key, meta_lead_id, form_id, page_id, reason, detail, "
            f"CAST(payload AS {conn.dialect.json}), sync_id, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP FROM rejected_batch "
            "ON CONFLICT (distributor, reject_key) DO UPDATE SET last_seen_at = excluded.last_seen_at, "
            "reason = excluded.reason, detail = excluded.detail, sync_id = excluded.sync_id"
        )
    return stored, skipped


def _size(batch: Any) -> int:
    return batch.num_rows if hasattr(batch, "num_rows") else len(batch)


def _data(batch: Any) -> dict[str, Any]:
    return {"data": batch} if hasattr(batch, "num_rows") else {"rows": batch}


# ----------------------------------------------------------------------------------------------------------------------
# Processing
# ----------------------------------------------------------------------------------------------------------------------


def process_raw(
    wh: Warehouse,
    distributor: str,
    *,
    default_region: str,
    batch_size: int = DEFAULT_BATCH_SIZE,
    sync_id: str | None = None,
) -> ProcessResult:
    """Parse and store every unprocessed raw lead of the distributor (only those of ``sync_id`` when given),
    in id order, ``batch_size`` rows per transaction. See the module docstring for the guarantees."""
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    total = ProcessResult()
    with wh.session():  # one open of the warehouse for every batch
        while True:
            merge = clean = False
            while True:
                try:
                    with wh.transaction() as conn, gc_paused():
                        batch = _process_batch(conn, distributor, default_region, batch_size, sync_id, clean=clean,
                                               merge=merge)
                    break
                except Exception as exc:
                    if not merge and _is_duplicate_key(exc):
                        merge = True  # a lead stored before (another distributor, a rebuilt raw table)
                        continue
                    # Text a backend refuses (a NUL character, an unpaired surrogate): the batch again, cleaned. A
                    # failure after that is a real one and propagates (the rows stay unprocessed).
                    if not clean and isinstance(exc, _data_errors()):
                        clean = True
                        continue
                    raise
            total = total + batch
            if batch.processed < batch_size:
                return total


def _process_batch(conn: Conn, distributor: str, region: str, limit: int, sync_id: str | None, *,
                   clean: bool, merge: bool) -> ProcessResult:
    where = "distributor = ? AND processed_at IS NULL"
    params: list[Any] = [distributor]
    if sync_id is not None:
        where += " AND sync_id = ?"
        params.append(sync_id)
    lock = ""
    if conn.backend == "postgres":
        lock = " FOR UPDATE SKIP LOCKED"  # concurrent loads of one distributor share the work
        # Walk raw_leads_unprocessed in id order: an index scan marks the entries of rows processed since the last
        # VACUUM as dead, so later calls skip them (a bitmap scan would visit them all every time).
        conn.execute("SET LOCAL enable_bitmapscan = off")
    raw = conn.query_columns(
        f"SELECT id, page_id, form_id, payload, sync_id FROM raw_leads WHERE {where} ORDER BY id LIMIT ?{lock}",
        [*params, limit],
    )
    ids = raw.get("id") or []
    if not ids:
        return ProcessResult()

    texts = raw["payload"]
    payloads = [_loads(text) for text in texts]
    leads, rejects, _ = _parse_batch(distributor, region, payloads, texts, raw["page_id"], raw["form_id"],
                                     raw["sync_id"])
    if clean:
        _sanitise(leads, _LEAD_TEXT_COLUMNS)
        _sanitise(rejects, (3, 4, 5, 6, 7))
    stored, skipped = _store_parsed(conn, leads, rejects, merge=merge)

    conn.stage("processed_ids", {"id": "BIGINT"}, data={"id": ids})
    conn.execute(
        "UPDATE raw_leads SET processed_at = CURRENT_TIMESTAMP "
        "WHERE distributor = ? AND processed_at IS NULL AND id BETWEEN ? AND ? "
        "AND id IN (SELECT id FROM processed_ids)",
        [distributor, min(ids), max(ids)],
    )
    return ProcessResult(stored=stored, rejected=len(rejects), skipped_deleted=skipped, processed=len(ids))


# ----------------------------------------------------------------------------------------------------------------------
# Bulk: land and process many leads in one transaction (imports)
# ----------------------------------------------------------------------------------------------------------------------


@dataclass
class PreparedBatch:
    """Leads read and parsed, ready for :func:`store_batch` — built by :func:`prepare_batch`, possibly in another
    process (every field pickles cheaply: Arrow tables and plain lists).

    ``raw``: one row per distinct lead (first occurrence wins) for ``raw_leads``; ``leads`` / ``rejects``: the
    parse of each, with its ``raw_key``; ``read``: leads read, duplicates included.
    """

    raw: Any
    leads: Any
    rejects: Any
    read: int = 0
    errors: list[tuple[int, str]] | None = None  # (line number, what is wrong) of input that could not be read
    lines: int = 0  # input lines the batch came from (imports)


_BULK_RAW = {"raw_key": "TEXT", "meta_lead_id": "TEXT", "page_id": "TEXT", "form_id": "TEXT", "payload": "TEXT"}


def prepare_batch(
    items: Iterable[tuple[Any, Any]],
    *,
    distributor: str,
    default_region: str,
    sync_id: str,
    page_id: str | None = None,
    form_id: str | None = None,
    seen: set[str] | None = None,
) -> PreparedBatch:
    """Key, dedupe and parse leads — ``items`` are ``(lead, payload)`` pairs: the decoded lead and its JSON text
    as received (``str``/UTF-8 ``bytes``; None: serialised here). Pure (no warehouse): runs in a worker process.
    ``seen``: keys already prepared (by earlier calls for the same batch): those leads are skipped as repeats."""
    with gc_paused():
        return _prepare(items, distributor, default_region, sync_id, page_id, form_id,
                        set() if seen is None else seen)


def _prepare(items: Iterable[tuple[Any, Any]], distributor: str, default_region: str, sync_id: str,
             page_id: str | None, form_id: str | None, seen: set[str]) -> PreparedBatch:
    import pyarrow as pa

    keys: list[str] = []
    payloads: list[Any] = []
    texts: list[Any] = []
    read = 0
    for lead, text in items:
        read += 1
        key = lead_key(lead)
        if key in seen:
            continue  # the same lead again: the first occurrence is the one landed
        seen.add(key)
        keys.append(key)
        payloads.append(lead)
        texts.append(_dumps_bytes(lead) if text is None else text)
    n = len(keys)
    pages, forms, syncs = [page_id] * n, [form_id] * n, [sync_id] * n
    leads, rejects, valid_at = _parse_batch(distributor, default_region, payloads, texts, pages, forms, syncs)
    lead_ids = [None if k.startswith("sha256:") else k for k in keys]
    raw_cols = {"raw_key": keys, "meta_lead_id": lead_ids, "page_id": pages, "form_id": forms, "payload": texts}
    lead_cols = dict(zip(_LEAD_STAGE, zip(*leads))) if leads else {c: () for c in _LEAD_STAGE}
    lead_cols["raw_key"] = [keys[i] for i in valid_at]
    reject_cols = dict(zip(_REJECT_STAGE, zip(*rejects))) if rejects else {c: () for c in _REJECT_STAGE}
    try:
        tables = [_arrow(raw_cols, _BULK_RAW), _arrow(lead_cols, {**_LEAD_STAGE, "raw_key": "TEXT"}),
                  _arrow(reject_cols, _REJECT_STAGE)]
    except (UnicodeError, pa.ArrowException):  # text Arrow cannot hold (an unpaired surrogate): cleaned
        for cols, names in ((raw_cols, ("payload",)), (lead_cols, [c for c, t in _LEAD_STAGE.items() if t == "TEXT"]),
                            (reject_cols, ("form_id", "page_id", "reason", "detail", "payload"))):
            for name in names:
                cols[name] = [v if v is None else _clean_text(v.decode("utf-8", "replace") if type(v) is bytes else v)
                              for v in cols[name]]
        tables = [_arrow(raw_cols, _BULK_RAW), _arrow(lead_cols, {**_LEAD_STAGE, "raw_key": "TEXT"}),
                  _arrow(reject_cols, _REJECT_STAGE)]
    return PreparedBatch(*tables, read=read)


def _arrow(cols: dict[str, Sequence[Any]], types: dict[str, str]):
    import pyarrow as pa

    from leads_pipeline.lib.warehouse.connection import _arrow_type

    return pa.Table.from_arrays([pa.array(cols[c], type=_arrow_type(t)) for c, t in types.items()],
                                names=list(types))


def store_batch(wh: Warehouse, batch: PreparedBatch, *, distributor: str, sync_id: str) -> ProcessResult:
    """Land a :class:`PreparedBatch` in ``raw_leads`` and store its new leads and rejects, in one transaction.

    The same guarantees as :func:`land_raw_page` followed by :func:`process_raw`: a lead already landed (by a sync,
    a webhook, an earlier import) is left alone and not processed again; new leads are inserted into ``leads`` and
    never overwrite one there; tombstoned ids are skipped; rejects are upserted; the landed rows are marked
    processed because their parse is stored in the same transaction. ``processed`` counts the new raw rows.
    """
    merge = clean = False
    while True:
        try:
            with wh.transaction() as conn, gc_paused():
                return _store_batch(conn, batch, distributor, sync_id, merge=merge, clean=clean)
        except Exception as exc:
            if not merge and _is_duplicate_key(exc):
                merge = True
                continue
            if not clean and isinstance(exc, _data_errors()):
                clean = True
                continue
            raise


def _store_batch(conn: Conn, batch: PreparedBatch, distributor: str, sync_id: str, *, merge: bool,
                 clean: bool) -> ProcessResult:
    import pyarrow as pa
    import pyarrow.compute as pc

    raw, leads, rejects = batch.raw, batch.leads, batch.rejects
    if clean:
        raw, leads, rejects = _clean_table(raw), _clean_table(leads), _clean_table(rejects)
    if not raw.num_rows:
        return ProcessResult()
    # Leads landed before (by any path) are neither landed nor processed again: one join of the batch's keys
    # against raw_leads (DuckDB: a scan of its key columns; PostgreSQL: primary-key probes), then the batch is
    # filtered here, before anything is written.
    conn.stage("batch_keys", {"raw_key": "TEXT"}, data=raw.select(["raw_key"]), copy=False)
    old = conn.query_columns(
        "SELECT raw_key FROM raw_leads WHERE distributor = ? AND raw_key IN (SELECT raw_key FROM batch_keys)",
        [distributor],
    ).get("raw_key") or []
    # Deleted-on-request ids are dropped the same way: never landed again (their payload is personal data).
    gone = set(conn.query_columns(
        "SELECT meta_lead_id FROM lead_tombstones WHERE meta_lead_id IN (SELECT raw_key FROM batch_keys)"
    ).get("meta_lead_id") or []) - set(old)
    old = old + sorted(gone)
    if old:
        known = pa.array(old, type=pa.string())
        raw = raw.filter(pc.invert(pc.is_in(raw.column("raw_key"), value_set=known)))
        leads = leads.filter(pc.invert(pc.is_in(leads.column("raw_key"), value_set=known)))
        rejects = rejects.filter(pc.invert(pc.is_in(rejects.column("reject_key"), value_set=known)))
    if not raw.num_rows:
        return ProcessResult(skipped_deleted=len(gone))
    conn.stage("raw_batch", _BULK_RAW, data=raw, copy=False)
    conflict = "" if conn.backend == "duckdb" and not merge else " ON CONFLICT (distributor, raw_key) DO NOTHING"
    now = _now()
    conn.execute(
        "INSERT INTO raw_leads (distributor, raw_key, sync_id, page_id, form_id, meta_lead_id, payload, fetched_at, "
        f"processed_at) SELECT ?, raw_key, ?, page_id, form_id, meta_lead_id, CAST(payload AS {conn.dialect.json}), "
        f"?, ? FROM raw_batch{conflict}",
        [distributor, sync_id, now, now],
    )
    stored, skipped = _store_parsed(conn, leads, rejects, merge=merge)
    return ProcessResult(stored=stored, rejected=rejects.num_rows, skipped_deleted=skipped + len(gone),
                         processed=raw.num_rows)


def _clean_table(table: Any) -> Any:
    """``table`` with its text columns cleaned of what a backend refuses (see :func:`_clean_text`)."""
    import pyarrow as pa

    arrays = []
    for i, field_ in enumerate(table.schema):
        col = table.column(i)
        if pa.types.is_string(field_.type) or pa.types.is_large_string(field_.type):
            col = pa.array([None if v is None else _clean_text(v) for v in col.to_pylist()], type=field_.type)
        arrays.append(col)
    return pa.Table.from_arrays(arrays, schema=table.schema)
