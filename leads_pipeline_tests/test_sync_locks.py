"""No network I/O under the DuckDB lock, and the CLI's exit status — real processes, real loopback HTTP.

While a sync waits out Meta's throttling, the DuckDB warehouse must be free: another thread and another process read
``stats``, and the webhook receiver answers a signed POST with 200. The assertions are about order (done before the
sync's throttled request is sent again), not about durations.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time

import pytest
import requests

from leads_pipeline.lib.distributors import registry as distributors
from leads_pipeline.lib.graph import GraphClient
from leads_pipeline.lib.ingest.sync import sync_distributor
from leads_pipeline.lib.security import generate_key
from leads_pipeline_tests.graph_fixtures import (  # noqa: F401
    FakeGraph,
    Reply,
    buc_headers,
    error,
    graph,
    ok,
)
from leads_pipeline_tests.reliability_fixtures import CLI
from leads_pipeline_tests.test_sync_path import (
    FORM,
    FORM2,
    PAGE,
    PAGE_TOKENS,
    V,
    always,
    forms_of,
    lead,
    page_of,
    page_token_world,
)
from leads_pipeline_tests.conftest import premigrated
from leads_pipeline_tests.test_webhook_support import (  # noqa: F401 - fixtures
    APP_SECRET,
    VERIFY_TOKEN,
    configure,
    leadgen_body,
    live_receiver,
    signed_headers,
)

# Meta's "access returns in 0.17 minutes" (~10 s): the client sleeps that long without calling.
THROTTLE_MINUTES = 0.17


@pytest.fixture
def wh(duckdb_url, monkeypatch):
    configure(monkeypatch, secret_key=generate_key(), warehouse_url=duckdb_url, app_secret=APP_SECRET,
              webhook_verify_token=VERIFY_TOKEN)
    from leads_pipeline.lib.warehouse import Warehouse

    warehouse = Warehouse(premigrated(duckdb_url))
    warehouse.migrate()
    return warehouse


def test_a_throttle_wait_leaves_the_warehouse_to_readers_and_the_webhook_receiver(wh, graph, live_receiver,
                                                                                   duckdb_url):
    throttled, retried = threading.Event(), threading.Event()
    second = graph.link(f"{V}/{FORM}/leads", after="p2")
    always(graph, "GET", f"{V}/me/accounts", error(
        100, None, "(#100) Tried accessing nonexisting field (accounts) on node type (Page)"))
    always(graph, "GET", f"{V}/{PAGE}/leadgen_forms", ok(forms_of(FORM)))
    graph.script("GET", f"{V}/{FORM}/leads", ok(page_of([lead(1), lead(2), lead(3)], second)))

    def page_two(rec):
        if not throttled.is_set():
            throttled.set()
            return error(80005, None, "(#80005) There have been too many leadgen api calls",
                         headers=buc_headers(THROTTLE_MINUTES))
        retried.set()
        return ok(page_of([lead(4), lead(5)]))

    graph.handle("GET", f"{V}/{FORM}/leads", page_two)
    d = distributors.add(wh, "Alpha", PAGE_TOKENS[PAGE], page_ids=[PAGE])
    receiver = live_receiver(wh)
    outcome: dict = {}

    def run() -> None:
        outcome["result"] = sync_distributor(
            wh, d.key, client_factory=lambda token: GraphClient(token, base_url=graph.url, max_throttle_wait=60))

    syncing = threading.Thread(target=run)
    syncing.start()
    assert throttled.wait(30), "the sync never reached the throttled page"

    # Another thread of this process reads the warehouse. The first page was queued before the second was asked for
    # and may still be landing: read until it shows (each read its own transaction), all inside the ~10 s window.
    deadline, during = time.monotonic() + 6, 0
    while during < 3 and time.monotonic() < deadline:
        with wh.transaction(read_only=True) as conn:
            during = conn.scalar("SELECT count(*) FROM leads")
        time.sleep(0 if during >= 3 else 0.05)
    read_in_window = not retried.is_set()
    # The webhook receiver stores a signed delivery and answers 200 (Meta gives up after a few seconds).
    body = leadgen_body([{"leadgen_id": "900000000000099", "page_id": PAGE, "form_id": FORM,
                          "created_time": 1780000000}])
    resp = requests.post(receiver.webhook_url, data=body, headers=signed_headers(body), timeout=2)
    webhook_in_window = not retried.is_set()
    # Another process: `leads-pipeline stats`.
    stats = subprocess.run([CLI, "stats"], capture_output=True, text=True, timeout=60,
                           env={**os.environ, "LEADS_WAREHOUSE_URL": duckdb_url})
    stats_in_window = not retried.is_set()

    syncing.join(120)
    result = outcome["result"]
    assert result.status == "success" and result.stored == 5, result.message
    assert during == 3 and read_in_window
    assert resp.status_code == 200 and webhook_in_window
    assert stats.returncode == 0, stats.stderr
    assert json.loads(stats.stdout)["total"] == 3 and stats_in_window


def test_cli_sync_exit_status_is_0_success_2_partial_1_failed(wh, graph, duckdb_url):
    page_token_world(graph, {FORM: [lead(1)], FORM2: []})
    d = distributors.add(wh, "Alpha", PAGE_TOKENS[PAGE], page_ids=[PAGE])
    env = {**os.environ, "LEADS_GRAPH_BASE_URL": graph.url, "LEADS_GRAPH_MAX_RETRIES": "1"}

    done = subprocess.run([CLI, "sync", d.key, "--quiet"], capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["success"] is True

    always(graph, "GET", f"{V}/{FORM2}/leads", error(10, None, "(#10) Requires leads_retrieval permission"))
    partial = subprocess.run([CLI, "sync", d.key, "--quiet"], capture_output=True, text=True, timeout=120, env=env)
    assert partial.returncode == 2, partial.stderr
    body = json.loads(partial.stdout)
    assert body["success"] is False and body["message"].startswith("Partial sync:") and FORM2 in body["message"]
    assert set(body) == {"success", "fetched", "stored", "errors", "message"}

    always(graph, "GET", f"{V}/me/accounts", error(190, 463, "Error validating access token: Session has expired "
                                                             "on Sunday, 25-Dec-16 04:45:57 PST."))
    failed = subprocess.run([CLI, "sync", d.key, "--quiet"], capture_output=True, text=True, timeout=120, env=env)
    assert failed.returncode == 1 and "long-lived" in failed.stderr
    helped = subprocess.run([CLI, "sync", "--help"], capture_output=True, text=True, timeout=60)
    assert "2  partial" in helped.stdout


def test_a_long_holder_knows_when_another_process_or_thread_waits_for_the_warehouse(tmp_path):
    """A sync keeps the DuckDB file open between holds (no close, no checkpoint) only while nobody waits: a process
    or thread waiting for the warehouse says so (``locking.waited_for``) until it has its turn."""
    import sys

    from leads_pipeline.lib.warehouse import Warehouse, locking

    path = tmp_path / "w.duckdb"
    wh = Warehouse(f"duckdb:///{path}")
    waiter = ("import sys\nfrom leads_pipeline.lib.warehouse import Warehouse\n"
              "with Warehouse(sys.argv[1]).file_locked():\n    print('in', flush=True)\n")
    with wh.file_locked():
        assert not locking.waited_for(path)
        proc = subprocess.Popen([sys.executable, "-c", waiter, wh.url], stdout=subprocess.PIPE, text=True)
        seen = _poll(lambda: locking.waited_for(path))
    assert seen, "the waiting process left no sign"
    assert proc.stdout.readline() == "in\n" and proc.wait(60) == 0
    assert not locking.waited_for(path)

    got = threading.Event()

    def wait_in_a_thread() -> None:
        with wh.file_locked():
            got.set()

    with wh.file_locked():
        thread = threading.Thread(target=wait_in_a_thread)
        thread.start()
        assert _poll(lambda: locking.waited_for(path)), "a waiting thread of this process left no sign"
        assert not got.is_set()
    thread.join(30)
    assert got.is_set()

    # A waiter killed while waiting leaves a marker: it is not taken for someone waiting, and it is removed.
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f"w.duckdb.waiting-{dead.pid}-1"
    stale.touch()
    assert not locking.waited_for(path) and not stale.exists()


def _poll(condition, seconds: float = 30.0) -> bool:
    import time

    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.02)
    return False
