"""Who may call the HTTP service: API keys, console passwords, console sessions and the login limiter — their SQL.

The web layer (``web/auth.py``) only moves these between HTTP headers and cookies; every rule is here, so the CLI,
the API and the console agree, on DuckDB and PostgreSQL alike.

API keys
    ``lp_`` + 43 url-safe random characters (256 bits), shown once; the warehouse keeps their SHA-256 and first
    characters (``prefix``). A key acts as its user with the user's scope. Deactivating a user revokes their keys
    (and ends their sessions): reactivation gives back the account, never a key that may have leaked meanwhile.

Passwords
    scrypt, N=2¹⁷ r=8 p=1 (128 MiB and about half a second per hash, OWASP's figure), stored as
    ``scrypt$N$r$p$<salt>$<hash>``. Hashes of older parameters (N=2¹⁴ before) still verify and are rewritten with
    the current ones at the next successful login. At most ``HASH_CONCURRENCY`` hashes run at once, so a burst of
    logins queues instead of taking the machine's memory.

Sessions
    A console session is a ``web_sessions`` row: the browser holds a random token, the warehouse only its SHA-256,
    the user and an absolute ``expires_at`` (``SESSION_LIFETIME`` after the login; nothing moves it). Logout ends
    the row, so a cookie copied before logout is refused after it; a new password and deactivation end every
    session of the user.

Login limits
    Checked and counted in one statement before the password is looked at (an upsert per key returning the new
    count), so of any number of concurrent guesses at most the limit are verified. Two keys, each a fixed window:
    ``(account, client)`` — ``LoginLimits.per_account_client`` attempts — and ``client`` — ``per_client`` attempts,
    against one address spraying many accounts. There is deliberately no account-wide lock: one would let anyone
    lock anyone out (the superadmin too) with a few wrong passwords. A stranger's failures count against the
    stranger's address only; the client address is the peer, or behind configured proxies the first address of
    ``X-Forwarded-For`` they did not add themselves (``web/auth.client_address``), and an IPv6 client is counted
    by its /64. What remains is a guesser with many addresses: ``per_account_client`` guesses per address and
    window, each costing half a second of scrypt, against a password of at least 10 characters. A successful login
    clears its (account, client) counter; refused and failed attempts stay counted until the window ends.
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import hashlib
import hmac
import os
import secrets
import threading
from dataclasses import dataclass
from typing import Any

from leads_pipeline.lib.warehouse import Conn, Warehouse
from leads_pipeline.lib.warehouse.retry import retry_conflicts

from ._db import audit, utcnow
from .errors import InvalidInput
from .rules import authorize, can
from .revocation import end_sessions
from .users import Principal, principal_of, require_user, resolve_actor


class AuthError(Exception):
    """Credentials are missing, malformed, unknown or revoked (HTTP 401)."""


# ------------------------------------------------------------------------------------------------- API keys

API_KEY_PREFIX = "lp_"
API_KEY_SHOWN_CHARS = 11  # "lp_" + 8 characters: enough to tell keys apart, far too few to guess the rest
API_KEY_BYTES = 32
MAX_KEY_NAME = 100
# last_used_at is refreshed at most this often per key (a write per request would serialise DuckDB readers).
LAST_USED_RESOLUTION = dt.timedelta(minutes=1)
_USER_OF = "u.id, u.name, u.email, u.role, u.active"


def generate_api_key() -> str:
    return API_KEY_PREFIX + secrets.token_urlsafe(API_KEY_BYTES)


def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def _may_manage_keys_of(principal: Principal, user_id: str) -> None:
    """Users manage their own keys; superadmins (and the CLI) manage everyone's."""
    if principal.id == user_id and principal.active:
        return
    authorize(principal, "user.manage")


def create_api_key(wh: Warehouse, user: str, *, name: str | None = None, actor: Any = "cli") -> tuple[str, dict]:
    """A new API key for an active ``user`` (id or email). Returns ``(key, row)``: the key is shown only now."""
    label = " ".join((name or "").split()) or "api key"
    if len(label) > MAX_KEY_NAME:
        raise InvalidInput(f"The key name is longer than {MAX_KEY_NAME} characters.")
    key = generate_api_key()
    now = utcnow()
    with wh.transaction() as conn:
        principal = resolve_actor(conn, actor)
        target = require_user(conn, user, active=True)
        _may_manage_keys_of(principal, target["id"])
        key_id = f"key_{secrets.token_hex(6)}"
        row = {"id": key_id, "user_id": target["id"], "user_email": target["email"], "name": label,
               "prefix": key[:API_KEY_SHOWN_CHARS], "created_at": now, "last_used_at": None, "revoked_at": None}
        conn.execute("INSERT INTO api_keys (id, user_id, name, prefix, key_hash, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                     [key_id, target["id"], label, row["prefix"], hash_api_key(key), now])
        audit(conn, actor=principal.id, action="api_key.create", entity_type="api_key", entity_id=key_id,
              before=None, after={"user_id": target["id"], "name": label, "prefix": row["prefix"]}, at=now)
    return key, row


_KEY_COLUMNS = ("k.id, k.user_id, u.email AS user_email, k.name, k.prefix, k.created_at, k.last_used_at, "
                "k.revoked_at FROM api_keys k LEFT JOIN users u ON u.id = k.user_id")


def list_api_keys(wh: Warehouse, user: str | None = None, *, include_revoked: bool = True,
                  actor: Any = "cli") -> list[dict]:
    """API keys (never the key or its hash), oldest first; only ``user``'s when given. Someone who may not manage
    users (staff) sees only their own keys: a key list tells who has access, and staff manage only their own."""
    where, params = [], []
    with wh.transaction(read_only=True) as conn:
        principal = resolve_actor(conn, actor)
        if user:
            where.append("k.user_id = ?")
            params.append(require_user(conn, user)["id"])
        if not can(principal, "user.manage"):
            where.append("k.user_id = ?")
            params.append(principal.id)
        if not include_revoked:
            where.append("k.revoked_at IS NULL")
        sql = f"SELECT {_KEY_COLUMNS}" + (" WHERE " + " AND ".join(where) if where else "")
        return conn.query(sql + " ORDER BY k.created_at, k.id", params)


def revoke_api_key(wh: Warehouse, ref: str, *, actor: Any = "cli") -> dict:
    """Revoke a key named by its id (``key_…``), its shown prefix (``lp_…``) or the key itself (whoever holds a
    leaked key can revoke it without looking up its prefix). Revoking twice is a no-op."""
    ref = (ref or "").strip()
    if not ref:
        raise InvalidInput("Name the key to revoke by its id (key_…) or prefix (lp_…).")
    now = utcnow()
    with wh.transaction() as conn:
        principal = resolve_actor(conn, actor)
        rows = conn.query(f"SELECT {_KEY_COLUMNS} WHERE k.id = ? OR k.prefix = ? OR k.key_hash = ?",
                          [ref, ref, hash_api_key(ref)])
        if not rows:
            shown = ref if len(ref) <= API_KEY_SHOWN_CHARS else f"{ref[:API_KEY_SHOWN_CHARS]}…"  # never echo a key
            raise InvalidInput(f"No API key {shown!r}: see `leads-pipeline users api-key list`.")
        if len(rows) > 1:
            raise InvalidInput(f"{ref!r} names {len(rows)} keys: revoke by id instead (key_…).")
        row = rows[0]
        _may_manage_keys_of(principal, row["user_id"])
        if row["revoked_at"] is None:
            conn.execute("UPDATE api_keys SET revoked_at = ? WHERE id = ?", [now, row["id"]])
            audit(conn, actor=principal.id, action="api_key.revoke", entity_type="api_key", entity_id=row["id"],
                  before=None, after={"user_id": row["user_id"], "prefix": row["prefix"]}, at=now)
            row = {**row, "revoked_at": now}
    return row


def authenticate_api_key(wh: Warehouse, key: str) -> tuple[Principal, str]:
    """``(principal, key id)`` of a live key of an active user; ``AuthError`` otherwise."""
    key = (key or "").strip()
    if not key.startswith(API_KEY_PREFIX) or len(key) > 200 or not key.isascii():
        raise AuthError("Malformed API key: keys start with 'lp_' (create one with `leads-pipeline users api-key "
                        "create EMAIL`).")
    with wh.transaction(read_only=True) as conn:
        row = conn.query_one(f"SELECT k.id AS key_id, k.revoked_at, k.last_used_at, {_USER_OF} "
                             "FROM api_keys k JOIN users u ON u.id = k.user_id WHERE k.key_hash = ?",
                             [hash_api_key(key)])
        if row is None:
            raise AuthError("Unknown API key.")
        if row["revoked_at"] is not None:
            raise AuthError("This API key was revoked; create a new one with `leads-pipeline users api-key create`.")
        if not row["active"]:
            raise AuthError(f"The user of this API key ({row['email']}) is deactivated.")
        principal = principal_of(conn, row)
    now = utcnow()
    last = row["last_used_at"]
    if last is None or now - _utc(last) >= LAST_USED_RESOLUTION:
        with wh.transaction() as conn:
            conn.execute("UPDATE api_keys SET last_used_at = ? WHERE id = ?", [now, row["key_id"]])
    return principal, row["key_id"]


def _utc(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=dt.timezone.utc) if value.tzinfo is None else value


# ------------------------------------------------------------------------------------------------- passwords

MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 1024
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**17, 8, 1
SCRYPT_SALT_BYTES = 16
SCRYPT_DKLEN = 32
_MAX_SCRYPT_N = 2**20  # a stored hash asking for more is not one of ours
HASH_CONCURRENCY = max(1, min(4, os.cpu_count() or 1))
_hashing = threading.BoundedSemaphore(HASH_CONCURRENCY)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int, dklen: int) -> bytes:
    with _hashing:
        return hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p, dklen=dklen,
                              maxmem=129 * r * n * p + (1 << 20))


def hash_password(password: str) -> str:
    """``scrypt$N$r$p$<salt>$<hash>`` (base64), with a fresh 16-byte salt."""
    salt = secrets.token_bytes(SCRYPT_SALT_BYTES)
    digest = _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P, SCRYPT_DKLEN)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, stored: str | None) -> bool:
    """Whether ``password`` matches ``stored`` (constant-time; False for anything malformed)."""
    if not stored or not isinstance(password, str):
        return False
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt" or not 1 < int(n) <= _MAX_SCRYPT_N or not 0 < int(r) * int(p) <= 64:
            return False
        expected = base64.b64decode(digest)
        got = _scrypt(password, base64.b64decode(salt), int(n), int(r), int(p), len(expected))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, expected)


def needs_rehash(stored: str) -> bool:
    """Whether ``stored`` was made with other parameters than today's (then the next login rewrites it)."""
    return not stored.startswith(f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}$")


@functools.lru_cache(maxsize=1)
def _dummy_hash() -> str:
    """Verified against for unknown emails too, so a login's timing does not tell whether the account exists
    (made on first use: half a second nobody should pay at import)."""
    return hash_password(secrets.token_urlsafe(16))


def check_password_rules(password: str) -> str:
    if not isinstance(password, str) or len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput(f"A password needs at least {MIN_PASSWORD_LENGTH} characters.")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise InvalidInput(f"A password has at most {MAX_PASSWORD_LENGTH} characters.")
    if not password.strip():
        raise InvalidInput("A password cannot be only spaces.")
    return password


def set_password(wh: Warehouse, user: str, password: str, *, actor: Any = "cli") -> dict:
    """Set the console password of ``user`` (id or email). Ends every console session of the user."""
    check_password_rules(password)
    hashed = hash_password(password)
    now = utcnow()
    with wh.transaction() as conn:
        principal = resolve_actor(conn, actor)
        target = require_user(conn, user)
        if principal.id != target["id"]:
            authorize(principal, "user.manage")
        conn.execute("UPDATE users SET password_hash = ? WHERE id = ?", [hashed, target["id"]])
        end_sessions(conn, target["id"], at=now, reason="password")
        audit(conn, actor=principal.id, action="user.password", entity_type="user", entity_id=target["id"],
              before=None, after={"password": "set"}, at=now)
    return target


# ------------------------------------------------------------------------------------------------- sessions

SESSION_LIFETIME = dt.timedelta(hours=8)
SESSION_TOKEN_BYTES = 32
SESSION_ROWS_KEPT = dt.timedelta(days=30)  # ended and expired rows are deleted after this (a trail for questions)


def _session_id(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def start_session(conn: Conn, user_id: str, *, at: dt.datetime) -> str:
    """A new session of ``user_id``, valid for ``SESSION_LIFETIME`` from ``at``; returns its token (the cookie's)."""
    token = secrets.token_urlsafe(SESSION_TOKEN_BYTES)
    conn.execute("INSERT INTO web_sessions (id, user_id, created_at, expires_at) VALUES (?, ?, ?, ?)",
                 [_session_id(token), user_id, at, at + SESSION_LIFETIME])
    return token


def session_principal(wh: Warehouse, token: str) -> Principal | None:
    """The principal of a live session: not ended, not expired, its user active and with a password."""
    if not isinstance(token, str) or not 20 <= len(token) <= 200:
        return None
    with wh.transaction(read_only=True) as conn:
        row = conn.query_one(f"SELECT {_USER_OF}, u.password_hash FROM web_sessions s JOIN users u "
                             "ON u.id = s.user_id WHERE s.id = ? AND s.ended_at IS NULL AND s.expires_at > ?",
                             [_session_id(token), utcnow()])
        if row is None or not row["active"] or not row["password_hash"]:
            return None
        return principal_of(conn, row)


def end_session(wh: Warehouse, token: str, *, reason: str = "logout") -> bool:
    """End the session of ``token`` (logout); whether a live one was ended."""
    if not isinstance(token, str) or not token:
        return False
    with wh.transaction() as conn:
        return conn.execute("UPDATE web_sessions SET ended_at = ?, end_reason = ? WHERE id = ? AND ended_at IS NULL",
                            [utcnow(), reason, _session_id(token)]) > 0


# ------------------------------------------------------------------------------------------------- logins


@dataclass(frozen=True)
class LoginLimits:
    """Attempts allowed per fixed window: per (account, client address) and per client address."""

    per_account_client: int = 10
    per_client: int = 50
    window: dt.timedelta = dt.timedelta(minutes=15)


LIMITS = LoginLimits()


@dataclass(frozen=True)
class LoginResult:
    """A login's outcome: ``principal`` and the new session's ``token`` on success; ``throttled`` when the attempt
    was refused before the password was looked at."""

    principal: Principal | None = None
    token: str | None = None
    throttled: bool = False


def _limit_key(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode("utf-8")).hexdigest()


def _count_attempt(wh: Warehouse, keys: list[str], now: dt.datetime, window: dt.timedelta,
                   email: str) -> tuple[dict[str, int], dict[str, Any] | None]:
    """Count one attempt against each key — one statement returning the new counts, so concurrent attempts each see
    their own (PostgreSQL locks the rows in key order; DuckDB has one writer) — and read the account's user row in
    the same transaction (one opening of a DuckDB file per attempt, not two)."""
    keys = sorted(keys)
    values = ", ".join("(?, ?, 1)" for _ in keys)
    params: list[Any] = [v for k in keys for v in (k, now)]

    def count() -> tuple[dict[str, int], dict[str, Any] | None]:
        with wh.transaction() as conn:
            rows = conn.query(
                f"INSERT INTO login_attempts (key, window_start, attempts) VALUES {values} "
                "ON CONFLICT (key) DO UPDATE SET "
                "attempts = CASE WHEN login_attempts.window_start <= ? THEN 1 ELSE login_attempts.attempts + 1 END, "
                "window_start = CASE WHEN login_attempts.window_start <= ? THEN excluded.window_start "
                "ELSE login_attempts.window_start END "
                "RETURNING key, attempts", [*params, now - window, now - window])
            user = conn.query_one("SELECT id, name, email, role, active, password_hash FROM users WHERE email = ?",
                                  [email]) if email else None
        return {r["key"]: int(r["attempts"]) for r in rows}, user

    return retry_conflicts(count, what="login attempt")


def log_in(wh: Warehouse, email: str, password: str, *, client: str, limits: LoginLimits = LIMITS) -> LoginResult:
    """Check ``email`` + ``password`` from ``client`` (its address, as ``web/auth.client_address`` tells it) under
    the login limits; on success start a session (and rewrite an old-parameter hash)."""
    email = (email or "").strip().lower()[:320]
    password = (password or "")[:MAX_PASSWORD_LENGTH]
    client = client or "unknown"
    pair, per_client = _limit_key("account", email, client), _limit_key("client", client)
    now = utcnow()
    counts, row = _count_attempt(wh, [pair, per_client], now, limits.window, email)
    if counts[pair] > limits.per_account_client or counts[per_client] > limits.per_client:
        return LoginResult(throttled=True)
    stored = row["password_hash"] if row else None
    if not stored or not verify_password(password, stored) or not row["active"]:
        if not stored:
            verify_password(password, _dummy_hash())
        if counts[per_client] == 1:  # once per client and window, not at every guess
            _prune(wh, now, limits)
        return LoginResult()
    upgraded = hash_password(password) if needs_rehash(stored) else None
    with wh.transaction() as conn:
        conn.execute("DELETE FROM login_attempts WHERE key = ?", [pair])
        conn.execute("UPDATE login_attempts SET attempts = attempts - 1 WHERE key = ? AND attempts > 0",
                     [per_client])
        if upgraded:  # only if nobody set another password meanwhile
            conn.execute("UPDATE users SET password_hash = ? WHERE id = ? AND password_hash = ?",
                         [upgraded, row["id"], stored])
        token = start_session(conn, row["id"], at=now)
        principal = principal_of(conn, row)
    _prune(wh, now, limits)
    return LoginResult(principal=principal, token=token)


def _prune(wh: Warehouse, now: dt.datetime, limits: LoginLimits) -> None:
    """Forget counters of ended windows and sessions long over (its own transaction: DuckDB refuses a key deleted
    and inserted again in one)."""
    def prune() -> None:
        with wh.transaction() as conn:
            conn.execute("DELETE FROM login_attempts WHERE window_start <= ?", [now - limits.window])
            conn.execute("DELETE FROM web_sessions WHERE expires_at < ? OR ended_at < ?",
                         [now - SESSION_ROWS_KEPT, now - SESSION_ROWS_KEPT])

    retry_conflicts(prune, what="login bookkeeping")
