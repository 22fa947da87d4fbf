"""The durable webhook inbox (table ``webhook_inbox``): Meta's ``leadgen`` notifications, kept until their lead is in.

A notification names a lead (``leadgen_id``) but carries none of its answers, so real-time ingestion has two halves:

1. **Receive** (HTTP, ``leads_pipeline.web.webhooks``): :func:`parse_delivery` checks the shape, then
   :func:`store_changes` writes every change in one transaction *before* Meta gets its 200. The write is a set-based
   upsert keyed on ``leadgen_id``: a re-delivery (Meta retries for 36 h and sometimes sends twice) only increments
   ``deliveries``. Each change is routed to the distributor owning its Page (``distributors.page_ids``, the pages
   of ``distributor_forms``, else the form in ``distributors.form_ids``); a change no distributor owns is kept with
   status ``unrouted`` and reported, never dropped, and :func:`reroute_unrouted` assigns it once its distributor
   exists. An id in ``lead_tombstones`` (deleted on a privacy request) is stored as ``deleted`` and never fetched.
   :class:`InboxWriter` group-commits concurrent deliveries (one transaction for all the requests waiting at that
   moment), which is what lets one DuckDB file take hundreds of deliveries a second.
2. **Process** (Dagster's ``webhook_inbox_sensor`` → ``webhook_leads``, or ``leads-pipeline webhooks process``):
   :func:`process_inbox` fetches the pending leads by id through Graph batch requests (≤ 50 ids per POST) with the
   distributor's token (or each Page's token from ``/me/accounts`` when it is a user token), lands them in
   ``raw_leads`` (:func:`ingest.land_raw_page`, no cursor: webhooks never move a form's sync cursor), parses them
   into ``leads`` (:func:`ingest.process_raw`) and marks the inbox rows.

Statuses of ``webhook_inbox.status``:

=============  ==========================================================================================
``pending``    waiting to be fetched (``error`` holds ``attempt N/M failed: …`` after a transient failure)
``processed``  the lead is in ``leads``
``rejected``   the lead was fetched but is malformed: it is in ``rejected_leads`` with the reason
``deleted``    the id is tombstoned (privacy deletion): never fetched, never stored
``failed``     Meta cannot give this lead (e.g. 100/33 for the App Dashboard's test id 444444444444), or it
               still failed after ``max_attempts`` tries; ``error`` says why. The scheduled sync still reads
               every form, so a lead whose webhook failed is not lost.
``unrouted``   no distributor owns the Page (or form); :func:`reroute_unrouted` retries the routing
=============  ==========================================================================================

Every function takes a :class:`~leads_pipeline.lib.warehouse.Warehouse`; the SQL works on DuckDB and PostgreSQL.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from leads_pipeline.lib.warehouse import Conn, Warehouse

log = logging.getLogger(__name__)

__all__ = [
    "Change",
    "InvalidDelivery",
    "StoreResult",
    "InboxResult",
    "InboxOverview",
    "InboxWriter",
    "MAX_ATTEMPTS",
    "STATUSES",
    "parse_delivery",
    "store_changes",
    "pending_by_distributor",
    "overview",
    "summary",
    "process_inbox",
    "process_all",
    "reroute_unrouted",
]

#: Tries per lead before a transient failure (network, throttling, a token being fixed) marks it ``failed``.
MAX_ATTEMPTS = 8
#: Every value ``webhook_inbox.status`` takes.
STATUSES = ("pending", "processed", "rejected", "deleted", "failed", "unrouted")

_DIGITS = re.compile(r"[0-9]{1,40}")
_ATTEMPT = re.compile(r"^attempt (\d+)/\d+ failed: ")
_MAX_ERROR_LENGTH = 2000


class InvalidDelivery(ValueError):
    """A webhook body that is not a Meta ``page`` notification (malformed JSON or shape); the message says where."""


@dataclass(frozen=True)
class Change:
    """One ``leadgen`` change of a delivery, ids as strings (Meta sends strings; its doc sample sends numbers)."""

    leadgen_id: str
    page_id: str | None
    form_id: str | None = None
    ad_id: str | None = None
    adgroup_id: str | None = None
    created_time: int | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)  # the change as received


@dataclass
class StoreResult:
    """What :func:`store_changes` did with one delivery's changes (counted per change)."""

    new: int = 0
    duplicates: int = 0
    unrouted: int = 0
    deleted: int = 0
    unrouted_page_ids: tuple[str, ...] = ()

    @property
    def changes(self) -> int:
        return self.new + self.duplicates


@dataclass
class InboxResult:
    """What :func:`process_inbox` did for one distributor."""

    distributor: str
    selected: int = 0          # pending rows taken this round
    fetched: int = 0           # leads Meta returned
    stored: int = 0            # new rows in ``leads``
    rejected: int = 0          # malformed leads (now in ``rejected_leads``)
    deleted: int = 0           # tombstoned ids, not fetched
    failed: int = 0            # marked ``failed`` this round
    retrying: int = 0          # left ``pending`` after a transient failure
    graph_requests: int = 0
    errors: list[str] = field(default_factory=list)
    fatal: str | None = None   # the whole distributor failed (token, permissions, no token)

    @property
    def done(self) -> int:
        """Rows that left ``pending`` this round."""
        return self.selected - self.retrying

    def __add__(self, other: InboxResult) -> InboxResult:
        errors = list(dict.fromkeys(self.errors + other.errors))[:20]
        return InboxResult(self.distributor, self.selected + other.selected, self.fetched + other.fetched,
                           self.stored + other.stored, self.rejected + other.rejected, self.deleted + other.deleted,
                           self.failed + other.failed, self.retrying + other.retrying,
                           self.graph_requests + other.graph_requests, errors, other.fatal or self.fatal)

    def to_dict(self) -> dict[str, Any]:
        return {"distributor": self.distributor, "selected": self.selected, "fetched": self.fetched,
                "stored": self.stored, "rejected": self.rejected, "deleted": self.deleted, "failed": self.failed,
                "retrying": self.retrying, "graph_requests": self.graph_requests, "errors": list(self.errors),
                "fatal": self.fatal}


# ----------------------------------------------------------------------------------------------------------------------
# Parsing
# ----------------------------------------------------------------------------------------------------------------------


def _id(value: Any, where: str, *, required: bool) -> str | None:
    """A Meta id as a string of digits: strings and (JSON) integers are accepted."""
    if value is None or value == "":
        if required:
            raise InvalidDelivery(f"{where} is missing")
        return None
    if isinstance(value, bool):
        raise InvalidDelivery(f"{where} is not a Meta id")
    if isinstance(value, int):
        text = str(value)
    elif isinstance(value, str):
        text = value.strip()
    else:  # floats lose digits of 15+-digit ids: refuse rather than store a wrong id
        raise InvalidDelivery(f"{where} is not a Meta id (a {type(value).__name__})")
    if not _DIGITS.fullmatch(text):
        raise InvalidDelivery(f"{where} is not a Meta id (digits only)")
    return text


def _unix(value: Any, where: str) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise InvalidDelivery(f"{where} is not a Unix time")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    raise InvalidDelivery(f"{where} is not a Unix time")


def parse_delivery(raw_body: bytes) -> list[Change]:
    """The ``leadgen`` changes of a webhook body (Meta's ``{"object":"page","entry":[{"id","time","changes":[…]}]}``).

    Changes of other fields (``feed``, ``messages``…) and notifications of other objects are ignored. Raises
    :class:`InvalidDelivery` — naming the offending place, never echoing the body — for malformed JSON or shape.
    """
    try:
        body = json.loads(raw_body)
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidDelivery(f"the body is not valid JSON ({type(exc).__name__} at position "
                              f"{getattr(exc, 'pos', '?')})") from None
    if not isinstance(body, dict):
        raise InvalidDelivery("the body is not a JSON object with an entry list")
    obj = body.get("object")
    if obj is not None and not isinstance(obj, str):
        raise InvalidDelivery("object is not a string")
    entries = body.get("entry")
    if not isinstance(entries, list):
        raise InvalidDelivery("entry is missing or not a list")
    if obj not in (None, "page"):
        return []  # not a Page notification (e.g. an app also subscribed to user or instagram objects)
    changes: list[Change] = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise InvalidDelivery(f"entry[{i}] is not an object")
        entry_changes = entry.get("changes", [])
        if entry_changes is None:
            continue
        if not isinstance(entry_changes, list):
            raise InvalidDelivery(f"entry[{i}].changes is not a list")
        for j, change in enumerate(entry_changes):
            where = f"entry[{i}].changes[{j}]"
            if not isinstance(change, dict):
                raise InvalidDelivery(f"{where} is not an object")
            if change.get("field") != "leadgen":
                continue
            value = change.get("value")
            if not isinstance(value, dict):
                raise InvalidDelivery(f"{where}.value is missing or not an object")
            page_id = _id(value.get("page_id"), f"{where}.value.page_id", required=False)
            if page_id is None:
                page_id = _id(entry.get("id"), f"entry[{i}].id", required=False)
            changes.append(Change(
                leadgen_id=_id(value.get("leadgen_id"), f"{where}.value.leadgen_id", required=True),
                page_id=page_id,
                form_id=_id(value.get("form_id"), f"{where}.value.form_id", required=False),
                ad_id=_id(value.get("ad_id"), f"{where}.value.ad_id", required=False),
                adgroup_id=_id(value.get("adgroup_id"), f"{where}.value.adgroup_id", required=False),
                created_time=_unix(value.get("created_time"), f"{where}.value.created_time"),
                raw=change,
            ))
    return changes


# ----------------------------------------------------------------------------------------------------------------------
# Routing
# ----------------------------------------------------------------------------------------------------------------------


def _json_ids(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return []
    return [str(v) for v in value] if isinstance(value, list) else []


@dataclass
class _Owners:
    by_page: dict[str, str]
    by_form: dict[str, str]

    def route(self, page_id: str | None, form_id: str | None) -> str | None:
        if page_id is not None and page_id in self.by_page:
            return self.by_page[page_id]
        if form_id is not None:
            return self.by_form.get(form_id)
        return None


def _owners(conn: Conn, page_ids: Iterable[str | None], form_ids: Iterable[str | None]) -> _Owners:
    """Who owns these pages and forms: the distributor configured with the Page, else the one whose discovered forms
    are on it, else the one configured with the form. The oldest distributor wins a tie."""
    pages = sorted({p for p in page_ids if p})
    forms = sorted({f for f in form_ids if f})
    by_page: dict[str, str] = {}
    by_form: dict[str, str] = {}
    if not pages and not forms:
        return _Owners(by_page, by_form)
    rows = conn.query("SELECT key, page_ids, form_ids FROM distributors ORDER BY created_at, key")
    wanted_pages, wanted_forms = set(pages), set(forms)
    for row in rows:
        for pid in _json_ids(row["page_ids"]):
            if pid in wanted_pages:
                by_page.setdefault(pid, row["key"])
        for fid in _json_ids(row["form_ids"]):
            if fid in wanted_forms:
                by_form.setdefault(fid, row["key"])
    missing = [p for p in pages if p not in by_page]
    if missing:
        marks = ", ".join("?" for _ in missing)
        found = conn.query(
            f"SELECT f.page_id, f.distributor FROM distributor_forms f JOIN distributors d ON d.key = f.distributor "
            f"WHERE f.page_id IN ({marks}) ORDER BY d.created_at, d.key",
            missing,
        )
        for row in found:
            by_page.setdefault(row["page_id"], row["distributor"])
    missing_forms = [f for f in forms if f not in by_form]
    if missing_forms:
        marks = ", ".join("?" for _ in missing_forms)
        found = conn.query(
            f"SELECT f.form_id, f.distributor FROM distributor_forms f JOIN distributors d ON d.key = f.distributor "
            f"WHERE f.form_id IN ({marks}) ORDER BY d.created_at, d.key",
            missing_forms,
        )
        for row in found:
            by_form.setdefault(row["form_id"], row["distributor"])
    return _Owners(by_page, by_form)


# ----------------------------------------------------------------------------------------------------------------------
# Storing
# ----------------------------------------------------------------------------------------------------------------------

_STAGE = {"leadgen_id": "TEXT", "page_id": "TEXT", "form_id": "TEXT", "ad_id": "TEXT", "created_time": "BIGINT",
          "distributor": "TEXT", "deliveries": "BIGINT", "change": "JSON"}


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _change_json(change: Change) -> str:
    raw = change.raw or {"field": "leadgen", "value": {"leadgen_id": change.leadgen_id, "page_id": change.page_id,
                                                       "form_id": change.form_id, "ad_id": change.ad_id,
                                                       "created_time": change.created_time}}
    text = json.dumps(raw, ensure_ascii=False, separators=(",", ":"), default=str)
    return text.replace("\\u0000", "\\ufffd")  # PostgreSQL's JSONB refuses NUL


def store_changes(wh: Warehouse, changes: Sequence[Change]) -> StoreResult:
    """Upsert one delivery's changes into ``webhook_inbox`` in one transaction (see the module docstring)."""
    if not changes:
        return StoreResult()
    with wh.transaction() as conn:
        return _store_groups(conn, [list(changes)])[0]


def _store_groups(conn: Conn, groups: Sequence[Sequence[Change]]) -> list[StoreResult]:
    """Store several deliveries with one statement; each delivery gets its own :class:`StoreResult`."""
    merged: dict[str, list] = {}
    for group in groups:
        for c in group:
            row = merged.get(c.leadgen_id)
            if row is None:
                merged[c.leadgen_id] = [c, 1]
            else:
                row[1] += 1
    if not merged:
        return [StoreResult() for _ in groups]
    owners = _owners(conn, (r[0].page_id for r in merged.values()), (r[0].form_id for r in merged.values()))
    staged = []
    for lead_id, (c, count) in merged.items():
        staged.append((lead_id, c.page_id, c.form_id, c.ad_id or c.adgroup_id, c.created_time,
                       owners.route(c.page_id, c.form_id), count, _change_json(c)))
    conn.stage("inbox_delivery", _STAGE, staged)
    returned = conn.query(
        "INSERT INTO webhook_inbox (leadgen_id, page_id, form_id, ad_id, created_time, distributor, received_at, "
        "deliveries, change, status) "
        "SELECT s.leadgen_id, s.page_id, s.form_id, s.ad_id, s.created_time, s.distributor, ?, s.deliveries, s.change, "
        "CASE WHEN EXISTS (SELECT 1 FROM lead_tombstones t WHERE t.meta_lead_id = s.leadgen_id) THEN 'deleted' "
        "WHEN s.distributor IS NULL THEN 'unrouted' ELSE 'pending' END "
        "FROM inbox_delivery s "
        "ON CONFLICT (leadgen_id) DO UPDATE SET deliveries = webhook_inbox.deliveries + excluded.deliveries, "
        "distributor = CASE WHEN webhook_inbox.status = 'unrouted' THEN excluded.distributor "
        "ELSE webhook_inbox.distributor END, "
        "status = CASE WHEN webhook_inbox.status = 'unrouted' THEN excluded.status ELSE webhook_inbox.status END "
        "RETURNING leadgen_id, deliveries, status, page_id",
        [_now()],
    )
    outcome = {r["leadgen_id"]: r for r in returned}
    claimed: set[str] = set()
    results = []
    for group in groups:
        result = StoreResult()
        pages: list[str] = []
        for c in group:
            row = outcome.get(c.leadgen_id)
            is_new = row is not None and int(row["deliveries"]) == merged[c.leadgen_id][1]
            if is_new and c.leadgen_id not in claimed:
                claimed.add(c.leadgen_id)
                result.new += 1
            else:
                result.duplicates += 1
            status = row["status"] if row is not None else None
            if status == "unrouted":
                result.unrouted += 1
                if c.page_id and c.page_id not in pages:
                    pages.append(c.page_id)
            elif status == "deleted":
                result.deleted += 1
        result.unrouted_page_ids = tuple(pages)
        results.append(result)
    return results


class InboxWriter:
    """Group commit for the receiver: concurrent deliveries are stored together, in one transaction.

    ``submit(changes)`` queues a delivery and returns a :class:`concurrent.futures.Future` that resolves with its
    :class:`StoreResult` once the transaction holding it has **committed** (or with the exception that rolled it
    back), so the HTTP answer still follows the durable write. One background thread writes; while it commits,
    new deliveries queue up and go into the next transaction.

    DuckDB: the warehouse opens the file per transaction (~25 ms of fixed cost, and the file lock shuts every other
    process out meanwhile). Under load the writer therefore keeps the file open for a short *burst* — one
    transaction per group, each committed before its requests are answered, for at most ``burst_seconds`` and
    only while deliveries keep coming (``linger_seconds``) — then closes it; after a burst that ran its full
    length it pauses ``yield_seconds`` so that other processes waiting for the file (they poll every 50 ms) get
    their turn. PostgreSQL: one transaction per group on its own connection.
    """

    def __init__(self, wh: Warehouse, *, max_changes: int = 20_000, name: str = "webhook-inbox-writer",
                 burst_seconds: float = 0.25, linger_seconds: float = 0.002, yield_seconds: float = 0.06):
        self.wh = wh
        self.max_changes = max_changes
        self.burst_seconds = burst_seconds
        self.linger_seconds = linger_seconds
        self.yield_seconds = yield_seconds
        self._name = name
        self._queue: deque[tuple[list[Change], Future]] = deque()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closed = False
        self.transactions = 0
        self.sessions = 0

    def submit(self, changes: Sequence[Change]) -> Future:
        fut: Future = Future()
        with self._cond:
            if self._closed:
                raise RuntimeError("the inbox writer is closed")
            self._queue.append((list(changes), fut))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()
            self._cond.notify()
        return fut

    def store(self, changes: Sequence[Change], timeout: float | None = None) -> StoreResult:
        """Blocking :meth:`submit`."""
        return self.submit(changes).result(timeout)

    def close(self, timeout: float = 10.0) -> None:
        """Stop after writing what is queued."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(timeout)

    def _take(self, wait: float | None) -> list[tuple[list[Change], Future]] | None:
        """What is queued (waiting up to ``wait`` seconds for something, forever when None); None once closed."""
        deadline = None if wait is None else time.monotonic() + wait
        with self._cond:
            while not self._queue:
                if self._closed:
                    return None
                if deadline is None:
                    self._cond.wait(0.5)
                    continue
                left = deadline - time.monotonic()
                if left <= 0:
                    return []
                self._cond.wait(left)
            batch: list[tuple[list[Change], Future]] = []
            total = 0
            while self._queue and (not batch or total + len(self._queue[0][0]) <= self.max_changes):
                changes, fut = self._queue.popleft()
                if fut.set_running_or_notify_cancel():  # a request that gave up waiting is not stored
                    batch.append((changes, fut))
                    total += len(changes)
            return batch

    def _commit(self, batch: list[tuple[list[Change], Future]]) -> bool:
        """Store one group in its own transaction and answer its requests; False when it failed."""
        try:
            with self.wh.transaction() as conn:
                results = _store_groups(conn, [changes for changes, _ in batch])
        except BaseException as exc:  # noqa: BLE001 - every waiting request must hear about it
            for _, fut in batch:
                fut.set_exception(exc)
            return False
        self.transactions += 1
        for (_, fut), result in zip(batch, results):
            fut.set_result(result)
        return True

    def _run(self) -> None:
        bursts = self.wh.backend == "duckdb" and self.burst_seconds > 0 and hasattr(self.wh, "session")
        while True:
            batch = self._take(None)
            if batch is None:
                return
            if not batch:
                continue
            if not bursts:
                self._single(batch)
                continue
            try:
                full = self._burst(batch)
            except BaseException as exc:  # noqa: BLE001 - opening the file failed: answer, keep serving
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(exc)
                continue
            if full and self.yield_seconds > 0:
                time.sleep(self.yield_seconds)

    def _single(self, batch: list[tuple[list[Change], Future]]) -> None:
        self._commit(batch)

    def _burst(self, batch: list[tuple[list[Change], Future]]) -> bool:
        """DuckDB: one open of the file (``Warehouse.session``: the warehouse's own process and file locks held
        for the burst), one transaction per group; True when the burst ran its full length."""
        ends = time.monotonic() + self.burst_seconds
        with self.wh.session():
            self.sessions += 1
            while True:
                self._commit(batch)
                if time.monotonic() >= ends:
                    return True
                batch = self._take(self.linger_seconds)
                if not batch:
                    return False


# ----------------------------------------------------------------------------------------------------------------------
# Reading
# ----------------------------------------------------------------------------------------------------------------------


def pending_by_distributor(wh: Warehouse) -> dict[str, int]:
    """Pending inbox rows per distributor key."""
    with wh.transaction(read_only=True) as conn:
        rows = conn.query(
            "SELECT distributor, count(*) AS n FROM webhook_inbox WHERE status = 'pending' AND distributor IS NOT NULL "
            "GROUP BY distributor ORDER BY distributor"
        )
    return {r["distributor"]: int(r["n"]) for r in rows}


@dataclass
class InboxOverview:
    """What the sensor needs, read in one short transaction."""

    pending: dict[str, int]          # enabled distributors with pending rows
    unrouted: int                    # rows no distributor owns
    routing_version: str             # changes when distributors or their discovered forms change


def overview(wh: Warehouse) -> InboxOverview:
    with wh.transaction(read_only=True) as conn:
        rows = conn.query(
            "SELECT i.distributor, i.status, count(*) AS n FROM webhook_inbox i "
            "WHERE i.status IN ('pending', 'unrouted') GROUP BY i.distributor, i.status"
        )
        version = conn.query_one(
            "SELECT (SELECT count(*) FROM distributors) AS d, (SELECT max(updated_at) FROM distributors) AS u, "
            "(SELECT count(*) FROM distributor_forms) AS f"
        ) or {}
        enabled = {r["key"] for r in conn.query("SELECT key FROM distributors WHERE enabled")}
    pending = {r["distributor"]: int(r["n"]) for r in rows
               if r["status"] == "pending" and r["distributor"] in enabled}
    unrouted = sum(int(r["n"]) for r in rows if r["status"] == "unrouted")
    updated = version.get("u")
    stamp = updated.isoformat() if hasattr(updated, "isoformat") else str(updated)
    return InboxOverview(dict(sorted(pending.items())), unrouted,
                         f"{version.get('d', 0)}:{stamp}:{version.get('f', 0)}")


def summary(wh: Warehouse, status: str | None = None) -> dict[str, Any]:
    """Counts per status and distributor, the unrouted Page ids, and the newest errors (for the CLI and the API)."""
    if status is not None and status not in STATUSES:
        raise ValueError(f"unknown inbox status {status!r}: one of {', '.join(STATUSES)}")
    where, params = ("WHERE status = ?", [status]) if status else ("", [])
    with wh.transaction(read_only=True) as conn:
        rows = conn.query(
            f"SELECT status, distributor, count(*) AS n, sum(deliveries) AS deliveries, max(received_at) AS last "
            f"FROM webhook_inbox {where} GROUP BY status, distributor ORDER BY status, distributor",
            params,
        )
        unrouted = conn.query(
            "SELECT page_id, count(*) AS n, max(received_at) AS last FROM webhook_inbox WHERE status = 'unrouted' "
            "GROUP BY page_id ORDER BY n DESC, page_id LIMIT 100"
        ) if status in (None, "unrouted") else []
        errors = conn.query(
            f"SELECT leadgen_id, distributor, status, error FROM webhook_inbox WHERE error IS NOT NULL "
            f"{'AND status = ?' if status else ''} ORDER BY received_at DESC LIMIT 10",
            params,
        )
    totals: dict[str, int] = {}
    for r in rows:
        totals[r["status"]] = totals.get(r["status"], 0) + int(r["n"])
    return {
        "total": sum(totals.values()),
        "by_status": totals,
        "by_distributor": [
            {"status": r["status"], "distributor": r["distributor"], "rows": int(r["n"]),
             "deliveries": int(r["deliveries"] or 0),
             "last_received_at": r["last"].isoformat() if r["last"] is not None else None}
            for r in rows
        ],
        "unrouted_pages": [
            {"page_id": r["page_id"], "rows": int(r["n"]),
             "last_received_at": r["last"].isoformat() if r["last"] is not None else None}
            for r in unrouted
        ],
        "recent_errors": [dict(r) for r in errors],
    }


def reroute_unrouted(wh: Warehouse) -> int:
    """Route the ``unrouted`` rows whose Page or form now has a distributor; returns how many were routed.

    Pending rows of a distributor that was removed become ``unrouted`` first (and go to a new owner if there is one).
    """
    with wh.transaction() as conn:
        conn.execute(
            "UPDATE webhook_inbox SET status = 'unrouted', distributor = NULL WHERE status = 'pending' "
            "AND NOT EXISTS (SELECT 1 FROM distributors d WHERE d.key = webhook_inbox.distributor)"
        )
        rows = conn.query("SELECT leadgen_id, page_id, form_id FROM webhook_inbox WHERE status = 'unrouted'")
        if not rows:
            return 0
        owners = _owners(conn, (r["page_id"] for r in rows), (r["form_id"] for r in rows))
        routed = [(r["leadgen_id"], owners.route(r["page_id"], r["form_id"])) for r in rows]
        routed = [r for r in routed if r[1] is not None]
        if not routed:
            return 0
        conn.stage("inbox_routes", {"leadgen_id": "TEXT", "distributor": "TEXT"}, routed)
        conn.execute(
            "UPDATE webhook_inbox SET distributor = s.distributor, status = CASE WHEN EXISTS "
            "(SELECT 1 FROM lead_tombstones t WHERE t.meta_lead_id = s.leadgen_id) THEN 'deleted' ELSE 'pending' END "
            "FROM inbox_routes s WHERE webhook_inbox.leadgen_id = s.leadgen_id AND webhook_inbox.status = 'unrouted'"
        )
    log.info("webhook inbox: %d unrouted change(s) routed to a distributor", len(routed))
    return len(routed)


# ----------------------------------------------------------------------------------------------------------------------
# Processing
# ----------------------------------------------------------------------------------------------------------------------


def _attempts(error: str | None) -> int:
    match = _ATTEMPT.match(error or "")
    return int(match.group(1)) if match else 0


def _short(text: str) -> str:
    return text if len(text) <= _MAX_ERROR_LENGTH else text[: _MAX_ERROR_LENGTH - 1] + "…"


def process_inbox(
    wh: Warehouse,
    key: str,
    client_factory: Callable[[str], Any],
    *,
    limit: int = 500,
    max_attempts: int = MAX_ATTEMPTS,
) -> InboxResult:
    """Fetch, land and parse up to ``limit`` pending leads of one distributor; mark their inbox rows.

    Per lead: fetched → ``processed`` (or ``rejected`` when malformed); Meta's 100/33 "object does not exist" or
    another permanent error → ``failed`` with the message; transient failures (network, 5xx, throttling, a token or
    permission problem the operator may fix) stay ``pending`` with ``attempt N/M failed: …`` in ``error`` until
    ``max_attempts``, then ``failed``. Never raises for a Graph API failure; ``fatal`` tells a distributor-wide one.
    """
    from leads_pipeline.lib.distributors import registry as distributors
    from leads_pipeline.lib.ingest import store as ingest
    from leads_pipeline.lib.graph import (
        GraphError,
        MissingPermissionError,
        ThrottledError,
        TokenExpiredError,
        TokenInvalidError,
        TransientGraphError,
    )

    result = InboxResult(key)
    dist = distributors.get(wh, key)
    with wh.transaction(read_only=True) as conn:
        rows = conn.query(
            "SELECT i.leadgen_id, i.page_id, i.form_id, i.error, "
            "EXISTS (SELECT 1 FROM lead_tombstones t WHERE t.meta_lead_id = i.leadgen_id) AS tombstoned "
            "FROM webhook_inbox i WHERE i.distributor = ? AND i.status = 'pending' "
            "ORDER BY CASE WHEN i.error IS NULL THEN 0 ELSE 1 END, i.received_at, i.leadgen_id LIMIT ?",
            [key, int(limit)],
        )
    if not rows:
        return result
    result.selected = len(rows)
    by_id = {r["leadgen_id"]: r for r in rows}
    outcomes: dict[str, tuple[str, str | None]] = {}  # leadgen_id → (status, error)

    def retry(lead_id: str, message: str) -> None:
        attempt = _attempts(by_id[lead_id]["error"]) + 1
        if attempt >= max_attempts:
            outcomes[lead_id] = ("failed", _short(f"gave up after {attempt} attempts: {message}"))
        else:
            outcomes[lead_id] = ("pending", _short(f"attempt {attempt}/{max_attempts} failed: {message}"))

    for r in rows:
        if r["tombstoned"]:
            outcomes[r["leadgen_id"]] = ("deleted", None)
    wanted = [r for r in rows if r["leadgen_id"] not in outcomes]

    fetched: dict[str, dict[str, Any]] = {}
    if wanted:
        client = None
        try:
            client = client_factory(distributors.access_token(wh, key))
            page_tokens: dict[str, str] = {}
            try:
                for page in client.me_accounts():
                    if page.get("id") and page.get("access_token"):
                        page_tokens[str(page["id"])] = page["access_token"]
            except (TokenExpiredError, TokenInvalidError):
                raise
            except GraphError:
                pass  # a page token has no /me/accounts: it reads its own page's leads directly
            groups: dict[str | None, list[str]] = {}
            for r in wanted:
                groups.setdefault(page_tokens.get(r["page_id"] or ""), []).append(r["leadgen_id"])
            for page_token, ids in groups.items():
                reader = client.with_token(page_token) if page_token else client
                try:
                    answers = reader.get_leads_batch(ids)
                except (TokenExpiredError, TokenInvalidError, MissingPermissionError) as exc:
                    raise _DistributorFailure(exc.user_message) from exc
                except GraphError as exc:
                    for lead_id in ids:
                        retry(lead_id, str(exc))
                    result.errors.append(str(exc))
                    continue
                finally:
                    if reader is not client:
                        result.graph_requests += reader.request_count
                for lead_id, answer in answers.items():
                    if isinstance(answer, dict):
                        fetched[lead_id] = answer
                    elif isinstance(answer, (TransientGraphError, ThrottledError, TokenExpiredError,
                                             TokenInvalidError, MissingPermissionError)):
                        retry(lead_id, str(answer))
                    elif isinstance(answer, GraphError):  # 100/33 (ObjectNotFoundError) and other permanent errors
                        outcomes[lead_id] = ("failed", _short(str(answer)))
                    else:
                        outcomes[lead_id] = ("failed", "unexpected answer from the Graph API")
        except (_DistributorFailure, TokenExpiredError, TokenInvalidError, MissingPermissionError,
                distributors.DistributorError) as exc:
            message = exc.user_message if isinstance(exc, GraphError) else str(exc)
            result.fatal = message
            result.errors.append(message)
            for r in wanted:
                if r["leadgen_id"] not in outcomes and r["leadgen_id"] not in fetched:
                    retry(r["leadgen_id"], message)
        except Exception as exc:  # noqa: BLE001 - e.g. a token decrypt error: keep the rows, report, retry later
            from leads_pipeline.lib.security import redact

            message = redact(f"{type(exc).__name__}: {exc}")
            log.warning("webhook inbox %s: processing failed: %s", key, message)
            result.fatal = message
            result.errors.append(message)
            for r in wanted:
                if r["leadgen_id"] not in outcomes and r["leadgen_id"] not in fetched:
                    retry(r["leadgen_id"], message)
        finally:
            if client is not None:
                result.graph_requests += client.request_count
                close = getattr(client, "close", None)
                if callable(close):
                    close()

    result.fetched = len(fetched)
    if fetched:
        sync_id = f"{ingest.new_sync_id()}-webhook"
        pages: dict[tuple[str | None, str | None], list[dict[str, Any]]] = {}
        for lead_id, lead in fetched.items():
            row = by_id[lead_id]
            form_id = lead.get("form_id") or row["form_id"]
            pages.setdefault((row["page_id"], str(form_id) if form_id else None), []).append(lead)
        for (page_id, form_id), leads in pages.items():
            ingest.land_raw_page(wh, sync_id=sync_id, distributor=key, page_id=page_id, form_id=form_id,
                                 leads=leads)
        processed = ingest.process_raw(wh, key, default_region=dist.default_region)
        result.stored = processed.stored
        for lead_id in fetched:
            outcomes[lead_id] = ("processed", None)

    final = _mark(wh, key, outcomes)
    result.failed = final.get("failed", 0)
    result.retrying = final.get("pending", 0)
    result.deleted = final.get("deleted", 0)
    result.rejected = final.get("rejected", 0)
    for status, error in outcomes.values():
        if error and status == "failed" and error not in result.errors and len(result.errors) < 20:
            result.errors.append(error)
    log.info("webhook inbox %s: %d selected, %d fetched, %d stored, %d failed, %d retrying", key, result.selected,
             result.fetched, result.stored, result.failed, result.retrying)
    return result


class _DistributorFailure(Exception):
    """A failure of the distributor's token or permissions: every lead of this round waits for the next."""


def _mark(wh: Warehouse, key: str, outcomes: Mapping[str, tuple[str, str | None]]) -> dict[str, int]:
    """Record each row's outcome; fetched leads become ``processed``/``rejected``/``deleted`` by what the warehouse
    now holds (a malformed lead is in ``rejected_leads``; a lead deleted meanwhile is tombstoned). Returns how many
    of these rows now have each status."""
    if not outcomes:
        return {}
    with wh.transaction() as conn:
        conn.stage("inbox_outcomes", {"leadgen_id": "TEXT", "status": "TEXT", "error": "TEXT"},
                   [(lead_id, status, error) for lead_id, (status, error) in outcomes.items()])
        conn.execute(
            "UPDATE webhook_inbox SET "
            "status = CASE WHEN s.status <> 'processed' THEN s.status "
            "WHEN EXISTS (SELECT 1 FROM lead_tombstones t WHERE t.meta_lead_id = s.leadgen_id) THEN 'deleted' "
            "WHEN EXISTS (SELECT 1 FROM leads l WHERE l.meta_lead_id = s.leadgen_id) THEN 'processed' "
            "WHEN EXISTS (SELECT 1 FROM rejected_leads r WHERE r.meta_lead_id = s.leadgen_id "
            "AND r.distributor = ?) THEN 'rejected' ELSE 'processed' END, "
            "error = s.error, "
            "processed_at = CASE WHEN s.status = 'pending' THEN NULL ELSE CAST(? AS TIMESTAMPTZ) END "
            "FROM inbox_outcomes s WHERE webhook_inbox.leadgen_id = s.leadgen_id "
            "AND webhook_inbox.distributor = ? AND webhook_inbox.status = 'pending'",
            [key, _now(), key],
        )
        rows = conn.query(
            "SELECT w.status, count(*) AS n FROM webhook_inbox w JOIN inbox_outcomes s ON s.leadgen_id = w.leadgen_id "
            "GROUP BY w.status"
        )
    return {r["status"]: int(r["n"]) for r in rows}


def process_all(
    wh: Warehouse,
    key: str,
    client_factory: Callable[[str], Any],
    *,
    limit: int = 500,
    max_rounds: int = 20,
    max_attempts: int = MAX_ATTEMPTS,
) -> InboxResult:
    """:func:`process_inbox` round after round while full rounds make progress (at most ``max_rounds``)."""
    total = InboxResult(key)
    for _ in range(max(1, max_rounds)):
        round_result = process_inbox(wh, key, client_factory, limit=limit, max_attempts=max_attempts)
        total = total + round_result
        if round_result.fatal or round_result.selected < limit or round_result.done == 0:
            break
    return total
