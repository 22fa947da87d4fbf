"""The warehouse side of the SQL import (:mod:`.bulk_sql`): what the import's own DuckDB prepared goes into the
warehouse in short transactions, so that the webhook receiver, a sync or a command waits seconds, not the import.

Why: DuckDB has one writer, and our lock (:mod:`leads_pipeline.lib.warehouse.locking`) makes other processes wait
for it. Reading, deduplicating and parsing a million leads takes a minute or more; writing the result takes a fraction
of that. So the work happens without the lock, and here each chunk of ``CHUNK_LEADS`` leads is one transaction:
its raw payloads, its ``leads`` rows, the parser's rows of the leads SQL left to it.
The checks against what the warehouse already holds — landed before by this distributor, deleted (tombstoned), held
by another distributor — are made in that transaction, so results are those of one transaction over the file, and a
webhook landing a lead of the file meanwhile is respected.

The warehouse stays open across chunks while nobody waits for it (each release closes the file, which checkpoints:
one per chunk would make a large import quadratic), and is let go after the chunk in progress as soon as another
process or thread waits (:func:`~leads_pipeline.lib.warehouse.locking.waited_for`), or after ``MAX_HOLD_SECONDS``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from leads_pipeline.lib.ingest import codec
from leads_pipeline.lib.ingest.store import store_parsed
from leads_pipeline.lib.warehouse import locking

__all__ = ["write_all"]

CHUNK_LEADS = 50_000  # leads per transaction (file order): ~1 s of writing each, ~45 MB of payloads
MAX_HOLD_SECONDS = 60.0  # held at most this long when nobody waits (each release checkpoints: see the docstring)
WAREHOUSE_MEMORY_LIMIT = "256MB"  # the warehouse's pool meanwhile; the import's own DuckDB shrinks to WORK_WHILE_WRITING
WORK_WHILE_WRITING = "128MB"  # its pool while it only hands out chunks (the rest of its tables spill): RSS <= 1 GB
CHECKPOINT_EVERY = "4GB"  # one checkpoint per release, not per chunk (see the module docstring)

_LEAD_COLUMNS = ("meta_lead_id, distributor, page_id, form_id, ad_id, ad_name, adset_id, adset_name, campaign_id, "
                 "campaign_name, created_time, is_organic, platform, full_name, first_name, last_name, email, phone, "
                 "city, country, custom_fields, disclaimer_responses, email_raw, phone_raw, status, status_reason, "
                 "sync_id, first_seen_at, updated_at")
INSERT_LEADS = f"""
INSERT INTO leads ({_LEAD_COLUMNS})
SELECT p.meta_lead_id, $distributor, NULL, p.form_id, p.ad_id, p.ad_name, p.adset_id, p.adset_name, p.campaign_id,
       p.campaign_name, p.created_time, p.is_organic, p.platform, p.full_name, p.first_name, p.last_name, p.email,
       p.phone, p.city, p.country, p.custom_fields, p.disclaimer_responses, NULL, NULL, p.status, p.status_reason,
       $sync_id, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP
FROM bulk_chunk_rows p JOIN bulk_chunk_new n USING (ord)
WHERE NOT EXISTS (SELECT 1 FROM lead_tombstones t WHERE t.meta_lead_id = p.meta_lead_id)
  AND NOT EXISTS (SELECT 1 FROM leads x WHERE x.meta_lead_id = p.meta_lead_id)
"""


def write_all(wh: Any, work: Any, prepared: Any, distributor: str, sync_id: str,
              step: Callable[[str], None]) -> dict[str, Any]:
    """Write what ``work`` (the import's DuckDB) and ``prepared`` (:class:`.bulk_sql.Prepared`) hold; returns the
    figures: ``stored``, ``rejected``, ``skipped_deleted``, ``landed``, ``held``, and how the warehouse was held:
    ``holds`` (times taken) and ``longest_hold_s``."""
    totals: dict[str, Any] = {"stored": 0, "rejected": 0, "skipped_deleted": 0, "landed": 0, "held": {}}
    rest = ({o: r for o, r in zip(prepared.lead_ords, prepared.leads)},  # the parser's rows, by the lead's ``ord``
            {o: r for o, r in zip(prepared.reject_ords, prepared.rejects)})
    now = codec.now()

    def store_chunk(conn: Any, item: tuple) -> None:
        _store_chunk(conn, item, distributor, sync_id, now, totals, rest)

    work.execute(f"SET memory_limit = '{WORK_WHILE_WRITING}'")
    holds: list[float] = []
    _in_bursts(wh, _chunks(work), store_chunk, holds, totals)
    step("write")
    totals["holds"] = len(holds)
    totals["longest_hold_s"] = round(max(holds, default=0.0), 3)
    return totals


def _chunks(work: Any) -> Iterator[tuple]:
    """Per ``CHUNK_LEADS`` of the file: (raw payloads, rows of the common leads) as Arrow tables."""
    lo, hi = work.execute("SELECT min(ord), max(ord) FROM bulk_new").fetchall()[0]
    if lo is None:
        return
    for start in range(lo, hi + 1, CHUNK_LEADS):
        bounds = [start, start + CHUNK_LEADS]
        yield (work.sql("SELECT n.ord, n.raw_key, n.meta_lead_id, CAST(s.j AS VARCHAR) AS payload "
                        "FROM bulk_new n JOIN bulk_src s ON s.rowid = n.ord WHERE n.ord >= ? AND n.ord < ?",
                        params=bounds).to_arrow_table(),
               work.sql("SELECT * FROM bulk_rows WHERE ord >= ? AND ord < ?", params=bounds).to_arrow_table())


def _store_chunk(conn: Any, item: tuple, distributor: str, sync_id: str, now: Any, totals: dict,
                 rest: tuple[dict, dict]) -> None:
    """One chunk, whole in one transaction (a crash leaves no payload landed without its lead or reject): the raw
    payloads, the common leads' rows, then the parser's rows of the chunk's other leads."""
    raw = conn.raw
    totals["_t"] = time.perf_counter()
    for name, table in zip(("bulk_chunk", "bulk_chunk_rows"), item):
        raw.register(name, table)
        conn._views.append(name)  # let go with the transaction
    # What this distributor landed before (a sync, a webhook, an earlier import) and deleted ids are left out.
    _run(raw, "CREATE OR REPLACE TEMP TABLE bulk_chunk_new AS SELECT c.ord, c.raw_key, c.meta_lead_id "
              "FROM bulk_chunk c WHERE NOT EXISTS (SELECT 1 FROM raw_leads r "
              "WHERE r.distributor = ? AND r.raw_key = c.raw_key)", [distributor])
    gone = conn.execute("DELETE FROM bulk_chunk_new WHERE raw_key IN (SELECT meta_lead_id FROM lead_tombstones) "
                        "OR meta_lead_id IN (SELECT meta_lead_id FROM lead_tombstones)")
    t = _tick(totals, "check_s", totals["_t"])
    landed = conn.execute(
        "INSERT INTO raw_leads (distributor, raw_key, sync_id, page_id, form_id, meta_lead_id, payload, fetched_at, "
        "processed_at) SELECT ?, n.raw_key, ?, NULL, NULL, n.meta_lead_id, c.payload, ?, ? "
        "FROM bulk_chunk_new n JOIN bulk_chunk c USING (ord)", [distributor, sync_id, now, now])
    t = _tick(totals, "raw_leads_s", t)
    stored = conn.execute(INSERT_LEADS, {"distributor": distributor, "sync_id": sync_id})
    t = _tick(totals, "leads_s", t)
    simple = raw.execute("SELECT count(*) FROM bulk_chunk_rows JOIN bulk_chunk_new USING (ord)").fetchall()[0][0]
    if stored < simple:  # whose are the common leads not stored (ids already in ``leads``)
        held = raw.execute(
            "SELECT l.distributor, count(*) FROM bulk_chunk_rows p JOIN bulk_chunk_new USING (ord) "
            "JOIN leads l ON l.meta_lead_id = p.meta_lead_id WHERE l.sync_id IS DISTINCT FROM ? "
            "AND NOT EXISTS (SELECT 1 FROM lead_tombstones t WHERE t.meta_lead_id = p.meta_lead_id) GROUP BY 1",
            [sync_id]).fetchall()
        _add_held(totals["held"], {owner: n for owner, n in held if owner != distributor})
    ords = [o for (o,) in raw.execute("SELECT ord FROM bulk_chunk_new WHERE ord NOT IN "
                                      "(SELECT ord FROM bulk_chunk_rows) ORDER BY ord").fetchall()]
    _run(raw, "DROP TABLE bulk_chunk_new")
    leads, rejects = [rest[0][o] for o in ords if o in rest[0]], [rest[1][o] for o in ords if o in rest[1]]
    if leads or rejects:
        done = store_parsed(conn, leads, rejects, merge=True, sync_id=sync_id, distributor=distributor)
        totals["stored"] += done.stored
        totals["rejected"] += done.rejected
        totals["skipped_deleted"] += done.skipped_deleted
        _add_held(totals["held"], {owner: n for (owner, _form), n in done.held.items()})
        t = _tick(totals, "parser_rows_s", t)
    totals["stored"] += max(stored, 0)
    totals["skipped_deleted"] += max(gone, 0)
    totals["landed"] += max(landed, 0)
    totals["_t"] = _tick(totals, "check_s", t)


def _tick(totals: dict, name: str, since: float) -> float:
    """Seconds per kind of statement, summed over the chunks (the profile behind the figure)."""
    now = time.perf_counter()
    totals[name] = totals.get(name, 0.0) + now - since
    return now


def _in_bursts(wh: Any, items: Iterator[tuple], write: Callable[[Any, tuple], None], holds: list[float],
               profile: dict) -> None:
    """``write`` each item in its own transaction; the warehouse held across items while nobody waits for it.
    Appends to ``holds`` the seconds of each hold of the warehouse (the profile says how long others could wait);
    ``profile`` sums the seconds of commits, chunk reads and closes (the checkpoint on each release)."""
    it = iter(items)
    item = next(it, None)
    outer = wh.in_session  # a caller's own session: its settings are put back after
    while item is not None:
        with wh.session():
            held = time.monotonic()  # from the moment the warehouse is ours
            with wh.transaction() as conn:
                conn.execute(f"SET memory_limit = '{WAREHOUSE_MEMORY_LIMIT}'")
                conn.execute(f"SET checkpoint_threshold = '{CHECKPOINT_EVERY}'")
                conn.execute("SET enable_progress_bar = false")
            until = held + MAX_HOLD_SECONDS
            while True:
                with wh.transaction() as conn:
                    write(conn, item)
                    done = time.perf_counter()
                _tick(profile, "commit_s", done)
                item = None  # one chunk in memory at a time
                if time.monotonic() >= until or locking.waited_for(wh.path):
                    break  # let go first: the next chunk is read from the import's DuckDB after
                done = time.perf_counter()
                item = next(it, None)
                _tick(profile, "fetch_s", done)
                if item is None:
                    break
            if outer:
                with wh.transaction() as conn:
                    for setting in ("memory_limit", "checkpoint_threshold", "enable_progress_bar"):
                        conn.execute(f"RESET {setting}")
            closing = time.perf_counter()
        _tick(profile, "close_s", closing)
        holds.append(time.monotonic() - held)  # with the closing checkpoint
        item = item if item is not None else next(it, None)


def _add_held(into: dict[str, int], part: dict[str, int]) -> None:
    for owner, n in part.items():
        into[owner] = into.get(owner, 0) + int(n)


def _run(raw: Any, sql: str, params: Any = None) -> None:
    raw.execute(sql, params or []).fetchall()
