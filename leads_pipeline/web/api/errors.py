"""The API's one error shape, ``{"error": "<for a person>", "detail": {"code": "<for programs>", …}}``, and the
mapping of every exception an operation may raise onto it (status, message, code).

The console uses ``classify`` too, for its flash messages, so both front ends word a refusal the same way.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import logging
from collections.abc import Mapping
from typing import Any

from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from leads_pipeline.lib import crm
from leads_pipeline.lib.crm.privacy import PrivacyConfigError
from leads_pipeline.lib.distributors import registry
from leads_pipeline.lib.security import SecretKeyError
from leads_pipeline.lib.warehouse import WarehouseError

from .. import auth

log = logging.getLogger(__name__)

UNAUTHENTICATED = ("Authentication required: send an API key (Authorization: Bearer lp_… or X-API-Key), or log in "
                   "to the console.")
WWW_AUTHENTICATE = {"WWW-Authenticate": 'Bearer realm="leads_pipeline"'}
_MAX_MESSAGE = 300
_MAX_PROBLEMS = 20


class ApiError(Exception):
    """An error answer: HTTP status, a message for a person, a code and extra facts for programs."""

    def __init__(self, status: int, message: str, code: str, headers: Mapping[str, str] | None = None,
                 **extra: Any):
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.headers = dict(headers or {})
        self.extra = extra


def classify(exc: BaseException) -> ApiError:
    """The ``ApiError`` for any exception an operation may raise (unexpected ones become a logged 500)."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, auth.AuthError):
        return ApiError(401, str(exc), "unauthenticated", WWW_AUTHENTICATE)
    if isinstance(exc, crm.PermissionDenied):
        return ApiError(403, str(exc), "forbidden")
    if isinstance(exc, crm.BulkInvalidTransition):
        groups = [{"from_status": f, "why": why, "ids": ids} for f, why, ids in exc.groups]
        return ApiError(400, str(exc), "invalid_transition", to_status=exc.to_status, groups=groups)
    if isinstance(exc, crm.InvalidTransition):
        return ApiError(400, str(exc), "invalid_transition", from_status=exc.from_status, to_status=exc.to_status,
                        allowed=list(exc.allowed))
    if isinstance(exc, crm.LeadNotFound):
        return ApiError(404, str(exc), "lead_not_found", ids=exc.ids, deleted=exc.deleted)
    if isinstance(exc, crm.DistributorNotVisible | registry.DistributorNotFound):
        # Outside the caller's scope a distributor is answered exactly like one that does not exist.
        return ApiError(404, str(exc), "distributor_not_found")
    if isinstance(exc, crm.UserExists):
        return ApiError(409, str(exc), "user_exists")
    if isinstance(exc, crm.UnknownUser):
        return ApiError(400, str(exc), "unknown_user")
    if isinstance(exc, crm.InvalidInput):
        return ApiError(400, str(exc), "invalid_input")
    if isinstance(exc, registry.DuplicateDistributor):
        return ApiError(409, str(exc), "distributor_exists")
    if isinstance(exc, registry.DistributorError):
        return ApiError(400, str(exc), "invalid_input")
    if isinstance(exc, SecretKeyError):
        return ApiError(503, str(exc), "not_configured")
    if isinstance(exc, WarehouseError):
        return ApiError(503, str(exc), "warehouse_unavailable")
    if isinstance(exc, HTTPException):
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        message = {404: "No such route: see /openapi.json for the API's routes.",
                   405: "Method not allowed on this route."}.get(exc.status_code, str(exc.detail))
        return ApiError(exc.status_code, message, code, exc.headers)
    if isinstance(exc, PrivacyConfigError):
        log.error("privacy configuration error: %s", exc)
    else:
        log.exception("unexpected error in the HTTP API", exc_info=exc)
    return ApiError(500, "Internal error; it was logged. Please report it.", "internal")


def _short(text: str) -> str:
    return text if len(text) <= _MAX_MESSAGE else text[:_MAX_MESSAGE] + "…"


def _describe(error: Mapping[str, Any]) -> str:
    """One pydantic error as ``where: what`` (``where`` inside the body, or the parameter's name); the input
    itself is never echoed, so a refused value (a token, a phone number) does not come back in the answer."""
    where = ".".join(str(p) for p in error.get("loc", ())[1:])
    if error.get("type") == "value_error" and "error" in (error.get("ctx") or {}):
        what = str(error["ctx"]["error"])
    else:
        what = str(error.get("msg", "invalid"))
    return _short(f"{where}: {what}" if where else what)


def validation_error(request: Request, exc: RequestValidationError) -> ApiError:
    """A refused request. A problem with the body as a whole (none, not JSON, not an object, unstorable text) was
    found before FastAPI looked at it (``routing.ApiRoute``) and is answered first; then bad parameters
    (``invalid_input``), then the fields of the body (``validation_failed`` with ``errors``)."""
    problem = getattr(request.state, "body_problem", None)
    if isinstance(problem, ApiError):
        return problem
    errors = list(exc.errors())
    params = [e for e in errors if e.get("loc", ("body",))[0] != "body"]
    if params:
        return ApiError(400, "; ".join(_describe(e) for e in params[:_MAX_PROBLEMS]), "invalid_input")
    problems = [_describe(e) for e in errors[:_MAX_PROBLEMS]]
    return ApiError(400, "Invalid request: " + "; ".join(problems), "validation_failed", errors=problems)


# ------------------------------------------------------------------------------------------------- JSON


def _default(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.timezone.utc)
        return value.astimezone(dt.timezone.utc).isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    if hasattr(value, "to_dict"):
        return value.to_dict()
    return str(value)


def dumps(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False, default=_default, allow_nan=False)


def json_response(data: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    return Response(dumps(data).encode("utf-8"), status_code=status, headers=dict(headers or {}),
                    media_type="application/json")


def error_response(exc: BaseException, request: Request | None = None) -> Response:
    err = validation_error(request, exc) if isinstance(exc, RequestValidationError) and request is not None \
        else classify(exc)
    return json_response({"error": err.message, "detail": {"code": err.code, **err.extra}}, err.status, err.headers)
