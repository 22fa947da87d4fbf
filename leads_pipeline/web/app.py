"""The HTTP service: one ASGI app (Starlette) with the JSON API, the staff console, the OpenAPI document and the
Meta webhook receiver. ``leads-pipeline serve`` runs it on uvicorn.

    /api/…            JSON API (``api.py``; API keys or the console session)       docs/http-api.md
    /openapi.json     its OpenAPI 3.1 document (``openapi.py``)
    /login, /console/… the staff console (``console.py``, server-rendered, no JavaScript)
    /webhooks/meta    Meta's leadgen webhooks (``webhooks.py``; signed, no login)
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import sys
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from leads_pipeline.lib.warehouse import Warehouse, connect
from leads_pipeline.settings import Settings, get_settings

from . import api, auth, console, openapi

log = logging.getLogger(__name__)

# The console uses no JavaScript at all; styles come from /static/console.css only.
CONTENT_SECURITY_POLICY = ("default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
                           "frame-ancestors 'none'; base-uri 'none'")


class SecurityHeaders:
    """Headers on every answer: no sniffing, no framing, no referrer leaks; no caching except the stylesheet."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = scope.get("path", "").startswith("/static/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {k.lower() for k, _ in headers}
                extra = [(b"x-content-type-options", b"nosniff"), (b"x-frame-options", b"DENY"),
                         (b"referrer-policy", b"same-origin"),
                         (b"content-security-policy", CONTENT_SECURITY_POLICY.encode())]
                if not static:
                    extra.append((b"cache-control", b"no-store"))
                headers += [(k, v) for k, v in extra if k not in present]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


async def _http_error(request: Request, exc: Exception) -> Response:
    if request.url.path.startswith("/api/") or request.url.path == "/api":
        return api.error_response(exc)
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    if status >= 500:
        log.error("unexpected error on %s", request.url.path, exc_info=exc)
    return console.error_page(request, status, exc)


async def openapi_json(request: Request) -> Response:
    return api.json_response(request.app.state.openapi)


def webhook_routes(settings: Settings, warehouse: Warehouse) -> list[BaseRoute]:
    """The Meta webhook receiver's routes (``web/webhooks.py``), when that module is there."""
    try:
        from leads_pipeline.web import webhooks
    except ModuleNotFoundError as exc:
        if exc.name == "leads_pipeline.web.webhooks":
            log.info("no webhook receiver (leads_pipeline.web.webhooks) installed: /webhooks/meta not mounted")
            return []
        raise
    factory = getattr(webhooks, "webhook_routes", None)
    if factory is None:
        return []
    params = inspect.signature(factory).parameters
    offered: dict[str, Any] = {"settings": settings, "warehouse": warehouse, "wh": warehouse}
    kwargs = {name: value for name, value in offered.items() if name in params}
    return list(factory(**kwargs))


@contextlib.asynccontextmanager
async def _lifespan(app: Starlette) -> AsyncIterator[None]:
    yield
    webhooks = sys.modules.get("leads_pipeline.web.webhooks")
    close = getattr(webhooks, "close_writers", None)
    if close is not None:  # let the webhook inbox writer commit what it has queued
        await run_in_threadpool(close)


def create_app(settings: Settings | None = None, warehouse: Warehouse | str | None = None, *,
               https_only: bool = False) -> Starlette:
    """The service over ``warehouse`` (a ``Warehouse`` or its URL; default: the settings' ``LEADS_WAREHOUSE_URL``),
    migrated to the newest schema.

    ``https_only`` marks the session cookie ``Secure`` (set it when serving behind HTTPS).
    """
    settings = settings or get_settings()
    if isinstance(warehouse, str):
        warehouse = Warehouse(warehouse)
    wh = warehouse or connect(settings.resolved_warehouse_url)
    wh.migrate()
    secret = settings.secret_key.get_secret_value() if settings.secret_key is not None else None
    if not secret:
        log.warning("LEADS_SECRET_KEY is not set: console sessions end when the service restarts, and "
                    "distributor tokens cannot be stored")
    routes: list[BaseRoute] = [
        *api.routes(),
        Route("/openapi.json", openapi_json, methods=["GET"]),
        *console.routes(),
        *webhook_routes(settings, wh),
    ]
    middleware = [
        Middleware(SecurityHeaders),
        Middleware(SessionMiddleware, secret_key=auth.session_secret(secret), session_cookie=auth.SESSION_COOKIE,
                   max_age=auth.SESSION_MAX_AGE, same_site="lax", https_only=https_only),
    ]
    app = Starlette(routes=routes, middleware=middleware,
                    exception_handlers={HTTPException: _http_error, Exception: _http_error}, lifespan=_lifespan)
    app.state.settings = settings
    app.state.warehouse = wh
    app.state.running = api.Running()
    app.state.login_throttle = console.LoginThrottle()
    app.state.openapi = openapi.build_openapi()
    return app
