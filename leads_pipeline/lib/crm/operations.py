"""Lead operations: status, assign, note, call/email/SMS, delete (privacy request), and bulk requests.

Each operation runs in one transaction: resolve and authorize the actor, lock and validate the lead(s), then write
set-based (the targets are staged once and every table gets one statement), appending to ``lead_interactions``
(never updated in place) and to ``audit_log``. Anything refused raises a ``CrmError`` before a row is written, and
any failure rolls the whole operation back.

A single-lead operation takes the same set-based path as a bulk request over one lead, so the two can't disagree.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from leads_pipeline.lib.crm import privacy
from leads_pipeline.lib.warehouse import Conn, Warehouse

from ._db import audit, audit_many, dumps, parse_when, utcnow
from .backdate import FUTURE_TOLERANCE, at_of as _at, backdated as _backdated, dated as _dated
from .errors import BulkInvalidTransition, InvalidInput, InvalidTransition, LeadNotFound, UnknownUser
from .queries import check_filter, deleted_visible, lead_filter, tombstoned
from .rules import (
    CONTACT_KINDS,
    CONTACT_MOVES_FROM,
    DIRECTIONS,
    OUTCOMES,
    REOPEN_FROM,
    allowed_transitions,
    authorize,
    check_status,
    transition_problem,
)
from .scope import require_visible_lead
from .users import Principal, resolve_actor, visible_user

MAX_TEXT = 10_000
# Where a lead that is not (or no longer) in ``leads`` may still have personal data, for a delete request.
# (table, columns a handle may match, its payload): a lead id, a bad id as sent, or a record's `sha256:` key.
_ORPHAN_SOURCES = (("rejected_leads", ("meta_lead_id", "reject_key"), "CAST(payload AS TEXT)"),
                   ("raw_leads", ("meta_lead_id", "raw_key"), "CAST(payload AS TEXT)"),
                   ("webhook_inbox", ("leadgen_id",), "NULL"))
_STATE = "meta_lead_id, distributor, status, assigned_to, first_contacted_at, status_changed_at"
_PERSONAL = "full_name, first_name, last_name, email, phone"


@dataclass(frozen=True)
class BulkResult:
    """What a bulk request did (or, with ``dry_run``, would do): how many leads, and which."""

    count: int
    ids: list[str]
    action: str = ""
    dry_run: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"action": self.action, "count": self.count, "ids": self.ids, "dry_run": self.dry_run}


# ------------------------------------------------------------------------------------------------- loading targets


def _lock(conn: Conn) -> str:
    # PostgreSQL: lock the rows so concurrent operations on a lead queue up. DuckDB: writers are already serialised.
    return " FOR UPDATE" if conn.backend == "postgres" else ""


def _load_one(conn: Conn, lead_id: str, principal: Principal, columns: str = _STATE) -> dict[str, Any]:
    """The lead, when the caller may see it (outside the scope it is ``LeadNotFound``, as if it did not exist)."""
    row = conn.query_one(f"SELECT {columns} FROM leads WHERE meta_lead_id = ?{_lock(conn)}", [lead_id])
    if row is None:
        raise LeadNotFound(lead_id, deleted=deleted_visible(conn, principal, [lead_id]))
    return dict(require_visible_lead(principal, row, lead_id))


def _clean_ids(ids: str | Iterable[Any]) -> list[str]:
    raw = ids.split(",") if isinstance(ids, str) else list(ids)
    out = list(dict.fromkeys(s for s in (str(i).strip() for i in raw) if s))
    if not out:
        raise InvalidInput("No lead ids given.")
    return out


def _load_many(conn: Conn, ids: list[str], principal: Principal, columns: str = _STATE) -> list[dict[str, Any]]:
    """The leads with these ids, in the order given; ``LeadNotFound`` naming every unknown id (a lead outside the
    caller's scope counts as unknown, so one such id refuses the whole request)."""
    conn.stage("crm_ids", {"meta_lead_id": "TEXT"}, [(i,) for i in ids])
    rows = conn.query(
        f"SELECT {columns} FROM leads WHERE meta_lead_id IN (SELECT meta_lead_id FROM crm_ids){_lock(conn)}"
    )
    found = {r["meta_lead_id"]: r for r in rows if principal.sees(r["distributor"])}
    missing = [i for i in ids if i not in found]
    if missing:
        raise LeadNotFound(*missing, deleted=deleted_visible(conn, principal, missing), of=len(ids))
    return [found[i] for i in ids]


def _load_filtered(conn: Conn, filt: Mapping[str, Any], principal: Principal, columns: str = _STATE
                   ) -> list[dict[str, Any]]:
    w = lead_filter(conn, principal, **filt)
    cols = ", ".join(f"l.{c.strip()}" for c in columns.split(","))
    return conn.query(f"SELECT {cols} FROM leads l{w.sql} ORDER BY l.created_time, l.meta_lead_id{_lock(conn)}",
                      w.params)


# ------------------------------------------------------------------------------------------------- set-based writes


def _set_status(conn: Conn, rows: Sequence[Mapping[str, Any]], to_status: str, *, actor: str,
                at: dt.datetime | Mapping[str, dt.datetime], note: str | None = None,
                details: Mapping[str, Any] | None = None, recorded_at: dt.datetime | None = None) -> None:
    """Move ``rows`` to ``to_status``: one status_change/reopen interaction each, then one UPDATE of ``leads``.

    ``at`` dates the change (``status_changed_at``, the interaction's ``occurred_at``), for all rows or per lead id
    (a mapping: back-dated changes, see ``bulk``); ``recorded_at`` (default ``at``) is when it was written. Moving to
    'contacted' also sets ``first_contacted_at`` when it is still empty.
    """
    if not rows:
        return
    if recorded_at is None:
        if isinstance(at, Mapping):
            raise ValueError("per-lead times need recorded_at")
        recorded_at = at
    conn.stage("crm_status", {"meta_lead_id": "TEXT", "distributor": "TEXT", "from_status": "TEXT", "kind": "TEXT",
                              "changed_at": "TIMESTAMPTZ"},
               [(r["meta_lead_id"], r["distributor"], r["status"],
                 "reopen" if r["status"] == REOPEN_FROM else "status_change", _at(at, r["meta_lead_id"]))
                for r in rows])
    conn.execute(
        "INSERT INTO lead_interactions (meta_lead_id, distributor, kind, actor, from_status, to_status, body, "
        f"occurred_at, recorded_at, details) SELECT meta_lead_id, distributor, kind, ?, from_status, ?, "
        f"CAST(? AS TEXT), changed_at, ?, CAST(? AS {conn.dialect.json}) FROM crm_status",
        [actor, to_status, note, recorded_at, dumps(dict(details)) if details else None],
    )
    contact = (", first_contacted_at = COALESCE(leads.first_contacted_at, s.changed_at)" if to_status == "contacted"
               else "")
    conn.execute(
        # status_reason explains the status the parser gave ('no valid contact'); a staff change replaces it.
        f"UPDATE leads SET status = ?, status_reason = NULL, status_changed_at = s.changed_at, updated_at = ?{contact} "
        "FROM crm_status s WHERE leads.meta_lead_id = s.meta_lead_id",
        [to_status, recorded_at],
    )


def _assign(conn: Conn, rows: Sequence[Mapping[str, Any]], user: Mapping[str, Any], *, actor: str,
            at: dt.datetime | Mapping[str, dt.datetime], extra: Mapping[str, Any] | None = None,
            recorded_at: dt.datetime | None = None) -> list[tuple[str, str, Any, Any]]:
    """Assign ``rows`` to ``user``; 'new' leads move to 'assigned'. Returns their audit rows. ``at`` and
    ``recorded_at`` as in ``_set_status``."""
    extra = dict(extra or {})
    if recorded_at is None:
        if isinstance(at, Mapping):
            raise ValueError("per-lead times need recorded_at")
        recorded_at = at
    conn.stage("crm_assign", {"meta_lead_id": "TEXT", "distributor": "TEXT", "details": "JSON",
                              "changed_at": "TIMESTAMPTZ"},
               [(r["meta_lead_id"], r["distributor"], dumps({"previous": r["assigned_to"], **extra}),
                 _at(at, r["meta_lead_id"])) for r in rows])
    conn.execute(
        "INSERT INTO lead_interactions (meta_lead_id, distributor, kind, actor, assigned_to, occurred_at, "
        "recorded_at, details) SELECT meta_lead_id, distributor, 'assignment', ?, ?, changed_at, ?, details "
        "FROM crm_assign",
        [actor, user["id"], recorded_at],
    )
    conn.execute(
        "UPDATE leads SET assigned_to = ?, updated_at = ? WHERE meta_lead_id IN (SELECT meta_lead_id FROM crm_assign)",
        [user["id"], recorded_at],
    )
    fresh = [r for r in rows if r["status"] == "new"]
    _set_status(conn, fresh, "assigned", actor=actor, at=at, recorded_at=recorded_at,
                details={"via": "assignment", **extra})
    return [
        ("lead.assign", r["meta_lead_id"],
         {"status": r["status"], "assigned_to": r["assigned_to"]},
         {"status": "assigned" if r["status"] == "new" else r["status"], "assigned_to": user["id"], **extra})
        for r in rows
    ]


def _scrub(reason: str, lead: Mapping[str, Any]) -> str:
    """The reason with contact data masked, should someone type it in: any e-mail or phone number in any form, and
    the lead's names (``privacy.mask_personal``); the reason outlives the lead, in the tombstone and the audit log."""
    return privacy.mask_personal(reason, lead)


def _delete(conn: Conn, rows: Sequence[Mapping[str, Any]], *, actor: str, at: dt.datetime, reason: str,
            extra: Mapping[str, Any] | None = None) -> dict[str, int]:
    """Tombstone and erase ``rows``. The audit rows keep status and who/when/why, no personal data."""
    reasons = [_scrub(reason, r) for r in rows]
    conn.stage("crm_delete", {"meta_lead_id": "TEXT", "distributor": "TEXT", "reason": "TEXT"},
               [(r["meta_lead_id"], r["distributor"], why) for r, why in zip(rows, reasons)])
    conn.execute(
        "INSERT INTO lead_tombstones (meta_lead_id, distributor, deleted_at, deleted_by, reason) "
        "SELECT meta_lead_id, distributor, ?, ?, reason FROM crm_delete ON CONFLICT (meta_lead_id) DO NOTHING",
        [at, actor],
    )
    audit_many(conn, actor=actor, at=at, rows=[
        ("lead.delete", r["meta_lead_id"],
         {"distributor": r["distributor"], "status": r.get("status"), "assigned_to": r.get("assigned_to")},
         {"tombstone": True, "reason": why, **dict(extra or {})})
        for r, why in zip(rows, reasons)
    ])
    return privacy.erase_leads(conn, [r["meta_lead_id"] for r in rows])


# ------------------------------------------------------------------------------------------------- single-lead ops


def _text(value: str | None, what: str, *, required: bool) -> str | None:
    text = (value or "").strip()
    if not text:
        if required:
            raise InvalidInput(f"{what} is empty.")
        return None
    if len(text) > MAX_TEXT:
        raise InvalidInput(f"{what} is longer than {MAX_TEXT} characters.")
    return text


def _begin(conn: Conn, actor: Any, action: str) -> Principal:
    principal = resolve_actor(conn, actor)
    authorize(principal, action)
    return principal


def _assignee(conn: Conn, principal: Principal, ref: str, leads: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The active user ``ref`` names, who must be able to see every one of ``leads`` (a lead is only ever assigned to
    someone who can work it). To a staff caller, a user they cannot see does not exist."""
    user = visible_user(conn, principal, ref, active=True)
    target = resolve_actor(conn, user["id"])
    blind = sorted({str(r["distributor"]) for r in leads if not target.sees(r["distributor"])})
    if blind:
        raise UnknownUser(f"{user['email']} cannot see the leads of {', '.join(map(repr, blind))}: assign them to a "
                          "user of that distributor, or ask a superadmin to add it to theirs "
                          f"(`leads-pipeline users distributors {user['email']} --add KEY`).")
    return user


def _transition_error(lead: Mapping[str, Any], to_status: str, problem: str) -> InvalidTransition:
    allowed = allowed_transitions(lead["status"])
    reason = problem if to_status in allowed else None
    return InvalidTransition(lead["status"], to_status, allowed, lead_id=lead["meta_lead_id"], reason=reason)


def change_status(wh: Warehouse, lead_id: str, status: str, actor: Any, note: str | None = None) -> dict[str, Any]:
    """Move a lead to ``status`` if ``TRANSITIONS`` allows it (leaving 'rejected' is a reopen). ``note`` is kept
    on the status-change interaction."""
    to_status = check_status(status)
    note = _text(note, "The note", required=False)
    lead_id = str(lead_id).strip()
    now = utcnow()
    with wh.transaction() as conn:
        principal = _begin(conn, actor, "lead.status")
        lead = _load_one(conn, lead_id, principal)
        problem = transition_problem(lead["status"], to_status, lead["assigned_to"])
        if problem:
            raise _transition_error(lead, to_status, problem)
        _set_status(conn, [lead], to_status, actor=principal.id, at=now, note=note)
        reopen = lead["status"] == REOPEN_FROM
        audit(conn, actor=principal.id, action="lead.reopen" if reopen else "lead.status", entity_type="lead",
              entity_id=lead_id, before={"status": lead["status"]},
              after={"status": to_status, "with_note": bool(note)}, at=now)
    return {"meta_lead_id": lead_id, "from_status": lead["status"], "status": to_status, "reopen": reopen,
            "changed_at": now}


def assign(wh: Warehouse, lead_id: str, user: str, actor: Any) -> dict[str, Any]:
    """Assign a lead to an active user (id or email); a 'new' lead moves to 'assigned'."""
    lead_id = str(lead_id).strip()
    now = utcnow()
    with wh.transaction() as conn:
        principal = _begin(conn, actor, "lead.assign")
        lead = _load_one(conn, lead_id, principal)
        target = _assignee(conn, principal, user, [lead])
        audit_rows = _assign(conn, [lead], target, actor=principal.id, at=now)
        audit_many(conn, actor=principal.id, at=now, rows=audit_rows)
    return {"meta_lead_id": lead_id, "assigned_to": target["id"], "assigned_to_email": target["email"],
            "from_status": lead["status"], "status": audit_rows[0][3]["status"], "changed_at": now}


def _insert_interaction(conn: Conn, lead: Mapping[str, Any], *, kind: str, actor: str, at: dt.datetime,
                        occurred_at: dt.datetime, direction: str | None = None, outcome: str | None = None,
                        body: str | None = None) -> int:
    return int(conn.scalar(
        "INSERT INTO lead_interactions (meta_lead_id, distributor, kind, actor, direction, outcome, body, "
        "occurred_at, recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        [lead["meta_lead_id"], lead["distributor"], kind, actor, direction, outcome, body, occurred_at, at],
    ))


def add_note(wh: Warehouse, lead_id: str, text: str, actor: Any) -> dict[str, Any]:
    """Add a note to the lead's timeline."""
    body = _text(text, "The note", required=True)
    lead_id = str(lead_id).strip()
    now = utcnow()
    with wh.transaction() as conn:
        principal = _begin(conn, actor, "lead.note")
        lead = _load_one(conn, lead_id, principal)
        interaction_id = _insert_interaction(conn, lead, kind="note", actor=principal.id, at=now, occurred_at=now,
                                             body=body)
        conn.execute("UPDATE leads SET updated_at = ? WHERE meta_lead_id = ?", [now, lead_id])
        # The note's text may hold personal data: the audit row records that a note was added, not what it says.
        audit(conn, actor=principal.id, action="lead.note", entity_type="lead", entity_id=lead_id, before=None,
              after={"interaction_id": interaction_id, "length": len(body or "")}, at=now)
    return {"meta_lead_id": lead_id, "interaction_id": interaction_id, "recorded_at": now}


def log_interaction(wh: Warehouse, lead_id: str, kind: str, actor: Any, direction: str = "outbound",
                    outcome: str | None = None, body: str | None = None, occurred_at: Any = None) -> dict[str, Any]:
    """Log a call, email or SMS. An outbound one sets ``first_contacted_at`` (once: the first contact stays) and
    moves a 'new' or 'assigned' lead to 'contacted'."""
    kind = (kind or "").strip().lower()
    if kind not in CONTACT_KINDS:
        raise InvalidInput(f"Unknown interaction {kind!r}: use one of {', '.join(CONTACT_KINDS)}.")
    direction = (direction or "").strip().lower()
    if direction not in DIRECTIONS:
        raise InvalidInput(f"Unknown direction {direction!r}: use one of {', '.join(DIRECTIONS)}.")
    outcome = (outcome or "").strip().lower()
    if outcome not in OUTCOMES[kind]:
        noun = {"call": "a call", "email": "an email", "sms": "an SMS"}[kind]
        raise InvalidInput(f"Outcome of {noun}: use one of {', '.join(OUTCOMES[kind])} (got {outcome or 'none'!r}).")
    body = _text(body, f"The {kind} text", required=False)
    now = utcnow()
    when = parse_when(occurred_at, "occurred_at") or now
    if when > now + FUTURE_TOLERANCE:
        raise InvalidInput(f"occurred_at {when.isoformat()} is in the future.")
    lead_id = str(lead_id).strip()
    with wh.transaction() as conn:
        principal = _begin(conn, actor, "lead.log")
        lead = _load_one(conn, lead_id, principal)
        interaction_id = _insert_interaction(conn, lead, kind=kind, actor=principal.id, at=now, occurred_at=when,
                                             direction=direction, outcome=outcome, body=body)
        status, first = lead["status"], lead["first_contacted_at"]
        if direction == "outbound":
            first = first or when
            conn.execute("UPDATE leads SET first_contacted_at = COALESCE(first_contacted_at, ?), updated_at = ? "
                         "WHERE meta_lead_id = ?", [when, now, lead_id])
            if status in CONTACT_MOVES_FROM:
                # Dated when the contact occurred, but never before the lead's previous status change.
                changed_at = max(when, lead["status_changed_at"]) if lead["status_changed_at"] else when
                _set_status(conn, [lead], "contacted", actor=principal.id, at=changed_at, recorded_at=now,
                            details={"via": kind, "interaction_id": interaction_id})
                status = "contacted"
        else:
            conn.execute("UPDATE leads SET updated_at = ? WHERE meta_lead_id = ?", [now, lead_id])
        audit(conn, actor=principal.id, action=f"lead.{kind}", entity_type="lead", entity_id=lead_id,
              before={"status": lead["status"], "first_contacted_at": lead["first_contacted_at"]},
              after={"status": status, "first_contacted_at": first, "interaction_id": interaction_id,
                     "direction": direction, "outcome": outcome}, at=now)
    return {"meta_lead_id": lead_id, "interaction_id": interaction_id, "from_status": lead["status"],
            "status": status, "first_contacted_at": first}


def _orphan(conn: Conn, lead_id: str) -> dict[str, Any] | None:
    """A record absent from ``leads`` but with rows elsewhere: a quarantined one (by the id Meta sent, a bad one
    too, or — without a usable id — by the ``sha256:`` handle ``privacy.find_records`` shows), a lead not parsed
    yet, an inbox change. Its names and contacts come from its payload, to mask them in the reason."""
    present = {t for t, _ in privacy.present_tables(conn)}
    for table, columns, payload in _ORPHAN_SOURCES:
        if table in present:
            where = " OR ".join(f"{c} = ?" for c in columns)
            row = conn.query_one(f"SELECT distributor, {payload} AS payload FROM {table} WHERE {where} LIMIT 1",
                                 [lead_id] * len(columns))
            if row is not None:
                return {**privacy.person_of_payload(row["payload"]), "meta_lead_id": lead_id,
                        "distributor": row["distributor"], "status": None, "assigned_to": None}
    return None


def delete_lead(wh: Warehouse, lead_id: str, actor: Any, reason: str) -> dict[str, Any]:
    """A privacy request: erase the lead's personal data everywhere (``privacy.PERSONAL_DATA_TABLES``) and leave a
    ``lead_tombstones`` row (id, distributor, when, who, why) so that no sync, webhook or import brings it back.

    Also accepts the id of a lead only present as raw, rejected or inbox rows — a bad id as Meta sent it too — and
    the ``sha256:`` handle of a record without a usable id (``privacy.find_records`` finds it by a name, an e-mail
    or a phone); that handle is tombstoned, so the same record is never landed again.
    """
    why = _text(reason, "The reason for deleting", required=True) or ""
    lead_id = str(lead_id).strip()
    now = utcnow()
    with wh.transaction() as conn:
        principal = _begin(conn, actor, "lead.delete")
        lead = conn.query_one(f"SELECT {_STATE}, {_PERSONAL} FROM leads WHERE meta_lead_id = ?{_lock(conn)}",
                              [lead_id])
        if lead is None:
            gone = deleted_visible(conn, principal, [lead_id])
            lead = None if tombstoned(conn, [lead_id]) else _orphan(conn, lead_id)
            if lead is None:
                raise LeadNotFound(lead_id, deleted=gone)
        lead = require_visible_lead(principal, lead, lead_id)
        erased = _delete(conn, [lead], actor=principal.id, at=now, reason=why)
    return {"meta_lead_id": lead_id, "distributor": lead["distributor"], "deleted_at": now,
            "deleted_by": principal.id, "erased": erased}


# ------------------------------------------------------------------------------------------------- bulk

_BULK_ARGS = {"status": ({"status"}, {"note"}), "assign": ({"user"}, set()), "delete": ({"reason"}, set())}
_BULK_PERMISSION = {"status": "lead.status", "assign": "lead.assign", "delete": "lead.delete"}


def bulk(wh: Warehouse, action: str, *, ids: str | Iterable[Any] | None = None,
         filter: Mapping[str, Any] | None = None, actor: Any, dry_run: bool = False,
         at: Any = None, **args: Any) -> BulkResult:
    """Apply one action to many leads, all or nothing.

    - ``action='status'`` with ``status=`` (and optional ``note=``); ``'assign'`` with ``user=``; ``'delete'`` with
      ``reason=``.
    - Targets: ``ids`` (Meta lead ids, a list or "a,b,c"), or ``filter`` (the filters of ``list_leads``: distributor,
      status, search, assigned_to, created_from, created_to); not both, and not an empty filter.
    - Every target is validated first: an unknown id (``LeadNotFound``) or a status move not allowed for some lead
      (``BulkInvalidTransition``) refuses the whole request, naming the offending ids, and changes nothing.
    - Then the change is applied set-based in one transaction (ids staged once, one statement per table).
    - ``dry_run`` validates and returns what would be changed, without changing it.
    - ``at`` (status and assign only; for seeding history, e.g. the demo, and tests — people and services act now):
      when the change happened, one time for every target or a mapping lead id → time. Each must be in the past,
      not before the lead's ``created_time`` nor before its last status change; the interactions are dated then
      (``occurred_at``, ``status_changed_at``, ``first_contacted_at``) and recorded now (``recorded_at``, the audit
      row, which names the time given).
    """
    if action not in _BULK_ARGS:
        raise InvalidInput(f"Unknown bulk action {action!r}: use status, assign or delete.")
    required, optional = _BULK_ARGS[action]
    unknown = sorted(set(args) - required - optional)
    missing = sorted(k for k in required if args.get(k) in (None, ""))
    if unknown:
        raise InvalidInput(f"Bulk {action} does not take {', '.join(unknown)}.")
    if missing:
        raise InvalidInput(f"Bulk {action} needs {', '.join(missing)}.")
    if ids is not None and filter:
        raise InvalidInput("Give either ids or a filter, not both.")
    if ids is None:
        filt = {k: v for k, v in check_filter(filter).items() if v not in (None, "", [], ())}
        if not filt:
            raise InvalidInput("Give ids or at least one filter (an empty filter would select every lead).")
    to_status = check_status(args["status"]) if action == "status" else None
    note = _text(args.get("note"), "The note", required=False)
    reason = _text(args.get("reason"), "The reason for deleting", required=True) if action == "delete" else None
    now = utcnow()
    if at is not None and action == "delete":
        raise InvalidInput("A delete happens now: it takes no 'at'.")
    columns = f"{_STATE}, {_PERSONAL}" if action == "delete" else _STATE + (", created_time" if at is not None else "")
    with wh.transaction() as conn:
        principal = _begin(conn, actor, _BULK_PERMISSION[action])
        rows = (_load_many(conn, _clean_ids(ids), principal, columns) if ids is not None
                else _load_filtered(conn, filt, principal, columns))
        target = _assignee(conn, principal, args["user"], rows) if action == "assign" else None
        target_ids = [r["meta_lead_id"] for r in rows]
        if to_status is not None:
            groups: dict[tuple[str, str], list[str]] = {}
            for r in rows:
                problem = transition_problem(r["status"], to_status, r["assigned_to"])
                if problem:
                    groups.setdefault((r["status"], problem), []).append(r["meta_lead_id"])
            if groups:
                problems = [(f, why, i) for (f, why), i in groups.items()]
                raise BulkInvalidTransition(to_status, problems, allowed_transitions(problems[0][0]))
        when = _backdated(rows, at, now) if at is not None else now
        if dry_run or not rows:
            return BulkResult(len(rows), target_ids, action, dry_run)
        extra = {"bulk_id": f"bulk_{secrets.token_hex(6)}"}
        if action == "status":
            _set_status(conn, rows, to_status, actor=principal.id, at=when, recorded_at=now, note=note, details=extra)
            audit_many(conn, actor=principal.id, at=now, rows=_dated([
                ("lead.reopen" if r["status"] == REOPEN_FROM else "lead.status", r["meta_lead_id"],
                 {"status": r["status"]}, {"status": to_status, "with_note": bool(note), **extra}) for r in rows
            ], at, when))
        elif action == "assign":
            audit_many(conn, actor=principal.id, at=now, rows=_dated(
                _assign(conn, rows, target, actor=principal.id, at=when, recorded_at=now, extra=extra), at, when))
        else:
            _delete(conn, rows, actor=principal.id, at=now, reason=reason or "", extra=extra)
    return BulkResult(len(rows), target_ids, action, False)

