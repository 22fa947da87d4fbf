"""Who is calling: API keys for scripts, passwords and signed session cookies for the console, CSRF tokens.

API keys
    ``lp_`` + 43 url-safe random characters (256 bits). Shown once, when created; the warehouse keeps only the
    SHA-256 of the whole key (``api_keys.key_hash``) and its first characters (``prefix``, to tell keys apart in
    lists). A request names its key with ``Authorization: Bearer lp_…`` or ``X-API-Key: lp_…``; a revoked key, a key
    of a deactivated user, or an unknown key is refused (401). A key acts as its user, with the user's role.

Console
    A user logs in with email and password (``users set-password``; stored as scrypt with a per-user salt). The
    session is a signed cookie (Starlette's ``SessionMiddleware``, key derived from ``LEADS_SECRET_KEY``) holding the
    user id, a fingerprint of the password hash (changing the password ends every session) and the CSRF token.
    Every request re-reads the user, so a deactivated user is out at once.

CSRF
    Every unsafe request authenticated by the session cookie (console forms, or ``/api`` called from a browser) must
    carry the session's CSRF token: form field ``csrf_token`` or header ``X-CSRF-Token``. Requests authenticated by an
    API key are exempt: a browser never adds that header by itself. The cookie is also ``SameSite=Lax``.

Everything that changes credentials is written to ``audit_log`` (never a key, a hash or a password).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Any

from leads_pipeline.lib import crm
from leads_pipeline.lib.crm.users import require_user, resolve_actor
from leads_pipeline.lib.warehouse import Conn, Warehouse

API_KEY_PREFIX = "lp_"
API_KEY_SHOWN_CHARS = 11  # "lp_" + 8 characters: enough to tell keys apart, far too few to guess the rest
API_KEY_BYTES = 32
MAX_KEY_NAME = 100
# last_used_at is refreshed at most this often per key (a write per request would serialise DuckDB readers).
LAST_USED_RESOLUTION = dt.timedelta(minutes=1)

MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 1024
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
SCRYPT_SALT_BYTES = 16
SCRYPT_DKLEN = 32

SESSION_COOKIE = "lp_session"
SESSION_MAX_AGE = 8 * 3600
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
_SESSION_KEY_CONTEXT = b"leads_pipeline web session cookie v1"


class AuthError(Exception):
    """Credentials are missing, malformed, unknown or revoked (HTTP 401)."""


@dataclass(frozen=True)
class Caller:
    """The authenticated principal of a request, and how it authenticated (``api_key`` or ``session``)."""

    principal: crm.Principal
    via: str
    api_key_id: str | None = None

    @property
    def id(self) -> str:
        return self.principal.id

    @property
    def role(self) -> str:
        return self.principal.role


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _audit(conn: Conn, *, actor: str, action: str, entity_type: str, entity_id: str, after: Any) -> None:
    from leads_pipeline.lib.crm._db import audit

    audit(conn, actor=actor, action=action, entity_type=entity_type, entity_id=entity_id, before=None, after=after,
          at=_now())


# ------------------------------------------------------------------------------------------------- API keys


def generate_api_key() -> str:
    return API_KEY_PREFIX + secrets.token_urlsafe(API_KEY_BYTES)


def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def _may_manage_keys_of(principal: crm.Principal, user_id: str) -> None:
    """Users manage their own keys; superadmins (and the CLI) manage everyone's."""
    if principal.id == user_id and principal.active:
        return
    crm.authorize(principal, "user.manage")


def create_api_key(wh: Warehouse, user: str, *, name: str | None = None, actor: Any = "cli") -> tuple[str, dict]:
    """A new API key for an active ``user`` (id or email). Returns ``(key, row)``: the key is shown only now."""
    label = " ".join((name or "").split()) or "api key"
    if len(label) > MAX_KEY_NAME:
        raise crm.InvalidInput(f"The key name is longer than {MAX_KEY_NAME} characters.")
    key = generate_api_key()
    now = _now()
    with wh.transaction() as conn:
        principal = resolve_actor(conn, actor)
        target = require_user(conn, user, active=True)
        _may_manage_keys_of(principal, target["id"])
        key_id = f"key_{secrets.token_hex(6)}"
        row = {"id": key_id, "user_id": target["id"], "user_email": target["email"], "name": label,
               "prefix": key[:API_KEY_SHOWN_CHARS], "created_at": now, "last_used_at": None, "revoked_at": None}
        conn.execute("INSERT INTO api_keys (id, user_id, name, prefix, key_hash, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                     [key_id, target["id"], label, row["prefix"], hash_api_key(key), now])
        _audit(conn, actor=principal.id, action="api_key.create", entity_type="api_key", entity_id=key_id,
               after={"user_id": target["id"], "name": label, "prefix": row["prefix"]})
    return key, row


_KEY_COLUMNS = ("k.id, k.user_id, u.email AS user_email, k.name, k.prefix, k.created_at, k.last_used_at, "
                "k.revoked_at FROM api_keys k LEFT JOIN users u ON u.id = k.user_id")


def list_api_keys(wh: Warehouse, user: str | None = None, *, include_revoked: bool = True) -> list[dict]:
    """API keys (never the key or its hash), oldest first; only ``user``'s when given."""
    where, params = [], []
    with wh.transaction(read_only=True) as conn:
        if user:
            where.append("k.user_id = ?")
            params.append(require_user(conn, user)["id"])
        if not include_revoked:
            where.append("k.revoked_at IS NULL")
        sql = f"SELECT {_KEY_COLUMNS}" + (" WHERE " + " AND ".join(where) if where else "")
        return conn.query(sql + " ORDER BY k.created_at, k.id", params)


def revoke_api_key(wh: Warehouse, ref: str, *, actor: Any = "cli") -> dict:
    """Revoke a key named by its id (``key_…``) or its shown prefix (``lp_…``). Revoking twice is a no-op."""
    ref = (ref or "").strip()
    if not ref:
        raise crm.InvalidInput("Name the key to revoke by its id (key_…) or prefix (lp_…).")
    now = _now()
    with wh.transaction() as conn:
        principal = resolve_actor(conn, actor)
        rows = conn.query(f"SELECT {_KEY_COLUMNS} WHERE k.id = ? OR k.prefix = ?", [ref, ref])
        if not rows:
            raise crm.InvalidInput(f"No API key {ref!r}: see `leads-pipeline users api-key list`.")
        if len(rows) > 1:
            raise crm.InvalidInput(f"{ref!r} names {len(rows)} keys: revoke by id instead (key_…).")
        row = rows[0]
        _may_manage_keys_of(principal, row["user_id"])
        if row["revoked_at"] is None:
            conn.execute("UPDATE api_keys SET revoked_at = ? WHERE id = ?", [now, row["id"]])
            _audit(conn, actor=principal.id, action="api_key.revoke", entity_type="api_key", entity_id=row["id"],
                   after={"user_id": row["user_id"], "prefix": row["prefix"]})
            row = {**row, "revoked_at": now}
    return row


def authenticate_api_key(wh: Warehouse, key: str) -> Caller:
    """The caller an API key stands for; ``AuthError`` when it is not a live key of an active user."""
    key = (key or "").strip()
    if not key.startswith(API_KEY_PREFIX) or len(key) > 200 or not key.isascii():
        raise AuthError("Malformed API key: keys start with 'lp_' (create one with `leads-pipeline users api-key "
                        "create EMAIL`).")
    digest = hash_api_key(key)
    with wh.transaction(read_only=True) as conn:
        row = conn.query_one(
            "SELECT k.id AS key_id, k.revoked_at, k.last_used_at, u.id, u.name, u.email, u.role, u.active "
            "FROM api_keys k JOIN users u ON u.id = k.user_id WHERE k.key_hash = ?", [digest])
    if row is None:
        raise AuthError("Unknown API key.")
    if row["revoked_at"] is not None:
        raise AuthError("This API key was revoked; create a new one with `leads-pipeline users api-key create`.")
    if not row["active"]:
        raise AuthError(f"The user of this API key ({row['email']}) is deactivated.")
    now = _now()
    last = row["last_used_at"]
    if last is not None and last.tzinfo is None:
        last = last.replace(tzinfo=dt.timezone.utc)
    if last is None or now - last >= LAST_USED_RESOLUTION:
        with wh.transaction() as conn:
            conn.execute("UPDATE api_keys SET last_used_at = ? WHERE id = ?", [now, row["key_id"]])
    principal = crm.Principal(id=row["id"], role=row["role"], email=row["email"], name=row["name"], active=True)
    return Caller(principal, "api_key", row["key_id"])


def api_key_from_headers(headers: Any) -> str | None:
    """The key of ``Authorization: Bearer lp_…`` or ``X-API-Key``; None when neither is there."""
    value = headers.get("x-api-key")
    if value:
        return value.strip()
    auth = headers.get("authorization")
    if auth:
        scheme, _, token = auth.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthError("Unsupported Authorization header: use 'Bearer lp_…' (an API key).")
        return token.strip()
    return None


# ------------------------------------------------------------------------------------------------- passwords


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def hash_password(password: str) -> str:
    """``scrypt$N$r$p$<salt>$<hash>`` (base64), with a fresh 16-byte salt."""
    salt = secrets.token_bytes(SCRYPT_SALT_BYTES)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P,
                            dklen=SCRYPT_DKLEN)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, stored: str | None) -> bool:
    """Whether ``password`` matches ``stored`` (constant-time; False for anything malformed)."""
    if not stored or not isinstance(password, str):
        return False
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest)
        got = hashlib.scrypt(password.encode("utf-8"), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p),
                             dklen=len(expected))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, expected)


# Spent on unknown emails too, so a login's timing does not tell whether the account exists.
_DUMMY_HASH = hash_password(secrets.token_urlsafe(16))


def check_password_rules(password: str) -> str:
    if not isinstance(password, str) or len(password) < MIN_PASSWORD_LENGTH:
        raise crm.InvalidInput(f"A password needs at least {MIN_PASSWORD_LENGTH} characters.")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise crm.InvalidInput(f"A password has at most {MAX_PASSWORD_LENGTH} characters.")
    if not password.strip():
        raise crm.InvalidInput("A password cannot be only spaces.")
    return password


def set_password(wh: Warehouse, user: str, password: str, *, actor: Any = "cli") -> dict:
    """Set the console password of ``user`` (id or email). Ends the user's open console sessions."""
    check_password_rules(password)
    hashed = hash_password(password)
    with wh.transaction() as conn:
        principal = resolve_actor(conn, actor)
        target = require_user(conn, user)
        if principal.id != target["id"]:
            crm.authorize(principal, "user.manage")
        conn.execute("UPDATE users SET password_hash = ? WHERE id = ?", [hashed, target["id"]])
        _audit(conn, actor=principal.id, action="user.password", entity_type="user", entity_id=target["id"],
               after={"password": "set"})
    return target


def password_fingerprint(password_hash: str | None) -> str:
    """What a session remembers of the password hash: a new password ends older sessions."""
    return hashlib.sha256((password_hash or "").encode()).hexdigest()[:16]


def authenticate_password(wh: Warehouse, email: str, password: str) -> tuple[crm.Principal, str] | None:
    """``(principal, password fingerprint)`` for a right email + password of an active user; None otherwise."""
    email = (email or "").strip().lower()
    with wh.transaction(read_only=True) as conn:
        row = conn.query_one("SELECT id, name, email, role, active, password_hash FROM users WHERE email = ?",
                             [email]) if email else None
    if row is None or not row["password_hash"]:
        verify_password(password or "", _DUMMY_HASH)
        return None
    if not verify_password(password or "", row["password_hash"]) or not row["active"]:
        return None
    principal = crm.Principal(id=row["id"], role=row["role"], email=row["email"], name=row["name"], active=True)
    return principal, password_fingerprint(row["password_hash"])


def session_caller(wh: Warehouse, user_id: str, fingerprint: str) -> Caller | None:
    """The caller of a console session, if its user is still active and the password unchanged."""
    with wh.transaction(read_only=True) as conn:
        row = conn.query_one("SELECT id, name, email, role, active, password_hash FROM users WHERE id = ?",
                             [user_id])
    if row is None or not row["active"] or not row["password_hash"]:
        return None
    if not hmac.compare_digest(password_fingerprint(row["password_hash"]), fingerprint or ""):
        return None
    return Caller(crm.Principal(id=row["id"], role=row["role"], email=row["email"], name=row["name"], active=True),
                  "session")


# ------------------------------------------------------------------------------------------------- sessions, CSRF


def session_secret(secret_key: str | None) -> str:
    """The cookie-signing key: derived from the first key of ``LEADS_SECRET_KEY`` (never the Fernet key itself);
    random per process when no key is configured (sessions then end when the service restarts)."""
    first = (secret_key or "").split(",")[0].strip()
    if not first:
        return secrets.token_urlsafe(32)
    return hmac.new(first.encode(), _SESSION_KEY_CONTEXT, hashlib.sha256).hexdigest()


def csrf_token(session: dict) -> str:
    """The session's CSRF token (created on first use)."""
    token = session.get("csrf")
    if not isinstance(token, str) or len(token) < 20:
        token = secrets.token_urlsafe(32)
        session["csrf"] = token
    return token


def csrf_ok(session: dict, submitted: str | None) -> bool:
    expected = session.get("csrf")
    if not isinstance(expected, str) or not expected or not isinstance(submitted, str) or not submitted:
        return False
    return hmac.compare_digest(expected.encode(), submitted.encode())
