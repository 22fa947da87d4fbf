"""The durable webhook inbox (table ``webhook_inbox``): Meta's ``leadgen`` notifications, kept until their lead is in.

Real-time ingestion has two halves; this module is the first and the inbox's state, :mod:`.process` the second.

**Receive** (HTTP, ``leads_pipeline.web.webhooks``): :func:`~.delivery.parse_delivery` checks the shape, then
:func:`store_changes` writes every change in one transaction *before* Meta gets its 200. The write is a set-based
upsert keyed on ``leadgen_id``: a re-delivery (Meta retries for 36 h and sometimes sends twice) only increments
``deliveries`` — except that it reopens a ``failed`` change (back to ``pending``, attempts reset): Meta sending the
lead again is the best sign it can be read now. :class:`InboxWriter` group-commits concurrent deliveries (one
transaction for all the requests waiting at that moment), which is what lets one DuckDB file take hundreds of
deliveries a second.

**Routing** follows form ownership (``leads_pipeline.lib.distributors.ownership``): a change goes to the distributor
that owns its ``form_id``, by its Page only when Meta sends no form id. A change for a form no one owns is kept as
``unrouted`` (never dropped, never guessed by Page: two distributors' forms can share a Page), and
:func:`reroute_unrouted` routes it once an owner appears. The same call moves ``pending`` changes whose form changed
owner, so a change always waits for the distributor that owns its form now.

Statuses of ``webhook_inbox.status``:

==================  ====================================================================================
``pending``         waiting to be fetched; ``next_attempt_at`` says when (NULL: now), ``attempts`` how many
                    tries failed so far and ``error`` the last reason
``processed``       the lead is in ``leads`` under this distributor
``rejected``        the lead was fetched but cannot be a lead: it is in ``rejected_leads`` with the reason
``deleted``         the id is tombstoned (privacy deletion): never fetched, never stored
``held_elsewhere``  another distributor already holds this lead id in ``leads``; ``error`` names it. Nothing
                    was stored for this one (a lead has one owner) and nothing was lost
``failed``          Meta would not give the lead through all the retries (~12 h), or refused it for good;
                    ``error`` says why. The scheduled sync reads every form, so it is not lost; a re-delivery
                    reopens it
``unrouted``        no distributor owns the form (or, without a form id, the Page); routed when one does
==================  ====================================================================================

PostgreSQL: every write here touches its rows in ``leadgen_id`` order (the staged batch is inserted sorted; updates
lock their rows sorted first), as the processor does, so concurrent writers wait for each other instead of
deadlocking. Every function takes a :class:`~leads_pipeline.lib.warehouse.Warehouse`; the SQL works on both backends.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from leads_pipeline.lib.distributors import ownership
from leads_pipeline.lib.warehouse import Conn, Warehouse, retry_conflicts

from .delivery import Change, change_json

log = logging.getLogger(__name__)

__all__ = [
    "STATUSES",
    "StoreResult",
    "InboxOverview",
    "store_changes",
    "store_groups",
    "reroute_unrouted",
    "lock_rows",
    "pending_by_distributor",
    "overview",
    "summary",
]

#: Every value ``webhook_inbox.status`` takes (see the module docstring).
STATUSES = ("pending", "processed", "rejected", "deleted", "held_elsewhere", "failed", "unrouted")

_STAGE = {"leadgen_id": "TEXT", "page_id": "TEXT", "form_id": "TEXT", "ad_id": "TEXT", "created_time": "BIGINT",
          "distributor": "TEXT", "deliveries": "BIGINT", "change": "JSON"}
_TOMBSTONED = "EXISTS (SELECT 1 FROM lead_tombstones t WHERE t.meta_lead_id = {id})"


def _now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class StoreResult:
    """What :func:`store_changes` did with one delivery's changes (counted per change)."""

    new: int = 0
    duplicates: int = 0
    unrouted: int = 0
    deleted: int = 0
    unrouted_page_ids: tuple[str, ...] = ()
    unrouted_form_ids: tuple[str, ...] = ()
    #: The distributors that have rows of this delivery pending now (the service's dispatcher processes them).
    pending_distributors: tuple[str, ...] = ()

    @property
    def changes(self) -> int:
        return self.new + self.duplicates


def lock_rows(conn: Conn, where: str, params: Sequence[Any] = ()) -> None:
    """PostgreSQL: lock the inbox rows matching ``where`` in ``leadgen_id`` order before a set-based UPDATE (whose
    own order is the plan's), so that two writers always queue on the same first row instead of deadlocking.
    DuckDB has one writer at a time: nothing to do."""
    if conn.backend == "postgres":
        conn.query(f"SELECT leadgen_id FROM webhook_inbox WHERE {where} ORDER BY leadgen_id FOR UPDATE", params)


# ----------------------------------------------------------------------------------------------------------------------
# Storing
# ----------------------------------------------------------------------------------------------------------------------


def store_changes(wh: Warehouse, changes: Sequence[Change]) -> StoreResult:
    """Upsert one delivery's changes into ``webhook_inbox`` in one transaction (see the module docstring)."""
    if not changes:
        return StoreResult()

    def write() -> StoreResult:
        with wh.transaction() as conn:
            return store_groups(conn, [list(changes)])[0]

    return retry_conflicts(write, what="webhook inbox store")


def store_groups(conn: Conn, groups: Sequence[Sequence[Change]]) -> list[StoreResult]:
    """Store several deliveries with one statement in the caller's transaction; each delivery gets its own
    :class:`StoreResult` (the group commit of :class:`~.writer.InboxWriter`)."""
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
    owners = ownership.route(conn, {(r[0].form_id, r[0].page_id) for r in merged.values()})
    staged = [(lead_id, c.page_id, c.form_id, c.ad_id or c.adgroup_id, c.created_time,
               owners.get((c.form_id, c.page_id)), count, change_json(c))
              for lead_id, (c, count) in sorted(merged.items())]
    conn.stage("inbox_delivery", _STAGE, staged)
    reopen = "webhook_inbox.status IN ('unrouted', 'failed')"
    returned = conn.query(
        "INSERT INTO webhook_inbox (leadgen_id, page_id, form_id, ad_id, created_time, distributor, received_at, "
        "deliveries, change, status, attempts) "
        "SELECT s.leadgen_id, s.page_id, s.form_id, s.ad_id, s.created_time, s.distributor, ?, s.deliveries, s.change, "
        f"CASE WHEN {_TOMBSTONED.format(id='s.leadgen_id')} THEN 'deleted' "
        "WHEN s.distributor IS NULL THEN 'unrouted' ELSE 'pending' END, 0 "
        "FROM inbox_delivery s ORDER BY s.leadgen_id "
        "ON CONFLICT (leadgen_id) DO UPDATE SET deliveries = webhook_inbox.deliveries + excluded.deliveries, "
        f"distributor = CASE WHEN {reopen} THEN excluded.distributor ELSE webhook_inbox.distributor END, "
        f"status = CASE WHEN {reopen} THEN excluded.status ELSE webhook_inbox.status END, "
        "attempts = CASE WHEN webhook_inbox.status = 'failed' THEN 0 ELSE webhook_inbox.attempts END, "
        "next_attempt_at = CASE WHEN webhook_inbox.status = 'failed' THEN NULL "
        "ELSE webhook_inbox.next_attempt_at END, "
        "error = CASE WHEN webhook_inbox.status = 'failed' THEN NULL ELSE webhook_inbox.error END, "
        "processed_at = CASE WHEN webhook_inbox.status = 'failed' THEN NULL ELSE webhook_inbox.processed_at END "
        "RETURNING leadgen_id, deliveries, status",
        [_now()],
    )
    outcome = {r["leadgen_id"]: r for r in returned}
    claimed: set[str] = set()
    results = []
    for group in groups:
        result = StoreResult()
        pages: list[str] = []
        forms: list[str] = []
        pending: list[str] = []
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
                if c.form_id and c.form_id not in forms:
                    forms.append(c.form_id)
            elif status == "deleted":
                result.deleted += 1
            elif status == "pending":
                owner = owners.get((c.form_id, c.page_id))
                if owner and owner not in pending:
                    pending.append(owner)
        result.pending_distributors = tuple(pending)
        result.unrouted_page_ids = tuple(pages)
        result.unrouted_form_ids = tuple(forms)
        results.append(result)
    return results


# ----------------------------------------------------------------------------------------------------------------------
# Routing again
# ----------------------------------------------------------------------------------------------------------------------


def reroute_unrouted(wh: Warehouse) -> int:
    """Give every waiting change the distributor that owns its form now; returns how many got a (new) distributor.

    ``unrouted`` changes whose form (or, without a form id, Page) has an owner become ``pending`` for it; ``pending``
    changes whose form changed owner move to the new one (with a fresh retry schedule), and those whose owner is gone
    (distributor removed, form released) become ``unrouted``. Called after every ownership change (the distributor
    registry does) and by each processing round, so nothing waits for an owner that already exists.
    """
    routed = retry_conflicts(lambda: _reroute(wh), what="webhook inbox re-routing")
    if routed:
        log.info("webhook inbox: %d waiting change(s) routed to the owner of their form", routed)
    return routed


def _reroute(wh: Warehouse) -> int:
    with wh.transaction() as conn:
        groups = conn.query(
            "SELECT form_id, page_id, distributor, count(*) AS n FROM webhook_inbox "
            "WHERE status IN ('pending', 'unrouted') GROUP BY form_id, page_id, distributor"
        )
        if not groups:
            return 0
        owners = ownership.route(conn, {(g["form_id"], g["page_id"]) for g in groups})
        moves: dict[tuple[str | None, str | None], str | None] = {}
        routed = 0
        for g in groups:
            owner = owners.get((g["form_id"], g["page_id"]))
            if owner != g["distributor"]:
                moves[(g["form_id"], g["page_id"])] = owner
                routed += int(g["n"]) if owner is not None else 0
        if not moves:
            return 0
        conn.stage("inbox_routes", {"form_id": "TEXT", "page_id": "TEXT", "distributor": "TEXT"},
                   [(f, p, d) for (f, p), d in moves.items()])
        match = ("webhook_inbox.status IN ('pending', 'unrouted') AND webhook_inbox.form_id IS NOT DISTINCT FROM "
                 "s.form_id AND webhook_inbox.page_id IS NOT DISTINCT FROM s.page_id AND "
                 "webhook_inbox.distributor IS DISTINCT FROM s.distributor")
        lock_rows(conn, f"EXISTS (SELECT 1 FROM inbox_routes s WHERE {match})")
        conn.execute(
            "UPDATE webhook_inbox SET distributor = s.distributor, status = CASE WHEN s.distributor IS NULL "
            f"THEN 'unrouted' WHEN {_TOMBSTONED.format(id='webhook_inbox.leadgen_id')} THEN 'deleted' "
            "ELSE 'pending' END, attempts = 0, next_attempt_at = NULL, error = NULL "
            f"FROM inbox_routes s WHERE {match}"
        )
    return routed


# ----------------------------------------------------------------------------------------------------------------------
# Reading
# ----------------------------------------------------------------------------------------------------------------------


def _iso(value: Any) -> str | None:
    return value.isoformat() if hasattr(value, "isoformat") else (None if value is None else str(value))


def pending_by_distributor(wh: Warehouse) -> dict[str, int]:
    """Pending inbox rows per distributor key (due now or waiting for their next attempt)."""
    with wh.transaction(read_only=True) as conn:
        rows = conn.query(
            "SELECT distributor, count(*) AS n FROM webhook_inbox WHERE status = 'pending' AND distributor IS NOT NULL "
            "GROUP BY distributor ORDER BY distributor"
        )
    return {r["distributor"]: int(r["n"]) for r in rows}


@dataclass
class InboxOverview:
    """What the sensor needs, read in one short transaction."""

    pending: dict[str, int]                 # enabled distributors with rows due now
    unrouted: int                           # rows no distributor owns
    routing_version: str                    # changes when distributors or form ownership change
    waiting: int = 0                        # pending rows whose next attempt is later
    next_attempt_at: datetime | None = None  # the earliest of those


def overview(wh: Warehouse, now: datetime | None = None) -> InboxOverview:
    """Rows due per enabled distributor (a row retried later is not due until its ``next_attempt_at``), unrouted
    rows, and a version string of the routing inputs (the sensor re-routes when it changes)."""
    at = now or _now()
    with wh.transaction(read_only=True) as conn:
        rows = conn.query(
            "SELECT i.distributor, i.status, i.next_attempt_at IS NULL OR i.next_attempt_at <= ? AS due, "
            "count(*) AS n, min(i.next_attempt_at) AS next_at FROM webhook_inbox i "
            "WHERE i.status IN ('pending', 'unrouted') GROUP BY 1, 2, 3",
            [at],
        )
        version = conn.query_one(
            "SELECT (SELECT count(*) FROM distributors) AS d, (SELECT max(updated_at) FROM distributors) AS u, "
            "(SELECT count(*) FROM form_owners) AS f, (SELECT max(claimed_at) FROM form_owners) AS c"
        ) or {}
        enabled = {r["key"] for r in conn.query("SELECT key FROM distributors WHERE enabled")}
    pending: dict[str, int] = {}
    waiting, next_at = 0, None
    for r in rows:
        if r["status"] != "pending" or r["distributor"] not in enabled:
            continue
        if r["due"]:
            pending[r["distributor"]] = pending.get(r["distributor"], 0) + int(r["n"])
        else:
            waiting += int(r["n"])
            next_at = r["next_at"] if next_at is None or r["next_at"] < next_at else next_at
    unrouted = sum(int(r["n"]) for r in rows if r["status"] == "unrouted")
    stamp = f"{version.get('d', 0)}:{_iso(version.get('u'))}:{version.get('f', 0)}:{_iso(version.get('c'))}"
    return InboxOverview(dict(sorted(pending.items())), unrouted, stamp, waiting, next_at)


def summary(wh: Warehouse, status: str | None = None) -> dict[str, Any]:
    """The inbox's truth for the CLI: counts per status and distributor (pending ones with their next attempt),
    the unrouted Page and form ids, and the newest errors with their attempts."""
    if status is not None and status not in STATUSES:
        raise ValueError(f"unknown inbox status {status!r}: one of {', '.join(STATUSES)}")
    where, params = ("WHERE status = ?", [status]) if status else ("", [])
    with wh.transaction(read_only=True) as conn:
        rows = conn.query(
            f"SELECT status, distributor, count(*) AS n, sum(deliveries) AS deliveries, max(received_at) AS last, "
            f"min(next_attempt_at) AS next_at, max(attempts) AS attempts "
            f"FROM webhook_inbox {where} GROUP BY status, distributor ORDER BY status, distributor",
            params,
        )
        unrouted = conn.query(
            "SELECT page_id, form_id, count(*) AS n, max(received_at) AS last FROM webhook_inbox "
            "WHERE status = 'unrouted' GROUP BY page_id, form_id ORDER BY n DESC, page_id, form_id LIMIT 100"
        ) if status in (None, "unrouted") else []
        errors = conn.query(
            f"SELECT leadgen_id, distributor, status, attempts, next_attempt_at, error FROM webhook_inbox "
            f"WHERE error IS NOT NULL {'AND status = ?' if status else ''} "
            f"ORDER BY coalesce(processed_at, received_at) DESC, leadgen_id LIMIT 10",
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
             "deliveries": int(r["deliveries"] or 0), "last_received_at": _iso(r["last"]),
             **({"next_attempt_at": _iso(r["next_at"]), "max_attempts": int(r["attempts"] or 0)}
                if r["status"] == "pending" else {})}
            for r in rows
        ],
        "unrouted": [
            {"page_id": r["page_id"], "form_id": r["form_id"], "rows": int(r["n"]), "last_received_at": _iso(r["last"])}
            for r in unrouted
        ],
        "recent_errors": [
            {**r, "attempts": int(r["attempts"] or 0), "next_attempt_at": _iso(r["next_attempt_at"])}
            for r in errors
        ],
    }
