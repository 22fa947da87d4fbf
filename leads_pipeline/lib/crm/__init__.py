"""Working leads: statuses and their transitions, assignment, notes, calls/emails/SMS, deletion, bulk requests.

Used by the CLI (``leads-pipeline lead …``, ``leads``, ``users``) and the HTTP service. Every operation and every read
takes an ``actor`` (a user id or email, or ``"cli"`` / ``"system"``) and sees only the actor's distributors
(``scope.py``: tenancy lives here, not in the callers). Every change checks the actor's role (``rules.PERMISSIONS``),
runs in one transaction, and appends to ``lead_interactions`` and ``audit_log``. See ``docs/lead-operations.md``.
"""

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

__all__ = [
    "ACTIONS", "CONTACT_KINDS", "DIRECTIONS", "FILTER_KEYS", "OUTCOMES", "PERMISSIONS", "ROLES", "SORTS",
    "STATUSES", "TRANSITIONS", "BulkInvalidTransition", "BulkResult", "CrmError", "DistributorNotVisible",
    "InvalidInput", "InvalidTransition", "LeadNotFound", "Page", "PermissionDenied", "Principal", "UnknownUser",
    "UserExists", "add_note", "add_user", "allowed_transitions", "assign", "authorize", "bulk", "can",
    "change_status", "deactivate_user", "delete_lead", "get_lead", "get_user", "list_leads", "list_users",
    "log_interaction", "principal_of", "reactivate_user", "recent_leads", "resolve_actor", "set_user_distributors",
    "stats", "visible_distributors",
]
