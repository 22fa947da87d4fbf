"""Staff users (the people who work leads) and the acting principal of an operation.

A user has an id (``usr_…``), a name, a unique lower-cased email and a role (``superadmin`` or ``staff``); users are
deactivated, never deleted, so the audit trail and past assignments keep pointing at someone. A staff user sees only the
distributors named for them (``user_distributors``; see ``scope.py``); a superadmin sees every distributor. Operations
name their actor by user id or email, or as one of the built-in principals ``cli`` and ``system``
(superadmin-equivalent: the operator at the command line, and the pipeline itself).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from leads_pipeline.lib.normalise import is_email
from leads_pipeline.lib.warehouse import Conn, Warehouse

from ._db import audit, utcnow
from .errors import InvalidInput, PermissionDenied, UnknownUser, UserExists
from .revocation import end_credentials
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
    distributors: frozenset[str] = field(default_factory=frozenset)

    @property
    def builtin(self) -> bool:
        return self.id in BUILTIN_ACTORS

    @property
    def scope(self) -> frozenset[str] | None:
        """The distributors this principal may see; None = every distributor (superadmins and the built-ins)."""
        return None if self.role == "superadmin" else self.distributors

    def sees(self, distributor: str | None) -> bool:
        scope = self.scope
        return scope is None or (distributor is not None and distributor in scope)

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


def user_distributors(conn: Conn, user_ids: Iterable[str]) -> dict[str, list[str]]:
    """user id → the distributor keys named for that user (sorted)."""
    ids = list(dict.fromkeys(user_ids))
    if not ids:
        return {}
    rows = conn.query(f"SELECT user_id, distributor FROM user_distributors WHERE user_id IN "
                      f"({', '.join('?' * len(ids))}) ORDER BY user_id, distributor", ids)
    out: dict[str, list[str]] = {i: [] for i in ids}
    for r in rows:
        out[r["user_id"]].append(r["distributor"])
    return out


def principal_of(conn: Conn, user: Mapping[str, Any]) -> Principal:
    """The Principal of a ``users`` row (id, name, email, role, active), with its distributors loaded.

    Every Principal built from a users row comes from here, so none is ever missing its scope.
    """
    keys = user_distributors(conn, [user["id"]])[user["id"]] if user["role"] != "superadmin" else []
    return Principal(id=user["id"], role=user["role"], email=user["email"], name=user["name"],
                     active=bool(user["active"]), distributors=frozenset(keys))


def with_distributors(conn: Conn, users: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """User dicts with ``distributors``: the keys named for a staff user, None for a superadmin (= every one)."""
    scopes = user_distributors(conn, [u["id"] for u in users if u["role"] != "superadmin"])
    return [{**u, "distributors": None if u["role"] == "superadmin" else scopes.get(u["id"], [])} for u in users]


def resolve_actor(conn: Conn, actor: Any) -> Principal:
    """The ``Principal`` named by ``actor``: ``"cli"``/``"system"``, a user id or email, a user dict or a Principal.

    A user must exist and be active (a deactivated user may do nothing). A user is always read afresh, scope
    included, even when a Principal is passed in: the warehouse, not the caller, says what a user may see.
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
    return principal_of(conn, user)


def _check_distributors(conn: Conn, role: str, distributors: Iterable[str]) -> list[str]:
    """The distributor keys, de-duplicated; each must exist, and only staff users are given any."""
    keys = list(dict.fromkeys(k for k in (str(d).strip() for d in distributors or ()) if k))
    if role == "superadmin" and keys:
        raise InvalidInput("A superadmin sees every distributor: give distributors to staff users only.")
    if keys:
        known = {r["key"] for r in conn.query(
            f"SELECT key FROM distributors WHERE key IN ({', '.join('?' * len(keys))})", keys)}
        unknown = [k for k in keys if k not in known]
        if unknown:
            raise InvalidInput(f"No distributor {', '.join(map(repr, unknown))}: see `leads-pipeline distributors "
                               "list` for the keys.")
    return keys


def _grant(conn: Conn, user_id: str, keys: Iterable[str], principal: Principal, now: Any) -> None:
    for key in keys:
        conn.execute("INSERT INTO user_distributors (user_id, distributor, granted_at, granted_by) "
                     "VALUES (?, ?, ?, ?)", [user_id, key, now, principal.id])


def add_user(wh: Warehouse, name: str, email: str, role: str, *, distributors: Iterable[str] = (),
             actor: Any = "cli") -> dict[str, Any]:
    """Create a user; ``email`` is trimmed and lower-cased and must be unique. A staff user sees only
    ``distributors`` (none given: no leads at all until some are named). Returns the user."""
    name = (name or "").strip()
    if not name:
        raise InvalidInput("A user needs a name.")
    email_n = login_email(email)
    role = check_role(role)
    now = utcnow()
    with wh.transaction() as conn:
        principal = resolve_actor(conn, actor)
        authorize(principal, "user.manage")
        keys = _check_distributors(conn, role, distributors)
        if conn.scalar("SELECT count(*) FROM users WHERE email = ?", [email_n]):
            raise UserExists(f"A user with email {email_n} already exists.")
        user_id = f"usr_{secrets.token_hex(6)}"
        conn.execute("INSERT INTO users (id, name, email, role, active, created_at) VALUES (?, ?, ?, ?, TRUE, ?)",
                     [user_id, name, email_n, role, now])
        _grant(conn, user_id, keys, principal, now)
        user = {"id": user_id, "name": name, "email": email_n, "role": role, "active": True, "created_at": now,
                "distributors": None if role == "superadmin" else keys}
        audit(conn, actor=principal.id, action="user.add", entity_type="user", entity_id=user_id, before=None,
              after={k: v for k, v in user.items() if k != "created_at"}, at=now)
    return user


def _visible_user_ids(conn: Conn, principal: Principal) -> set[str] | None:
    """The users a caller may see: everyone for a superadmin; for a staff user, themselves, the superadmins and the
    staff who share one of their distributors. None = every user."""
    scope = principal.scope
    if scope is None:
        return None
    ids = {principal.id}
    ids |= {r["id"] for r in conn.query("SELECT id FROM users WHERE role = 'superadmin'")}
    if scope:
        keys = sorted(scope)
        ids |= {r["user_id"] for r in conn.query(
            f"SELECT DISTINCT user_id FROM user_distributors WHERE distributor IN ({', '.join('?' * len(keys))})",
            keys)}
    return ids


def visible_user(conn: Conn, principal: Principal, ref: str, *, active: bool = False) -> dict[str, Any]:
    """``require_user`` as seen by ``principal``: a user they may not see is ``UnknownUser``, like one that does not
    exist."""
    user = find_user(conn, ref)
    visible = _visible_user_ids(conn, principal)
    if user is not None and visible is not None and user["id"] not in visible:
        user = None
    if user is None:
        raise UnknownUser(f"No user {ref!r}: see `leads-pipeline users list`, or add one with `users add`.")
    if active and not user["active"]:
        raise UnknownUser(f"User {user['email']} is deactivated; choose an active user.")
    return user


def list_users(wh: Warehouse, *, actor: Any, include_inactive: bool = True) -> list[dict[str, Any]]:
    """The users the caller may see (``_visible_user_ids``), each with its ``distributors``."""
    where = "" if include_inactive else " WHERE active"
    with wh.transaction(read_only=True) as conn:
        principal = resolve_actor(conn, actor)
        visible = _visible_user_ids(conn, principal)
        rows = conn.query(f"SELECT {_USER_COLUMNS} FROM users{where} ORDER BY created_at, email")
        rows = [r for r in rows if visible is None or r["id"] in visible]
        return with_distributors(conn, rows)


def get_user(wh: Warehouse, user: str, *, actor: Any = "cli") -> dict[str, Any]:
    """The user with this id or email, as the caller may see it (raises ``UnknownUser``)."""
    with wh.transaction(read_only=True) as conn:
        principal = resolve_actor(conn, actor)
        return with_distributors(conn, [visible_user(conn, principal, user)])[0]


def set_user_distributors(wh: Warehouse, user: str, distributors: Iterable[str], *, actor: Any = "cli"
                          ) -> dict[str, Any]:
    """Name the distributors a staff user may see (replacing the previous ones); audited. Superadmins only."""
    now = utcnow()
    with wh.transaction() as conn:
        principal = resolve_actor(conn, actor)
        authorize(principal, "user.manage")
        row = require_user(conn, user)
        keys = _check_distributors(conn, row["role"], distributors)
        before = user_distributors(conn, [row["id"]])[row["id"]]
        if sorted(before) != sorted(keys):
            conn.execute("DELETE FROM user_distributors WHERE user_id = ?", [row["id"]])
            _grant(conn, row["id"], keys, principal, now)
            audit(conn, actor=principal.id, action="user.distributors", entity_type="user", entity_id=row["id"],
                  before={"distributors": sorted(before)}, after={"distributors": sorted(keys)}, at=now)
        return with_distributors(conn, [row])[0]


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
            if not active:  # reactivation must not revive keys or sessions that may have leaked meanwhile
                end_credentials(conn, row["id"], at=now, actor=principal.id)
            row = {**row, "active": active}
        return with_distributors(conn, [row])[0]


def deactivate_user(wh: Warehouse, user: str, *, actor: Any = "cli") -> dict[str, Any]:
    """Deactivate a user: they can no longer act or be assigned; their past work and assignments stay."""
    return _set_active(wh, user, False, actor)


def reactivate_user(wh: Warehouse, user: str, *, actor: Any = "cli") -> dict[str, Any]:
    return _set_active(wh, user, True, actor)
