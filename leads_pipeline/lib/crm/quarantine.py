"""Reading the quarantine (``rejected_leads``): records that cannot be a lead, for the operator who fixes their cause.

Each row says which rule it broke and why, never its payload (which may hold personal data): the CLI's
``rejected list`` shows what to fix in Meta or in an import file, and the id to give ``privacy find`` when a person
asks. Scoped like every other read: a staff user sees only their distributors' records.
"""

from __future__ import annotations

from typing import Any

from leads_pipeline.lib.warehouse import Warehouse

from .errors import InvalidInput
from .scope import require_visible_distributor, scope_clause
from .users import resolve_actor

REASONS = ("missing_id", "bad_id", "bad_created_time", "bad_field_data")
_COLUMNS = "distributor, reject_key, meta_lead_id, form_id, page_id, reason, detail, first_seen_at, last_seen_at"


def list_rejected(wh: Warehouse, *, actor: Any, distributor: str | None = None, reason: str | None = None,
                  limit: int = 50) -> dict[str, Any]:
    """``{"total", "by_reason": {reason: n}, "items": [newest first, at most limit]}`` of the caller's quarantine."""
    if reason is not None and reason not in REASONS:
        raise InvalidInput(f"Unknown reason {reason!r}: use one of {', '.join(REASONS)}.")
    if not 1 <= int(limit) <= 10_000:
        raise InvalidInput("limit must be between 1 and 10000.")
    with wh.transaction(read_only=True) as conn:
        principal = resolve_actor(conn, actor)
        clauses, params = [], []
        scope, scope_params = scope_clause(principal, "distributor")
        if scope:
            clauses.append(scope)
            params += scope_params
        if distributor:
            require_visible_distributor(principal, distributor)
            clauses.append("distributor = ?")
            params.append(distributor)
        counts = conn.query("SELECT reason, count(*) AS n FROM rejected_leads"
                            + (" WHERE " + " AND ".join(clauses) if clauses else "")
                            + " GROUP BY reason ORDER BY reason", params)
        if reason:
            clauses.append("reason = ?")
            params.append(reason)
        where = " WHERE " + " AND ".join(clauses) if clauses else ""
        items = conn.query(f"SELECT {_COLUMNS} FROM rejected_leads{where} "
                           "ORDER BY last_seen_at DESC, distributor, reject_key LIMIT ?", [*params, int(limit)])
    by_reason = {r["reason"]: int(r["n"]) for r in counts}
    return {"total": sum(by_reason.values()), "by_reason": by_reason, "items": items}
