"""Who is calling, as HTTP carries it: API key headers, the console's session cookie, CSRF tokens, the client address.

The rules and their SQL live in ``lib/crm/credentials.py`` (keys, passwords, sessions, login limits); this module
only moves credentials between requests and that library.

API keys
    ``Authorization: Bearer lp_…`` or ``X-API-Key: lp_…``; a revoked key, a key of a deactivated user, or an
    unknown key is refused (401). A key acts as its user, with the user's role and distributors.

Console
    The session cookie (Starlette's ``SessionMiddleware``, signed with a key derived from ``LEADS_SECRET_KEY``)
    holds the session's token (``sid``), the CSRF token and flash messages. The token names a ``web_sessions`` row,
    which decides: the session ends at logout, on a new password, on deactivation, and ``SESSION_LIFETIME`` after
    the login however often the cookie is re-issued. Every request re-reads the row and the user.

Logins
    Every answer to a login attempt — right, wrong, unknown email, refused by the limiter — takes at least
    ``LOGIN_MIN_SECONDS`` (waited without holding a thread), so neither timing nor a quick answer tells an
    account, a limit or an old password hash apart. Limits count per (account, client) and per client; the client
    is the peer address, or behind a proxy of ``LEADS_TRUSTED_PROXIES`` the address that proxy saw.

CSRF
    Every unsafe request authenticated by the session cookie (console forms, or ``/api`` called from a browser) must
    carry the session's CSRF token: form field ``csrf_token`` or header ``X-CSRF-Token``. Requests authenticated by an
    API key are exempt: a browser never adds that header by itself. The cookie is also ``SameSite=Lax``.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import hmac
import ipaddress
import secrets
import time
from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import Any

from leads_pipeline.lib import crm
from leads_pipeline.lib.crm import credentials
from leads_pipeline.lib.crm.credentials import MAX_PASSWORD_LENGTH, AuthError  # noqa: F401 - the console's form cap
from leads_pipeline.lib.warehouse import Warehouse

SESSION_COOKIE = "lp_session"
SESSION_MAX_AGE = int(credentials.SESSION_LIFETIME.total_seconds())  # the browser's copy; the warehouse decides
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
LOGIN_MIN_SECONDS = 0.5
_SESSION_KEY_CONTEXT = b"leads_pipeline web session cookie v1"
_SID = "sid"


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


# ------------------------------------------------------------------------------------------------- API keys


def authenticate_api_key(wh: Warehouse, key: str) -> Caller:
    """The caller an API key stands for; ``AuthError`` when it is not a live key of an active user."""
    principal, key_id = credentials.authenticate_api_key(wh, key)
    return Caller(principal, "api_key", key_id)


def api_key_from_headers(headers: Any) -> str | None:
    """The key of ``Authorization: Bearer lp_…`` or ``X-API-Key``; None when neither is there."""
    value = headers.get("x-api-key")
    if value:
        return value.strip()
    header = headers.get("authorization")
    if header:
        scheme, _, token = header.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthError("Unsupported Authorization header: use 'Bearer lp_…' (an API key).")
        return token.strip()
    return None


# ------------------------------------------------------------------------------------------------- sessions


def session_caller(wh: Warehouse, session: MutableMapping[str, Any]) -> Caller | None:
    """The caller of the console session cookie's contents (``request.session``); a session the warehouse no
    longer honours (logged out, expired, password changed, user deactivated) is forgotten from the cookie."""
    token = session.get(_SID)
    if not isinstance(token, str):
        return None
    principal = credentials.session_principal(wh, token)
    if principal is None:
        session.pop(_SID, None)
        return None
    return Caller(principal, "session")


def session_token(session: MutableMapping[str, Any]) -> str | None:
    """The session token the cookie carries, if any (whether the warehouse still honours it or not)."""
    token = session.get(_SID)
    return token if isinstance(token, str) else None


def begin_session(session: MutableMapping[str, Any], token: str) -> None:
    """Put a new session's token in the cookie: a fresh cookie (and CSRF token) at every login."""
    session.clear()
    session[_SID] = token
    csrf_token(session)


def end_session(wh: Warehouse, session: MutableMapping[str, Any]) -> None:
    """Logout: end the session in the warehouse (a copy of the cookie is refused from now on), empty the cookie."""
    token = session.get(_SID)
    if isinstance(token, str):
        credentials.end_session(wh, token)
    session.clear()


def session_secret(secret_key: str | None) -> str:
    """The cookie-signing key: derived from the first key of ``LEADS_SECRET_KEY`` (never the Fernet key itself);
    random per process when no key is configured (sessions then end when the service restarts)."""
    first = (secret_key or "").split(",")[0].strip()
    if not first:
        return secrets.token_urlsafe(32)
    return hmac.new(first.encode(), _SESSION_KEY_CONTEXT, hashlib.sha256).hexdigest()


def csrf_token(session: MutableMapping[str, Any]) -> str:
    """The session's CSRF token (created on first use)."""
    token = session.get("csrf")
    if not isinstance(token, str) or len(token) < 20:
        token = secrets.token_urlsafe(32)
        session["csrf"] = token
    return token


def csrf_ok(session: MutableMapping[str, Any], submitted: str | None) -> bool:
    expected = session.get("csrf")
    if not isinstance(expected, str) or not expected or not isinstance(submitted, str) or not submitted:
        return False
    return hmac.compare_digest(expected.encode(), submitted.encode())


# ------------------------------------------------------------------------------------------------- logins

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@functools.lru_cache(maxsize=8)
def trusted_networks(spec: str) -> tuple[Network, ...]:
    """``LEADS_TRUSTED_PROXIES`` (addresses or networks, comma-separated) parsed; ValueError names a bad entry."""
    nets = []
    for part in (spec or "").replace(" ", ",").split(","):
        if part:
            try:
                nets.append(ipaddress.ip_network(part, strict=False))
            except ValueError:
                raise ValueError(f"LEADS_TRUSTED_PROXIES: {part!r} is not an IP address or network "
                                 "(e.g. 127.0.0.1, 10.0.0.0/8, ::1).") from None
    return tuple(nets)


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # [v6]:port
        text = text[1:text.index("]")]
    elif text.count(":") == 1:  # v4:port
        text = text.split(":")[0]
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        return None
    return addr.ipv4_mapped or addr if isinstance(addr, ipaddress.IPv6Address) else addr


def client_address(peer: str | None, forwarded_for: list[str], trusted: tuple[Network, ...]) -> str:
    """The address a login is counted against: the peer, unless the peer is a trusted proxy — then the nearest
    ``X-Forwarded-For`` entry (right to left) that no trusted proxy added. Only trusted proxies are believed, so a
    client cannot pick its own address by sending the header. An IPv6 client stands for its /64 (one host often
    has the whole /64)."""
    addr = _address(peer or "")
    if addr is not None and any(addr in n for n in trusted):
        hops = [h for value in forwarded_for for h in value.split(",") if h.strip()]
        for hop in reversed(hops):
            hop_addr = _address(hop)
            if hop_addr is None:
                break  # garbage left of the proxies' entries: the last trusted hop is what we know
            addr = hop_addr
            if not any(hop_addr in n for n in trusted):
                break
    if addr is None:
        return peer or "unknown"
    if isinstance(addr, ipaddress.IPv6Address):
        return str(ipaddress.ip_network(f"{addr}/64", strict=False))
    return str(addr)


def request_client(request: Any) -> str:
    """:func:`client_address` of a Starlette request, with the service's ``LEADS_TRUSTED_PROXIES``."""
    settings = request.app.state.settings
    trusted = trusted_networks(getattr(settings, "trusted_proxies", "") or "")
    peer = request.client.host if request.client else None
    return client_address(peer, request.headers.getlist("x-forwarded-for"), trusted)


async def pace(started: float, minimum: float = LOGIN_MIN_SECONDS) -> None:
    """Wait until ``minimum`` seconds have passed since ``started`` (``time.monotonic()``)."""
    remaining = minimum - (time.monotonic() - started)
    if remaining > 0:
        await asyncio.sleep(remaining)
