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

**No network I/O under a warehouse lock** (:mod:`.reading`). The pages of the forms are fetched by up to
``FETCH_THREADS`` producer threads (a form each at a time, each with its own keep-alive session; a throttle window
seen by one holds them all; one to begin with, another whenever the landing waits for pages), which also key and
parse each page (:func:`~.land.prepare_page`), into a bounded queue; this thread only writes what is ready (pages of
one form waiting together in one transaction). The warehouse is opened when a page is ready, holds the pages that
are ready then, and is closed when the queue is empty — so a throttle wait of minutes, a slow answer or a retry's
backoff never keeps the DuckDB file (or a PostgreSQL transaction) open, and the next page is fetched while the last
one lands. While pages keep coming it stays open (on DuckDB every close is a checkpoint) as long as nobody waits for
it: every ``HOLD_SECONDS`` it asks, and lets another process or thread that waits have its turn.

**Failure isolation.** A Page or form that fails is a *failure* (id, Meta's message, what to do) and the rest goes
on: the run is ``partial``. Throttling and transient errors are retried by the client; only a token error of the
distributor's own token (or a setup problem) ends the run, ``failed``.

Exactly-once comes from the warehouse: raw rows are keyed per distributor and lead, a form's cursor moves with the
transaction of its pagination's last page, the next read starts ``sync_lookback_seconds`` below the cursor (Meta
filters on whole seconds), and a lead id another distributor holds is counted by name rather than dropped.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from leads_pipeline.lib.distributors import health, ownership
from leads_pipeline.lib.distributors import registry as distributor_registry
from leads_pipeline.lib.graph import (
    ClientFactory,
    GraphClient,
    settings_factory,
)
from leads_pipeline.lib.graph.redaction import redact
from leads_pipeline.lib.ingest import by_id
from leads_pipeline.lib.ingest.check import test_connection
from leads_pipeline.lib.ingest.discovery import (
    DistributorFailure,
    choose_forms,
    list_pages,
    route_waiting,
)
from leads_pipeline.lib.ingest.land import get_cursors
from leads_pipeline.lib.ingest.run_state import OnPage, SyncRun
from leads_pipeline.lib.ingest.reading import FETCH_THREADS, HOLD_SECONDS, MERGE_LEADS, QUEUE_PAGES, land, read_forms
from leads_pipeline.lib.ingest.runs import (
    LeadOutcome,
    SyncResult,
    conclude,
    finish_run,
    start_run,
)
from leads_pipeline.lib.ingest.store import ProcessResult, form_locales, process_raw
from leads_pipeline.lib.security import SecretKeyError
from leads_pipeline.lib.warehouse import Warehouse
from leads_pipeline.settings import Settings, get_settings

log = logging.getLogger(__name__)

__all__ = [
    "FETCH_THREADS",
    "HOLD_SECONDS",
    "MERGE_LEADS",
    "QUEUE_PAGES",
    "ClientFactory",
    "LeadOutcome",
    "SyncResult",
    "sync_distributor",
    "test_connection",
]

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
        run = SyncRun(wh, key, result, dist.default_region, on_page)
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


def _stopped(run: SyncRun, exc: BaseException) -> None:
    """A run stopped by an exception (a bug, the warehouse gone): its row says so before the exception goes on."""
    what = redact(f"{type(exc).__name__}: {exc}")
    run.result.errors.append(f"run stopped: {what}")
    run.fatal = run.fatal or what
    _conclude(run, [])
    finish_run(run.wh, run.result)


def _prepare(run: SyncRun, wanted: list[tuple[str, str | None, str | None]] | None) -> tuple:
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


def _execute(run: SyncRun, dist: Any, s: Settings, factory: ClientFactory,
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


def _sync_forms(run: SyncRun, dist: Any, client: GraphClient, token: str, s: Settings, cursors: dict[str, int],
                owned: dict[str, str | None]) -> list[str]:
    explicit = bool(dist.form_ids)
    listing = list_pages(client, tuple(dist.page_ids), tuple(dist.form_ids), owned)
    run.result.graph_requests += listing.graph_requests
    run.result.failures.extend(listing.failures)
    run.result.errors.extend(listing.errors)
    run.ok_units += len(listing.listed_pages)
    with run.wh.transaction() as conn:
        forms, warnings = choose_forms(conn, run.key, token, explicit, listing, cursors)
        locales = form_locales(conn)  # for parsing in the fetch threads (reading.read_forms)
    route_waiting(run.wh, owned, forms)
    if forms:
        read_forms(run, client, forms, cursors, s.sync_lookback_seconds, locales)
    elif not listing.failures:
        warnings.append("no lead form to read: the token's Pages have none, or every one belongs to another "
                        "distributor (see `leads-pipeline distributors forms`)")
    return warnings


# ----------------------------------------------------------------------------------------------------------------------
# Fetching lead ids (the webhook processor)
# ----------------------------------------------------------------------------------------------------------------------


def _sync_leads(run: SyncRun, client: GraphClient, wanted: list[tuple[str, str | None, str | None]],
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
                land(run, page_id, form_id, leads, None)
            with run.wh.transaction() as conn:
                outcomes.update(by_id.outcomes(conn, run.key, run.result.sync_id, list(fetch.leads)))
    run.result.lead_outcomes = {w[0]: outcomes.get(w[0], LeadOutcome("retry", "not fetched")) for w in wanted}
    for outcome in run.result.lead_outcomes.values():
        if outcome.status in ("retry", "failed"):
            run.result.partial = True


# ----------------------------------------------------------------------------------------------------------------------
# The result
# ----------------------------------------------------------------------------------------------------------------------


def _conclude(run: SyncRun, warnings: list[str]) -> None:
    """Status, counts and message of the run (see :func:`~leads_pipeline.lib.ingest.runs.conclude`)."""
    conclude(run.result, run.stored, key=run.key, fatal=run.fatal, ok_units=run.ok_units, warnings=warnings)


def _record_health(run: SyncRun) -> None:
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
