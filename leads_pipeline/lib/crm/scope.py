"""Tenancy: which distributors a caller may see, applied by every read and every change in ``lib/crm``.

Distributors are the customers; a staff user works the leads of the distributors named for them
(``user_distributors``), a superadmin (and the built-in ``cli`` / ``system`` actors) every distributor. The rule is
enforced here, in the library, not in the HTTP layer, so the API, the console, the CLI and anything added later get
it by calling ``lib/crm``. Outside their scope a caller is answered as if the thing did not exist: a lead is
``LeadNotFound`` (never "deleted earlier", which would confirm it existed), a distributor ``DistributorNotVisible``,
a user ``UnknownUser``; a filter only ever narrows the scope.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from leads_pipeline.lib.distributors import registry
from leads_pipeline.lib.warehouse import Warehouse

from .errors import DistributorNotVisible, LeadNotFound
from .users import Principal, resolve_actor


def scope_clause(principal: Principal, column: str) -> tuple[str | None, list[Any]]:
    """``(sql, params)`` restricting ``column`` (a distributor key) to the scope; ``(None, [])`` for no limit."""
    scope = principal.scope
    if scope is None:
        return None, []
    if not scope:
        return "FALSE", []
    keys = sorted(scope)
    return f"{column} IN ({', '.join('?' * len(keys))})", keys


def require_visible_distributor(principal: Principal, key: str) -> None:
    if not principal.sees(key):
        raise DistributorNotVisible(key)


def require_visible_lead(principal: Principal, lead: Mapping[str, Any] | None, lead_id: str) -> Mapping[str, Any]:
    """``lead`` when the caller may see it; ``LeadNotFound`` (with no hint that it exists) otherwise."""
    if lead is None or not principal.sees(lead["distributor"]):
        raise LeadNotFound(lead_id)
    return lead


def visible_distributors(wh: Warehouse, *, actor: Any) -> list[registry.Distributor]:
    """The distributors the caller may see, oldest first (every distributor list shown to a user comes from here)."""
    with wh.transaction(read_only=True) as conn:
        principal = resolve_actor(conn, actor)
    return [d for d in registry.list_all(wh) if principal.sees(d.key)]

