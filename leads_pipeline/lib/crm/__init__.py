"""Working leads: statuses and their transitions, assignment, notes, calls/emails/SMS, deletion, bulk requests.

Used by the CLI (``leads-pipeline lead …``, ``leads``, ``users``) and the HTTP service. Every operation and every read
takes an ``actor`` (a user id or email, or ``"cli"`` / ``"system"``) and sees only the actor's distributors
(``scope.py``: tenancy lives here, not in the callers). Every change checks the actor's role (``rules.PERMISSIONS``),
runs in one transaction, and appends to ``lead_interactions`` and ``audit_log``. See ``docs/lead-operations.md``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from leads_pipeline.lib.lazy import lazy_exports

# Names resolved on first use (PEP 562): a reader of ``crm.rules`` (the marts, `leads-pipeline stats`) does not
# import the operations, the users and their dependencies (0.1 s of the CLI's start-up, issue #14 P6).
_WHERE = {
    "BulkInvalidTransition": "errors",
    "CrmError": "errors",
    "DistributorNotVisible": "errors",
    "InvalidInput": "errors",
    "InvalidTransition": "errors",
    "LeadNotFound": "errors",
    "PermissionDenied": "errors",
    "UnknownUser": "errors",
    "UserExists": "errors",
    "BulkResult": "operations",
    "add_note": "operations",
    "assign": "operations",
    "bulk": "operations",
    "change_status": "operations",
    "delete_lead": "operations",
    "log_interaction": "operations",
    "FILTER_KEYS": "queries",
    "SORTS": "queries",
    "Page": "queries",
    "get_lead": "queries",
    "list_leads": "queries",
    "recent_leads": "queries",
    "stats": "queries",
    "ACTIONS": "rules",
    "CONTACT_KINDS": "rules",
    "DIRECTIONS": "rules",
    "OUTCOMES": "rules",
    "PERMISSIONS": "rules",
    "ROLES": "rules",
    "STATUSES": "rules",
    "TRANSITIONS": "rules",
    "allowed_transitions": "rules",
    "authorize": "rules",
    "can": "rules",
    "visible_distributors": "scope",
    "Principal": "users",
    "add_user": "users",
    "deactivate_user": "users",
    "get_user": "users",
    "list_users": "users",
    "principal_of": "users",
    "reactivate_user": "users",
    "resolve_actor": "users",
    "set_user_distributors": "users",
}

if TYPE_CHECKING:
    from .errors import (
        BulkInvalidTransition,
        CrmError,
        DistributorNotVisible,
        InvalidInput,
        InvalidTransition,
        LeadNotFound,
        PermissionDenied,
        UnknownUser,
        UserExists,
    )
    from .operations import BulkResult, add_note, assign, bulk, change_status, delete_lead, log_interaction
    from .queries import FILTER_KEYS, SORTS, Page, get_lead, list_leads, recent_leads, stats
    from .rules import (
        ACTIONS,
        CONTACT_KINDS,
        DIRECTIONS,
        OUTCOMES,
        PERMISSIONS,
        ROLES,
        STATUSES,
        TRANSITIONS,
        allowed_transitions,
        authorize,
        can,
    )
    from .scope import visible_distributors
    from .users import (
        Principal,
        add_user,
        deactivate_user,
        get_user,
        list_users,
        principal_of,
        reactivate_user,
        resolve_actor,
        set_user_distributors,
    )


__getattr__, __dir__ = lazy_exports(__name__, globals(), _WHERE)

__all__ = [
    "ACTIONS", "CONTACT_KINDS", "DIRECTIONS", "FILTER_KEYS", "OUTCOMES", "PERMISSIONS", "ROLES", "SORTS",
    "STATUSES", "TRANSITIONS", "BulkInvalidTransition", "BulkResult", "CrmError", "DistributorNotVisible",
    "InvalidInput", "InvalidTransition", "LeadNotFound", "Page", "PermissionDenied", "Principal", "UnknownUser",
    "UserExists", "add_note", "add_user", "allowed_transitions", "assign", "authorize", "bulk", "can",
    "change_status", "deactivate_user", "delete_lead", "get_lead", "get_user", "list_leads", "list_users",
    "log_interaction", "principal_of", "reactivate_user", "recent_leads", "resolve_actor", "set_user_distributors",
    "stats", "visible_distributors",
]
