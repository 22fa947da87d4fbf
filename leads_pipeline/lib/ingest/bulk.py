"""Bulk: many leads keyed, parsed and stored in one transaction per batch (imports).

:func:`prepare_batch` is pure (no warehouse), so an import runs it in worker processes; :func:`store_batch` writes
a prepared batch with the same rules as a sync's landing (:mod:`.land`) and store (:mod:`.store`): a lead landed
before (by a sync, a webhook, an earlier import) is neither landed nor stored again, tombstoned ids never come back,
new leads are attributed to the import's run, and a lead id another distributor holds is counted by name.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from leads_pipeline.lib.ingest import codec
from leads_pipeline.lib.ingest.parse import lead_key, sent_id
from leads_pipeline.lib.ingest.store import (
    LEAD_STAGE,
    REJECT_STAGE,
    ProcessResult,
    parse_rows,
    store_parsed,
)
from leads_pipeline.lib.memory import gc_paused
from leads_pipeline.lib.warehouse import Conn, Warehouse, retry_conflicts
from leads_pipeline.lib.warehouse.staging import arrow_table

__all__ = ["PreparedBatch", "prepare_batch", "store_batch"]


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
_LEAD_ROWS = {**LEAD_STAGE, "raw_key": "TEXT"}  # the parsed rows with the raw row they came from


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
        texts.append(codec.dumps_bytes(lead) if text is None else text)
    n = len(keys)
    pages, forms, syncs = [page_id] * n, [form_id] * n, [sync_id] * n
    leads, rejects, valid_at = parse_rows(distributor, default_region, payloads, texts, pages, forms, syncs)
    lead_ids = [sent_id(payloads[i]) if k.startswith("sha256:") else k for i, k in enumerate(keys)]
    raw_cols = {"raw_key": keys, "meta_lead_id": lead_ids, "page_id": pages, "form_id": forms, "payload": texts}
    lead_cols = dict(zip(LEAD_STAGE, zip(*leads))) if leads else {c: () for c in LEAD_STAGE}
    lead_cols["raw_key"] = [keys[i] for i in valid_at]
    reject_cols = dict(zip(REJECT_STAGE, zip(*rejects))) if rejects else {c: () for c in REJECT_STAGE}
    try:
        tables = [arrow_table(_BULK_RAW, None, raw_cols), arrow_table(_LEAD_ROWS, None, lead_cols),
                  arrow_table(REJECT_STAGE, None, reject_cols)]
    except (UnicodeError, pa.ArrowException):  # text Arrow cannot hold (an unpaired surrogate): cleaned
        for cols, names in ((raw_cols, ("meta_lead_id", "payload")),
                            (lead_cols, [c for c, t in LEAD_STAGE.items() if t == "TEXT"]),
                            (reject_cols, ("meta_lead_id", "form_id", "page_id", "reason", "detail", "payload"))):
            for name in names:
                cols[name] = [v if v is None else codec.clean_text(v.decode("utf-8", "replace")
                                                                   if type(v) is bytes else v)
                              for v in cols[name]]
        tables = [arrow_table(_BULK_RAW, None, raw_cols), arrow_table(_LEAD_ROWS, None, lead_cols),
                  arrow_table(REJECT_STAGE, None, reject_cols)]
    return PreparedBatch(*tables, read=read)


def store_batch(wh: Warehouse, batch: PreparedBatch, *, distributor: str, sync_id: str) -> ProcessResult:
    """Land a :class:`PreparedBatch` in ``raw_leads`` and store its new leads and rejects, in one transaction.

    ``processed`` counts the new raw rows (landed already processed: their parse is stored in the same
    transaction); ``held`` the lead ids another distributor holds.
    """

    def attempt() -> ProcessResult:
        merge = clean = False
        while True:
            try:
                with wh.transaction() as conn, gc_paused():
                    return _store_batch(conn, batch, distributor, sync_id, merge=merge, clean=clean)
            except Exception as exc:
                if not merge and codec.is_duplicate_key(exc):
                    merge = True
                    continue
                if not clean and isinstance(exc, codec.data_errors()) and getattr(exc, "sqlstate", None) is None:
                    clean = True
                    continue
                raise

    return retry_conflicts(attempt, what=f"storing a batch of {distributor}")


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
    conn.stage("batch_keys", {"raw_key": "TEXT", "meta_lead_id": "TEXT"}, data=raw.select(["raw_key", "meta_lead_id"]),
               copy=False)
    old = conn.query_columns(
        "SELECT raw_key FROM raw_leads WHERE distributor = ? AND raw_key IN (SELECT raw_key FROM batch_keys)",
        [distributor],
    ).get("raw_key") or []
    # Deleted-on-request ids are dropped the same way: never landed again (their payload is personal data) — by key
    # (a lead id, or the `sha256:` handle of a record without a usable id) or by the bad id it was sent with.
    gone = set(conn.query_columns(
        "SELECT raw_key FROM batch_keys WHERE raw_key IN (SELECT meta_lead_id FROM lead_tombstones) "
        "OR meta_lead_id IN (SELECT meta_lead_id FROM lead_tombstones)"
    ).get("raw_key") or []) - set(old)
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
    now = codec.now()
    conn.execute(
        "INSERT INTO raw_leads (distributor, raw_key, sync_id, page_id, form_id, meta_lead_id, payload, fetched_at, "
        f"processed_at) SELECT ?, raw_key, ?, page_id, form_id, meta_lead_id, CAST(payload AS {conn.dialect.json}), "
        f"?, ? FROM raw_batch ORDER BY raw_key{conflict}",
        [distributor, sync_id, now, now],
    )
    result = store_parsed(conn, leads, rejects, merge=merge, sync_id=sync_id, distributor=distributor)
    result.skipped_deleted += len(gone)
    result.processed = raw.num_rows
    return result


def _clean_table(table: Any) -> Any:
    """``table`` with its text columns cleaned of what a backend refuses (see :func:`codec.clean_text`)."""
    import pyarrow as pa

    arrays = []
    for i, field_ in enumerate(table.schema):
        col = table.column(i)
        if pa.types.is_string(field_.type) or pa.types.is_large_string(field_.type):
            col = pa.array([None if v is None else codec.clean_text(v) for v in col.to_pylist()], type=field_.type)
        arrays.append(col)
    return pa.Table.from_arrays(arrays, schema=table.schema)
