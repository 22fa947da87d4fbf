"""Reading leads: list with filters/search/pagination, one lead with its timeline, recent leads, live stats.

Every read takes the caller (``actor``) and sees only the caller's distributors (``scope.py``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from leads_pipeline.lib.warehouse import Conn, Warehouse

from ._db import loads, parse_when
from .errors import InvalidInput, LeadNotFound
from .rules import STATUSES, check_status
from .scope import require_visible_distributor, require_visible_lead, scope_clause
from .users import Principal, resolve_actor, visible_user

# Columns of a lead item (``leads`` plus the assignee's email and name).
LEAD_COLUMNS: tuple[str, ...] = (
    "meta_lead_id", "distributor", "page_id", "form_id", "ad_id", "ad_name", "adset_id", "adset_name", "campaign_id",
    "campaign_name", "created_time", "is_organic", "platform", "full_name", "first_name", "last_name", "email",
    "phone", "city", "country", "custom_fields", "disclaimer_responses", "status", "assigned_to", "contact_id",
    "first_seen_at", "updated_at", "status_changed_at", "first_contacted_at",
)
_JSON_COLUMNS = ("custom_fields", "disclaimer_responses")
_SELECT_LEAD = (", ".join(f"l.{c}" for c in LEAD_COLUMNS)
                + ", u.email AS assigned_to_email, u.name AS assigned_to_name"
                + " FROM leads l LEFT JOIN users u ON u.id = l.assigned_to")

# sort key → column (prefix '-' for descending). Ties are broken by meta_lead_id, so pages never overlap.
SORTS: dict[str, str] = {
    "created_time": "l.created_time",
    "status_changed_at": "l.status_changed_at",
    "first_contacted_at": "l.first_contacted_at",
    "updated_at": "l.updated_at",
    "first_seen_at": "l.first_seen_at",
    "full_name": "l.full_name",
    "status": "l.status",
    "distributor": "l.distributor",
    "meta_lead_id": "l.meta_lead_id",
}
FILTER_KEYS = ("distributor", "status", "search", "assigned_to", "created_from", "created_to")
UNASSIGNED = ("unassigned", "none")
MAX_PER_PAGE = 500
_PHONE_QUERY = re.compile(r"^[\d\s()+\-./]+$")


@dataclass(frozen=True)
class Page:
    items: list[dict[str, Any]]
    total: int
    page: int
    per_page: int

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / self.per_page))

    def to_dict(self) -> dict[str, Any]:
        return {"items": self.items, "total": self.total, "page": self.page, "per_page": self.per_page,
                "pages": self.pages}


@dataclass
class _Where:
    clauses: list[str] = field(default_factory=list)
    params: list[Any] = field(default_factory=list)

    def add(self, clause: str, *params: Any) -> None:
        self.clauses.append(clause)
        self.params.extend(params)

    @property
    def sql(self) -> str:
        return (" WHERE " + " AND ".join(self.clauses)) if self.clauses else ""


def _as_list(value: str | Iterable[str], name: str) -> list[str]:
    """A filter's values: one value, "a,b" or a list; a filter given with no value in it (``?status=,``) is refused
    rather than matching nothing or everything."""
    items = [p.strip() for p in value.split(",")] if isinstance(value, str) else [str(v).strip() for v in value]
    items = [v for v in items if v]
    if not items:
        raise InvalidInput(f"The {name} filter names nothing: give one value or several separated by commas.")
    return items


def lead_filter(conn: Conn, principal: Principal, *, distributor: str | Iterable[str] | None = None,
                status: str | Iterable[str] | None = None, search: str | None = None,
                assigned_to: str | None = None, created_from: Any = None, created_to: Any = None) -> _Where:
    """The WHERE clause of ``list_leads`` (and of bulk requests by filter), over ``leads l``, always within the
    scope of ``principal`` (a filter only narrows it).

    - ``distributor`` / ``status``: one value, a comma-separated string, or a list.
    - ``search``: case-insensitive substring of full name, first/last name, email or phone; a query that looks
      like a phone number (digits, spaces, ``+-().``) also matches the phone's digits, ignoring a leading 0/00
      trunk or international prefix (so ``0532 123 45 67`` finds ``+905321234567``).
    - ``assigned_to``: a user id or email, or ``"unassigned"``.
    - ``created_from`` (inclusive) / ``created_to`` (exclusive; a bare date includes that whole day).
    """
    w = _Where()
    clause, params = scope_clause(principal, "l.distributor")
    if clause:
        w.add(clause, *params)
    if distributor:
        keys = _as_list(distributor, "distributor")
        w.add(f"l.distributor IN ({', '.join('?' * len(keys))})", *keys)
    if status:
        statuses = [check_status(s) for s in _as_list(status, "status")]
        w.add(f"l.status IN ({', '.join('?' * len(statuses))})", *statuses)
    if search is not None and search.strip():
        q = search.strip().lower()
        text_cols = ("l.full_name", "l.first_name", "l.last_name", "l.email", "l.phone")
        ors = [f"strpos(lower(COALESCE({c}, '')), ?) > 0" for c in text_cols]
        params: list[Any] = [q] * len(text_cols)
        digits = re.sub(r"\D", "", q).lstrip("0")
        if digits and _PHONE_QUERY.match(q):
            ors.append("strpos(regexp_replace(COALESCE(l.phone, ''), '[^0-9]', '', 'g'), ?) > 0")
            params.append(digits)
        w.add("(" + " OR ".join(ors) + ")", *params)
    if assigned_to is not None and str(assigned_to).strip():
        if str(assigned_to).strip().lower() in UNASSIGNED:
            w.add("l.assigned_to IS NULL")
        else:
            w.add("l.assigned_to = ?", visible_user(conn, principal, str(assigned_to))["id"])
    start = parse_when(created_from, "created_from")
    end = parse_when(created_to, "created_to", end_of_day=True)
    if start is not None:
        w.add("l.created_time >= ?", start)
    if end is not None:
        w.add("l.created_time < ?", end)
    return w


def check_filter(filter: Mapping[str, Any] | None) -> dict[str, Any]:
    filt = dict(filter or {})
    unknown = sorted(set(filt) - set(FILTER_KEYS))
    if unknown:
        raise InvalidInput(f"Unknown filter {', '.join(unknown)}: use {', '.join(FILTER_KEYS)}.")
    return filt


def _order_by(sort: str) -> str:
    key = (sort or "-created_time").strip()
    desc = key.startswith("-")
    col = SORTS.get(key.lstrip("-+"))
    if col is None:
        raise InvalidInput(f"Cannot sort by {sort!r}: use one of {', '.join(SORTS)} (prefix '-' for descending).")
    direction = "DESC" if desc else "ASC"
    return f" ORDER BY {col} {direction} NULLS LAST, l.meta_lead_id {direction}"


def lead_item(row: Mapping[str, Any]) -> dict[str, Any]:
    item = dict(row)
    for c in _JSON_COLUMNS:
        if c in item:
            item[c] = loads(item[c])
    return item


def list_leads(wh: Warehouse, *, actor: Any, distributor: str | Iterable[str] | None = None,
               status: str | Iterable[str] | None = None, search: str | None = None,
               assigned_to: str | None = None, created_from: Any = None, created_to: Any = None, page: int = 1,
               per_page: int = 50, sort: str = "-created_time") -> Page:
    """One page of the caller's leads matching every given filter (see ``lead_filter``), sorted by ``sort``."""
    if int(page) < 1:
        raise InvalidInput("page starts at 1.")
    if not 1 <= int(per_page) <= MAX_PER_PAGE:
        raise InvalidInput(f"per_page must be between 1 and {MAX_PER_PAGE}.")
    page, per_page = int(page), int(per_page)
    order = _order_by(sort)
    with wh.transaction(read_only=True) as conn:
        w = lead_filter(conn, resolve_actor(conn, actor), distributor=distributor, status=status, search=search,
                        assigned_to=assigned_to,
                        created_from=created_from, created_to=created_to)
        total = int(conn.scalar(f"SELECT count(*) FROM leads l{w.sql}", w.params) or 0)
        rows = conn.query(f"SELECT {_SELECT_LEAD}{w.sql}{order} LIMIT ? OFFSET ?",
                          [*w.params, per_page, (page - 1) * per_page])
    return Page(items=[lead_item(r) for r in rows], total=total, page=page, per_page=per_page)


def recent_leads(wh: Warehouse, limit: int = 10, distributor: str | None = None, *, actor: Any
                 ) -> list[dict[str, Any]]:
    """The caller's newest leads by Meta's ``created_time`` (the seed's "recent leads")."""
    if not 1 <= int(limit) <= 1000:
        raise InvalidInput("limit must be between 1 and 1000.")
    with wh.transaction(read_only=True) as conn:
        w = lead_filter(conn, resolve_actor(conn, actor), distributor=distributor)
        rows = conn.query(f"SELECT {_SELECT_LEAD}{w.sql}{_order_by('-created_time')} LIMIT ?", [*w.params, int(limit)])
    return [lead_item(r) for r in rows]


def stats(wh: Warehouse, distributor: str | None = None, *, actor: Any) -> dict[str, int]:
    """The seed's ``{"total","new","assigned","contacted","converted","rejected"}``, counted live from ``leads``
    over the caller's distributors (or one of them: another is ``DistributorNotVisible``)."""
    counts = ", ".join(f"count(CASE WHEN status = '{s}' THEN 1 END) AS {s}" for s in STATUSES)
    with wh.transaction(read_only=True) as conn:
        principal = resolve_actor(conn, actor)
        w = _Where()
        if distributor:
            require_visible_distributor(principal, distributor)
            w.add("distributor = ?", distributor)
        else:
            clause, params = scope_clause(principal, "distributor")
            if clause:
                w.add(clause, *params)
        row = conn.query_one(f"SELECT count(*) AS total, {counts} FROM leads{w.sql}", w.params) or {}
    return {k: int(row.get(k) or 0) for k in ("total", *STATUSES)}


def timeline(conn: Conn, lead_id: str) -> list[dict[str, Any]]:
    rows = conn.query(
        "SELECT i.id, i.kind, i.actor, u.email AS actor_email, i.from_status, i.to_status, i.assigned_to, "
        "a.email AS assigned_to_email, i.direction, i.outcome, i.body, i.occurred_at, i.recorded_at, i.details "
        "FROM lead_interactions i LEFT JOIN users u ON u.id = i.actor LEFT JOIN users a ON a.id = i.assigned_to "
        "WHERE i.meta_lead_id = ? ORDER BY i.occurred_at, i.id",
        [lead_id],
    )
    for r in rows:
        r["details"] = loads(r["details"])
    return rows


def tombstoned(conn: Conn, ids: list[str]) -> list[str]:
    """Which of ``ids`` were erased on a privacy request (only ever told about leads the caller may see)."""
    if not ids:
        return []
    if len(ids) == 1:
        rows = conn.query("SELECT meta_lead_id FROM lead_tombstones WHERE meta_lead_id = ?", ids)
    else:
        conn.stage("crm_lookup", {"meta_lead_id": "TEXT"}, [(i,) for i in ids])
        rows = conn.query("SELECT t.meta_lead_id FROM lead_tombstones t JOIN crm_lookup s "
                          "ON s.meta_lead_id = t.meta_lead_id")
    found = {r["meta_lead_id"] for r in rows}
    return [i for i in ids if i in found]


def deleted_visible(conn: Conn, principal: Principal, ids: list[str]) -> list[str]:
    """``tombstoned`` limited to the caller's distributors: "deleted earlier" would confirm another's lead existed."""
    gone = tombstoned(conn, ids)
    if not gone or principal.scope is None:
        return gone
    rows = conn.query(f"SELECT meta_lead_id, distributor FROM lead_tombstones WHERE meta_lead_id IN "
                      f"({', '.join('?' * len(gone))})", gone)
    return [r["meta_lead_id"] for r in rows if principal.sees(r["distributor"])]


def get_lead(wh: Warehouse, lead_id: str, *, actor: Any) -> dict[str, Any]:
    """The lead with its assignee and its timeline (``lead_interactions``, oldest first), if the caller may see it."""
    lead_id = str(lead_id).strip()
    with wh.transaction(read_only=True) as conn:
        principal = resolve_actor(conn, actor)
        row = conn.query_one(f"SELECT {_SELECT_LEAD} WHERE l.meta_lead_id = ?", [lead_id])
        if row is None:
            raise LeadNotFound(lead_id, deleted=deleted_visible(conn, principal, [lead_id]))
        require_visible_lead(principal, row, lead_id)
        item = lead_item(row)
        item["timeline"] = timeline(conn, lead_id)
    return item
