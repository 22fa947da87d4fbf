"""The warehouse side of the SQL import (:mod:`.bulk_sql`): what the import's own DuckDB prepared goes into the
warehouse in a few large transactions, so that the webhook receiver, a sync or a command waits seconds, not the import.

Why: DuckDB has one writer, and our lock (:mod:`leads_pipeline.lib.warehouse.locking`) makes other processes wait
for it. Reading, deduplicating and parsing a million leads takes most of the time; writing the result a fraction of
that. So the work happens without the lock, and here the warehouse file is attached to the import's own DuckDB
(under the warehouse's locks) and written straight from the prepared tables: no Arrow round trip, no second buffer
pool. Each chunk of ``CHUNK_LEADS`` leads is one transaction: its raw payloads, its ``leads`` rows, the parser's rows
of the leads SQL left to it (parsed in a thread while the first chunk is written; every chunk waits for that before
its commit). A chunk holds more rows than one of DuckDB's row groups (122,880), so DuckDB writes its
rows straight into the file at commit instead of through the WAL (measured at 200k leads: 50k-lead chunks spent
1.2 s in commits, one 250k chunk 0.13 s).
The checks against what the warehouse already holds — landed before by this distributor, deleted (tombstoned), held
by another distributor — are made in that transaction, so results are those of one transaction over the file, and a
webhook landing a lead of the file meanwhile is respected.

The warehouse stays attached across chunks while nobody waits for it (each detach checkpoints), and is let go after
the chunk in progress as soon as another process or thread waits
(:func:`~leads_pipeline.lib.warehouse.locking.waited_for`), or after ``MAX_HOLD_SECONDS``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from leads_pipeline.lib.ingest import codec
from leads_pipeline.lib.ingest.store import store_parsed
from leads_pipeline.lib.warehouse import locking
from leads_pipeline.lib.warehouse.connection import duckdb_transaction
from leads_pipeline.lib.warehouse.dialect import Dialect
from leads_pipeline.lib.warehouse.files import tighten

__all__ = ["write_all"]

CHUNK_LEADS = 250_000  # leads per transaction (file order): ~3 s of writing each; above a row group
MAX_HOLD_SECONDS = 60.0  # held at most this long when nobody waits (each release checkpoints: see the docstring)
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
FROM bulk_rows p JOIN bulk_chunk_new n USING (ord)
WHERE NOT EXISTS (SELECT 1 FROM lead_tombstones t WHERE t.meta_lead_id = p.meta_lead_id)
  AND NOT EXISTS (SELECT 1 FROM leads x WHERE x.meta_lead_id = p.meta_lead_id)
"""


def write_all(wh: Any, work: Any, prepared: Any, distributor: str, sync_id: str,
              step: Callable[[str], None]) -> dict[str, Any]:
    """Write what ``work`` (the import's DuckDB) and ``prepared`` (:class:`.bulk_sql.Prepared`) hold; returns the
    figures: ``stored``, ``rejected``, ``skipped_deleted``, ``landed``, ``held``, and how the warehouse was held:
    ``holds`` (times taken) and ``longest_hold_s``."""
    totals: dict[str, Any] = {"stored": 0, "rejected": 0, "skipped_deleted": 0, "landed": 0, "held": {}}
    lo, hi = work.execute("SELECT min(ord), max(ord) FROM bulk_new").fetchall()[0]
    holds: list[float] = []
    work.execute(f"SET checkpoint_threshold = '{CHECKPOINT_EVERY}'")
    if lo is not None:
        now = codec.now()
        dialect = Dialect("duckdb")
        chunks = iter(range(lo, hi + 1, CHUNK_LEADS))
        start = next(chunks, None)
        waiting = False
        while start is not None:
            with _attached(wh, work, totals) as held:
                until = held + MAX_HOLD_SECONDS
                while start is not None:
                    with duckdb_transaction(work, dialect) as conn:
                        _store_chunk(conn, (start, start + CHUNK_LEADS), distributor, sync_id, now, totals,
                                     prepared)
                        c = time.perf_counter()
                    _tick(totals, "commit_s", c)
                    start = next(chunks, None)
                    waiting = locking.waited_for(wh.path)
                    if waiting or time.monotonic() >= until:
                        break  # let go after the chunk in progress
            holds.append(time.monotonic() - held)
            if waiting and start is not None:
                locking.let_waiters_in(wh.path)
    step("write")
    totals["holds"] = len(holds)
    totals["longest_hold_s"] = round(max(holds, default=0.0), 3)
    return totals


@contextmanager
def _attached(wh: Any, work: Any, totals: dict) -> Iterator[float]:
    """The warehouse file attached to the import's DuckDB (as the default database, ``USE wh``) under the
    warehouse's locks; detached (checkpointed) and let go after. Yields the moment it became ours."""
    with wh.file_locked() as key:
        held = time.monotonic()
        work.execute("ATTACH ? AS wh", [key])
        try:
            work.execute("USE wh")
            yield held
        finally:
            c = time.perf_counter()
            work.execute("USE memory")
            try:
                work.execute("CHECKPOINT wh")
            finally:
                work.execute("DETACH wh")
                tighten(wh.path.with_name(wh.path.name + ".wal"))
            _tick(totals, "close_s", c)


def _store_chunk(conn: Any, bounds: tuple[int, int], distributor: str, sync_id: str, now: Any, totals: dict,
                 prepared: Any) -> None:
    """The leads of ``bounds`` (``ord``), whole in one transaction (a crash leaves no payload landed without its
    lead or reject): the raw payloads, the common leads' rows, then the parser's rows of the chunk's other leads."""
    raw = conn.raw
    t = time.perf_counter()
    # What this distributor landed before (a sync, a webhook, an earlier import) and deleted ids are left out.
    _run(raw, "CREATE OR REPLACE TEMP TABLE bulk_chunk_new AS SELECT n.ord, n.raw_key, n.meta_lead_id "
              "FROM bulk_new n WHERE n.ord >= ? AND n.ord < ? AND NOT EXISTS (SELECT 1 FROM raw_leads r "
              "WHERE r.distributor = ? AND r.raw_key = n.raw_key)", [*bounds, distributor])
    gone = conn.execute("DELETE FROM bulk_chunk_new WHERE raw_key IN (SELECT meta_lead_id FROM lead_tombstones) "
                        "OR meta_lead_id IN (SELECT meta_lead_id FROM lead_tombstones)")
    t = _tick(totals, "check_s", t)
    landed = conn.execute(
        "INSERT INTO raw_leads (distributor, raw_key, sync_id, page_id, form_id, meta_lead_id, payload, fetched_at, "
        "processed_at) SELECT ?, n.raw_key, ?, NULL, NULL, n.meta_lead_id, s.j, ?, ? "
        "FROM bulk_chunk_new n JOIN bulk_src s ON s.rowid = n.ord", [distributor, sync_id, now, now])
    t = _tick(totals, "raw_leads_s", t)
    stored = conn.execute(INSERT_LEADS, {"distributor": distributor, "sync_id": sync_id})
    t = _tick(totals, "leads_s", t)
    simple = raw.execute("SELECT count(*) FROM bulk_rows JOIN bulk_chunk_new USING (ord)").fetchall()[0][0]
    if stored < simple:  # whose are the common leads not stored (ids already in ``leads``)
        held = raw.execute(
            "SELECT l.distributor, count(*) FROM bulk_rows p JOIN bulk_chunk_new USING (ord) "
            "JOIN leads l ON l.meta_lead_id = p.meta_lead_id WHERE l.sync_id IS DISTINCT FROM ? "
            "AND NOT EXISTS (SELECT 1 FROM lead_tombstones t WHERE t.meta_lead_id = p.meta_lead_id) GROUP BY 1",
            [sync_id]).fetchall()
        _add_held(totals["held"], {owner: n for owner, n in held if owner != distributor})
    ords = [o for (o,) in raw.execute("SELECT ord FROM bulk_chunk_new WHERE ord NOT IN "
                                      "(SELECT ord FROM bulk_rows) ORDER BY ord").fetchall()]
    _run(raw, "DROP TABLE bulk_chunk_new")
    rest = prepared.parsed()  # parsed in a thread meanwhile; every chunk waits for it: its failure writes nothing
    leads = [rest.leads[o] for o in ords if o in rest.leads]
    rejects = [rest.rejects[o] for o in ords if o in rest.rejects]
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
    _tick(totals, "check_s", t)


def _tick(totals: dict, name: str, since: float) -> float:
    """Seconds per kind of statement, summed over the chunks (the profile behind the figure)."""
    now = time.perf_counter()
    totals[name] = totals.get(name, 0.0) + now - since
    return now


def _add_held(into: dict[str, int], part: dict[str, int]) -> None:
    for owner, n in part.items():
        into[owner] = into.get(owner, 0) + int(n)


def _run(raw: Any, sql: str, params: Any = None) -> None:
    raw.execute(sql, params or []).fetchall()
