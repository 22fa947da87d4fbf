"""Reading forms for :func:`~leads_pipeline.lib.ingest.sync.sync_distributor`: producer threads fetch pages, the
run's thread lands them (see the "No network I/O under a warehouse lock" paragraph of :mod:`.sync`).

Its own module because it is a concurrency mechanism (threads, a bounded queue, how ready pages are merged into
transactions), not a sync rule: the rules — what a run reads, what it counts, when it is final — stay in
:mod:`.sync`, which passes its run state (:class:`.run_state.SyncRun`) in.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Sequence
from typing import Any

from leads_pipeline.lib.distributors import health
from leads_pipeline.lib.graph import GraphClient, GraphError
from leads_pipeline.lib.graph.redaction import redact
from leads_pipeline.lib.ingest.discovery import FormSource, is_final
from leads_pipeline.lib.ingest.land import (
    LandResult,
    PreparedPage,
    land_page,
    land_raw_page,
    merge_prepared,
    prepare_page,
)
from leads_pipeline.lib.ingest.parse import parse_created_time_unix
from leads_pipeline.lib.ingest.run_state import SyncRun
from leads_pipeline.lib.memory import gc_paused
from leads_pipeline.lib.warehouse import is_write_conflict, locking


log = logging.getLogger("leads_pipeline.lib.ingest.sync")

__all__ = ["FETCH_THREADS", "GROW_AFTER", "HOLD_SECONDS", "MAX_HOLD_SECONDS", "MERGE_LEADS", "QUEUE_PAGES", "land",
           "read_forms"]

#: Pages fetched ahead of the landing (memory stays bounded: a page is at most ``graph_page_limit`` leads).
QUEUE_PAGES = 48
#: Pages of one form waiting together are landed as one, up to this many leads (a transaction costs ~10 SQL
#: statements whatever its size: fewer, larger ones land more leads per second).
MERGE_LEADS = 5000
#: Forms read at once per distributor, at most (each thread its own keep-alive session; a throttle window stops them
#: all). A run starts with one reader and adds another each time the landing has waited ``GROW_AFTER`` seconds for a
#: page: where Meta's answers take longer than a page takes to land, forms are soon read in parallel; when pages come
#: faster than they land (a fast source, a local simulator) one reader keeps up, and more would only contend with the
#: landing for the GIL (P7 at 100k from the simulator, two forms a distributor: one reader landed 11-14 % more leads a
#: second than two).
FETCH_THREADS = 3
#: How long the landing waits for a page before it starts another reader (see ``FETCH_THREADS``).
GROW_AFTER = 0.1
#: How long the warehouse stays open for pages that are ready one after another before the landing asks whether
#: another process or thread waits for it (then it lets go: their turn; else it keeps landing without a close — on
#: DuckDB every close is a checkpoint that rewrites the primary-key indexes, issue #14 P7).
HOLD_SECONDS = 1.0
#: The longest hold even when nobody says it waits (a waiter that could not leave its marker still gets its turn).
MAX_HOLD_SECONDS = 30.0

_END = object()


def read_forms(run: SyncRun, client: GraphClient, forms: Sequence[FormSource], cursors: dict[str, int],
                lookback: int, locales: dict[str, str] | None = None) -> None:
    """Fetch in up to ``FETCH_THREADS`` producer threads (one form at a time each; more started while the landing
    waits for pages), land here (module docstring).
    The producers also key and parse each page (:func:`~.land.prepare_page`, with the forms' ``locales``): the
    landing, which holds the warehouse, only writes. No automatic garbage collection meanwhile
    (:func:`~leads_pipeline.lib.memory.gc_paused`)."""
    with gc_paused():
        _read_forms(run, client, forms, cursors, lookback, locales)


def _read_forms(run: SyncRun, client: GraphClient, forms: Sequence[FormSource], cursors: dict[str, int],
                lookback: int, locales: dict[str, str] | None) -> None:
    pages: queue.Queue = queue.Queue(maxsize=QUEUE_PAGES)
    stop = threading.Event()  # the landing is gone: producers drop what they hold and end
    halt = threading.Event()  # a final error (the distributor's token): no more forms, no more pages
    todo: queue.SimpleQueue = queue.SimpleQueue()
    for source in forms:
        todo.put(source)
    most = max(1, min(FETCH_THREADS, len(forms)))
    requests = [0]
    counted = threading.Lock()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                pages.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def read(source: FormSource, base: GraphClient) -> bool:
        """One form's pages into the queue; False when the run must stop (a final error, or the landing gone)."""
        reader = base.with_token(source.token) if source.derived else base
        cursor = cursors.get(source.form_id)
        newest = cursor
        since = max(cursor - lookback, 0) if cursor is not None else None
        try:
            for page in reader.iter_lead_pages(source.form_id, since=since):
                if halt.is_set():
                    return False
                for lead in page.leads:
                    t = parse_created_time_unix(lead.get("created_time") if isinstance(lead, dict) else None)
                    if t is not None and (newest is None or t > newest):
                        newest = t
                last = not page.next_url_present
                if not put(("page", source, _prepare(run, source, page.leads, locales), newest if last else None)):
                    return False
            return put(("done", source, None, None))
        except GraphError as exc:
            if is_final(exc, source.derived):
                halt.set()
            return put(("error", source, exc, None)) and not halt.is_set()
        finally:
            if reader is not base:
                with counted:
                    requests[0] += reader.request_count

    def produce(number: int) -> None:
        # The first thread reads with the run's client; the others with a copy holding its own keep-alive session
        # (requests.Session is not thread-safe) and sharing the throttle gate (no request into a throttle window).
        base = client if number == 0 else client.with_token(own_session=True)
        try:
            while not stop.is_set() and not halt.is_set():
                try:
                    source = todo.get_nowait()
                except queue.Empty:
                    return
                if not read(source, base):
                    return
        except BaseException as exc:  # a bug: handed to the landing thread, which raises it
            put(("crash", None, exc, None))
        finally:
            if base is not client:
                with counted:
                    requests[0] += base.request_count
                base.close()
            put((_END, None, None, None))

    producers: list[threading.Thread] = []

    def start_reader() -> None:
        number = len(producers)
        producers.append(threading.Thread(target=produce, args=(number,), name=f"sync-{run.key}-fetch-{number}",
                                          daemon=True))
        producers[-1].start()

    def grow() -> None:
        """Another reader, while forms are left to read and fewer than ``most`` read (the landing waits for Meta)."""
        if len(producers) < most and not todo.empty() and not stop.is_set() and not halt.is_set():
            start_reader()

    start_reader()
    fetched_by_form: dict[str, int] = {}
    ended, waiting = 0, False  # waiting: let go because someone waits (their turn before the next hold)
    try:
        while ended < len(producers):
            ready = [_next_item(pages, grow)]  # waiting for Meta: the warehouse is closed
            if waiting:
                locking.let_waiters_in(run.wh.path)
                waiting = False
            with run.wh.session():
                now = time.monotonic()
                until, longest = now + HOLD_SECONDS, now + MAX_HOLD_SECONDS
                while True:
                    ended += _land_ready(run, ready + _drain(pages), fetched_by_form)
                    if ended >= len(producers):
                        break
                    now = time.monotonic()
                    if now >= until:
                        if now >= longest or _waited_for(run.wh):
                            waiting = run.wh.backend == "duckdb" and run.wh.path is not None
                            break
                        until = now + HOLD_SECONDS
                    try:
                        ready = [pages.get_nowait()]
                    except queue.Empty:
                        break
    finally:
        stop.set()
        for producer in producers:
            producer.join(timeout=5)
        run.result.graph_requests += requests[0]


def _next_item(pages: queue.Queue, grow: Any) -> tuple:
    """The next queued item; each ``GROW_AFTER`` seconds without one, ``grow()`` (another reader)."""
    while True:
        try:
            return pages.get(timeout=GROW_AFTER)
        except queue.Empty:
            grow()


def _waited_for(wh: Any) -> bool:
    """Whether someone else waits for the warehouse: on DuckDB its lock's markers; PostgreSQL has no single writer,
    its session is let go at every hold's end as before."""
    if wh.backend != "duckdb" or wh.path is None:
        return True
    return locking.waited_for(wh.path)


def _drain(pages: queue.Queue) -> list[tuple]:
    """Every item waiting now, up to ``MERGE_LEADS`` leads' worth of pages."""
    out: list[tuple] = []
    leads = 0
    while leads < MERGE_LEADS:
        try:
            item = pages.get_nowait()
        except queue.Empty:
            break
        out.append(item)
        if item[0] == "page":
            leads += len(item[2])
    return out


def _land_ready(run: SyncRun, ready: list[tuple], fetched_by_form: dict[str, int]) -> int:
    """Land the items ``ready``, the pages of one form waiting together as one page (one transaction instead of
    one each, when Meta answers faster than pages land; forms read in parallel interleave in the queue). A form's
    pages keep their order and the one with the cursor (its pagination's last) lands last. Returns how many
    producers ended."""
    ended = 0
    groups: dict[int, list[tuple]] = {}
    for item in ready:
        kind, source = item[0], item[1]
        if kind == "page":
            group = groups.setdefault(id(source), [])
            group.append(item)
            if item[3] is not None:
                _handle(run, _merged(groups.pop(id(source))), fetched_by_form)
            continue
        if source is not None and id(source) in groups:  # a form's "done"/"error" after its pages
            _handle(run, _merged(groups.pop(id(source))), fetched_by_form)
        if _handle(run, item, fetched_by_form):
            ended += 1
    for group in groups.values():
        _handle(run, _merged(group), fetched_by_form)
    return ended


def _prepare(run: SyncRun, source: FormSource, leads: list, locales: dict[str, str] | None) -> PreparedPage | list:
    """A page keyed and parsed in the fetch thread; should that fail (a bug), the page as received — the landing
    parses it and, failing again, keeps it raw for the next run (:func:`land`)."""
    try:
        return prepare_page(leads, distributor=run.key, sync_id=run.result.sync_id, default_region=run.region,
                            page_id=source.page_id, form_id=source.form_id, locales=locales)
    except Exception:  # noqa: BLE001 - handled where the page lands, as before
        return leads


def _merged(group: list[tuple]) -> tuple:
    """Consecutive pages of one form as one (the cursor of the last)."""
    if len(group) == 1:
        return group[0]
    pages = [item[2] for item in group]
    if all(isinstance(p, PreparedPage) for p in pages):
        return ("page", group[0][1], merge_prepared(pages), group[-1][3])
    leads: list = []
    for page in pages:
        leads.extend(page.leads if isinstance(page, PreparedPage) else page)
    return ("page", group[0][1], leads, group[-1][3])


def _handle(run: SyncRun, item: tuple, fetched_by_form: dict[str, int]) -> bool:
    """Land one queued item; True at the end of the queue."""
    kind, source, payload, cursor = item
    if kind is _END:
        return True
    if kind == "crash":
        raise payload
    if kind == "error":
        if is_final(payload, source.derived):
            run.fatal = payload.user_message
            run.auth_error = health.note_for(payload)
            run.result.errors.append(f"form {source.form_id}: {payload}")
        else:
            run.fail("form", source.form_id, payload)
        return False
    if kind == "done":
        run.ok_units += 1
        run.forms_read += 1
        return False
    prepared = payload if isinstance(payload, PreparedPage) else None
    leads = prepared.leads if prepared is not None else payload
    run.result.fetched += len(leads)
    fetched_by_form[source.form_id] = fetched_by_form.get(source.form_id, 0) + len(leads)
    land(run, source.page_id, source.form_id, leads, cursor, prepared)
    if run.on_page:
        run.on_page(source.form_id, fetched_by_form[source.form_id])
    return False


def land(run: SyncRun, page_id: str | None, form_id: str | None, leads: list, cursor: int | None,
         prepared: PreparedPage | None = None) -> LandResult | None:
    """Land and store one page; when storing fails (not the warehouse itself), keep the raw rows for the next run."""
    try:
        done = land_page(run.wh, sync_id=run.result.sync_id, distributor=run.key, default_region=run.region,
                         page_id=page_id, form_id=form_id, leads=leads, cursor=cursor, prepared=prepared)
    except Exception as exc:
        if is_write_conflict(exc):
            raise
        log.exception("distributor %s, form %s: storing a page failed; landing it raw for the next run", run.key,
                      form_id)
        landed = land_raw_page(run.wh, sync_id=run.result.sync_id, distributor=run.key, page_id=page_id,
                               form_id=form_id, leads=leads)
        run.result.landed += landed
        what = redact(f"{type(exc).__name__}: {exc}")
        run.result.failures.append({"form_id": form_id, "error": what,
                                    "what_to_do": "The leads were kept as received; the next sync stores them. "
                                                  "If this repeats, report it with the error."})
        run.result.errors.append(f"form {form_id}: {len(leads)} leads landed but not stored ({what})")
        return None
    run.add(done, done.landed)
    return done
