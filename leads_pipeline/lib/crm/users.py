"""Staff users (the people who work leads) and the acting principal of an operation.

A user has an id (``usr_…``), a name, a unique lower-cased email and a role (``superadmin`` or ``staff``); users are
deactivated, never deleted, so the audit trail and past assignments keep pointing at someone. Operations name their
actor by user id or email, or as one of the built-in principals ``cli`` and ``system`` (superadmin-equivalent: the
operator at the command line, and the pipeline itself).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from leads_pipeline.lib.normalise import is_email
from leads_pipeline.lib.warehouse import Conn, Warehouse

from ._db import audit, utcnow
from .errors import InvalidInput, PermissionDenied, UnknownUser, UserExists
from .rules import authorize, check_role

BUILTIN_ACTORS = ("cli", "system")
_USER_COLUMNS = "id, name, email, role, active, created_at"


@dataclass(frozen=True)
class Principal:
    """Who performs an operation: a user, or a built-in actor (``cli``/``system``, superadmin-equivalent)."""

    id: str
    role: str
    email: str | None = None
    name: str | None = None
    active: bool = True

    @property
    def builtin(self) -> bool:
        return self.id in BUILTIN_ACTORS

    @property
    def label(self) -> str:
        return self.email or self.id


def login_email(email: str) -> str:
    """A user's email as they log in with it: trimmed and lower-cased, refused unless it is an address as typed."""
    e = (email or "").strip().lower()
    if not is_email(e):
        raise InvalidInput(f"{email!r} is not an email address (name@example.com).")
    return e


def find_user(conn: Conn, ref: str) -> dict[str, Any] | None:
    """The user whose id or (case-insensitive) email is ``ref``, active or not; None when there is none."""
    ref = (ref or "").strip()
    if not ref:
        return None
    return conn.query_one(f"SELECT {_USER_COLUMNS} FROM users WHERE id = ? OR email = ?", [ref, ref.lower()])


def require_user(conn: Conn, ref: str, *, active: bool = False) -> dict[str, Any]:
    user = find_user(conn, ref)
    if user is None:
        raise UnknownUser(f"No user {ref!r}: see `leads-pipeline users list`, or add one with `users add`.")
    if active and not user["active"]:
        raise UnknownUser(f"User {user['email']} is deactivated; choose an active user.")
    return user


def resolve_actor(conn: Conn, actor: Any) -> Principal:
    """The ``Principal`` named by ``actor``: ``"cli"``/``"system"``, a user id or email, a user dict or a Principal.

    A user must exist and be active (a deactivated user may do nothing).
    """
    if isinstance(actor, Principal):
        if actor.builtin:
            return actor
        actor = actor.id
    elif isinstance(actor, dict):
        actor = actor.get("id") or actor.get("email")
    ref = str(actor or "").strip()
    if not ref:
        raise InvalidInput("Every operation needs an actor: a user id or email, or 'cli' / 'system'.")
    if ref.lower() in BUILTIN_ACTORS:
        return Principal(id=ref.lower(), role="superadmin", name=ref.lower())
    user = find_user(conn, ref)
    if user is None:
        raise UnknownUser(f"Unknown acting user {ref!r}: add them with `leads-pipeline users add` first.")
    if not user["active"]:
        raise PermissionDenied(f"User {user['email']} is deactivated and may not act on leads.")
    return Principal(id=user["id"], role=user["role"], email=user["email"], name=user["name"], active=True)


def add_user(wh: Warehouse, name: str, email: str, role: str, *, actor: Any = "cli") -> dict[str, Any]:
    """Create a user; ``email`` is trimmed and lower-cased and must be unique. Returns the user."""
    name = (name or "").strip()
    if not name:
        raise InvalidInput("A user needs a name.")
    email_n = login_email(email)
    role = check_role(role)
    now = utcnow()
    with wh.transaction() as conn:
        principal = resolve_actor(conn, actor)
        authorize(principal, "user.manage")
        if conn.scalar("SELECT count(*) FROM users WHERE email = ?", [email_n]):
            raise UserExists(f"A user with email {email_n} already exists.")
        user_id = f"usr_{secrets.token_hex(6)}"
        conn.execute("INSERT INTO users (id, name, email, role, active, created_at) VALUES (?, ?, ?, ?, TRUE, ?)",
                     [user_id, name, email_n, role, now])
        user = {"id": user_id, "name": name, "email": email_n, "role": role, "active": True, "created_at": now}
        audit(conn, actor=principal.id, action="user.add", entity_type="user", entity_id=user_id, before=None,
              after={k: v for k, v in user.items() if k != "created_at"}, at=now)
    return user


def list_users(wh: Warehouse, *, include_inactive: bool = True) -> list[dict[str, Any]]:
    where = "" if include_inactive else " WHERE active"
    with wh.transaction(read_only=True) as conn:
        return conn.query(f"SELECT {_USER_COLUMNS} FROM users{where} ORDER BY created_at, email")


def get_user(wh: Warehouse, user: str) -> dict[str, Any]:
    """The user with this id or email (raises ``UnknownUser``)."""
    with wh.transaction(read_only=True) as conn:
        return require_user(conn, user)


def _set_active(wh: Warehouse, user: str, active: bool, actor: Any) -> dict[str, Any]:
    now = utcnow()
    with wh.transaction() as conn:
        principal = resolve_actor(conn, actor)
        authorize(principal, "user.manage")
        row = require_user(conn, user)
        if bool(row["active"]) != active:
            conn.execute("UPDATE users SET active = ? WHERE id = ?", [active, row["id"]])
            audit(conn, actor=principal.id, action="user.activate" if active else "user.deactivate",
                  entity_type="user", entity_id=row["id"], before={"active": not active}, after={"active": active},
                  at=now)
            row = {**row, "active": active}
    return row


def deactivate_user(wh: Warehouse, user: str, *, actor: Any = "cli") -> dict[str, Any]:
    """Deactivate a user: they can no longer act or be assigned; their past work and assignments stay."""
    return _set_active(wh, user, False, actor)


def reactivate_user(wh: Warehouse, user: str, *, actor: Any = "cli") -> dict[str, Any]:
    return _set_active(wh, user, True, actor)
