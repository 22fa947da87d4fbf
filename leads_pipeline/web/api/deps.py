"""What the API's routes depend on: the caller (authentication, CSRF, role), the warehouse, the settings, and the
typed query and path parameters.

The caller is the scope: routes pass ``caller.principal`` to every ``lib/crm`` call, and the library decides what
that principal may see (a staff user only their distributors' leads). The web layer adds no rule of its own.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import Depends, Path, Query, Security
from fastapi.security import APIKeyCookie, APIKeyHeader, HTTPBearer
from pydantic import AfterValidator, BeforeValidator
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from leads_pipeline.lib import crm
from leads_pipeline.lib.security import TokenCipher
from leads_pipeline.lib.warehouse import Warehouse
from leads_pipeline.settings import Settings

from .. import auth
from .errors import UNAUTHENTICATED, WWW_AUTHENTICATE, ApiError
from .models import MAX_SHORT
from .routing import SAFE_METHODS

# The credentials the API takes, as the OpenAPI document's security schemes. ``auth`` reads them from the request
# (a malformed or unknown key is a 401 with the reason); these only declare them.
_bearer = HTTPBearer(auto_error=False, scheme_name="bearerAuth", bearerFormat="lp_… API key",
                     description="An API key: `leads-pipeline users api-key create EMAIL`.")
_api_key = APIKeyHeader(name="X-API-Key", auto_error=False, scheme_name="apiKeyHeader",
                        description="An API key, as for bearerAuth.")
_session = APIKeyCookie(name=auth.SESSION_COOKIE, auto_error=False, scheme_name="sessionCookie",
                        description="The console's session; unsafe methods then also need the X-CSRF-Token header.")


async def authenticate(request: Request) -> auth.Caller | None:
    """The caller of a request: an API key when one is sent (a bad one is a 401), else the console's session.

    Remembered on the request, so the API's dependencies and the console's pages authenticate once per request.
    """
    if "caller" in request.scope.get("state", {}):
        return request.state.caller
    wh: Warehouse = request.app.state.warehouse
    key = auth.api_key_from_headers(request.headers)
    caller: auth.Caller | None = None
    if key is not None:
        caller = await run_in_threadpool(auth.authenticate_api_key, wh, key)
    elif "session" in request.scope:
        caller = await run_in_threadpool(auth.session_caller, wh, request.session)
    request.state.caller = caller
    return caller


async def current_caller(request: Request, _bearer: Annotated[Any, Security(_bearer)] = None,
                         _key: Annotated[Any, Security(_api_key)] = None,
                         _cookie: Annotated[Any, Security(_session)] = None) -> auth.Caller:
    """The authenticated caller (401 otherwise); a session-authenticated unsafe request must carry the CSRF token."""
    caller = await authenticate(request)
    if caller is None:
        raise ApiError(401, UNAUTHENTICATED, "unauthenticated", WWW_AUTHENTICATE)
    if caller.via == "session" and request.method not in SAFE_METHODS:
        if not auth.csrf_ok(request.session, request.headers.get(auth.CSRF_HEADER)):
            raise ApiError(403, "Missing or wrong CSRF token: send the console's token in the X-CSRF-Token header "
                           "(or use an API key).", "csrf_failed")
    return caller


def allowed(action: str) -> Callable[..., Coroutine[Any, Any, auth.Caller]]:
    """A dependency: the caller, if their role may perform ``action`` (403 otherwise)."""

    async def check(caller: Annotated[auth.Caller, Depends(current_caller)]) -> auth.Caller:
        crm.authorize(caller.principal, action)
        return caller

    check.__name__ = f"allowed_{action.replace('.', '_')}"
    return check


def may(action: str) -> Any:
    """``Annotated[auth.Caller, …]`` for a route parameter: the caller, allowed to perform ``action``."""
    return Annotated[auth.Caller, Depends(allowed(action))]


def warehouse(request: Request) -> Warehouse:
    return request.app.state.warehouse


def settings(request: Request) -> Settings:
    return request.app.state.settings


def cipher_for(request: Request) -> TokenCipher:
    """The token cipher of the service's ``LEADS_SECRET_KEY`` (a 503 ``not_configured`` when it is missing)."""
    secret = request.app.state.settings.secret_key
    return TokenCipher(secret.get_secret_value() if secret is not None else "")


Wh = Annotated[Warehouse, Depends(warehouse)]
AppSettings = Annotated[Settings, Depends(settings)]

# ------------------------------------------------------------------------------------------------- parameters


def clean_id(value: str) -> str:
    """An id from the path; one no lead, user or distributor can have (NUL, very long) becomes "" (a 404)."""
    return "" if "\x00" in value or len(value) > 1000 else value


def path_id(request: Request, name: str = "id") -> str:
    """``clean_id`` of a path parameter (the console's pages)."""
    return clean_id(str(request.path_params[name]))


LeadId = Annotated[str, Path(description="Meta lead id."), AfterValidator(clean_id)]
UserRef = Annotated[str, Path(description="User id (usr_…) or email."), AfterValidator(clean_id)]
DistributorRef = Annotated[str, Path(description="Distributor key (e.g. msh-med-tour)."), AfterValidator(clean_id)]

_WHOLE = re.compile(r"^[+-]?[0-9]{1,12}$")


def whole_number(lo: int, hi: int) -> Callable[[Any], int]:
    def check(value: Any) -> int:
        text = value.strip() if isinstance(value, str) else str(value)
        if not _WHOLE.fullmatch(text):
            raise ValueError(f"must be a whole number (got {str(value)[:40]!r})")
        n = int(text)
        if not lo <= n <= hi:
            raise ValueError(f"must be between {lo} and {hi} (got {n})")
        return n

    return check


def flag(value: Any) -> bool:
    v = str(value).strip().lower()
    if v in ("true", "1", "yes"):
        return True
    if v in ("false", "0", "no"):
        return False
    raise ValueError(f"must be true or false (got {str(value)[:40]!r})")


def storable(value: str | None) -> str | None:
    if value is not None and "\x00" in value:
        raise ValueError("text must not contain NUL characters")
    return value


def count(lo: int, hi: int, description: str) -> Any:
    """An integer query parameter (whole numbers only, ``lo``..``hi``)."""
    return Annotated[int, Query(ge=lo, le=hi, description=description), BeforeValidator(whole_number(lo, hi))]


def text(description: str, max_length: int = MAX_SHORT) -> Any:
    """An optional text query parameter."""
    return Annotated[str | None, Query(max_length=max_length, description=description), AfterValidator(storable)]


Flag = Annotated[bool, BeforeValidator(flag)]
