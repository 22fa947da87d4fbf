"""Shared pieces of the ``test_webhook_*`` modules (no tests here): Meta's sample payloads, a real uvicorn server
running the receiver, settings helpers, a spying Graph client, a distributor on the simulator.

The webhook samples are Meta's (see ``/work/shared/reference/meta-samples/README.md``), copied byte for byte so
the tests run without that folder; ``test_samples_match_the_reference`` checks the copies when the folder exists.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
import requests
import uvicorn
from starlette.applications import Starlette

from leads_pipeline.lib.distributors import registry as distributors
from leads_pipeline.lib.graph import GraphClient
from leads_pipeline.lib.security import generate_key, sign
from leads_pipeline.lib.warehouse import Warehouse
from leads_pipeline.settings import get_settings
from leads_pipeline.simulator import Scenario, SimulatorServer
from leads_pipeline.web.webhooks import close_writers, webhook_routes
from leads_pipeline_tests.graph_fixtures import FakeGraph, Recorded, Reply

REFERENCE_DIR = Path("/work/shared/reference/meta-samples")

# webhook_leadgen__fbsamples_postman.json: string ids, no ad_id (organic / testing tool).
SAMPLE_POSTMAN = b"""{
  "object": "page",
  "entry": [
    {
      "id": "138124712925158",
      "time": 1630087927,
      "changes": [
        {
          "value": {
            "form_id": "172036835026334",
            "leadgen_id": "233370042045345",
            "created_time": 1630087926,
            "page_id": "138124712925158"
          },
          "field": "leadgen"
        }
      ]
    }
  ]
}
"""

# webhook_leadgen_two_changes__meta_retrieving_doc.json: Meta's doc sample, ids as JSON numbers.
SAMPLE_DOC_NUMERIC = b"""{
  "object": "page",
  "entry": [
    {
      "id": 153125381133,
      "time": 1438292065,
      "changes": [
        {
          "field": "leadgen",
          "value": {
            "leadgen_id": 123123123123,
            "page_id": 123123123,
            "form_id": 12312312312,
            "adgroup_id": 12312312312,
            "ad_id": 12312312312,
            "created_time": 1440120384
          }
        },
        {
          "field": "leadgen",
          "value": {
            "leadgen_id": 123123123124,
            "page_id": 123123123,
            "form_id": 12312312312,
            "adgroup_id": 12312312312,
            "ad_id": 12312312312,
            "created_time": 1440120384
          }
        }
      ]
    }
  ]
}
"""

# webhook_leadgen__app_dashboard_test_payload.json: the App Dashboard's "Test" button; the lead does not exist.
SAMPLE_DASHBOARD = b"""{
  "object": "page",
  "entry": [
    {
      "id": "0",
      "time": 1588890044,
      "changes": [
        {
          "field": "leadgen",
          "value": {
            "ad_id": "444444444",
            "form_id": "444444444444",
            "leadgen_id": "444444444444",
            "created_time": 1588890044,
            "page_id": "444444444444",
            "adgroup_id": "44444444444"
          }
        }
      ]
    }
  ]
}
"""

SAMPLES = {
    "webhook_leadgen__fbsamples_postman.json": SAMPLE_POSTMAN,
    "webhook_leadgen_two_changes__meta_retrieving_doc.json": SAMPLE_DOC_NUMERIC,
    "webhook_leadgen__app_dashboard_test_payload.json": SAMPLE_DASHBOARD,
}

APP_SECRET = "test-app-secret-0123456789abcdef"
VERIFY_TOKEN = "verify-me-please-42"


def configure(monkeypatch: pytest.MonkeyPatch, **values: str | None) -> None:
    """Set (or, with None, unset) LEADS_* variables and drop the cached settings."""
    for name, value in values.items():
        env = f"LEADS_{name.upper()}"
        if value is None:
            monkeypatch.delenv(env, raising=False)
        else:
            monkeypatch.setenv(env, value)
    get_settings.cache_clear()


def signed_headers(body: bytes, secret: str = APP_SECRET) -> dict[str, str]:
    return {"Content-Type": "application/json", "X-Hub-Signature-256": sign(body, secret)}


def leadgen_body(values: list[dict[str, Any]], page_id: str | None = None) -> bytes:
    import json

    page = page_id or str(values[0]["page_id"])
    return json.dumps({"object": "page", "entry": [{"id": page, "time": int(time.time()),
                                                    "changes": [{"field": "leadgen", "value": v} for v in values]}]},
                      separators=(",", ":")).encode()


class LiveServer:
    """uvicorn serving a Starlette app on 127.0.0.1 (a free port), in a background thread."""

    def __init__(self, app: Any):
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        config = uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False,
                                timeout_keep_alive=30, limit_concurrency=2000, backlog=2048)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self._sock]},
                                       name=f"uvicorn-{self.port}", daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def webhook_url(self) -> str:
        return f"{self.base_url}/webhooks/meta"

    def start(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self._sock.close()


def receiver_app(warehouse: Warehouse | str | None = None, **options: Any) -> Starlette:
    return Starlette(routes=webhook_routes(warehouse, **options))


@pytest.fixture
def live_receiver() -> Iterator:
    """``live_receiver(warehouse=None, **options) -> LiveServer`` (started; stopped at teardown)."""
    servers: list[LiveServer] = []

    def make(warehouse: Warehouse | str | None = None, **options: Any) -> LiveServer:
        server = LiveServer(receiver_app(warehouse, **options)).start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()
    close_writers()


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


SCENARIO = Scenario(seed=3, pages=2, forms_per_page=1, leads_per_form=3, extra_leads=40, malformed_rate=0.0,
                    invalid_contact_rate=0.0)


@pytest.fixture
def world(warehouse, live_receiver, monkeypatch) -> Iterator[tuple]:
    """(warehouse, receiver, simulator, manifest): the simulator delivers every webhook twice to the receiver."""
    receiver = live_receiver(warehouse)
    sim = SimulatorServer(SCENARIO, webhook_url=receiver.webhook_url,
                          webhook_options={"duplicate_rate": 1.0, "seed": 1, "backoff_initial": 0.01})
    sim.start()
    manifest = sim.manifest()
    configure(monkeypatch, app_secret=manifest["app_secret"], graph_base_url=sim.base_url)
    yield warehouse, receiver, sim, manifest
    sim.stop()


def table_rows(wh: Warehouse) -> dict[str, int]:
    """Row count of every table of the warehouse (its own schema only), migrations bookkeeping left out."""
    with wh.transaction(read_only=True) as conn:
        if conn.backend == "duckdb":
            names = [r["table_name"] for r in conn.query(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main' "
                "AND table_type = 'BASE TABLE'")]
        else:
            names = [r["table_name"] for r in conn.query(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() "
                "AND table_type = 'BASE TABLE'")]
        return {n: int(conn.scalar(f"SELECT count(*) FROM {n}")) for n in names if n != "schema_migrations"}


def inbox_rows(wh: Warehouse) -> dict[str, dict[str, Any]]:
    with wh.transaction(read_only=True) as conn:
        rows = conn.query("SELECT * FROM webhook_inbox ORDER BY leadgen_id")
    return {r["leadgen_id"]: r for r in rows}


def lead_ids(wh: Warehouse) -> set[str]:
    with wh.transaction(read_only=True) as conn:
        return {r["meta_lead_id"] for r in conn.query("SELECT meta_lead_id FROM leads")}


class SpyClient(GraphClient):
    """A real GraphClient that records every id it is asked to fetch (``with_token`` copies share the list)."""

    requested: list[str]

    def get_leads_batch(self, lead_ids, fields=None):  # type: ignore[override]
        ids = [str(i) for i in lead_ids]
        self.requested.extend(ids)
        return super().get_leads_batch(ids) if fields is None else super().get_leads_batch(ids, fields)


def spy_factory(base_url: str, app_secret: str | None = None):
    """A client factory for ``process_inbox`` against the simulator, plus the list of ids fetched."""
    requested: list[str] = []

    def factory(token: str) -> SpyClient:
        client = SpyClient(token, base_url=base_url, app_secret=app_secret, max_retries=2, backoff_base=0.01,
                           backoff_max=0.05)
        client.requested = requested
        return client

    return factory, requested


def add_sim_distributor(wh: Warehouse, monkeypatch: pytest.MonkeyPatch, manifest: dict, *, token: str = "user",
                        extra_pages: tuple[str, ...] = (), name: str = "Sim Clinic") -> str:
    """A distributor owning the simulator's pages (user token, or the first page's token), returns its key.

    Its forms are recorded as its discovery would record them on its first sync (``registry.record_forms``): webhooks
    are routed by form, so until a distributor owns a form its changes wait as ``unrouted``.
    """
    if get_settings().secret_key is None:
        configure(monkeypatch, secret_key=generate_key())
    pages = [p["id"] for p in manifest["pages"]]
    if token == "user":
        tok = manifest["user_token"]
    else:
        tok = manifest["pages"][0]["access_token"]
        pages = pages[:1]
    dist = distributors.add(wh, name, tok, page_ids=[*pages, *extra_pages],
                            region=manifest["pages"][0]["default_region"])
    distributors.record_forms(wh, dist.key, [{"id": f["id"], "name": f.get("name"), "page_id": p["id"]}
                                             for p in manifest["pages"] if p["id"] in pages for f in p["forms"]])
    return dist.key


PAGE, FORM = "710000000000001", "720000000000001"
PAGE_TOKEN = "EAAGpagetoken00000000000000000000000000"


class LeadServer(FakeGraph):
    """A scripted Graph API (real HTTP): ``/me/accounts`` (one Page), the Page's forms, leads by id (batch or
    single). A lead in ``missing`` answers Meta's 100/33 for its first ``missing[id]`` reads (-1: always), one in
    ``flaky`` a ``null`` batch item (Meta timed out) for its first ``flaky[id]`` reads; ``down`` fails every batch
    POST with a 500."""

    def __init__(self) -> None:
        super().__init__()
        self.leads: dict[str, dict] = {}
        self.missing: dict[str, int] = {}
        self.flaky: dict[str, int] = {}
        self.down = False
        self.reads: Counter = Counter()

    def lead(self, lead_id: str, email: str = "ayse@example.com", field_data: Any = None) -> str:
        self.leads[lead_id] = {"id": lead_id, "created_time": "2026-06-01T10:00:00+0000", "form_id": FORM,
                               "field_data": [{"name": "full_name", "values": ["Ayşe Yılmaz"]},
                                              {"name": "email", "values": [email]}]
                               if field_data is None else field_data}
        return lead_id

    def _read(self, lead_id: str) -> tuple[int, dict]:
        self.reads[lead_id] += 1
        left = self.missing.get(lead_id, 0)
        if lead_id not in self.leads or left == -1 or self.reads[lead_id] <= left:
            return 400, {"error": {"message": f"Unsupported get request. Object with ID '{lead_id}' does not exist, "
                                              "cannot be loaded due to missing permissions, or does not support this "
                                              "operation.", "type": "GraphMethodException", "code": 100,
                                   "error_subcode": 33, "fbtrace_id": "AbC"}}
        return 200, self.leads[lead_id]

    def _answer(self, rec: Recorded) -> Reply:
        with self._lock:
            self.requests.append(rec)
        parts = [p for p in rec.path.split("/") if p]
        if rec.method == "POST" and len(parts) == 1:  # a batch
            if self.down:
                return Reply(body={"error": {"message": "An unexpected error has occurred.", "type": "OAuthException",
                                             "code": 2, "is_transient": True}}, status=500)
            items: list[Any] = []
            for op in json.loads(parse_qs(rec.body.decode())["batch"][0]):
                lead_id = op["relative_url"].split("?")[0].strip("/").split("/")[-1]
                if self.flaky.get(lead_id, 0) > 0:
                    self.flaky[lead_id] -= 1
                    items.append(None)
                    continue
                status, body = self._read(lead_id)
                items.append({"code": status, "headers": [], "body": json.dumps(body)})
            return Reply(body=items)
        if parts[-2:] == ["me", "accounts"]:
            return Reply(body={"data": [{"id": PAGE, "name": "Clinic Page", "access_token": PAGE_TOKEN}]})
        if parts[-1] == "leadgen_forms":
            return Reply(body={"data": [{"id": FORM, "name": "Form", "status": "ACTIVE", "locale": "en_GB",
                                         "leads_count": len(self.leads), "expired_leads_count": 0}]})
        if parts[-1] == "leads":
            return Reply(body={"data": []})
        status, body = self._read(parts[-1])
        return Reply(body=body, status=status)


@pytest.fixture
def lead_server(warehouse, monkeypatch):
    server = LeadServer().start()
    configure(monkeypatch, secret_key=generate_key(), graph_base_url=server.url)
    key = distributors.add(warehouse, "Scripted Clinic", "EAAGusertoken000000000000000000000000",
                           page_ids=[PAGE], form_ids=[FORM]).key

    def factory(token: str) -> GraphClient:
        return GraphClient(token, base_url=server.url, max_retries=0, backoff_base=0.001, backoff_max=0.01)

    yield warehouse, server, key, factory
    server.stop()


def test_samples_match_the_reference() -> None:
    """The copies above are Meta's samples byte for byte (skipped where the reference folder is absent)."""
    if not REFERENCE_DIR.is_dir():
        pytest.skip("the reference samples folder is not on this machine")
    for name, body in SAMPLES.items():
        assert (REFERENCE_DIR / name).read_bytes().strip() == body.strip(), name
