"""The HTTP transport: ``SimulatorServer`` serves a ``Simulator`` on 127.0.0.1 from a background thread.

Built on ``http.server.ThreadingHTTPServer`` (HTTP/1.1, keep-alive, daemon threads) for raw socket control: slow
answers, truncated bodies and connection resets (status + headers + part of the body, then an RST).
"""

from __future__ import annotations

import email.parser
import gzip
import email.policy
import json
import logging
import socket
import struct
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from leads_pipeline.simulator.faults import FaultConfig
from leads_pipeline.simulator.messages import GraphRequest
from leads_pipeline.simulator.scenario import Scenario
from leads_pipeline.simulator.simulator import Simulator

log = logging.getLogger(__name__)

CONTROL_PREFIX = "/__simulator/"
#: Bodies smaller than this are sent as they are even to a client that accepts gzip (not worth the CPU).
GZIP_MIN_BYTES = 2048


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], sim: Simulator, compress: bool = True):
        super().__init__(address, _Handler)
        self.sim = sim
        self.compress = compress
        self._conn_lock = threading.Lock()
        self._conns: set[socket.socket] = set()
        self._reset: set[int] = set()

    def process_request(self, request, client_address):  # type: ignore[override]
        with self._conn_lock:
            self._conns.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request):  # type: ignore[override]
        with self._conn_lock:
            self._conns.discard(request)
            reset = id(request) in self._reset
            self._reset.discard(id(request))
        if reset:
            self.close_request(request)  # no FIN first: SO_LINGER 0 turns the close into an RST
        else:
            super().shutdown_request(request)

    def handle_error(self, request, client_address):  # type: ignore[override]
        exc = sys.exc_info()[1]
        if isinstance(exc, OSError):  # the client went away (timeouts, resets): nothing to report
            return
        log.exception("simulator: error while serving %s", client_address)

    def mark_reset(self, request: socket.socket) -> None:
        with self._conn_lock:
            self._reset.add(id(request))

    def close_all_connections(self) -> None:
        with self._conn_lock:
            conns = list(self._conns)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "SimulatedGraphAPI"
    sys_version = ""
    timeout = 120
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet: tokens may be in URLs
        return

    def version_string(self) -> str:
        return self.server_version

    def do_GET(self) -> None:  # noqa: N802
        self._handle()

    def do_POST(self) -> None:  # noqa: N802
        self._handle()

    def do_DELETE(self) -> None:  # noqa: N802
        self._handle()

    # ---------------------------------------------------------------------------------------------------------------

    def _handle(self) -> None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = 0
        body = self.rfile.read(length) if length > 0 else b""
        url = urllib.parse.urlsplit(self.path)
        if url.path.startswith(CONTROL_PREFIX):
            self._control(url, body)
            return
        with self.server.sim.in_flight():
            self._graph(url, body)

    def _graph(self, url: urllib.parse.SplitResult, body: bytes) -> None:
        sim = self.server.sim
        query = urllib.parse.parse_qsl(url.query, keep_blank_values=True)
        body_params = self._body_params(body)
        params = {**body_params, **dict(query)}
        token, in_query = None, False
        if dict(query).get("access_token"):
            token, in_query = dict(query)["access_token"], True
        elif body_params.get("access_token"):
            token = body_params["access_token"]
        else:
            auth = self.headers.get("Authorization", "")
            scheme, _, value = auth.partition(" ")
            if scheme.lower() in ("bearer", "oauth") and value.strip():
                token = value.strip()
        host = self.headers.get("Host") or f"{self.server.server_address[0]}:{self.server.server_address[1]}"
        req = GraphRequest(self.command, url.path, query, params, token, in_query, host)
        resp, decision = sim.handle(req)
        version = resp.version or sim.scenario.api_version
        trace = resp.trace_id
        headers = [
            ("Content-Type", resp.content_type),
            ("x-fb-request-id", trace),
            ("x-fb-trace-id", trace),
            ("x-fb-debug", trace * 3),
            ("facebook-api-version", version),
            ("Access-Control-Allow-Origin", "*"),
            ("Cache-Control", "private, no-cache, no-store, must-revalidate"),
            *resp.headers,
            *sim.usage_headers(resp),
        ]
        payload = resp.body
        if decision.slow:
            time.sleep(decision.slow)
        if decision.truncated and resp.status == 200 and len(payload) > 1:
            payload = payload[: max(1, len(payload) * 2 // 3)]
        if decision.reset:
            self._send_then_reset(resp.status, headers, payload)
            return
        if not decision.truncated:
            payload = self._maybe_gzip(headers, payload)
        self._send(resp.status, headers, payload)

    def _maybe_gzip(self, headers: list[tuple[str, str]], payload: bytes) -> bytes:
        """gzip the body when the client accepts it, as graph.facebook.com does (pages of leads shrink ~8x).
        Level 1: on loopback the CPU, not the bytes, is what costs."""
        if not self.server.compress or len(payload) < GZIP_MIN_BYTES:
            return payload
        accepted = self.headers.get("Accept-Encoding", "")
        if "gzip" not in {part.split(";")[0].strip().lower() for part in accepted.split(",")}:
            return payload
        headers += [("Content-Encoding", "gzip"), ("Vary", "Accept-Encoding")]
        return gzip.compress(payload, compresslevel=1, mtime=0)

    def _body_params(self, body: bytes) -> dict[str, str]:
        if not body:
            return {}
        ctype = self.headers.get("Content-Type", "")
        if ctype.startswith("multipart/form-data"):
            msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
                b"Content-Type: " + ctype.encode() + b"\r\n\r\n" + body)
            out = {}
            for part in msg.iter_parts():
                name = part.get_param("name", header="content-disposition")
                if name and not part.get_filename():
                    out[name] = part.get_content() if part.get_content_maintype() == "text" else \
                        part.get_payload(decode=True).decode("utf-8", "replace")
            return out
        if ctype.startswith("application/json"):
            try:
                data = json.loads(body)
            except ValueError:
                return {}
            if not isinstance(data, dict):
                return {}
            return {k: v if isinstance(v, str) else json.dumps(v) for k, v in data.items()}
        return dict(urllib.parse.parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))

    def setup(self) -> None:
        super().setup()
        try:
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass

    def _send(self, status: int, headers: list[tuple[str, str]], payload: bytes) -> None:
        """Head and body in one write (no Nagle / delayed-ACK stall between them)."""
        self.send_response(status)
        for key, value in headers:
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(payload)))
        self._headers_buffer.append(b"\r\n")
        data = b"".join(self._headers_buffer) + payload
        self._headers_buffer = []
        self.wfile.write(data)

    def _send_then_reset(self, status: int, headers: list[tuple[str, str]], payload: bytes) -> None:
        """Status line + headers announcing the full Content-Length, half the body, then RST (SO_LINGER 0)."""
        head = [f"HTTP/1.1 {status} {self.responses.get(status, ('',))[0]}\r\n"]
        head += [f"{k}: {v}\r\n" for k, v in headers]
        head.append(f"Content-Length: {len(payload)}\r\n\r\n")
        try:
            self.wfile.write("".join(head).encode("latin-1") + payload[: len(payload) // 2])
            time.sleep(0.05)  # let the client read the head and start on the body
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        self.server.mark_reset(self.connection)
        self.close_connection = True

    # ----------------------------------------------------------------------------------------------- control --

    def _control(self, url: urllib.parse.SplitResult, body: bytes) -> None:
        sim = self.server.sim
        sim.record_control()
        action = url.path[len(CONTROL_PREFIX):].strip("/")
        method = self.command
        try:
            data = json.loads(body) if body.strip() else {}
        except ValueError:
            return self._json(400, {"error": "the body must be JSON"})
        try:
            if action == "manifest" and method == "GET":
                out = sim.manifest()
                out["base_url"] = f"http://{self.headers.get('Host') or '127.0.0.1'}"
                return self._json(200, out)
            if action == "advance" and method == "POST":
                ids = sim.advance(seconds=data.get("seconds"), leads=data.get("leads"))
                return self._json(200, {"new_lead_ids": ids, "now": sim.world.now})
            if action == "faults" and method == "POST":
                sim.set_faults(FaultConfig.from_dict(data))
                return self._json(200, {"faults": sim.faults.config.to_dict()})
            if action == "faults" and method == "GET":
                return self._json(200, {"faults": sim.faults.config.to_dict()})
            if action == "stats" and method == "GET":
                return self._json(200, sim.stats())
            if action in ("stats/reset", "reset_stats") and method == "POST":
                sim.reset_stats()
                return self._json(200, {"ok": True})
            if action == "scenario" and method == "GET":
                # An anchored world (start_time None) reports the moment it was anchored to.
                return self._json(200, dict(sim.scenario.to_dict(), start_time=sim.world.start_time))
            if action == "webhooks" and method == "POST":
                url_ = data.pop("url", None)
                if not url_:
                    return self._json(400, {"error": "url is required"})
                sim.start_webhooks(url_, **data)
                return self._json(200, {"ok": True})
            if action == "webhooks" and method == "DELETE":
                sim.stop_webhooks()
                return self._json(200, {"ok": True})
            if action == "webhooks" and method == "GET":
                return self._json(200, sim.webhooks.stats() if sim.webhooks else {})
            if action == "datasets" and method == "GET":
                query = dict(urllib.parse.parse_qsl(url.query))
                return self._json(200, {"datasets": sim.datasets(events=query.get("events") in ("1", "true"))})
            if action == "datasets" and method == "POST":
                return self._json(200, {"id": sim.create_dataset(str(data.get("name") or "CRM dataset"),
                                                                  data.get("page_id"))})
            parts = action.split("/")
            if len(parts) == 3 and parts[0] == "datasets" and parts[2] == "events" and method in ("GET", "DELETE"):
                if method == "DELETE":
                    sim.clear_dataset(parts[1])
                    return self._json(200, {"ok": True})
                since = int(dict(urllib.parse.parse_qsl(url.query)).get("since") or 0)
                return self._json(200, {"dataset_id": parts[1], "events": sim.dataset_events(parts[1], since)})
        except LookupError as exc:
            return self._json(404, {"error": str(exc)})
        except (TypeError, ValueError) as exc:
            return self._json(400, {"error": str(exc)})
        return self._json(404, {"error": f"unknown control endpoint {method} /__simulator/{action}"})

    def _json(self, status: int, obj: Any) -> None:
        self._send(status, [("Content-Type", "application/json; charset=UTF-8")],
                   json.dumps(obj, separators=(",", ":")).encode())


class SimulatorServer:
    """Serve a ``Simulator`` over HTTP on ``host:port`` (port 0 → ephemeral). A context manager.

    ``SimulatorServer(Scenario(seed=7))`` or ``SimulatorServer(Simulator(...))``; ``realtime=True`` advances the
    clock with wall time; ``webhook_url`` starts a webhook emitter (``webhook_options`` → ``WebhookConfig``);
    ``compress=False`` never gzips answers (by default a client sending ``Accept-Encoding: gzip`` gets gzip).
    """

    def __init__(self, simulator: Simulator | Scenario | None = None, *, host: str = "127.0.0.1", port: int = 0,
                 faults: FaultConfig | dict | None = None, realtime: bool = False, speed: float = 1.0,
                 webhook_url: str | None = None, webhook_options: dict[str, Any] | None = None,
                 compress: bool = True):
        if isinstance(simulator, Simulator):
            self.simulator = simulator
            if faults is not None:
                simulator.set_faults(faults)
        else:
            self.simulator = Simulator(simulator, faults)
        self.host = host
        self._requested_port = port
        self._realtime = realtime
        self._speed = speed
        self._webhook_url = webhook_url
        self._webhook_options = webhook_options or {}
        self._compress = compress
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    # --------------------------------------------------------------------------------------------- lifecycle --

    def start(self) -> SimulatorServer:
        if self._httpd is not None:
            return self
        self._httpd = _Server((self.host, self._requested_port), self.simulator, self._compress)
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.1},
                                        name=f"simulator-http-{self.port}", daemon=True)
        self._thread.start()
        if self._webhook_url:
            self.simulator.start_webhooks(self._webhook_url, **self._webhook_options)
        if self._realtime:
            self.simulator.start_realtime(self._speed)
        return self

    def stop(self) -> None:
        self.simulator.close()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.close_all_connections()
            self._httpd.server_close()
            if self._thread is not None:
                self._thread.join(5)
            self._httpd = None
            self._thread = None

    def __enter__(self) -> SimulatorServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._httpd is None:
            return self._requested_port
        return self._httpd.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def __repr__(self) -> str:  # never shows tokens
        return f"<SimulatorServer {self.base_url} seed={self.simulator.scenario.seed}>"

    # -------------------------------------------------------------------------------------------- delegation --

    @property
    def scenario(self) -> Scenario:
        return self.simulator.scenario

    def manifest(self) -> dict[str, Any]:
        return self.simulator.manifest()

    def advance(self, seconds: float | None = None, leads: int | None = None) -> list[str]:
        return self.simulator.advance(seconds=seconds, leads=leads)

    def set_faults(self, config: FaultConfig | dict | None) -> None:
        self.simulator.set_faults(config)

    def stats(self) -> dict[str, Any]:
        return self.simulator.stats()

    def reset_stats(self) -> None:
        self.simulator.reset_stats()

    def start_webhooks(self, url: str, **options: Any):
        return self.simulator.start_webhooks(url, **options)

    def flush_webhooks(self, timeout: float = 10.0) -> bool:
        return self.simulator.flush_webhooks(timeout)
