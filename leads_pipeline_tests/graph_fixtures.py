"""A scripted fake Graph API on 127.0.0.1 (real sockets) for the ``GraphClient`` tests, plus sample loading.

Why not the simulator: these tests pin the client's behaviour against exact wire bytes (a half-sent body, a reset
connection, a ``paging.next`` on another host), which a realistic simulator should not be bent to produce.

The server answers each request from a per-route FIFO of :class:`Reply` objects (or a handler function) and
records every request (method, path, query, headers, body) for assertions.
"""

from __future__ import annotations

import copy
import json
import socket
import struct
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

from leads_pipeline.lib.graph import GraphClient

SAMPLES = Path(__file__).parent / "data" / "meta_samples"

#: Looks like a real page token, so pattern-based redaction would catch it too.
TOKEN = "EAAGtestPAGEtoken0123456789abcdefghijklmnopqrstuvwxyzZZ"
#: Does not look like a token: only the client's exact-secret redaction can hide it.
PLAIN_TOKEN = "plain-secret-tok-42"
APP_SECRET = "s3cr3t-app-secret"


def sample(name: str) -> Any:
    """A fresh copy of a JSON sample from ``data/meta_samples`` (``.json`` optional)."""
    path = SAMPLES / (name if name.endswith(".json") else f"{name}.json")
    return json.loads(path.read_text())


@dataclass
class Reply:
    """One scripted answer. ``body``: dict/list -> JSON, str/bytes sent as is.

    ``action``: ``None`` (normal), ``"partial"`` (headers promise the whole body, half is sent, then the socket
    is closed), ``"reset"`` (same, but closed with a TCP RST), ``"hang"`` (sleep ``delay`` before answering).
    """

    body: Any = None
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    action: str | None = None
    delay: float = 0.0


def ok(body: Any, headers: dict[str, str] | None = None) -> Reply:
    return Reply(body=body, headers=headers or {})


def error(code: int, subcode: int | None = None, message: str = "An error", *, status: int = 400,
          headers: dict[str, str] | None = None, **extra: Any) -> Reply:
    envelope: dict[str, Any] = {"message": message, "type": "OAuthException", "code": code,
                                "fbtrace_id": "AbCdEfGh123"}
    if subcode is not None:
        envelope["error_subcode"] = subcode
    envelope.update(extra)
    return Reply(body={"error": envelope}, status=status, headers=headers or {})


def buc_headers(minutes: float, kind: str = "leadgen", percent: int = 100) -> dict[str, str]:
    """An ``X-Business-Use-Case-Usage`` header (a JSON string) saying access returns in ``minutes``."""
    value = {"111111111111111": [{"type": kind, "call_count": percent, "total_cputime": 10, "total_time": 10,
                                  "estimated_time_to_regain_access": minutes}]}
    return {"X-Business-Use-Case-Usage": json.dumps(value)}


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-cased names
    body: bytes
    raw_target: str  # the request line's target: path plus query string

    @property
    def form(self) -> dict[str, list[str]]:
        return parse_qs(self.body.decode(), keep_blank_values=True)

    def q(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None


class FakeGraph:
    """The server. ``script(method, path, *replies)`` queues answers; ``requests`` holds what arrived."""

    def __init__(self) -> None:
        self._queues: dict[tuple[str, str], deque[Reply]] = defaultdict(deque)
        self._handlers: dict[tuple[str, str], Callable[[Recorded], Reply]] = {}
        self._lock = threading.Lock()
        self.requests: list[Recorded] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02},
                                        name="fake-graph", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def link(self, path: str, **query: Any) -> str:
        """An absolute URL on this server (what ``paging.next`` should look like)."""
        return f"{self.url}{path}" + (f"?{urlencode(query)}" if query else "")

    def script(self, method: str, path: str, *replies: Reply) -> None:
        with self._lock:
            self._queues[(method.upper(), path)].extend(replies)

    def handle(self, method: str, path: str, fn: Callable[[Recorded], Reply]) -> None:
        self._handlers[(method.upper(), path)] = fn

    def hits(self, method: str | None = None, path: str | None = None) -> list[Recorded]:
        with self._lock:
            return [r for r in self.requests if (method is None or r.method == method)
                    and (path is None or r.path == path)]

    @property
    def count(self) -> int:
        with self._lock:
            return len(self.requests)

    def _answer(self, rec: Recorded) -> Reply:
        with self._lock:
            self.requests.append(rec)
            queue = self._queues.get((rec.method, rec.path))
            if queue:
                return queue.popleft()
        handler = self._handlers.get((rec.method, rec.path))
        if handler:
            return handler(rec)
        return Reply(body=f"fake graph: nothing scripted for {rec.method} {rec.path}", status=404)

    def start(self) -> FakeGraph:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _make_handler(graph: FakeGraph) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - keep test output quiet
            pass

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            parts = urlsplit(self.path)
            rec = Recorded(self.command, parts.path, parse_qs(parts.query, keep_blank_values=True),
                           {k.lower(): v for k, v in self.headers.items()}, body, self.path)
            reply = graph._answer(rec)
            if reply.action == "hang":
                time.sleep(reply.delay)
            payload = reply.body
            if payload is None:
                payload = b"{}"
            elif not isinstance(payload, (str, bytes)):
                payload = json.dumps(payload)
            if isinstance(payload, str):
                payload = payload.encode()
            self.send_response(reply.status)
            self.send_header("Content-Type", "application/json; charset=UTF-8")
            self.send_header("Content-Length", str(len(payload)))
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.end_headers()
            if reply.action in ("partial", "reset"):
                self.wfile.write(payload[: max(1, len(payload) // 2)])
                self.wfile.flush()
                if reply.action == "reset":
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                else:
                    self.connection.shutdown(socket.SHUT_RDWR)
                self.close_connection = True
                return
            try:
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout tests)
                self.close_connection = True

        do_GET = do_POST = do_DELETE = _serve

    return Handler


class SleepRecorder:
    """A fake ``sleep``: records each duration and how many requests the server had seen when it was called."""

    def __init__(self, graph: FakeGraph | None = None) -> None:
        self.graph = graph
        self.calls: list[float] = []
        self.requests_seen: list[int] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)
        self.requests_seen.append(self.graph.count if self.graph else -1)

    @property
    def total(self) -> float:
        return sum(self.calls)


@pytest.fixture
def graph() -> FakeGraph:
    server = FakeGraph().start()
    yield server
    server.stop()


@pytest.fixture
def sleeps(graph: FakeGraph) -> SleepRecorder:
    return SleepRecorder(graph)


@pytest.fixture
def make_client(graph: FakeGraph, sleeps: SleepRecorder):
    """``make_client(**overrides)``: a GraphClient aimed at the fake server with the recording sleep."""
    clients: list[GraphClient] = []

    def factory(token: str = TOKEN, **overrides: Any) -> GraphClient:
        options: dict[str, Any] = dict(base_url=graph.url, sleep=sleeps, timeout=5.0, backoff_base=0.5,
                                       backoff_max=4.0)
        options.update(overrides)
        client = GraphClient(token, **options)
        clients.append(client)
        return client

    yield factory
    for client in clients:
        client.close()


def with_next(page: dict[str, Any], next_url: str | None) -> dict[str, Any]:
    """A copy of a page sample whose ``paging.next`` is ``next_url`` (removed when ``None``)."""
    page = copy.deepcopy(page)
    paging = page.setdefault("paging", {})
    paging.pop("previous", None)
    if next_url is None:
        paging.pop("next", None)
    else:
        paging["next"] = next_url
    return page
