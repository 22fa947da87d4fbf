"""Meta webhook receiver: ``GET /webhooks/meta`` (subscription handshake) and ``POST /webhooks/meta`` (leadgen).

Mount with ``Starlette(routes=[*webhook_routes(), ...])``. Configuration is read per request from the settings, so a
changed environment (and ``get_settings.cache_clear()``) takes effect without re-mounting:

- ``LEADS_WEBHOOK_VERIFY_TOKEN``: the string typed into the App Dashboard; the handshake echoes ``hub.challenge``
  (``text/plain``) only when ``hub.mode=subscribe`` and the token matches (compared in constant time).
- ``LEADS_APP_SECRET``: every POST must carry ``X-Hub-Signature-256: sha256=<HMAC-SHA256 of the raw body>``.

A POST is answered in this order, and nothing is stored unless every check passes:

====  ==========================================================================================================
503   the app secret (or, for the handshake, the verify token) is not configured
413   the body is larger than ``max_body_bytes`` (1 MiB; Meta batches at most 1000 changes, ~250 KB) — refused from
      ``Content-Length`` before reading, or as soon as the streamed body passes the limit
403   the signature header is missing or does not match the exact bytes received
400   the body is not JSON, nests deeper than 32 levels (never a 500: that would make Meta retry it for 36 h),
      or is not shaped like Meta's ``{"object":"page","entry":[…]}``
503   the warehouse could not store the delivery (Meta retries; nothing was acknowledged)
200   every ``leadgen`` change was committed to ``webhook_inbox`` (JSON counts: new, duplicates, unrouted)
====  ==========================================================================================================

The write is durable before the 200: requests waiting at the same moment are committed together by one
:class:`~leads_pipeline.lib.webhooks.writer.InboxWriter` per warehouse (group commit, one transaction each), off the
event loop. Logs carry counts and statuses only — never a body, a signature or a secret.

With ``LEADS_WEBHOOK_PROCESS=service`` the receiver also processes what it stored, off the request
(:mod:`leads_pipeline.lib.webhooks.dispatch`): the lead is in ``leads`` seconds after the POST, and the Dagster
sensor stays the safety net.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import threading
import time
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from leads_pipeline.lib.graph.redaction import redact
from leads_pipeline.lib.security import verify_signature
from leads_pipeline.lib.warehouse import Warehouse, connect
from leads_pipeline.lib.webhooks import WEBHOOK_PATH, dispatch
from leads_pipeline.lib.webhooks.delivery import InvalidDelivery, parse_delivery
from leads_pipeline.lib.webhooks.writer import InboxWriter
from leads_pipeline.settings import get_settings

log = logging.getLogger(__name__)

__all__ = ["WEBHOOK_PATH", "MAX_BODY_BYTES", "webhook_routes", "WebhookReceiver", "close_writers"]

MAX_BODY_BYTES = 1024 * 1024
#: How long a POST waits for its commit before answering 503 (Meta then retries; a late commit dedupes the retry).
STORE_TIMEOUT_SECONDS = 25.0
_MAX_CHALLENGE_LENGTH = 256

_writers: dict[str, InboxWriter] = {}
_writers_lock = threading.Lock()
_dispatchers: dict[str, dispatch.InboxDispatcher] = {}

# "No distributor owns form X" is worth a warning, not one per delivery: at most once a minute per Page/form.
_UNROUTED_WARN_SECONDS = 60.0
_unrouted_warned: dict[str, float] = {}
_unrouted_lock = threading.Lock()


def _warn_unrouted(ids: tuple[str, ...]) -> None:
    now = time.monotonic()
    with _unrouted_lock:
        fresh = [p for p in ids if now - _unrouted_warned.get(p, -1e9) >= _UNROUTED_WARN_SECONDS]
        for p in fresh:
            _unrouted_warned[p] = now
        if len(_unrouted_warned) > 10_000:
            _unrouted_warned.clear()
    if fresh:
        log.warning("webhook: change(s) no distributor owns (%s): kept as unrouted, routed as soon as a distributor "
                    "owns the form (`distributors add|update --form-id`, or its sync discovers it); "
                    "`leads-pipeline webhooks inbox` lists them", ", ".join(fresh))


def _writer_for(wh: Warehouse) -> InboxWriter:
    """The process's writer for this warehouse, created (and the schema migrated) on first use."""
    with _writers_lock:
        writer = _writers.get(wh.url)
        if writer is None:
            wh.migrate()
            writer = InboxWriter(wh)
            _writers[wh.url] = writer
        return writer


def _dispatcher_for(wh: Warehouse) -> dispatch.InboxDispatcher:
    """The process's inbox dispatcher for this warehouse (``LEADS_WEBHOOK_PROCESS=service``), made on first use."""
    with _writers_lock:
        found = _dispatchers.get(wh.url)
        if found is None:
            found = _dispatchers[wh.url] = dispatch.InboxDispatcher(wh)
        return found


def close_writers() -> None:
    """Stop every inbox writer after it has written what is queued, and the dispatchers (tests; shutdown)."""
    with _writers_lock:
        writers = list(_writers.values())
        _writers.clear()
        dispatchers = list(_dispatchers.values())
        _dispatchers.clear()
    for writer in writers:
        writer.close()
    for dispatcher in dispatchers:
        dispatcher.close()


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


class WebhookReceiver:
    """The two endpoints; ``warehouse`` (a :class:`Warehouse` or URL) defaults to ``LEADS_WAREHOUSE_URL``."""

    def __init__(self, warehouse: Warehouse | str | None = None, *, max_body_bytes: int = MAX_BODY_BYTES,
                 store_timeout: float = STORE_TIMEOUT_SECONDS):
        self._warehouse = Warehouse(warehouse) if isinstance(warehouse, str) else warehouse
        self.max_body_bytes = max_body_bytes
        self.store_timeout = store_timeout

    def _wh(self) -> Warehouse:
        return self._warehouse if self._warehouse is not None else connect()

    def _ready_writer(self) -> InboxWriter | None:
        """The writer, when it exists already (no thread hop per request)."""
        url = self._warehouse.url if self._warehouse is not None else get_settings().resolved_warehouse_url
        return _writers.get(url)

    async def handle(self, request: Request) -> Response:
        if request.method == "POST":
            return await self.receive(request)
        return await self.verify(request)

    # -- GET: the subscription handshake --------------------------------------------------------------------------
    async def verify(self, request: Request) -> Response:
        expected = get_settings().webhook_verify_token
        if expected is None or not expected.get_secret_value():
            log.warning("webhook handshake refused: LEADS_WEBHOOK_VERIFY_TOKEN is not set")
            return _error(503, "Webhook verification is not configured: set LEADS_WEBHOOK_VERIFY_TOKEN to the verify "
                               "token entered in the Meta App Dashboard.")
        q = request.query_params
        mode, token, challenge = q.get("hub.mode"), q.get("hub.verify_token"), q.get("hub.challenge")
        if mode != "subscribe":
            return _error(403, "hub.mode must be 'subscribe'.")
        if token is None or not hmac.compare_digest(token.encode(), expected.get_secret_value().encode()):
            log.warning("webhook handshake refused: wrong verify token")
            return _error(403, "hub.verify_token does not match LEADS_WEBHOOK_VERIFY_TOKEN.")
        if not challenge or len(challenge) > _MAX_CHALLENGE_LENGTH:
            return _error(403, "hub.challenge is missing or too long.")
        log.info("webhook handshake accepted")
        return PlainTextResponse(challenge, headers={"X-Content-Type-Options": "nosniff"})

    # -- POST: a delivery -----------------------------------------------------------------------------------------
    async def receive(self, request: Request) -> Response:
        secret = get_settings().app_secret
        if secret is None or not secret.get_secret_value():
            log.error("webhook delivery refused: LEADS_APP_SECRET is not set, signatures cannot be checked")
            return _error(503, "Webhook signatures cannot be checked: set LEADS_APP_SECRET to the Meta app's secret "
                               "(App Dashboard → App settings → Basic).")
        declared = request.headers.get("content-length")
        if declared is not None:
            try:
                length = int(declared)
            except ValueError:
                return _error(400, "Content-Length is not a number.")
            if length > self.max_body_bytes:
                log.warning("webhook delivery refused: %d bytes declared, limit %d", length, self.max_body_bytes)
                return _error(413, f"The body is larger than {self.max_body_bytes} bytes.")
        body = await self._read(request)
        if body is None:
            log.warning("webhook delivery refused: body over %d bytes", self.max_body_bytes)
            return _error(413, f"The body is larger than {self.max_body_bytes} bytes.")
        signature = request.headers.get("x-hub-signature-256")
        if not signature:
            log.warning("webhook delivery refused: no X-Hub-Signature-256 header (%d bytes)", len(body))
            return _error(403, "Missing X-Hub-Signature-256 header.")
        if not verify_signature(body, signature, secret.get_secret_value()):
            log.warning("webhook delivery refused: bad signature (%d bytes)", len(body))
            return _error(403, "X-Hub-Signature-256 does not match the body (is LEADS_APP_SECRET this app's secret?).")
        try:
            changes = parse_delivery(body)
        except InvalidDelivery as exc:
            log.warning("webhook delivery refused: %s", exc)
            return _error(400, f"Not a Meta webhook delivery: {exc}.")
        if not changes:
            log.info("webhook delivery with no leadgen change (%d bytes)", len(body))
            return JSONResponse({"received": 0, "new": 0, "duplicates": 0, "unrouted": 0})
        try:
            writer = self._ready_writer()
            if writer is None:  # first delivery for this warehouse: migrate (blocking) off the event loop
                writer = await run_in_threadpool(_writer_for, self._wh())
            result = await asyncio.wait_for(asyncio.wrap_future(writer.submit(changes)), self.store_timeout)
        except Exception as exc:  # noqa: BLE001 - answer 503 so that Meta retries
            log.error("webhook delivery of %d change(s) not stored: %s", len(changes),
                      redact(f"{type(exc).__name__}: {exc}")[:300])
            return _error(503, "The delivery could not be stored right now; it was not acknowledged (Meta retries).")
        if result.pending_distributors and dispatch.enabled():  # off the request: a background thread
            _dispatcher_for(writer.wh).notify(result.pending_distributors)
        if result.unrouted:
            _warn_unrouted(tuple(f"form {f}" for f in result.unrouted_form_ids)
                           or tuple(f"page {p}" for p in result.unrouted_page_ids))
        log.info("webhook delivery stored: %d change(s), %d new, %d duplicate, %d unrouted, %d deleted",
                 len(changes), result.new, result.duplicates, result.unrouted, result.deleted)
        return JSONResponse({"received": len(changes), "new": result.new, "duplicates": result.duplicates,
                             "unrouted": result.unrouted})

    async def _read(self, request: Request) -> bytes | None:
        """The raw body, or None as soon as it passes the limit (a chunked or lying client)."""
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > self.max_body_bytes:
                return None
            chunks.append(chunk)
        return b"".join(chunks)


def webhook_routes(
    warehouse: Warehouse | str | None = None,
    *,
    path: str = WEBHOOK_PATH,
    max_body_bytes: int = MAX_BODY_BYTES,
    **options: Any,
) -> list[Route]:
    """The receiver's routes (``GET`` + ``POST`` on ``path``), to mount in a Starlette application."""
    receiver = WebhookReceiver(warehouse, max_body_bytes=max_body_bytes, **options)
    return [Route(path, receiver.handle, methods=["GET", "POST"], name="meta_webhook")]
