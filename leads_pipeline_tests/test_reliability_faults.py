"""Each Graph API fault alone, then a mix: after recovery the warehouse equals the simulator's manifest exactly
(0 lost, 0 duplicated), on DuckDB and on PostgreSQL.

Faults are injected by the simulator (``FaultConfig``) over real HTTP; the sync under test is the product's
``sync.sync_distributor`` with small pages (``LEADS_GRAPH_PAGE_LIMIT=10``) so that every form takes several pages and
faults land mid-pagination. A soak variant (``-m soak``) runs larger worlds with higher rates and prints its figures.
"""

from __future__ import annotations

import time

import pytest

from leads_pipeline.lib.graph import make_client
from leads_pipeline.lib.ingest import sync
from leads_pipeline.simulator import FaultConfig
from leads_pipeline_tests.pipeline_fixtures import make_sandbox
from leads_pipeline_tests.reliability_fixtures import duplicate_counts, settings_env

# Each case: the faults, and the names of ``stats()["faults_injected"]`` that prove the fault really happened.
FAULTS = {
    "transient": (dict(seed=1, transient_rate=0.3), ("code_1", "code_2", "http_500", "http_503")),
    "throttle": (dict(seed=2, throttle_at=[2, 7, 15], throttle_requests=2, throttle_regain_minutes=0,
                      throttle_code=80005), ("throttle_80005",)),
    "throttle_app": (dict(seed=3, throttle_at=[4, 12], throttle_requests=1, throttle_regain_minutes=0,
                          throttle_code=4), ("throttle_4",)),
    "timeout": (dict(seed=4, slow_at=[3, 8, 14], slow_seconds=2.0), ("slow",)),
    "reset": (dict(seed=5, reset_rate=0.15), ("reset",)),
    "truncated": (dict(seed=6, truncated_rate=0.15), ("truncated",)),
    "empty_page": (dict(seed=7, empty_page_rate=0.3), ("empty_page",)),
    "mix": (dict(seed=8, transient_rate=0.1, reset_rate=0.05, truncated_rate=0.05, empty_page_rate=0.1,
                 slow_at=[6], slow_seconds=2.0, throttle_at=[3, 11], throttle_requests=1, throttle_regain_minutes=0),
            ("reset", "truncated", "empty_page", "slow", "throttle_80005")),
}


def _settings(monkeypatch, **extra) -> None:
    values = dict(graph_page_limit="10", graph_timeout_seconds="0.7", graph_max_retries="10")
    values.update(extra)
    settings_env(monkeypatch, **values)


def _fast_client(token: str):
    """The product's client, with 50 ms backoff instead of 500 ms (the regular suite stays quick; soaks use the
    default): the retry logic under test is the same."""
    client = make_client(token)
    client.backoff_base = 0.05
    return client


def _sync_all(box, fast: bool = True):
    factory = _fast_client if fast else None
    return [sync.sync_distributor(box.wh, key, client_factory=factory) for key in box.keys]


def _assert_exact(box) -> None:
    valid, malformed_with_id, without_id = box.expected()
    leads, rejected_with_id, rejected_without_id = box.stored()
    lost = valid - leads
    extra = leads - valid
    assert not lost, f"{len(lost)} lead(s) lost"
    assert not extra, f"{len(extra)} unexpected lead(s)"
    assert rejected_with_id == malformed_with_id and rejected_without_id == without_id
    assert duplicate_counts(box.wh) == {"leads": 0, "raw_leads": 0, "webhook_inbox": 0}


@pytest.mark.parametrize("kind", list(FAULTS))
def test_each_fault_then_recovery_stores_exactly_the_manifest(kind, monkeypatch, simulator_factory, warehouse_url):
    config, evidence = FAULTS[kind]
    sim = simulator_factory(faults=FaultConfig(**config), forms_per_page=1, leads_per_form=50)
    box = make_sandbox(monkeypatch, sim, warehouse_url)
    _settings(monkeypatch)
    results = _sync_all(box)
    injected = sim.stats()["faults_injected"]
    assert any(injected.get(name, 0) > 0 for name in evidence), f"{kind}: no fault injected ({injected})"
    if kind == "mix":
        assert sum(1 for name in evidence if injected.get(name)) >= 3, injected
    failed = [r.message for r in results if not r.success]
    # A fault may outlast the retries of one run (that run says so); the next scheduled run must complete.
    if failed:
        sim.set_faults(None)
        results = _sync_all(box)
        assert all(r.success for r in results), [r.message for r in results]
    _assert_exact(box)
    again = _sync_all(box)
    assert [r.stored for r in again] == [0] * len(again)
    _assert_exact(box)


def test_throttling_responses_carry_usage_headers(simulator_factory):
    """The throttle windows the client honours are announced with Meta's usage headers."""
    import requests

    sim = simulator_factory(faults=FaultConfig(throttle_at=[1], throttle_requests=1, throttle_code=80005,
                                               throttle_regain_minutes=0))
    page = sim.manifest()["pages"][0]
    resp = requests.get(f"{sim.base_url}/v25.0/{page['id']}/leadgen_forms",
                        headers={"Authorization": f"Bearer {page['access_token']}"}, timeout=10)
    assert resp.status_code in (400, 403, 429)
    assert resp.json()["error"]["code"] == 80005
    assert "x-business-use-case-usage" in {h.lower() for h in resp.headers}


def test_token_expiry_mid_run_fails_with_what_to_do_then_a_renewed_token_completes(monkeypatch, simulator_factory,
                                                                                    warehouse_url):
    sim = simulator_factory(forms_per_page=1, leads_per_form=70)
    box = make_sandbox(monkeypatch, sim, warehouse_url)
    _settings(monkeypatch)
    # Expire every token after a few requests: the first distributor is mid-pagination when it happens.
    sim.set_faults(FaultConfig(token_expiry_after_calls=4))
    results = _sync_all(box)
    assert not any(r.success for r in results)
    for r in results:
        assert "expired" in r.message.lower() and "long-lived" in r.message.lower(), r.message
    tokens = [p["access_token"] for p in sim.manifest()["pages"]]
    assert not any(t in r.message or t in str(r.errors) for r in results for t in tokens)
    partial = box.stored()[0]
    assert partial < box.expected()[0]  # it really stopped mid-run
    sim.set_faults(None)  # "renewed": Meta accepts the token again
    results = _sync_all(box)
    assert all(r.success for r in results), [r.message for r in results]
    _assert_exact(box)


@pytest.mark.soak
@pytest.mark.parametrize("kind", list(FAULTS))
def test_soak_faults_on_a_larger_world(kind, monkeypatch, simulator_factory, warehouse_url):
    config, _ = FAULTS[kind]
    config = dict(config)
    for name in list(config):
        if name.endswith("_rate"):
            config[name] = min(0.5, config[name] * 1.6)
    if kind in ("timeout", "mix"):
        config["slow_rate"] = 0.03  # besides the scheduled ones, a few slow responses anywhere
    sim = simulator_factory(faults=FaultConfig(**config), pages=3, forms_per_page=3, leads_per_form=400,
                            extra_leads=0, malformed_rate=0.05)
    box = make_sandbox(monkeypatch, sim, warehouse_url)
    _settings(monkeypatch, graph_page_limit="25")
    started = time.monotonic()
    runs = 0
    for _ in range(5):
        results = _sync_all(box, fast=False)
        runs += 1
        if all(r.success for r in results):
            break
    else:
        sim.set_faults(None)
        results = _sync_all(box, fast=False)
        runs += 1
        assert all(r.success for r in results)
    _assert_exact(box)
    valid, bad, without = box.expected()
    stats = sim.stats()
    print(f"\nSOAK faults kind={kind} backend={box.wh.backend if hasattr(box.wh, 'backend') else warehouse_url[:8]} "
          f"leads={len(valid)} malformed={len(bad) + without} runs={runs} "
          f"graph_requests={stats.get('requests', stats.get('graph_requests'))} "
          f"faults={stats['faults_injected']} lost=0 duplicated=0 seconds={time.monotonic() - started:.1f}")
