"""Distributor health: what an operator needs to see per distributor, and the back-off of a broken token.

**Health** (:func:`summaries`): the last successful sync, the last error in words (Meta's message and what to do), the
leads created in the last 24 hours, when the next scheduled sync runs, and one state — ``ok``, ``partial``,
``failing``, ``backing_off``, ``paused``, ``never_synced`` or ``disabled`` — with a sentence saying what it means. The
console's distributors page, ``leads-pipeline distributors list`` and the Dagster UI (the sync asset's metadata and
the ``distributors_sync_health`` check) all show this one summary.

**Back-off** (:func:`record_run`, :func:`held_back`): a distributor whose token or permissions fail (Meta's 190/102
token errors and 10/200-299 permission errors: the operator has to act, waiting does not help) used to fail a run
every few minutes forever. Now each such failure in a row pushes its next scheduled sync further out —
``BACKOFF_STEPS`` (15 min, 1 h, 4 h, 12 h; never sooner than its own interval) — and the ``PAUSE_AFTER``-th failure
pauses its scheduled syncs altogether, with a clear status. The first failure of an episode queues one notice to
the distributor's ``notify_email`` through the notification outbox (not one per run). The episode ends, and
scheduled syncs resume, with a successful sync or connection test (:func:`clear`), or at once when a new token is
stored (the failing token's fingerprint is kept; a different one means the operator acted). Manual syncs (CLI,
console, API) always run: they are how an operator checks a fix.

State lives in ``distributor_health`` (migration 14): no network I/O happens here, and every change is one short
transaction.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from leads_pipeline.lib.graph import (
    GraphError,
    MissingPermissionError,
    TokenExpiredError,
    TokenInvalidError,
)
from leads_pipeline.lib.graph.redaction import redact
from leads_pipeline.lib.warehouse import Conn, Warehouse, retry_conflicts

from .speed_to_lead import (
    DEFAULT_TARGET_MINUTES,
    is_overdue,
    minutes_overdue,
    overdue_minutes,
    speed_to_lead_targets,
)

__all__ = [
    "BACKOFF_STEPS",
    "DEFAULT_TARGET_MINUTES",
    "PAUSE_AFTER",
    "STATES",
    "Health",
    "clear",
    "held_back",
    "is_auth_failure",
    "is_overdue",
    "minutes_overdue",
    "note_for",
    "overdue_minutes",
    "record_run",
    "speed_to_lead_targets",
    "summaries",
    "summary",
]

#: Waits before the next scheduled sync after the 1st, 2nd, … token/permission failure in a row.
BACKOFF_STEPS: tuple[timedelta, ...] = (timedelta(minutes=15), timedelta(hours=1), timedelta(hours=4),
                                        timedelta(hours=12))
#: The failure in a row that pauses scheduled syncs (after the last back-off step).
PAUSE_AFTER = len(BACKOFF_STEPS) + 1
STATES = ("ok", "partial", "failing", "backing_off", "paused", "never_synced", "disabled")
_AUTH_ERRORS = (TokenExpiredError, TokenInvalidError, MissingPermissionError)
MAX_ERROR_LENGTH = 500


def is_auth_failure(exc: BaseException | None) -> bool:
    """Whether ``exc`` (or the error it was raised from) is a token or permission error: one the operator must fix."""
    return isinstance(exc, _AUTH_ERRORS) or isinstance(getattr(exc, "__cause__", None), _AUTH_ERRORS)


def _now(now: datetime | None) -> datetime:
    return (now or datetime.now(UTC)).astimezone(UTC)


def _utc(value: Any) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _when(value: datetime | None) -> str:
    return f"{value.astimezone(UTC):%Y-%m-%d %H:%M} UTC" if value else "never"


# ----------------------------------------------------------------------------------------------------------------------
# Back-off
# ----------------------------------------------------------------------------------------------------------------------


def _row(conn: Conn, key: str) -> dict[str, Any] | None:
    return conn.query_one("SELECT * FROM distributor_health WHERE distributor = ?", [key])


def _active(row: Mapping[str, Any] | None, fingerprint: str | None) -> bool:
    """A back-off episode that still applies: failures recorded against the token the distributor still has."""
    return bool(row and int(row["failures"] or 0) > 0 and row["token_fingerprint"] == fingerprint)


def record_run(wh: Warehouse, key: str, *, status: str, auth_error: str | None, now: datetime | None = None
               ) -> str | None:
    """Record a finished sync run in the distributor's health; returns a sentence about the back-off for the run's
    message (None when there is nothing to say).

    ``auth_error`` (what Meta said and what to do) marks a token/permission failure: one more failure in a row, the
    next scheduled sync pushed out or paused, and the episode's one notice queued. A run that read with the token
    (``success`` or ``partial``) ends an episode. Other failures (throttling, Meta down) change nothing here: the
    schedule's own interval retries them.
    """
    at = _now(now)
    if auth_error is None:
        if status in ("success", "partial"):
            clear(wh, key, by=f"sync ({status})", now=at)
        return None
    error = redact(auth_error)[:MAX_ERROR_LENGTH]

    def run() -> str:
        with wh.transaction() as conn:
            dist = conn.query_one("SELECT key, name, token_fingerprint, sync_interval_minutes, notify_email "
                                  "FROM distributors WHERE key = ?", [key])
            if dist is None:
                return ""
            row = _row(conn, key)
            fingerprint = dist["token_fingerprint"]
            if _active(row, fingerprint):
                failures, since, notified = int(row["failures"]) + 1, _utc(row["failing_since"]), row["notified_at"]
                paused = _utc(row["paused_at"])
            else:
                failures, since, notified, paused = 1, at, None, None
            retry_at = None
            if failures >= PAUSE_AFTER:
                paused = paused or at
            else:
                interval = timedelta(minutes=int(dist["sync_interval_minutes"]))
                retry_at = at + max(BACKOFF_STEPS[failures - 1], interval)
            if notified is None and _notify(conn, dist, since, error):
                notified = at
            values = [failures, since, at, error, retry_at, paused, fingerprint, notified]
            if row is None:
                conn.execute("INSERT INTO distributor_health (failures, failing_since, last_failure_at, last_error, "
                             "retry_at, paused_at, token_fingerprint, notified_at, distributor) "
                             "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", [*values, key])
            else:
                conn.execute("UPDATE distributor_health SET failures = ?, failing_since = ?, last_failure_at = ?, "
                             "last_error = ?, retry_at = ?, paused_at = ?, token_fingerprint = ?, notified_at = ? "
                             "WHERE distributor = ?", [*values, key])
        if paused is not None:
            return (f"Scheduled syncs of {key} are paused after {failures} token/permission failures in a row: fix "
                    "the token, then a successful `leads-pipeline test-connection` or sync (or storing a new token) "
                    "resumes them.")
        return (f"Scheduled syncs of {key} back off: next try at {_when(retry_at)} (failure {failures} in a row; "
                f"paused at {PAUSE_AFTER}).")

    return retry_conflicts(run, what="distributor health") or None


def _notify(conn: Conn, dist: Mapping[str, Any], since: datetime, error: str) -> bool:
    """Queue the episode's one failure notice to the distributor's notify address (False: no address)."""
    from leads_pipeline.lib.crm import notifications

    if not notifications.recipients(dist["notify_email"]):
        return False
    name = dist["name"] or dist["key"]
    steps = ", ".join(_span(s) for s in BACKOFF_STEPS)
    body = (
        f"Syncing the leads of {name} (key {dist['key']}) failed: its access token or its permissions were refused "
        f"by Meta at {_when(since)}.\n\n"
        f"What Meta said and what to do:\n  {error}\n\n"
        f"New leads are not read until this is fixed. Scheduled syncs now retry after {steps}, then pause.\n"
        "When the token is fixed: store it with `leads-pipeline distributors update "
        f"{dist['key']} --token-stdin` (or in the console), then `leads-pipeline test-connection {dist['key']}`; "
        "scheduled syncs resume on their own.\n\n"
        "This notice is sent once per failure; the console's Distributors page shows the current state.\n"
    )
    subject = f"Lead sync failing for {name}: the token needs attention"
    notifications.enqueue_notice(conn, key=f"sync-failure:{dist['key']}:{since.isoformat()}", kind="sync_failure",
                                 distributor=dist["key"], notify_email=dist["notify_email"], subject=subject,
                                 body=body)
    return True


def _span(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    return f"{minutes // 60} h" if minutes % 60 == 0 else f"{minutes} min"


def clear(wh: Warehouse, key: str, *, by: str, now: datetime | None = None) -> bool:
    """End the distributor's back-off episode (a successful sync or connection test); True when there was one."""
    at = _now(now)

    def run() -> bool:
        with wh.transaction() as conn:
            return int(conn.execute(
                "UPDATE distributor_health SET failures = 0, retry_at = NULL, paused_at = NULL, failing_since = NULL, "
                "notified_at = NULL, cleared_at = ?, cleared_by = ? WHERE distributor = ? AND failures > 0",
                [at, by, key]) or 0) > 0

    if not _has_episode(wh, key):  # the common case: one cheap read, no write (no DuckDB writer lock taken)
        return False
    return retry_conflicts(run, what="distributor health")


def _has_episode(wh: Warehouse, key: str) -> bool:
    with wh.transaction(read_only=True) as conn:
        return bool(conn.scalar("SELECT count(*) FROM distributor_health WHERE distributor = ? AND failures > 0",
                                [key]))


def held_back(wh: Warehouse, keys: Iterable[str], now: datetime | None = None) -> dict[str, str]:
    """Of ``keys``, the distributors the schedule must leave out at ``now`` — paused, or backing off until later —
    with why. A distributor whose token changed since its failures is not held back."""
    wanted = set(keys)
    if not wanted:
        return {}
    at = _now(now)
    with wh.transaction(read_only=True) as conn:
        rows = conn.query("SELECT h.*, d.token_fingerprint AS current_fingerprint FROM distributor_health h "
                          "JOIN distributors d ON d.key = h.distributor WHERE h.failures > 0")
    out = {}
    for r in rows:
        if r["distributor"] not in wanted or not _active(r, r["current_fingerprint"]):
            continue
        if r["paused_at"] is not None:
            out[r["distributor"]] = "paused"
        elif r["retry_at"] is not None and _utc(r["retry_at"]) > at:
            out[r["distributor"]] = f"backing off until {_when(_utc(r['retry_at']))}"
    return out


# ----------------------------------------------------------------------------------------------------------------------
# Health summary
# ----------------------------------------------------------------------------------------------------------------------


@dataclass
class Health:
    """One distributor's health (see the module docstring); :meth:`to_dict` is what the CLI and Dagster show."""

    key: str
    name: str
    state: str
    status: str  # one sentence: what the state means, and what to do
    enabled: bool
    last_success_at: datetime | None
    last_run_at: datetime | None
    last_run_status: str | None
    last_error: str | None
    last_error_at: datetime | None
    leads_24h: int
    next_sync_at: datetime | None
    next_sync: str
    failures: int = 0
    retry_at: datetime | None = None
    paused_at: datetime | None = None
    speed_to_lead_minutes: int | None = DEFAULT_TARGET_MINUTES

    def to_dict(self) -> dict[str, Any]:
        return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in asdict(self).items()}


def summary(wh: Warehouse, key: str, *, now: datetime | None = None) -> Health | None:
    """One distributor's health (None: no such distributor)."""
    found = summaries(wh, [key], now=now)
    return found[0] if found else None


def summaries(wh: Warehouse, keys: Iterable[str] | None = None, *, now: datetime | None = None) -> list[Health]:
    """The health of every distributor (or of ``keys``), oldest distributor first, read in one transaction."""
    at = _now(now)
    only = sorted(set(keys)) if keys is not None else None
    if only is not None and not only:
        return []
    where, params = "", []
    if only is not None:
        where = f" WHERE distributor IN ({', '.join('?' * len(only))})"
        params = list(only)
    with wh.transaction(read_only=True) as conn:
        dists = conn.query(
            "SELECT key, name, enabled, sync_interval_minutes, token_fingerprint, speed_to_lead_minutes "
            "FROM distributors" + (where.replace("distributor IN", "key IN") if where else "")
            + " ORDER BY created_at, key", params)
        runs = {r["distributor"]: r for r in conn.query(
            "WITH agg AS (SELECT distributor, "
            "max(finished_at) FILTER (WHERE status = 'success') AS last_success_at, "
            "max(started_at) FILTER (WHERE success IS NOT NULL) AS last_started, "
            "max(finished_at) FILTER (WHERE status IN ('failed', 'partial')) AS last_error_at "
            f"FROM sync_runs{where} GROUP BY distributor) "
            "SELECT a.*, r.status AS last_run_status, r.finished_at AS last_run_at, e.message AS error_message, "
            "e.failures AS error_failures FROM agg a "
            "LEFT JOIN sync_runs r ON r.distributor = a.distributor AND r.started_at = a.last_started "
            "AND r.success IS NOT NULL "
            "LEFT JOIN sync_runs e ON e.distributor = a.distributor AND e.finished_at = a.last_error_at "
            "AND e.status IN ('failed', 'partial')", params)}
        health = {r["distributor"]: r for r in conn.query(f"SELECT * FROM distributor_health{where}", params)}
        recent = {r["distributor"]: int(r["n"]) for r in conn.query(
            f"SELECT distributor, count(*) AS n FROM leads WHERE created_time >= ?"
            f"{where.replace(' WHERE', ' AND')} GROUP BY distributor", [at - timedelta(hours=24), *params])}
    return [_health(d, runs.get(d["key"]), health.get(d["key"]), recent.get(d["key"], 0), at) for d in dists]


def _error_words(run: Mapping[str, Any] | None) -> str | None:
    """The last failed or partial run's message, with the first thing to do when the message lacks it."""
    if not run or not run.get("error_message"):
        return None
    text = str(run["error_message"])
    failures = run.get("error_failures")
    try:
        failures = json.loads(failures) if isinstance(failures, str) else failures
    except ValueError:
        failures = None
    todo = next((f.get("what_to_do") for f in failures or [] if isinstance(f, dict) and f.get("what_to_do")), None)
    if todo and todo not in text:
        text = f"{text} — {todo}"
    return redact(text)[:MAX_ERROR_LENGTH]


def _health(d: Mapping[str, Any], run: Mapping[str, Any] | None, h: Mapping[str, Any] | None, leads_24h: int,
            at: datetime) -> Health:
    key = d["key"]
    interval = int(d["sync_interval_minutes"])
    active = _active(h, d["token_fingerprint"])
    last_started = _utc(run["last_started"]) if run else None
    last_error, last_error_at = _error_words(run), _utc(run["last_error_at"]) if run else None
    retry_at = _utc(h["retry_at"]) if active and h else None
    paused_at = _utc(h["paused_at"]) if active and h else None
    failures = int(h["failures"]) if active and h else 0
    if active and h and h["last_error"]:
        last_error, last_error_at = str(h["last_error"]), _utc(h["last_failure_at"])
    next_at: datetime | None = (last_started + timedelta(minutes=interval)) if last_started else at
    if retry_at is not None and next_at is not None:
        next_at = max(next_at, retry_at)
    status_run = run.get("last_run_status") if run else None
    if not d["enabled"]:
        state, status, next_at = "disabled", "Left out of scheduled syncs (enable it to sync on schedule).", None
    elif paused_at is not None:
        state, next_at = "paused", None
        status = (f"Paused after {failures} token/permission failures in a row (since {_when(_utc(h['failing_since']))})"
                  ": fix the token, then a successful connection test or sync, or storing a new token, resumes "
                  "scheduled syncs.")
    elif active:
        state = "backing_off"
        status = (f"The token or its permissions failed {failures} time{'s' if failures != 1 else ''} in a row: "
                  f"scheduled syncs back off (next try {_when(next_at)}); they pause after {PAUSE_AFTER}.")
    elif status_run is None:
        state, status = "never_synced", "Not synced yet: the schedule syncs it at its next tick."
    elif status_run == "success":
        state, status = "ok", f"Synced successfully every {interval} min."
    elif status_run == "partial":
        state, status = "partial", "The last sync read some Pages or forms and failed others (see the last error)."
    else:
        state, status = "failing", "The last sync failed (see the last error); the schedule tries again."
    if next_at is None:
        words = "paused" if state == "paused" else "not scheduled (disabled)"
    elif next_at <= at:
        words = "due now"
    else:
        minutes = max(1, round((next_at - at).total_seconds() / 60))
        words = f"in {minutes} min ({_when(next_at)})" if minutes < 120 else f"at {_when(next_at)}"
    target = d["speed_to_lead_minutes"]
    return Health(
        key=key, name=d["name"], state=state, status=status, enabled=bool(d["enabled"]),
        last_success_at=_utc(run["last_success_at"]) if run else None,
        last_run_at=_utc(run["last_run_at"]) if run else None, last_run_status=status_run,
        last_error=last_error, last_error_at=last_error_at, leads_24h=leads_24h, next_sync_at=next_at,
        next_sync=words, failures=failures, retry_at=retry_at, paused_at=paused_at,
        speed_to_lead_minutes=None if target is None else int(target),
    )


def note_for(exc: GraphError | BaseException | None) -> str | None:
    """The words recorded for a token/permission failure: Meta's message made actionable (None otherwise)."""
    if not is_auth_failure(exc):
        return None
    return str(getattr(exc, "user_message", None) or exc)
