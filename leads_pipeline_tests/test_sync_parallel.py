"""Forms read in parallel (``sync.FETCH_THREADS``) against the simulator: every lead lands once, each form has its
cursor, and a throttle window one thread meets holds the others too — nothing is sent into it once the client knows
(issue #14, P7; the P5 rule)."""

from __future__ import annotations

import gc
import time

from leads_pipeline.lib.distributors import registry as distributors
from leads_pipeline.lib.graph import GraphClient
from leads_pipeline.lib.ingest import sync
from leads_pipeline.lib.security import generate_key
from leads_pipeline.settings import get_settings
from leads_pipeline.simulator import FaultConfig, Scenario, SimulatorServer

SPEEDUP = 60.0  # the client's clock: Meta's "regain access in 1 minute" is 1 s here


def _setup(warehouse, monkeypatch, sim):
    monkeypatch.setenv("LEADS_GRAPH_BASE_URL", sim.base_url)
    monkeypatch.setenv("LEADS_SECRET_KEY", generate_key())
    get_settings.cache_clear()
    page = sim.manifest()["pages"][0]
    return distributors.add(warehouse, page["name"], page["access_token"], page_ids=[page["id"]],
                            region=page["default_region"]).key


def test_forms_read_in_parallel_land_every_lead_once_and_respect_a_throttle_window(warehouse, monkeypatch):
    assert sync.FETCH_THREADS > 1
    scenario = Scenario(seed=4, pages=1, forms_per_page=3, leads_per_form=450, extra_leads=0)
    with SimulatorServer(scenario) as sim:
        key = _setup(warehouse, monkeypatch, sim)
        manifest = sim.manifest()
        forms = manifest["pages"][0]["forms"]
        s = get_settings()

        def factory(token: str) -> GraphClient:
            return GraphClient(token, base_url=s.graph_base_url, api_version=s.graph_api_version, page_limit=100,
                               sleep=lambda seconds: time.sleep(seconds / SPEEDUP))

        # The window opens on the 6th request and lasts 0.75 s; Meta says "1 minute" (1 s on the client's clock). The
        # landing, left waiting, starts the other readers (reading.GROW_AFTER): they wait out the window too.
        sim.set_faults(FaultConfig(throttle_at=[6], throttle_seconds=0.75, throttle_regain_minutes=1))
        sim.reset_stats()
        collector = gc.isenabled()
        result = sync.sync_distributor(warehouse, key, trigger="test", client_factory=factory)
        stats = sim.stats()

    assert result.success, result.message
    assert gc.isenabled() == collector  # paused while the forms were read (lib.memory.gc_paused), not after
    # Requests already in flight when the first throttled answer came back are throttled too (at most one per
    # reading thread); after it, nothing is sent until the window is waited out, and nobody is throttled twice.
    throttled = sum(v for k, v in stats["faults_injected"].items() if k.startswith("throttle"))
    assert 1 <= throttled <= sync.FETCH_THREADS, stats["faults_injected"]
    valid = {i for f in forms for i in f["valid_lead_ids"]}
    with warehouse.transaction(read_only=True) as conn:
        stored = conn.query("SELECT meta_lead_id, form_id FROM leads")
        cursors = {r["form_id"]: r["last_created_time"] for r in conn.query(
            "SELECT form_id, last_created_time FROM sync_cursors WHERE distributor = ?", [key])}
        raw = int(conn.scalar("SELECT count(*) FROM raw_leads"))
    assert {r["meta_lead_id"] for r in stored} == valid and len(stored) == len(valid)
    assert raw == result.fetched == sum(len(f["valid_lead_ids"]) + len(f["malformed_lead_ids"])
                                        + f["malformed_without_id"] for f in forms)
    assert set(cursors) == {f["id"] for f in forms}
    # 1 discovery of the Pages + 1 of the forms + 5 lead pages per form + the throttled requests, sent again once
    assert stats["requests"] == 2 + 3 * 5 + throttled, stats["by_route"]


def test_against_a_slow_graph_api_the_forms_are_read_in_parallel(warehouse, monkeypatch):
    """Meta answers a page in 0.3 s or more: the landing, waiting for pages, starts more readers (up to
    ``FETCH_THREADS``, one form each), so three forms take about as long as one. A fast source keeps one reader."""
    scenario = Scenario(seed=5, pages=1, forms_per_page=3, leads_per_form=250, extra_leads=0)
    with SimulatorServer(scenario, faults=FaultConfig(slow_rate=1.0, slow_seconds=0.3)) as sim:
        key = _setup(warehouse, monkeypatch, sim)
        forms = sim.manifest()["pages"][0]["forms"]
        sim.reset_stats()
        result = sync.sync_distributor(warehouse, key, trigger="test")
        stats = sim.stats()

    assert result.success, result.message
    assert stats["peak_in_flight"] == min(sync.FETCH_THREADS, len(forms)) == 3
    valid = {i for f in forms for i in f["valid_lead_ids"]}
    with warehouse.transaction(read_only=True) as conn:
        assert set(conn.query_columns("SELECT meta_lead_id FROM leads")["meta_lead_id"]) == valid
    assert stats["requests"] == 2 + 3 * 3  # discovery, then 3 pages a form: nothing read twice
