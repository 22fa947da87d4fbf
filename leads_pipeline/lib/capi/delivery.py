"""Delivery of the outbox to Meta: ``POST /{version}/{dataset_id}/events``, at most 1,000 events a request.

One :func:`send` per distributor:

1. :func:`~.events.enqueue` adds the stages not in the outbox yet; events older than Meta's 7-day limit (less a
   margin for the time a request may spend in retries) are marked ``expired``, never sent — Meta would refuse the
   whole request for one of them.
2. A lease on the distributor (``capi_settings.lease_id``/``lease_until``) makes it the only sender of that
   distributor's events; a second sender meanwhile answers ``busy`` and sends nothing.
3. Batches go out through the Graph client (its retries of transient errors and its throttle waits), with no
   warehouse transaction open. Each answer is recorded in one short transaction that marks exactly the events it
   covered: ``sent`` (with the batch id and Meta's ``fbtrace_id``), so they are never sent again.
4. Meta rejects a whole request for one bad event (code 100: an unknown lead id, a stale time, a missing field). The
   batch is split in halves until the bad event stands alone; the others are delivered, and the bad one is marked
   ``failed`` with Meta's message (``expired`` when Meta says it is too old).
5. Anything else — a bad token, a missing permission, an unknown dataset, transient failures the client's retries did
   not outlast — stops this distributor's delivery for now: the events stay ``pending`` (their ``attempts`` and
   ``last_error`` say what happened) and the next send tries again.

A process killed between Meta's answer and its record leaves those events pending; the next send (after the lease
expires) sends them again with the same ``event_id``. That is the only way an event can reach Meta twice.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from leads_pipeline.lib.distributors.errors import DistributorError
from leads_pipeline.lib.graph.client import GraphClient
from leads_pipeline.lib.graph.errors import GraphError, ObjectNotFoundError
from leads_pipeline.lib.security import SecretKeyError, TokenCipher
from leads_pipeline.lib.warehouse import Warehouse, retry_conflicts

from . import config as capi_config
from .events import enqueue, wire_event
from .status import outbox_counts

log = logging.getLogger(__name__)

__all__ = ["MAX_BATCH", "SendResult", "send", "send_all"]

#: Meta's limit of events per request.
MAX_BATCH = 1000
#: Meta refuses events older than 7 days; an hour's margin covers retries and throttle waits on the way.
EXPIRE_AFTER = dt.timedelta(days=7) - dt.timedelta(hours=1)
#: How long a sender holds a distributor (renewed before each request).
LEASE = dt.timedelta(minutes=15)
_INVALID_PARAMETER = 100
_TOO_OLD_SUBCODE = 2804003

ClientFactory = Callable[[str], GraphClient]


@dataclass
class SendResult:
    """What one send did for one distributor. ``failed``: events Meta rejected (or that cannot be sent) in this run;
    ``pending``: events still waiting afterwards; ``errors``: why delivery stopped, if it did."""

    distributor: str
    status: str = "ok"  # ok | partial | failed | busy | not_configured
    dataset_id: str | None = None
    enqueued: int = 0
    sent: int = 0
    failed: int = 0
    expired: int = 0
    pending: int = 0
    oldest_pending_age_seconds: float | None = None
    requests: int = 0
    test_event_code: bool = False
    errors: list[str] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)
    message: str = ""

    @property
    def exit_code(self) -> int:
        """0 all delivered, 2 partly (some failed, expired or left waiting on an error), 1 nothing could be done."""
        return {"ok": 0, "partial": 2, "busy": 0}.get(self.status, 1)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ----------------------------------------------------------------------------------------------------------------------
# Outbox bookkeeping (short transactions)
# ----------------------------------------------------------------------------------------------------------------------


def _utc(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def _expire(wh: Warehouse, key: str, now: dt.datetime) -> int:
    cutoff = now - EXPIRE_AFTER

    def run() -> int:
        with wh.transaction() as conn:
            return max(conn.execute(
                "UPDATE conversion_events SET status = 'expired', last_error = ? WHERE distributor = ? "
                "AND status = 'pending' AND event_time < ?",
                ["older than Meta's 7-day limit before it could be sent", key, cutoff]), 0)

    return retry_conflicts(run, what="conversions api expiry")


def _take_lease(wh: Warehouse, key: str, lease_id: str, now: dt.datetime, *, renew: bool = False) -> bool:
    """Hold (or renew) the distributor's send lease; False when another sender holds it."""

    def run() -> bool:
        with wh.transaction() as conn:
            if renew:
                conn.execute("UPDATE capi_settings SET lease_until = ? WHERE distributor = ? AND lease_id = ?",
                             [now + LEASE, key, lease_id])
            else:
                conn.execute("UPDATE capi_settings SET lease_id = ?, lease_until = ? WHERE distributor = ? "
                             "AND (lease_until IS NULL OR lease_until < ? OR lease_id IS NULL)",
                             [lease_id, now + LEASE, key, now])
            return conn.scalar("SELECT lease_id FROM capi_settings WHERE distributor = ?", [key]) == lease_id

    return retry_conflicts(run, what="conversions api lease")


def _release(wh: Warehouse, key: str, lease_id: str, now: dt.datetime, error: str | None) -> None:
    def run() -> None:
        with wh.transaction() as conn:
            conn.execute("UPDATE capi_settings SET lease_id = NULL, lease_until = NULL, last_send_at = ?, "
                         "last_error = ? WHERE distributor = ? AND lease_id = ?", [now, error, key, lease_id])

    retry_conflicts(run, what="conversions api lease")


def _pending(wh: Warehouse, key: str, *, hashed: bool, limit: int) -> list[dict[str, Any]]:
    """The oldest waiting events (with the lead's email and phone when hashed contacts are on)."""
    contacts = ", l.email, l.phone" if hashed else ""
    with wh.transaction(read_only=True) as conn:
        return conn.query(
            "SELECT c.event_id, c.meta_lead_id, c.stage, c.event_name, c.event_time" + contacts + " FROM "
            "conversion_events c" + (" LEFT JOIN leads l ON l.meta_lead_id = c.meta_lead_id" if hashed else "")
            + " WHERE c.distributor = ? AND c.status = 'pending' ORDER BY c.event_time, c.event_id LIMIT ?",
            [key, limit])


def _mark(wh: Warehouse, event_ids: Iterable[str], *, status: str | None, error: str | None,
          now: dt.datetime, batch_id: str | None = None, fbtrace_id: str | None = None) -> int:
    """Record one answer for the events it covered (only those still pending): ``status`` None keeps them pending
    and counts the attempt."""
    ids = list(event_ids)
    if not ids:
        return 0

    def run() -> int:
        with wh.transaction() as conn:
            conn.stage("capi_marked", {"event_id": "TEXT"}, [(i,) for i in ids])
            if status is None:
                sets, params = "attempts = attempts + 1, last_error = ?", [error]
            else:
                sets = "status = ?, attempts = attempts + 1, last_error = ?, sent_at = ?, batch_id = ?, fbtrace_id = ?"
                params = [status, error, now if status == "sent" else None, batch_id, fbtrace_id]
            return max(conn.execute(
                f"UPDATE conversion_events SET {sets} WHERE status = 'pending' "
                "AND event_id IN (SELECT event_id FROM capi_marked)", params), 0)

    return retry_conflicts(run, what="conversions api record")


# ----------------------------------------------------------------------------------------------------------------------
# Sending
# ----------------------------------------------------------------------------------------------------------------------


def _rejects_events(exc: GraphError) -> bool:
    """Meta refused the request because of its events (code 100, not the 100/33 of an unknown dataset): splitting
    the batch finds the bad one. Token, permission, dataset, throttling and transient errors are not about events."""
    return type(exc) is GraphError and exc.code == _INVALID_PARAMETER and exc.subcode != 33 \
        and not isinstance(exc, ObjectNotFoundError)


def _meta_says(exc: GraphError) -> str:
    text = exc.user_msg or exc.message or str(exc)
    if exc.user_title and exc.user_title not in text:
        text = f"{exc.user_title}: {text}"
    code = f" (code {exc.code}/{exc.subcode})" if exc.subcode is not None else f" (code {exc.code})"
    trace = f", fbtrace_id {exc.fbtrace_id}" if exc.fbtrace_id else ""
    return (text + code + trace)[:1000]


class _Run:
    """One distributor's delivery: its client, settings and tallies."""

    def __init__(self, wh: Warehouse, key: str, settings: capi_config.CapiSettings, client: GraphClient,
                 result: SendResult, clock: Callable[[], dt.datetime]):
        self.wh, self.key, self.settings, self.client, self.result, self.clock = wh, key, settings, client, result, \
            clock

    def form(self, rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        hashed = self.settings.hashed_contacts
        events = [wire_event(r, crm_name=self.settings.crm_name, contacts=r if hashed else None) for r in rows]
        data: dict[str, Any] = {"data": events}
        if self.settings.test_event_code:
            data["test_event_code"] = self.settings.test_event_code
        return data

    def deliver(self, rows: Sequence[Mapping[str, Any]]) -> GraphError | None:
        """Send ``rows``; split on an event rejection; returns the error that stops delivery, if any."""
        ids = [r["event_id"] for r in rows]
        batch_id = uuid.uuid4().hex
        self.result.requests += 1
        try:
            answer = self.client.post(f"{self.settings.dataset_id}/events", self.form(rows))
        except GraphError as exc:
            if not _rejects_events(exc):
                _mark(self.wh, ids, status=None, error=_meta_says(exc), now=self.clock())
                return exc
            if len(rows) == 1:
                expired = exc.subcode == _TOO_OLD_SUBCODE
                marked = _mark(self.wh, ids, status="expired" if expired else "failed", error=_meta_says(exc),
                               now=self.clock(), batch_id=batch_id, fbtrace_id=exc.fbtrace_id)
                if expired:
                    self.result.expired += marked
                else:
                    self.result.failed += marked
                log.warning("conversions api %s: Meta rejected event %s of lead %s: %s", self.key, ids[0][:12],
                            rows[0]["meta_lead_id"], exc.user_title or exc.message)
                return None
            middle = len(rows) // 2
            return self.deliver(rows[:middle]) or self.deliver(rows[middle:])
        received = answer.get("events_received")
        trace = answer.get("fbtrace_id") if isinstance(answer.get("fbtrace_id"), str) else None
        note = None
        if isinstance(received, int) and received != len(rows):
            note = f"Meta counted {received} of {len(rows)} events in this request"
            self.result.messages.append(note)
        for message in answer.get("messages") or []:
            if isinstance(message, str) and len(self.result.messages) < 50:
                self.result.messages.append(message[:500])
        self.result.sent += _mark(self.wh, ids, status="sent", error=note, now=self.clock(), batch_id=batch_id,
                                  fbtrace_id=trace)
        return None


def _unsendable(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Events whose lead id is not Meta's (digits): Meta would reject the whole request for them."""
    return [dict(r) for r in rows if not str(r["meta_lead_id"]).isdigit()]


def send(wh: Warehouse, key: str, *, client_factory: ClientFactory | None = None, settings: Any = None,
         cipher: TokenCipher | None = None, now: dt.datetime | None = None, max_events: int | None = None
         ) -> SendResult:
    """Enqueue, expire and deliver one distributor's events (see the module docstring). A distributor without a
    dataset id sends nothing (``status = "not_configured"``)."""
    clock: Callable[[], dt.datetime] = (lambda: _utc(now)) if now else (lambda: dt.datetime.now(dt.UTC))
    start = clock()
    cfg = capi_config.get(wh, key)
    result = SendResult(key, dataset_id=cfg.dataset_id, test_event_code=bool(cfg.test_event_code))
    if not cfg.enabled:
        result.status = "not_configured"
        result.message = (f"{key} has no Conversions API dataset: nothing sent. Set one with `leads-pipeline "
                          f"distributors update {key} --capi-dataset-id ID`.")
        return result
    result.enqueued = enqueue(wh, key, now=start)
    result.expired = _expire(wh, key, start)
    lease = uuid.uuid4().hex
    if not _take_lease(wh, key, lease, start):
        result.status = "busy"
        result.message = f"Another sender is delivering {key}'s events right now; they will be sent by it."
        return _finish(wh, result, start)
    stop: str | None = None
    client: GraphClient | None = None
    try:
        try:
            token = capi_config.access_token(wh, key, cipher)
        except (DistributorError, SecretKeyError) as exc:
            stop = str(exc)
            return _finish(wh, result, start, stop)
        if client_factory is None:
            from leads_pipeline.lib.graph.factory import make_client

            client = make_client(token, settings)
        else:
            client = client_factory(token)
        run = _Run(wh, key, cfg, client, result, clock)
        tried: set[str] = set()
        budget = max_events
        while budget is None or budget > 0:
            size = MAX_BATCH if budget is None else min(MAX_BATCH, budget)
            # Every answer takes its events out of 'pending'; an event seen twice would mean a record went
            # missing, so it is never sent again in this run.
            rows = [r for r in _pending(wh, key, hashed=cfg.hashed_contacts, limit=size) if r["event_id"] not in tried]
            if not rows:
                break
            bad = _unsendable(rows)
            if bad:
                result.failed += _mark(wh, [r["event_id"] for r in bad], status="failed", now=clock(),
                                       error="not a Meta lead id (digits): Meta cannot match it")
                rows = [r for r in rows if str(r["meta_lead_id"]).isdigit()]
            if rows and not _take_lease(wh, key, lease, clock(), renew=True):
                stop = "the send lease was lost (another sender took over after it expired)"
                break
            error = run.deliver(rows) if rows else None
            tried.update(r["event_id"] for r in rows)
            if budget is not None:
                budget -= len(rows) + len(bad)
            if error is not None:
                stop = getattr(error, "user_message", None) or str(error)
                result.errors.append(str(error))
                break
    finally:
        if client is not None:
            client.close()
        _release(wh, key, lease, clock(), stop)
    return _finish(wh, result, start, stop)


def _finish(wh: Warehouse, result: SendResult, now: dt.datetime, stop: str | None = None) -> SendResult:
    counts = outbox_counts(wh, result.distributor, now=now)[result.distributor]
    result.pending = counts["pending"]
    result.oldest_pending_age_seconds = counts["oldest_pending_age_seconds"]
    if stop and stop not in result.errors:
        result.errors.append(stop)
    if result.status == "busy":
        return result
    if stop:
        result.status = "partial" if result.sent else "failed"
    elif result.failed or result.expired:
        result.status = "partial"
    parts = [f"{result.sent} event(s) sent"]
    if result.failed:
        parts.append(f"{result.failed} rejected by Meta (see conversion_events.last_error)")
    if result.expired:
        parts.append(f"{result.expired} expired (older than 7 days)")
    parts.append(f"{result.pending} waiting")
    text = f"{result.distributor}: " + ", ".join(parts) + "."
    if stop:
        text += f" Delivery stopped: {stop}"
    if result.test_event_code:
        text += " (Sent with a test event code: remove it in production.)"
    result.message = text
    return result


def send_all(wh: Warehouse, keys: Iterable[str] | None = None, **kwargs: Any) -> list[SendResult]:
    """:func:`send` for each key (default: every distributor with a dataset); one failing never stops the others."""
    if keys is None:
        with wh.transaction(read_only=True) as conn:
            keys = [r["distributor"] for r in conn.query(
                "SELECT s.distributor FROM capi_settings s JOIN distributors d ON d.key = s.distributor "
                "WHERE s.dataset_id IS NOT NULL ORDER BY s.distributor")]
    results = []
    for key in keys:
        try:
            results.append(send(wh, key, **kwargs))
        except DistributorError as exc:
            results.append(SendResult(key, status="failed", errors=[str(exc)], message=str(exc)))
    return results
