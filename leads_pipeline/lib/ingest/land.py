"""Landing: a page of leads as received into ``raw_leads`` — parsed and stored in the same short transaction.

Why land and store together: a page's raw rows, their ``leads`` / ``rejected_leads`` rows and the form's cursor
commit at once, so no other process ever sees this run's raw rows unprocessed (a concurrent webhook run or sync never
stores — and counts — another run's leads), and a crash leaves either the whole page or none of it. Only raw rows a
run could land but not store (a parse failure; rows of an older version) stay unprocessed; the next run stores them
with :func:`~leads_pipeline.lib.ingest.store.process_raw` and counts them as ``recovered``.

:func:`land_page` per page, in one transaction:

1. the page is staged; ids in ``lead_tombstones`` are dropped (a lead deleted on request is never landed again);
2. its new leads are inserted into ``raw_leads`` keyed on ``(distributor, raw_key)`` (the Meta lead id, or
   ``sha256:<hash>`` of a payload without a usable id), already marked processed, ``RETURNING`` which keys were new;
   a lead landed before (by this distributor) is left alone and not stored again;
3. those new leads are parsed and stored (:func:`~leads_pipeline.lib.ingest.store.store_parsed`), attributed to this
   run; a lead id another distributor holds is counted by name, never silently dropped;
4. with ``cursor`` (passed with the *last* page of a form's pagination) ``sync_cursors`` moves forward — never
   back — so a cursor only ever covers committed leads.

Lock order (PostgreSQL): staged rows are inserted ``ORDER BY`` their key — ``raw_leads`` by ``raw_key``, ``leads`` by
``meta_lead_id``, ``rejected_leads`` by ``reject_key`` — so two writers of the same leads (a sync newest-first and the
webhook processor oldest-first) wait for each other rather than deadlock; a deadlock or serialisation failure that
still happens runs the transaction again (:func:`~leads_pipeline.lib.warehouse.retry_conflicts`).

DuckDB executes ``ON CONFLICT`` as a join that scans the key columns of the *whole* table, so there: (1) leads of
the page among the newest ``RECENT_ROWS`` raw rows (the sync's lookback re-reads) are dropped with a scan that the
min/max statistics of ``id`` limit to the newest row groups; (2) a plain ``INSERT`` checks each key in the primary-key
index; (3) only when that meets an older duplicate is the page written again with ``ON CONFLICT`` (rare).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from leads_pipeline.lib.ingest import codec
from leads_pipeline.lib.ingest.parse import lead_key, sent_id
from leads_pipeline.lib.ingest.store import (
    ProcessResult,
    form_locales,
    parse_rows,
    store_parsed,
)
from leads_pipeline.lib.memory import gc_paused
from leads_pipeline.lib.warehouse import Conn, Warehouse, retry_conflicts

__all__ = ["RECENT_ROWS", "LandResult", "PreparedPage", "get_cursor", "get_cursors", "land_page", "land_raw_page",
           "merge_prepared", "prepare_page"]

# A DuckDB landing first looks for the page's leads among this many newest raw rows (a cheap, bounded scan).
RECENT_ROWS = 100_000

# JSON columns are staged as TEXT and cast in the INSERT: DuckDB stages TEXT several times faster than JSON.
_RAW_STAGE = {"ord": "BIGINT", "distributor": "TEXT", "raw_key": "TEXT", "sync_id": "TEXT", "page_id": "TEXT",
              "form_id": "TEXT", "meta_lead_id": "TEXT", "payload": "TEXT"}
_RAW_TEXT = (4, 5, 6, 7)  # page_id, form_id, meta_lead_id (a bad id as sent), payload: what may need cleaning


@dataclass
class LandResult(ProcessResult):
    """What one page did: ``landed`` new raw rows, and what storing them did (see ``ProcessResult``)."""

    landed: int = 0
    new_keys: list[str] = field(default_factory=list)


def _stage_rows(leads: Sequence[Any], distributor: str, sync_id: str, page_id: str | None,
                form_id: str | None) -> tuple[list[list], dict[str, Any]]:
    """The page as staging rows (one per distinct lead, first occurrence wins) and the leads by key."""
    rows: dict[str, list] = {}
    by_key: dict[str, Any] = {}
    dumps = codec.dumps
    with gc_paused():
        for lead in leads:
            key = lead_key(lead)
            if key in rows:
                continue  # the same lead twice in one page: keep the first
            lead_id = key if not key.startswith("sha256:") else sent_id(lead)  # a bad id as sent; None without
            rows[key] = [len(rows), distributor, key, sync_id, page_id, form_id, lead_id, dumps(lead)]
            by_key[key] = lead
    return list(rows.values()), by_key


@dataclass
class PreparedPage:
    """A page keyed, serialised and parsed before the warehouse is opened (:func:`prepare_page`, in a sync's fetch
    thread): the landing then only writes, and holds the warehouse for less. ``leads``: as received; ``staged`` /
    ``by_key``: what :func:`land_page` stages; ``parsed``: each key's parse — ``(True, leads row)`` or
    ``(False, rejected_leads row)``."""

    leads: list
    staged: list[list]
    by_key: dict[str, Any]
    parsed: dict[str, tuple[bool, list]]

    def __len__(self) -> int:
        return len(self.leads)


def prepare_page(leads: Sequence[Any], *, distributor: str, sync_id: str, default_region: str, page_id: str | None,
                 form_id: str | None, locales: dict[str, str] | None) -> PreparedPage:
    """What :func:`land_page` does before it needs the warehouse, done ahead (pure: no warehouse). ``locales``:
    :func:`~leads_pipeline.lib.ingest.store.form_locales`, read once by the run. The same rules, the same rows: the
    landing stores the parse of the keys that turn out new, as it would have parsed them."""
    staged, by_key = _stage_rows(leads, distributor, sync_id, page_id, form_id)
    with gc_paused():
        rows, rejects, valid_at = parse_rows(distributor, default_region, [by_key[r[2]] for r in staged],
                                             [r[7] for r in staged], [r[4] for r in staged], [r[5] for r in staged],
                                             [sync_id] * len(staged), locales)
        parsed: dict[str, tuple[bool, list]] = {}
        valid = iter(zip(valid_at, rows))
        bad = iter(rejects)
        at, row = next(valid, (-1, None))
        for i, r in enumerate(staged):
            if i == at:
                parsed[r[2]] = (True, row)
                at, row = next(valid, (-1, None))
            else:
                parsed[r[2]] = (False, next(bad))
    return PreparedPage(list(leads), staged, by_key, parsed)


def merge_prepared(pages: Sequence[PreparedPage]) -> PreparedPage:
    """Consecutive prepared pages of one form as one (a lead in two of them: the first occurrence, as
    :func:`land_page` of the pages' leads together keeps it)."""
    if len(pages) == 1:
        return pages[0]
    by_key: dict[str, Any] = {}
    for page in pages:
        by_key.update(page.by_key)
    if len(by_key) == sum(len(page.staged) for page in pages):
        # No lead in two of the pages (the usual case): their rows as they are, without a copy of each (the landing
        # thread merges while it holds the warehouse; ``ord`` only orders a page's rows and is not read by SQL).
        parsed: dict[str, tuple[bool, list]] = {}
        for page in pages:
            parsed.update(page.parsed)
        return PreparedPage([lead for page in pages for lead in page.leads],
                            [row for page in pages for row in page.staged], by_key, parsed)
    return _merge_dropping_repeats(pages)


def _merge_dropping_repeats(pages: Sequence[PreparedPage]) -> PreparedPage:
    """:func:`merge_prepared` of pages that share a lead: the first occurrence of each key, renumbered."""
    leads: list = []
    staged: list[list] = []
    by_key: dict[str, Any] = {}
    parsed: dict[str, tuple[bool, list]] = {}
    for page in pages:
        leads.extend(page.leads)
        for r in page.staged:
            key = r[2]
            if key in by_key:
                continue
            staged.append([len(staged), *r[1:]])
            by_key[key] = page.by_key[key]
            parsed[key] = page.parsed[key]
    return PreparedPage(leads, staged, by_key, parsed)


def land_page(
    wh: Warehouse,
    *,
    sync_id: str,
    distributor: str,
    default_region: str,
    page_id: str | None,
    form_id: str | None,
    leads: Sequence[Any],
    cursor: int | None = None,
    prepared: PreparedPage | None = None,
) -> LandResult:
    """Land one page, store its new leads and move the form's cursor, in one transaction (module docstring).
    ``prepared``: the page's :func:`prepare_page` (made with this distributor, run and region), used instead of
    keying and parsing ``leads`` here."""
    if cursor is not None and not form_id:
        raise ValueError("a cursor belongs to a form: land_page(cursor=…) needs form_id")
    return _land_retrying(wh, sync_id, distributor, default_region, page_id, form_id, leads, cursor, store=True,
                          prepared=prepared)


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
    """Land one page in ``raw_leads`` *without* storing it (left unprocessed); returns how many rows were new.

    The sync uses it only when storing a page failed, so that what Meta gave is kept for the next run's recovery;
    tests use it to make raw rows a crashed run would leave.
    """
    if cursor is not None and not form_id:
        raise ValueError("a cursor belongs to a form: land_raw_page(cursor=…) needs form_id")
    return _land_retrying(wh, sync_id, distributor, "", page_id, form_id, leads, cursor, store=False).landed


def _land_retrying(wh: Warehouse, sync_id: str, distributor: str, region: str, page_id: str | None,
                   form_id: str | None, leads: Sequence[Any], cursor: int | None, *, store: bool,
                   prepared: PreparedPage | None = None) -> LandResult:
    """:func:`_land` in a transaction of its own: with ``merge`` after a duplicate key, with cleaned text after a
    data error, and the whole transaction again on a write conflict (:func:`retry_conflicts`)."""
    if prepared is not None:
        staged, by_key, parsed = prepared.staged, prepared.by_key, prepared.parsed
    else:
        staged, by_key = _stage_rows(leads, distributor, sync_id, page_id, form_id)
        parsed = None

    def attempt() -> LandResult:
        merge = clean = False
        while True:
            try:
                with wh.transaction() as conn, gc_paused():
                    return _land(conn, staged, by_key, sync_id, distributor, region, form_id, cursor,
                                 merge=merge, clean=clean, store=store, parsed=parsed)
            except Exception as exc:
                if not merge and codec.is_duplicate_key(exc):
                    merge = True  # a lead landed or stored long ago came back: let ON CONFLICT sort it out
                    continue
                # Text a backend refuses (a NUL character, an unpaired surrogate): stored cleaned rather than never.
                if not clean and isinstance(exc, codec.data_errors()) and not _conflict(exc):
                    clean = True
                    codec.sanitise(staged, _RAW_TEXT)
                    continue
                raise

    return retry_conflicts(attempt, what=f"landing a page of {distributor}")


def _conflict(exc: BaseException) -> bool:
    from leads_pipeline.lib.warehouse import is_write_conflict

    return is_write_conflict(exc)


def _land(conn: Conn, staged: list[list], by_key: dict[str, Any], sync_id: str, distributor: str, region: str,
          form_id: str | None, cursor: int | None, *, merge: bool, clean: bool, store: bool,
          parsed: dict[str, tuple[bool, list]] | None = None) -> LandResult:
    result = LandResult()
    if staged:
        conn.stage("raw_page", _RAW_STAGE, staged)
        # By key (a lead id; the `sha256:` handle of a record without a usable id) or by the bad id it was sent with.
        result.skipped_deleted = max(0, conn.execute(
            "DELETE FROM raw_page WHERE raw_key IN (SELECT meta_lead_id FROM lead_tombstones) "
            "OR meta_lead_id IN (SELECT meta_lead_id FROM lead_tombstones)"))
        columns = "distributor, raw_key, sync_id, page_id, form_id, meta_lead_id"
        if conn.backend == "duckdb" and not merge:
            # Drop the leads among the newest landed rows (ids grow with the table, so min/max statistics skip
            # every older row group), then a plain INSERT checked key by key against the primary-key index.
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
        stamp = codec.now()
        processed = "?" if store else "NULL"
        params = [stamp, stamp] if store else [stamp]
        new_keys = conn.query_columns(
            f"INSERT INTO raw_leads ({columns}, payload, fetched_at, processed_at) "
            f"SELECT {columns}, CAST(payload AS {conn.dialect.json}), ?, {processed} FROM raw_page "
            f"ORDER BY raw_key{conflict} RETURNING raw_key",
            params,
        ).get("raw_key") or []
        result.landed = len(new_keys)
        result.new_keys = new_keys
        if store and new_keys:
            keys = set(new_keys)
            rows = [r for r in staged if r[2] in keys]
            if parsed is not None:  # parsed ahead (prepare_page): the rows of the new keys, in the staged order
                leads, rejects = [], []
                for r in rows:
                    ok, row = parsed[r[2]]
                    (leads if ok else rejects).append(list(row))
            else:
                leads, rejects, _ = parse_rows(distributor, region, [by_key[r[2]] for r in rows],
                                               [r[7] for r in rows], [r[4] for r in rows], [r[5] for r in rows],
                                               [sync_id] * len(rows), form_locales(conn))
            stored = store_parsed(conn, leads, rejects, merge=merge, clean=clean, sync_id=sync_id,
                                  distributor=distributor)
            stored.skipped_deleted += result.skipped_deleted
            stored.processed = len(new_keys)
            result = LandResult(**{**vars(stored), "landed": result.landed, "new_keys": new_keys})
    if cursor is not None:
        conn.execute(
            "INSERT INTO sync_cursors (distributor, form_id, last_created_time, updated_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (distributor, form_id) DO UPDATE SET "
            "last_created_time = GREATEST(sync_cursors.last_created_time, excluded.last_created_time), "
            "updated_at = excluded.updated_at",
            [distributor, form_id, int(cursor), codec.now()],
        )
    return result


def get_cursor(wh: Warehouse, distributor: str, form_id: str) -> int | None:
    """The form's cursor: the newest ``created_time`` (unix seconds) landed and committed, or None."""
    with wh.transaction(read_only=True) as conn:
        return get_cursors(conn, distributor).get(form_id)


def get_cursors(conn: Conn, distributor: str) -> dict[str, int]:
    """Every form's cursor of a distributor (one read at the start of a run)."""
    rows = conn.query("SELECT form_id, last_created_time FROM sync_cursors WHERE distributor = ?", [distributor])
    return {r["form_id"]: int(r["last_created_time"]) for r in rows}
