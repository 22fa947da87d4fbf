"""Processing the webhook inbox: the due ``pending`` rows of a distributor go through the one sync path.

A notification carries a lead id, not the lead. :func:`process_inbox` hands the ids of a distributor's due rows to
:func:`leads_pipeline.lib.ingest.sync.sync_distributor` (``trigger="webhook"``, ``lead_ids=…``) — the same function
the CLI, the HTTP API and Dagster call, so a webhook batch is fetched, landed, parsed, stored and counted exactly
like any other sync and has its own ``sync_runs`` row (its id is kept in ``webhook_inbox.sync_id``). This module
adds only what is the inbox's own: which rows are due, and what each lead's outcome means for its row.

==================  ================================================================================
outcome             inbox row
==================  ================================================================================
``stored/exists``   ``processed``
``quarantined``     ``rejected`` (in ``rejected_leads`` with the reason)
``deleted``         ``deleted`` (tombstoned; a row tombstoned before the run is not even fetched)
``held_elsewhere``  ``held_elsewhere``, the error naming the distributor that holds the lead
``failed``          ``failed``: Meta refused this lead for good
``not_found``       Meta's 100/33, typical right after the event: ``pending`` again, with backoff
``retry``           throttling, a transient failure, a token being fixed: ``pending`` again, with backoff
==================  ================================================================================

The backoff is 1 minute doubling to 1 hour (:func:`retry_delay`) for :data:`MAX_ATTEMPTS` tries, about 12 hours;
then the row is ``failed`` and says it is handed to the scheduled sync, which reads every form of the distributor
and so finds the lead once Meta serves it. A re-delivery reopens a failed row (:mod:`.inbox`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from leads_pipeline.lib.graph.redaction import redact
from leads_pipeline.lib.ingest.sync import sync_distributor
from leads_pipeline.lib.warehouse import Warehouse, retry_conflicts

from .inbox import lock_rows, reroute_unrouted

log = logging.getLogger(__name__)

__all__ = ["InboxResult", "MAX_ATTEMPTS", "RETRY_HORIZON", "process_inbox", "process_all", "retry_delay"]

RETRY_FIRST = timedelta(minutes=1)
RETRY_LONGEST = timedelta(hours=1)
#: How long a lead Meta cannot serve yet is retried before it is left to the scheduled sync.
RETRY_HORIZON = timedelta(hours=12)
_MAX_ERROR_LENGTH = 2000
_OUTCOME_STATUS = {"stored": "processed", "exists": "processed", "quarantined": "rejected", "deleted": "deleted",
                   "held_elsewhere": "held_elsewhere", "failed": "failed"}


def retry_delay(attempts: int) -> timedelta:
    """The wait after the ``attempts``-th failed try: 1 min, 2, 4 … capped at 1 h."""
    return min(RETRY_FIRST * 2 ** max(attempts - 1, 0), RETRY_LONGEST)


def _attempts_within(horizon: timedelta) -> int:
    n, spent = 1, timedelta(0)
    while spent < horizon:
        spent += retry_delay(n)
        n += 1
    return n


#: Tries before a lead is left to the scheduled sync: the waits between them add up to :data:`RETRY_HORIZON`.
MAX_ATTEMPTS = _attempts_within(RETRY_HORIZON)


@dataclass
class InboxResult:
    """What :func:`process_inbox` did for one distributor (rows of ``webhook_inbox`` and the run's figures)."""

    distributor: str
    selected: int = 0          # due pending rows taken
    fetched: int = 0           # leads the sync run read (its own count)
    stored: int = 0            # new rows in ``leads`` (the run's own count)
    rejected: int = 0          # rows now ``rejected`` (quarantined)
    deleted: int = 0           # rows now ``deleted`` (tombstoned)
    held_elsewhere: int = 0    # rows whose lead another distributor holds
    failed: int = 0            # rows now ``failed``
    retrying: int = 0          # rows left ``pending`` with a later ``next_attempt_at``
    graph_requests: int = 0
    errors: list[str] = field(default_factory=list)
    fatal: str | None = None   # nothing could be read this round (token, permissions, Meta down): the run's message
    sync_ids: list[str] = field(default_factory=list)  # the ``sync_runs`` rows of this work (one per round)

    @property
    def sync_id(self) -> str | None:
        """The last round's ``sync_runs`` id (None when no lead needed fetching)."""
        return self.sync_ids[-1] if self.sync_ids else None

    @property
    def done(self) -> int:
        """Rows that left ``pending`` this round."""
        return self.selected - self.retrying

    def __add__(self, other: InboxResult) -> InboxResult:
        summed = {name: getattr(self, name) + getattr(other, name)
                  for name in ("selected", "fetched", "stored", "rejected", "deleted", "held_elsewhere", "failed",
                               "retrying", "graph_requests")}
        return InboxResult(self.distributor, **summed, errors=list(dict.fromkeys(self.errors + other.errors))[:20],
                           fatal=other.fatal or self.fatal, sync_ids=self.sync_ids + other.sync_ids)

    def to_dict(self) -> dict[str, Any]:
        return {"distributor": self.distributor, "selected": self.selected, "fetched": self.fetched,
                "stored": self.stored, "rejected": self.rejected, "deleted": self.deleted,
                "held_elsewhere": self.held_elsewhere, "failed": self.failed, "retrying": self.retrying,
                "graph_requests": self.graph_requests, "errors": list(self.errors), "fatal": self.fatal,
                "sync_id": self.sync_id, "sync_ids": list(self.sync_ids)}


def _short(text: str) -> str:
    return text if len(text) <= _MAX_ERROR_LENGTH else text[: _MAX_ERROR_LENGTH - 1] + "…"


def _row_outcome(status: str, error: str | None, attempts: int, now: datetime) -> tuple[str, str | None, int,
                                                                                        datetime | None]:
    """(inbox status, error, attempts, next_attempt_at) for one lead's outcome (see the module docstring)."""
    if status in _OUTCOME_STATUS:
        final = _OUTCOME_STATUS[status]
        if final == "held_elsewhere" and not error:
            error = "another distributor already holds this lead"
        return final, (_short(error) if error and final != "processed" else None), attempts, None
    message = error or "the lead could not be read"
    if status == "not_found":
        message = f"Meta cannot serve this lead yet (100/33): {message}"
    attempts += 1
    if attempts >= MAX_ATTEMPTS:
        hours = round(RETRY_HORIZON.total_seconds() / 3600)
        return "failed", _short(f"{message} — still failing after {attempts} attempts over ~{hours} h; handed to "
                                "the scheduled sync, which reads every form of the distributor"), attempts, None
    return "pending", _short(message), attempts, now + retry_delay(attempts)


def process_inbox(
    wh: Warehouse,
    key: str,
    client_factory: Callable[[str], Any] | None = None,
    *,
    limit: int = 500,
    run_id: str | None = None,
    now: datetime | None = None,
    settings: Any = None,
) -> InboxResult:
    """One round: route waiting changes again, take up to ``limit`` due pending rows of ``key``, run them through
    ``sync_distributor`` (one ``sync_runs`` row) and record each lead's outcome on its row.

    ``now`` is the clock the schedule uses (tests drive it; default: the current time). Never raises for a Graph API
    failure; ``fatal`` tells a distributor-wide one (the rows then wait for their next attempt).
    """
    at = now or datetime.now(timezone.utc)
    result = InboxResult(key)
    reroute_unrouted(wh)
    with wh.transaction(read_only=True) as conn:
        rows = conn.query(
            "SELECT i.leadgen_id, i.page_id, i.form_id, i.attempts, "
            "EXISTS (SELECT 1 FROM lead_tombstones t WHERE t.meta_lead_id = i.leadgen_id) AS tombstoned "
            "FROM webhook_inbox i WHERE i.distributor = ? AND i.status = 'pending' "
            "AND (i.next_attempt_at IS NULL OR i.next_attempt_at <= ?) "
            "ORDER BY i.attempts, i.received_at, i.leadgen_id LIMIT ?",
            [key, at, int(limit)],
        )
    if not rows:
        return result
    result.selected = len(rows)
    outcomes = {r["leadgen_id"]: ("deleted", None, int(r["attempts"] or 0), None) for r in rows if r["tombstoned"]}
    wanted = [r for r in rows if not r["tombstoned"]]
    sync_id = None
    if wanted:
        sync, problem = None, None
        try:
            sync = sync_distributor(wh, key, trigger="webhook", run_id=run_id, settings=settings,
                                    client_factory=client_factory,
                                    lead_ids=[(r["leadgen_id"], r["page_id"], r["form_id"]) for r in wanted])
        except Exception as exc:  # noqa: BLE001 - e.g. the distributor was removed: keep the rows, report, retry
            problem = redact(f"{type(exc).__name__}: {exc}")
            log.warning("webhook inbox %s: the sync run failed: %s", key, problem)
            result.errors.append(problem)
        lead_outcomes = (getattr(sync, "lead_outcomes", None) or {}) if sync is not None else {}
        fallback = problem or (sync.message if sync is not None else None)
        statuses = []
        for r in wanted:
            o = lead_outcomes.get(r["leadgen_id"])
            status, error = (o.status, o.error) if o is not None else ("retry", fallback)
            statuses.append(status)
            outcomes[r["leadgen_id"]] = _row_outcome(status, error, int(r["attempts"] or 0), at)
        if sync is not None:
            sync_id = sync.sync_id or None
            result.sync_ids.append(sync.sync_id)
            result.fetched, result.stored = sync.fetched, sync.stored
            result.graph_requests = sync.graph_requests
            result.errors.extend(e for e in sync.errors if e not in result.errors)
        if all(s == "retry" for s in statuses) and (problem or getattr(sync, "status", None) == "failed"):
            result.fatal = problem or sync.message
    runs = {r["leadgen_id"]: sync_id for r in wanted}
    retry_conflicts(lambda: _mark(wh, key, outcomes, runs, at), what="webhook inbox outcomes")
    for status, error, _attempts, _next in outcomes.values():
        if status == "pending":
            result.retrying += 1
        elif status in ("rejected", "deleted", "held_elsewhere", "failed"):
            setattr(result, status, getattr(result, status) + 1)
        if error and status in ("failed", "held_elsewhere") and error not in result.errors:
            result.errors.append(error)
    result.errors = result.errors[:20]
    log.info("webhook inbox %s: %d selected, %d fetched, %d stored, %d failed, %d retrying (run %s)", key,
             result.selected, result.fetched, result.stored, result.failed, result.retrying, sync_id)
    return result


def _mark(wh: Warehouse, key: str, outcomes: dict[str, tuple], runs: dict[str, str | None], now: datetime) -> None:
    """Record each row's outcome in one short transaction (rows locked in ``leadgen_id`` order on PostgreSQL); a
    row that left ``pending`` or this distributor meanwhile (re-routed, reopened elsewhere) is left alone."""
    with wh.transaction() as conn:
        conn.stage("inbox_outcomes", {"leadgen_id": "TEXT", "status": "TEXT", "error": "TEXT", "attempts": "BIGINT",
                                      "next_attempt_at": "TIMESTAMPTZ", "sync_id": "TEXT"},
                   [(lead_id, *outcome, runs.get(lead_id)) for lead_id, outcome in sorted(outcomes.items())])
        mine = "webhook_inbox.distributor = ? AND webhook_inbox.status = 'pending'"
        lock_rows(conn, f"leadgen_id IN (SELECT leadgen_id FROM inbox_outcomes) AND {mine}", [key])
        conn.execute(
            "UPDATE webhook_inbox SET status = s.status, error = s.error, attempts = s.attempts, "
            "next_attempt_at = s.next_attempt_at, sync_id = coalesce(s.sync_id, webhook_inbox.sync_id), "
            "processed_at = CASE WHEN s.status = 'pending' THEN NULL ELSE CAST(? AS TIMESTAMPTZ) END "
            f"FROM inbox_outcomes s WHERE webhook_inbox.leadgen_id = s.leadgen_id AND {mine}",
            [now, key],
        )


def process_all(
    wh: Warehouse,
    key: str,
    client_factory: Callable[[str], Any] | None = None,
    *,
    limit: int = 500,
    max_rounds: int = 20,
    run_id: str | None = None,
    now: datetime | None = None,
    settings: Any = None,
) -> InboxResult:
    """:func:`process_inbox` round after round while full rounds make progress (at most ``max_rounds``); each round
    is its own sync run."""
    total = InboxResult(key)
    for _ in range(max(1, max_rounds)):
        round_result = process_inbox(wh, key, client_factory, limit=limit, run_id=run_id, now=now, settings=settings)
        total = total + round_result
        if round_result.fatal or round_result.selected < limit or round_result.done == 0:
            break
    return total
