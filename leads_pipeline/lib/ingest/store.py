"""Storing parsed leads: ``leads`` (every lead with an id) and ``rejected_leads``, attributed to the run that stores.

Shared by the landing of a page (:mod:`.land`, parse and store in the landing's transaction), the bulk path of imports
(:mod:`.bulk`) and :func:`process_raw`, which stores raw rows a run landed but could not store (a crash of an older
version, a parse failure) — the next run's *recovery*.

Rules every store keeps:

- a lead is inserted into ``leads`` once and never overwritten (a re-sync never touches what staff changed); the row
  names the run that inserted it (``leads.sync_id``), so a run's ``stored`` is exactly the rows it created;
- ids in ``lead_tombstones`` are skipped (deleted leads never come back);
- a lead id that is already in ``leads`` is never dropped silently: held by *another* distributor it is counted per
  distributor and form (``held``), held by the same one it is counted as ``exists``;
- malformed leads are upserted into ``rejected_leads`` (one row per payload; ``first_seen_at`` kept);
- the columns inserted are exactly :data:`~leads_pipeline.lib.ingest.parse.LEAD_COLUMNS` (with ``status`` when the
  parser decides it), so the parser owns what a lead row holds;
- PostgreSQL lock order: staged rows are inserted ``ORDER BY`` their key, raw rows processed in id order.

Costs: PostgreSQL ``ON CONFLICT`` probes the primary key. DuckDB executes ``ON CONFLICT`` as a scan of the key column,
so there a plain ``INSERT`` runs first (index checks) and only a batch that meets an existing lead is written again
with ``ON CONFLICT`` (``merge``); only then is the conflict looked up, to say whose the leads are.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from leads_pipeline.lib.ingest import codec
from leads_pipeline.lib.ingest.parse import LEAD_COLUMNS, parse_lead_row
from leads_pipeline.lib.memory import gc_paused
from leads_pipeline.lib.warehouse import Conn, Warehouse, retry_conflicts

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "LEAD_STAGE",
    "REJECT_STAGE",
    "ProcessResult",
    "form_locales",
    "parse_rows",
    "process_raw",
    "store_parsed",
]

DEFAULT_BATCH_SIZE = 50_000


@dataclass
class ProcessResult:
    """What a store did: new rows in ``leads`` (``stored``), rejects, tombstoned ids skipped, raw rows processed,
    leads this distributor already had (``exists``) and lead ids another one holds (``held``, by
    ``(distributor, form_id)``)."""

    stored: int = 0
    rejected: int = 0
    skipped_deleted: int = 0
    processed: int = 0
    exists: int = 0
    held: dict[tuple[str, str | None], int] = field(default_factory=dict)

    def __add__(self, other: ProcessResult) -> ProcessResult:
        held = dict(self.held)
        for k, n in other.held.items():
            held[k] = held.get(k, 0) + n
        return ProcessResult(self.stored + other.stored, self.rejected + other.rejected,
                             self.skipped_deleted + other.skipped_deleted, self.processed + other.processed,
                             self.exists + other.exists, held)

    @property
    def held_elsewhere(self) -> dict[str, int]:
        """Lead ids held by other distributors, per distributor."""
        out: dict[str, int] = {}
        for (owner, _form), n in self.held.items():
            out[owner] = out.get(owner, 0) + n
        return out


# ----------------------------------------------------------------------------------------------------------------------
# Parsing a batch into rows
# ----------------------------------------------------------------------------------------------------------------------

_LEAD_TYPES = {"created_time": "TIMESTAMPTZ", "is_organic": "BOOLEAN"}
_LEAD_JSON = {"custom_fields": "{}", "disclaimer_responses": "[]"}  # JSON column → its value when empty
#: ``leads`` rows as staged: :data:`LEAD_COLUMNS` order, JSON columns as TEXT (DuckDB stages TEXT faster).
LEAD_STAGE = {c: _LEAD_TYPES.get(c, "TEXT") for c in LEAD_COLUMNS}
_LEAD_TEXT_COLUMNS = tuple(i for i, c in enumerate(LEAD_COLUMNS) if LEAD_STAGE[c] == "TEXT")
_LEAD_COLS_SQL = ", ".join(LEAD_COLUMNS)
_JSON_AT = tuple((LEAD_COLUMNS.index(c), empty) for c, empty in _LEAD_JSON.items() if c in LEAD_COLUMNS)
_FORM_AT = LEAD_COLUMNS.index("form_id")
REJECT_STAGE = {"distributor": "TEXT", "reject_key": "TEXT", "meta_lead_id": "TEXT", "form_id": "TEXT",
                "page_id": "TEXT", "reason": "TEXT", "detail": "TEXT", "payload": "TEXT", "sync_id": "TEXT"}
_REJECT_TEXT_COLUMNS = (2, 3, 4, 5, 6, 7)  # meta_lead_id (a bad id as sent) … payload


def _lead_select(json_type: str) -> str:
    return ", ".join(f"CAST({c} AS {json_type})" if c in _LEAD_JSON else c for c in LEAD_COLUMNS)


def form_locales(conn: Conn) -> dict[str, str]:
    """Every recorded form's locale (``distributor_forms.locale``, whoever recorded it; one small query): the parser
    reads a lead's phone in its form's locale's region before the distributor's (docs/lead-validation.md)."""
    rows = conn.query("SELECT form_id, min(locale) AS locale FROM distributor_forms WHERE locale IS NOT NULL "
                      "GROUP BY form_id")
    return {r["form_id"]: r["locale"] for r in rows}


def parse_rows(distributor: str, region: str, payloads: Sequence[Any], texts: Sequence[Any],
               page_ids: Sequence[str | None], form_ids: Sequence[str | None], sync_ids: Sequence[str | None],
               form_locales: dict[str, str] | None = None) -> tuple[list[list], list[list], list[int]]:
    """Parse decoded ``payloads`` (``texts``: the same leads as stored JSON text) into rows for ``leads``
    (:data:`LEAD_STAGE` order, JSON columns as text) and ``rejected_leads`` (:data:`REJECT_STAGE` order); also
    the positions of the leads. ``form_locales``: :func:`form_locales`."""
    leads: list[list] = []
    rejects: list[list] = []
    valid_at: list[int] = []
    ok, bad, at = leads.append, rejects.append, valid_at.append
    parse = parse_lead_row
    dumps = codec.dumps
    with gc_paused():
        for i, payload in enumerate(payloads):
            result = parse(payload, distributor, page_ids[i], region, form_ids[i], form_locales)
            if type(result) is tuple:
                row = list(result)
                for j, empty in _JSON_AT:
                    value = row[j]
                    row[j] = dumps(value) if value else empty
                ok(row)
                at(i)
            else:
                text = texts[i]
                if type(text) is bytes:
                    text = text.decode("utf-8", "replace")
                elif not isinstance(text, str):
                    text = dumps(result.payload)
                bad([distributor, result.reject_key, result.meta_lead_id, result.form_id, result.page_id,
                     result.reason, result.detail, text, sync_ids[i]])
    return leads, rejects, valid_at


# ----------------------------------------------------------------------------------------------------------------------
# Storing rows
# ----------------------------------------------------------------------------------------------------------------------


def store_parsed(conn: Conn, leads: Any, rejects: Any, *, merge: bool, sync_id: str | None, distributor: str,
                 clean: bool = False) -> ProcessResult:
    """Insert parsed leads (rows or an Arrow table) attributed to ``sync_id`` and upsert rejects, in the caller's
    transaction (see the module docstring). On DuckDB without ``merge`` an existing lead raises the backend's
    duplicate-key error: the caller runs the transaction again with ``merge=True``."""
    result = ProcessResult()
    if clean and isinstance(leads, list):
        codec.sanitise(leads, _LEAD_TEXT_COLUMNS)
    if clean and isinstance(rejects, list):
        codec.sanitise(rejects, _REJECT_TEXT_COLUMNS)
    n = _size(leads)
    if n:
        conn.stage("parsed_leads", LEAD_STAGE, **_data(leads), copy=False)
        skipped = int(conn.scalar(
            "SELECT count(*) FROM parsed_leads p JOIN lead_tombstones t ON t.meta_lead_id = p.meta_lead_id"
        ) or 0)
        conflict = "" if conn.backend == "duckdb" and not merge else " ON CONFLICT (meta_lead_id) DO NOTHING"
        tombstones = ("" if not skipped else
                      " WHERE NOT EXISTS (SELECT 1 FROM lead_tombstones t WHERE t.meta_lead_id = p.meta_lead_id)")
        status = "" if "status" in LEAD_COLUMNS else ", status"
        status_value = "" if "status" in LEAD_COLUMNS else ", 'new'"
        result.stored = codec.affected(conn.execute(
            f"INSERT INTO leads ({_LEAD_COLS_SQL}{status}, sync_id, first_seen_at, updated_at) "
            f"SELECT {_lead_select(conn.dialect.json)}{status_value}, ?, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP "
            f"FROM parsed_leads p{tombstones} ORDER BY p.meta_lead_id{conflict}",
            [sync_id],
        ))
        result.skipped_deleted = skipped
        if result.stored + skipped < n:  # some ids are in leads already: whose?
            for r in conn.query(
                "SELECT l.distributor, p.form_id, count(*) AS n FROM parsed_leads p "
                "JOIN leads l ON l.meta_lead_id = p.meta_lead_id "
                "WHERE l.sync_id IS DISTINCT FROM ? "
                "AND NOT EXISTS (SELECT 1 FROM lead_tombstones t WHERE t.meta_lead_id = p.meta_lead_id) "
                "GROUP BY l.distributor, p.form_id ORDER BY l.distributor, p.form_id",
                [sync_id],
            ):
                if r["distributor"] == distributor:
                    result.exists += int(r["n"])
                else:
                    key = (r["distributor"], r["form_id"])
                    result.held[key] = result.held.get(key, 0) + int(r["n"])
    if _size(rejects):
        if isinstance(rejects, list):
            rejects = list({r[1]: r for r in rejects}.values())  # one row per reject_key and statement
        conn.stage("rejected_batch", REJECT_STAGE, **_data(rejects), copy=False)
        conn.execute(
            "INSERT INTO rejected_leads (distributor, reject_key, meta_lead_id, form_id, page_id, reason, detail, "
            "payload, sync_id, first_seen_at, last_seen_at) "
            "SELECT distributor, reject_key, meta_lead_id, form_id, page_id, reason, detail, "
            f"CAST(payload AS {conn.dialect.json}), sync_id, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP FROM rejected_batch "
            "ORDER BY reject_key "
            "ON CONFLICT (distributor, reject_key) DO UPDATE SET last_seen_at = excluded.last_seen_at, "
            "reason = excluded.reason, detail = excluded.detail, sync_id = excluded.sync_id"
        )
        result.rejected = _size(rejects)
    return result


def _size(batch: Any) -> int:
    return batch.num_rows if hasattr(batch, "num_rows") else len(batch)


def _data(batch: Any) -> dict[str, Any]:
    return {"data": batch} if hasattr(batch, "num_rows") else {"rows": batch}


# ----------------------------------------------------------------------------------------------------------------------
# Recovery: raw rows landed but not stored
# ----------------------------------------------------------------------------------------------------------------------


def process_raw(
    wh: Warehouse,
    distributor: str,
    *,
    default_region: str,
    sync_id: str | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> ProcessResult:
    """Parse and store every unprocessed raw lead of the distributor, in id order, ``batch_size`` rows per
    transaction, attributing the leads to ``sync_id`` (the run doing it). Raw rows are only left unprocessed by a
    run that could not store them (see :mod:`.land`), so this is the next run's recovery. On PostgreSQL concurrent
    calls share the work (``FOR UPDATE SKIP LOCKED``)."""
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    total = ProcessResult()
    while True:
        batch = retry_conflicts(lambda: _process_once(wh, distributor, default_region, batch_size, sync_id),
                                what=f"recovering raw leads of {distributor}")
        total = total + batch
        if batch.processed < batch_size:
            return total


def _process_once(wh: Warehouse, distributor: str, region: str, limit: int, sync_id: str | None) -> ProcessResult:
    merge = clean = False
    while True:
        try:
            with wh.transaction() as conn, gc_paused():
                return _process_batch(conn, distributor, region, limit, sync_id, clean=clean, merge=merge)
        except Exception as exc:
            if not merge and codec.is_duplicate_key(exc):
                merge = True  # a lead stored before (another distributor, a rebuilt raw table)
                continue
            # Text a backend refuses: the batch again, cleaned. A failure after that is a real one and propagates
            # (the rows stay unprocessed).
            if not clean and isinstance(exc, codec.data_errors()) and getattr(exc, "sqlstate", None) is None:
                clean = True
                continue
            raise


def _process_batch(conn: Conn, distributor: str, region: str, limit: int, sync_id: str | None, *,
                   clean: bool, merge: bool) -> ProcessResult:
    lock = ""
    if conn.backend == "postgres":
        lock = " FOR UPDATE SKIP LOCKED"  # concurrent recoveries of one distributor share the work
        # Walk raw_leads_unprocessed in id order: an index scan marks the entries of rows processed since the last
        # VACUUM as dead, so later calls skip them (a bitmap scan would visit them all every time).
        conn.execute("SET LOCAL enable_bitmapscan = off")
    raw = conn.query_columns(
        "SELECT id, page_id, form_id, payload, sync_id FROM raw_leads "
        f"WHERE distributor = ? AND processed_at IS NULL ORDER BY id LIMIT ?{lock}",
        [distributor, limit],
    )
    ids = raw.get("id") or []
    if not ids:
        return ProcessResult()
    texts = raw["payload"]
    payloads = [codec.loads(text) for text in texts]
    leads, rejects, _ = parse_rows(distributor, region, payloads, texts, raw["page_id"], raw["form_id"],
                                   raw["sync_id"], form_locales(conn))
    result = store_parsed(conn, leads, rejects, merge=merge, clean=clean, sync_id=sync_id, distributor=distributor)
    conn.stage("processed_ids", {"id": "BIGINT"}, data={"id": ids})
    conn.execute(
        "UPDATE raw_leads SET processed_at = CURRENT_TIMESTAMP "
        "WHERE distributor = ? AND processed_at IS NULL AND id BETWEEN ? AND ? "
        "AND id IN (SELECT id FROM processed_ids)",
        [distributor, min(ids), max(ids)],
    )
    result.processed = len(ids)
    return result
