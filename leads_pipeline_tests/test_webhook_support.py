"""Shared pieces of the ``test_webhook_*`` modules (no tests here): Meta's sample payloads, a real uvicorn server
running the receiver, settings helpers, a spying Graph client, a distributor on the simulator.

The webhook samples are Meta's (see ``/work/shared/reference/meta-samples/README.md``), copied byte for byte so
the tests run without that folder; ``test_samples_match_the_reference`` checks the copies when the folder exists.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import uvicorn
from starlette.applications import Starlette

from leads_pipeline.lib.distributors import registry as distributors
from leads_pipeline.lib.graph import GraphClient
from leads_pipeline.lib.security import generate_key, sign
from leads_pipeline.simulator import Scenario, SimulatorServer
from leads_pipeline.lib.warehouse import Warehouse
from leads_pipeline.settings import get_settings
from leads_pipeline.web.webhooks import close_writers, webhook_routes

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
    """A distributor owning the simulator's pages (user token, or the first page's token), returns its key."""
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
    return dist.key


def test_samples_match_the_reference() -> None:
    """The copies above are Meta's samples byte for byte (skipped where the reference folder is absent)."""
    if not REFERENCE_DIR.is_dir():
        pytest.skip("the reference samples folder is not on this machine")
    for name, body in SAMPLES.items():
        assert (REFERENCE_DIR / name).read_bytes().strip() == body.strip(), name
