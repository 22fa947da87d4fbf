"""The one sync path: :func:`sync_distributor` runs one distributor's run, whoever asks for it.

The CLI's ``sync``, the HTTP API's "sync now", the Dagster assets, the batch job and the webhook processor all call
it; nothing else reads Meta into the warehouse. A run:

1. opens the warehouse once (a few milliseconds): creates its own ``sync_runs`` row, reads the distributor, its
   token, its claimed forms and cursors, and stores raw rows an earlier run landed but did not store (``recovered``);
2. with the warehouse closed, asks Meta for the Pages and their forms (:mod:`.discovery`); opens it once more to
   record and claim them;
3. reads each form's new leads — or, for the webhook processor, exactly the ``lead_ids`` asked for (:mod:`.by_id`)
   — and lands each page in its own short transaction, stored in the same transaction (:mod:`.land`);
4. finishes its own row with its own counts (:mod:`.runs`).

**No network I/O under a warehouse lock.** The pages of a form are fetched by a producer thread into a small bounded
queue; this thread lands what is ready (pages of one form waiting together in one transaction). The warehouse is
opened when a page is ready, holds the pages that are ready then (at most ``HOLD_SECONDS``), and is closed when the
queue is empty — so a throttle wait of minutes, a slow answer or a retry's backoff never keeps the DuckDB file (or a
PostgreSQL transaction) open, and the next page is fetched while the last one lands.

**Failure isolation.** A Page or form that fails is a *failure* (id, Meta's message, what to do) and the rest goes
on: the run is ``partial``. Throttling and transient errors are retried by the client; only a token error of the
distributor's own token (or a setup problem) ends the run, ``failed``.

Exactly-once comes from the warehouse: raw rows are keyed per distributor and lead, a form's cursor moves with the
transaction of its pagination's last page, the next read starts ``sync_lookback_seconds`` below the cursor (Meta
filters on whole seconds), and a lead id another distributor holds is counted by name rather than dropped.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from leads_pipeline.lib.distributors import health, ownership
from leads_pipeline.lib.distributors import registry as distributor_registry
from leads_pipeline.lib.graph import (
    ClientFactory,
    GraphClient,
    GraphError,
    settings_factory,
)
from leads_pipeline.lib.graph.redaction import redact
from leads_pipeline.lib.ingest import by_id
from leads_pipeline.lib.ingest.check import test_connection
from leads_pipeline.lib.ingest.discovery import (
    DistributorFailure,
    FormSource,
    choose_forms,
    failure,
    is_final,
    list_pages,
    route_waiting,
)
from leads_pipeline.lib.ingest.land import (
    LandResult,
    get_cursors,
    land_page,
    land_raw_page,
)
from leads_pipeline.lib.ingest.parse import parse_created_time_unix
from leads_pipeline.lib.ingest.runs import (
    LeadOutcome,
    SyncResult,
    conclude,
    finish_run,
    start_run,
)
from leads_pipeline.lib.ingest.store import ProcessResult, process_raw
from leads_pipeline.lib.security import SecretKeyError
from leads_pipeline.lib.warehouse import Warehouse, is_write_conflict
from leads_pipeline.settings import Settings, get_settings

log = logging.getLogger(__name__)

__all__ = [
    "HOLD_SECONDS",
    "QUEUE_PAGES",
    "ClientFactory",
    "LeadOutcome",
    "SyncResult",
    "sync_distributor",
    "test_connection",
]

#: Pages fetched ahead of the landing (memory stays bounded: a page is at most ``graph_page_limit`` leads).
QUEUE_PAGES = 8
#: Pages of one form waiting together are landed as one, up to this many leads.
MERGE_LEADS = 1000
#: The longest the warehouse stays open for pages that are ready one after another (other processes' turn).
HOLD_SECONDS = 1.0

OnPage = Callable[[str, int], None]


class _Run:
    """One run's mutable state: the result being built and what its store calls added up to."""

    def __init__(self, wh: Warehouse, key: str, result: SyncResult, region: str, on_page: OnPage | None):
        self.wh, self.key, self.result, self.region, self.on_page = wh, key, result, region, on_page
        self.stored = ProcessResult()
        self.ok_units = 0  # Pages listed and forms / lead batches read without failure
        self.fatal: str | None = None
        # Token/permission failures (the distributor's back-off, lib/distributors/health.py): the fatal one, or the
        # forms Meta refused for a permission (and how many forms were read through).
        self.auth_error: str | None = None
        self.forms_read = 0
        self.forms_denied: list[str] = []

    def add(self, done: ProcessResult, landed: int = 0) -> None:
        self.stored = self.stored + done
        self.result.landed += landed

    def fail(self, kind: str, object_id: str, exc: GraphError) -> None:
        if health.is_auth_failure(exc):
            self.forms_denied.append(exc.user_message)
        entry, line = failure(kind, object_id, exc)
        self.result.failures.append(entry)
        self.result.errors.append(line)


def sync_distributor(
    wh: Warehouse,
    key: str,
    *,
    trigger: str = "manual",
    run_id: str | None = None,
    settings: Settings | None = None,
    client_factory: ClientFactory | None = None,
    lead_ids: Iterable[tuple[str, str | None, str | None]] | None = None,
    on_page: OnPage | None = None,
) -> SyncResult:
    """Run one distributor's sync (see the module docstring) and return its own result; its ``sync_runs`` row is
    created and finished here. ``lead_ids``: ``(leadgen_id, page_id, form_id)`` to fetch instead of reading the
    forms (the webhook processor; trigger ``webhook``, per-lead ``lead_outcomes``). Never raises for a Graph API
    failure; an unknown distributor raises ``DistributorNotFound`` before any row is written."""
    s = settings or get_settings()
    factory = client_factory or settings_factory(s)
    wanted = None if lead_ids is None else list(dict.fromkeys((str(i), p, f) for i, p, f in lead_ids))
    if wanted is not None and trigger == "manual":
        trigger = "webhook"
    with wh.session():  # one open: the run's row, the distributor, recovery, what it must know before calling Meta
        dist = distributor_registry.get(wh, key)
        sync_id = start_run(wh, key, trigger, run_id)
        result = SyncResult(success=False, fetched=0, stored=0, errors=[], message="", distributor=key,
                            sync_id=sync_id, run_id=run_id, trigger=trigger, status="running")
        run = _Run(wh, key, result, dist.default_region, on_page)
        try:
            known = _prepare(run, wanted)
        except BaseException as exc:
            _stopped(run, exc)
            raise
    try:
        _execute(run, dist, s, factory, wanted, *known)
    except BaseException as exc:
        _stopped(run, exc)
        raise
    return result


def _stopped(run: _Run, exc: BaseException) -> None:
    """A run stopped by an exception (a bug, the warehouse gone): its row says so before the exception goes on."""
    what = redact(f"{type(exc).__name__}: {exc}")
    run.result.errors.append(f"run stopped: {what}")
    run.fatal = run.fatal or what
    _conclude(run, [])
    finish_run(run.wh, run.result)


def _prepare(run: _Run, wanted: list[tuple[str, str | None, str | None]] | None) -> tuple:
    """The token, recovery of raw rows a dead run left, cursors, claimed forms and tombstoned ids (in the open
    session of :func:`sync_distributor`)."""
    wh, key, result = run.wh, run.key, run.result
    token = None
    try:
        token = distributor_registry.access_token(wh, key)
    except (SecretKeyError, distributor_registry.DistributorError) as exc:
        run.fatal = str(exc)
    recovered = process_raw(wh, key, default_region=run.region, sync_id=result.sync_id)
    run.stored = run.stored + ProcessResult(rejected=recovered.rejected, exists=recovered.exists, held=recovered.held)
    result.recovered = recovered.stored
    with wh.transaction() as conn:  # (staging the ids is a write of a temporary table)
        cursors = get_cursors(conn, key)
        owned = ownership.owned_forms(conn, key)
        gone = by_id.tombstoned(conn, [i for i, _, _ in wanted]) if wanted else set()
    return token, cursors, owned, gone


def _execute(run: _Run, dist: Any, s: Settings, factory: ClientFactory,
             wanted: list[tuple[str, str | None, str | None]] | None, token: str | None, cursors: dict[str, int],
             owned: dict[str, str | None], gone: set[str]) -> None:
    result = run.result
    warnings: list[str] = []
    if token is not None:
        client = factory(token)
        try:
            if wanted is None:
                warnings = _sync_forms(run, dist, client, token, s, cursors, owned)
            else:
                _sync_leads(run, client, wanted, gone)
        except DistributorFailure as exc:
            run.fatal = exc.user_message
            run.auth_error = health.note_for(exc)
        finally:
            result.graph_requests += client.request_count
            client.close()
    _conclude(run, warnings)
    with run.wh.session():  # one open for the health bookkeeping and the run's row
        _record_health(run)
        finish_run(run.wh, result)


# ----------------------------------------------------------------------------------------------------------------------
# Reading forms
# ----------------------------------------------------------------------------------------------------------------------


def _sync_forms(run: _Run, dist: Any, client: GraphClient, token: str, s: Settings, cursors: dict[str, int],
                owned: dict[str, str | None]) -> list[str]:
    explicit = bool(dist.form_ids)
    listing = list_pages(client, tuple(dist.page_ids), tuple(dist.form_ids), owned)
    run.result.graph_requests += listing.graph_requests
    run.result.failures.extend(listing.failures)
    run.result.errors.extend(listing.errors)
    run.ok_units += len(listing.listed_pages)
    with run.wh.transaction() as conn:
        forms, warnings = choose_forms(conn, run.key, token, explicit, listing, cursors)
    route_waiting(run.wh, owned, forms)
    if forms:
        _read_forms(run, client, forms, cursors, s.sync_lookback_seconds)
    elif not listing.failures:
        warnings.append("no lead form to read: the token's Pages have none, or every one belongs to another "
                        "distributor (see `leads-pipeline distributors forms`)")
    return warnings


_END = object()


def _read_forms(run: _Run, client: GraphClient, forms: Sequence[FormSource], cursors: dict[str, int],
                lookback: int) -> None:
    """Fetch in a producer thread, land here (see the module docstring)."""
    pages: queue.Queue = queue.Queue(maxsize=QUEUE_PAGES)
    stop = threading.Event()
    requests = [0]

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                pages.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for source in forms:
                reader = client.with_token(source.token) if source.derived else client
                cursor = cursors.get(source.form_id)
                newest = cursor
                since = max(cursor - lookback, 0) if cursor is not None else None
                try:
                    for page in reader.iter_lead_pages(source.form_id, since=since):
                        for lead in page.leads:
                            t = parse_created_time_unix(lead.get("created_time") if isinstance(lead, dict) else None)
                            if t is not None and (newest is None or t > newest):
                                newest = t
                        last = not page.next_url_present
                        if not put(("page", source, page.leads, newest if last else None)):
                            return
                    if not put(("done", source, None, None)):
                        return
                except GraphError as exc:
                    if not put(("error", source, exc, None)) or is_final(exc, source.derived):
                        return
                finally:
                    if reader is not client:
                        requests[0] += reader.request_count
        except BaseException as exc:  # a bug: handed to the landing thread, which raises it
            put(("crash", None, exc, None))
        finally:
            put((_END, None, None, None))

    producer = threading.Thread(target=produce, name=f"sync-{run.key}-fetch", daemon=True)
    producer.start()
    fetched_by_form: dict[str, int] = {}
    try:
        done, pending = False, None
        while not done:
            item = pending if pending is not None else pages.get()  # waiting for Meta: the warehouse is closed
            pending = None
            with run.wh.session():
                until = time.monotonic() + HOLD_SECONDS
                while True:
                    item, pending = _merge_ready(item, pages)
                    done = _handle(run, item, fetched_by_form)
                    if done or time.monotonic() >= until:
                        break
                    if pending is not None:
                        item, pending = pending, None
                        continue
                    try:
                        item = pages.get_nowait()
                    except queue.Empty:
                        break
    finally:
        stop.set()
        producer.join(timeout=5)
        run.result.graph_requests += requests[0]


def _merge_ready(item: tuple, pages: queue.Queue) -> tuple[tuple, tuple | None]:
    """``item`` and the pages of the same form already waiting behind it, as one page (one transaction instead of
    one each, when Meta answers faster than pages land); also the first waiting item that is not one of them."""
    if item[0] != "page" or item[3] is not None:
        return item, None
    kind, source, leads, cursor = item
    leads = list(leads)
    while cursor is None and len(leads) < MERGE_LEADS:
        try:
            following = pages.get_nowait()
        except queue.Empty:
            break
        if following[0] != "page" or following[1] is not source:
            return (kind, source, leads, cursor), following
        leads.extend(following[2])
        cursor = following[3]
    return (kind, source, leads, cursor), None


def _handle(run: _Run, item: tuple, fetched_by_form: dict[str, int]) -> bool:
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
    leads = payload
    run.result.fetched += len(leads)
    fetched_by_form[source.form_id] = fetched_by_form.get(source.form_id, 0) + len(leads)
    _land(run, source.page_id, source.form_id, leads, cursor)
    if run.on_page:
        run.on_page(source.form_id, fetched_by_form[source.form_id])
    return False


def _land(run: _Run, page_id: str | None, form_id: str | None, leads: list, cursor: int | None) -> LandResult | None:
    """Land and store one page; when storing fails (not the warehouse itself), keep the raw rows for the next run."""
    try:
        done = land_page(run.wh, sync_id=run.result.sync_id, distributor=run.key, default_region=run.region,
                         page_id=page_id, form_id=form_id, leads=leads, cursor=cursor)
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


# ----------------------------------------------------------------------------------------------------------------------
# Fetching lead ids (the webhook processor)
# ----------------------------------------------------------------------------------------------------------------------


def _sync_leads(run: _Run, client: GraphClient, wanted: list[tuple[str, str | None, str | None]],
                gone: set[str]) -> None:
    fetch = by_id.fetch(client, [w for w in wanted if w[0] not in gone])
    run.result.graph_requests += fetch.graph_requests
    run.result.errors.extend(fetch.errors)
    run.ok_units += fetch.ok_groups
    if fetch.fatal:  # only ever the distributor's own token failing (by_id.fetch)
        run.fatal = run.auth_error = fetch.fatal
    outcomes = {lead_id: LeadOutcome("deleted", None) for lead_id in gone}
    outcomes.update(fetch.outcomes)
    run.result.fetched = len(fetch.leads)
    if fetch.leads:
        with run.wh.session():
            for (page_id, form_id), leads in by_id.pages(fetch.leads, wanted).items():
                _land(run, page_id, form_id, leads, None)
            with run.wh.transaction() as conn:
                outcomes.update(by_id.outcomes(conn, run.key, run.result.sync_id, list(fetch.leads)))
    run.result.lead_outcomes = {w[0]: outcomes.get(w[0], LeadOutcome("retry", "not fetched")) for w in wanted}
    for outcome in run.result.lead_outcomes.values():
        if outcome.status in ("retry", "failed"):
            run.result.partial = True


# ----------------------------------------------------------------------------------------------------------------------
# The result
# ----------------------------------------------------------------------------------------------------------------------


def _conclude(run: _Run, warnings: list[str]) -> None:
    """Status, counts and message of the run (see :func:`~leads_pipeline.lib.ingest.runs.conclude`)."""
    conclude(run.result, run.stored, key=run.key, fatal=run.fatal, ok_units=run.ok_units, warnings=warnings)


def _record_health(run: _Run) -> None:
    """The distributor's back-off (lib/distributors/health.py): a token/permission failure — the token's own, or
    every form refused for a permission with nothing read — pushes its next scheduled sync out (the run's message
    says until when); a run that read with the token ends a back-off. Never fails the run."""
    result = run.result
    auth = run.auth_error
    if auth is None and run.forms_denied and not run.forms_read and not result.fetched and result.status != "success":
        auth = run.forms_denied[0]
    try:
        note = health.record_run(run.wh, run.key, status=result.status, auth_error=auth)
    except Exception as exc:  # noqa: BLE001 - the run's own row matters more than its health bookkeeping
        log.warning("distributor %s: recording its health failed (%s)", run.key, type(exc).__name__)
        return
    if note:
        result.message = f"{result.message} {note}"
