"""The JSON API under ``/api`` (docs/http-api.md), on FastAPI: one router per resource (``service``, ``leads``,
``distributors``, ``users``), pydantic models for every body (``models``), the caller, the warehouse and the
parameters as dependencies (``deps``), one error shape (``errors``), and ``/openapi.json`` generated from the routes.

Every route authenticates (API key, or the console's session with its CSRF token for unsafe methods), checks the
role, and calls ``lib/crm`` or ``lib/distributors`` as the caller: the library scopes what a staff user sees and
audits each change with the acting user. Errors are ``{"error": "<message for a person>", "detail": {"code": …}}``
with 400/401/403/404/405/409/413/415 (and 503 when the service itself is not configured); bad input never gets a
5xx.

The console (``web/console.py``) reuses ``authenticate``, ``classify``, the distributor run helpers and ``path_id``
from here, so both front ends authenticate and word refusals the same way.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from . import distributors, leads, service, users
from .deps import authenticate, cipher_for, path_id
from .distributors import (
    Running,
    audit_run,
    ready_distributor,
    run_exclusive,
    sync_distributor,
    test_distributor,
)
from .errors import ApiError, classify, dumps, error_response, json_response
from .routing import MAX_BODY_BYTES, SAFE_METHODS, by_method

__all__ = [
    "API_VERSION", "MAX_BODY_BYTES", "SAFE_METHODS", "ApiError", "Running", "api_routes", "audit_run", "authenticate", "by_method",
    "cipher_for", "classify", "dumps", "error_response", "http_error", "install", "json_response", "path_id",
    "ready_distributor", "run_exclusive", "sync_distributor", "test_distributor",
]

API_VERSION = "1.1.0"
DESCRIPTION = (
    "Facebook/Instagram Lead Ads leads: work them (status, assignment, notes, calls/emails/SMS, privacy deletes), "
    "read the seed's stats, manage distributors' Meta settings, test and sync. Authenticate with an API key "
    "(`Authorization: Bearer lp_…` or `X-API-Key`; create one with `leads-pipeline users api-key create EMAIL`). "
    "Roles: superadmin (everything, every distributor) and staff (lead work, on the leads of their own "
    "distributors only: any other lead is answered 404). Errors are `{\"error\", \"detail\": {\"code\"}}`. "
    "See docs/http-api.md."
)
ROUTERS: tuple[APIRouter, ...] = (service.router, leads.router, distributors.router, users.router)


def api_routes() -> list[APIRoute]:
    """Every route of the API (one per method and path)."""
    return [r for router in ROUTERS for r in router.routes if isinstance(r, APIRoute)]


def openapi_document(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document of the API, without the 422 answers it adds by default (this API answers bad input with
    400 and its own error shape, which every route documents)."""
    if app.openapi_schema:
        return app.openapi_schema
    doc = get_openapi(title="leads_pipeline API", version=API_VERSION, description=DESCRIPTION, routes=app.routes)
    for item in doc.get("paths", {}).values():
        for op in item.values():
            op.get("responses", {}).pop("422", None)
    schemas = doc.get("components", {}).get("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    app.openapi_schema = doc
    return doc


def install(app: FastAPI) -> None:
    """Add the API's routes and its document (``/openapi.json``, set up by FastAPI) to ``app``."""
    for router in ROUTERS:
        app.include_router(router)
    app.openapi = lambda: openapi_document(app)  # type: ignore[method-assign]


def allowed_methods(path: str) -> list[str]:
    """The methods the API answers on ``path`` (for the ``Allow`` header of a 405)."""
    methods = {m for r in api_routes() if r.path_regex.match(path) for m in r.methods}
    return sorted(methods)


def http_error(request: Request, exc: Exception) -> Response:
    """A routing error (no such route, method not allowed) on an ``/api`` path, in the API's error shape."""
    if isinstance(exc, HTTPException) and exc.status_code == 405:
        exc = HTTPException(405, exc.detail, {**(exc.headers or {}),
                                              "Allow": ", ".join(allowed_methods(request.url.path))})
    return error_response(exc, request)
