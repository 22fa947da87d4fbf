"""The rules of working a lead, as data: statuses and their transitions, interaction kinds, roles and permissions.

``docs/lead-operations.md`` shows the same tables; a test checks that the two agree.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .errors import InvalidInput, PermissionDenied

STATUSES: tuple[str, ...] = ("new", "assigned", "contacted", "converted", "rejected")

# from status → the statuses it may move to. ``converted`` is final; ``rejected`` may be reopened.
TRANSITIONS: dict[str, tuple[str, ...]] = {
    "new": ("assigned", "contacted", "rejected"),
    "assigned": ("contacted", "rejected"),
    "contacted": ("converted", "rejected"),
    "converted": (),
    "rejected": ("new", "assigned", "contacted"),  # a reopen, logged as kind 'reopen'
}

# Reopening = leaving 'rejected'.
REOPEN_FROM = "rejected"

# Statuses from which an outbound call/email/SMS moves the lead to 'contacted'.
CONTACT_MOVES_FROM: tuple[str, ...] = ("new", "assigned")

# Kinds of rows in lead_interactions written by this module (deletion leaves none: the lead's rows are erased).
INTERACTION_KINDS: tuple[str, ...] = ("status_change", "reopen", "assignment", "note", "call", "email", "sms")
CONTACT_KINDS: tuple[str, ...] = ("call", "email", "sms")
DIRECTIONS: tuple[str, ...] = ("outbound", "inbound")
OUTCOMES: dict[str, tuple[str, ...]] = {
    "call": ("answered", "no_answer", "voicemail", "busy", "wrong_number", "failed"),
    "email": ("sent", "replied", "bounced", "received"),
    "sms": ("sent", "delivered", "replied", "failed", "received"),
}

ROLES: tuple[str, ...] = ("superadmin", "staff")

# Every permission checked anywhere ("distributor.manage" is for the distributor settings commands and pages).
ACTIONS: tuple[str, ...] = (
    "lead.list",
    "lead.show",
    "lead.status",
    "lead.assign",
    "lead.note",
    "lead.log",
    "lead.delete",
    "user.list",
    "user.manage",
    "distributor.manage",
)

# Role → the actions it may perform. Bulk requests need the permission of their action (bulk delete → lead.delete).
PERMISSIONS: dict[str, frozenset[str]] = {
    "superadmin": frozenset(ACTIONS),
    "staff": frozenset({"lead.list", "lead.show", "lead.status", "lead.assign", "lead.note", "lead.log", "user.list"}),
}

# Human wording of actions, for PermissionDenied messages.
_ACTION_WORDS = {
    "lead.list": "list leads",
    "lead.show": "view leads",
    "lead.status": "change lead statuses",
    "lead.assign": "assign leads",
    "lead.note": "add notes",
    "lead.log": "log calls, emails and SMS",
    "lead.delete": "delete leads",
    "user.list": "list users",
    "user.manage": "add or deactivate users",
    "distributor.manage": "change distributor settings",
}


def allowed_transitions(from_status: str) -> tuple[str, ...]:
    return TRANSITIONS.get(from_status, ())


def transition_problem(from_status: str, to_status: str, assigned_to: str | None) -> str | None:
    """Why the lead cannot move from ``from_status`` to ``to_status`` (None when it can)."""
    if from_status == to_status:
        return f"already '{to_status}'"
    allowed = allowed_transitions(from_status)
    if to_status not in allowed:
        if not allowed:
            return f"'{from_status}' is final"
        return f"'{from_status}' can only go to {', '.join(allowed)}"
    if to_status == "assigned" and not assigned_to:
        return "it has no assignee; assign it to a user instead (`lead assign ID USER`)"
    return None


def check_status(status: str) -> str:
    s = (status or "").strip().lower()
    if s not in STATUSES:
        raise InvalidInput(f"Unknown status {status!r}: use one of {', '.join(STATUSES)}.")
    return s


def check_role(role: str) -> str:
    r = (role or "").strip().lower()
    if r not in ROLES:
        raise InvalidInput(f"Unknown role {role!r}: use one of {', '.join(ROLES)}.")
    return r


def can(user: Any, action: str) -> bool:
    """Whether ``user`` (a ``Principal``, a user dict, or anything with ``role``) may perform ``action``."""
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r} (known: {', '.join(ACTIONS)})")
    role = user.get("role") if isinstance(user, Mapping) else getattr(user, "role", None)
    active = user.get("active", True) if isinstance(user, Mapping) else getattr(user, "active", True)
    return bool(active) and action in PERMISSIONS.get(role or "", frozenset())


def authorize(user: Any, action: str) -> None:
    """Raise ``PermissionDenied`` unless ``user`` may perform ``action`` (see ``PERMISSIONS``)."""
    if can(user, action):
        return
    if isinstance(user, Mapping):
        who, role, active = user.get("email") or user.get("id"), user.get("role"), user.get("active", True)
    else:
        who = getattr(user, "email", None) or getattr(user, "id", None)
        role, active = getattr(user, "role", None), getattr(user, "active", True)
    if not active:
        raise PermissionDenied(f"User {who} is deactivated and may not {_ACTION_WORDS[action]}.")
    raise PermissionDenied(
        f"{who} ({role or 'no role'}) may not {_ACTION_WORDS[action]}; ask a superadmin to do it."
    )
