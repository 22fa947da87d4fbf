"""A whole sync against the Graph API simulator over real HTTP: the warehouse ends with exactly the manifest's leads.

Runs on DuckDB and PostgreSQL. Covers the seed's result object, incremental syncs, one distributor's expired token,
a fault mix, and a sync killed with SIGKILL at random points then run again.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from leads_pipeline.lib.ingest import sync
from leads_pipeline.simulator import FaultConfig, Scenario
from leads_pipeline.lib.warehouse import Warehouse
from leads_pipeline_tests.pipeline_fixtures import make_sandbox, sandbox  # noqa: F401 - fixture

CLI = str(Path(sys.executable).with_name("leads-pipeline"))


def test_sync_stores_exactly_the_manifest_and_a_second_sync_stores_nothing(sandbox):
    results = [sync.sync_distributor(sandbox.wh, key) for key in sandbox.keys]
    assert all(r.success for r in results), [r.message for r in results]
    valid, malformed_with_id, without_id = sandbox.expected()
    assert sandbox.stored() == (valid, malformed_with_id, without_id)
    seed = results[0].seed_dict()
    assert set(seed) == {"success", "fetched", "stored", "errors", "message"}
    assert sum(r.stored for r in results) == len(valid)
    assert sum(r.fetched for r in results) == len(valid) + len(malformed_with_id) + without_id

    again = [sync.sync_distributor(sandbox.wh, key) for key in sandbox.keys]
    assert [r.stored for r in again] == [0] * len(again)
    assert sandbox.stored() == (valid, malformed_with_id, without_id)
    with sandbox.wh.transaction() as conn:
        runs = conn.query("SELECT success, fetched, stored, message FROM sync_runs ORDER BY started_at")
    assert len(runs) == 2 * len(sandbox.keys) and all(r["success"] for r in runs)


def test_new_leads_arrive_in_the_next_incremental_sync(sandbox):
    for key in sandbox.keys:
        sync.sync_distributor(sandbox.wh, key)
    before = sandbox.stored()[0]
    sandbox.sim.advance(leads=25)
    stored = sum(sync.sync_distributor(sandbox.wh, key).stored for key in sandbox.keys)
    valid = sandbox.expected()[0]
    assert sandbox.stored()[0] == valid
    assert stored == len(valid - before) > 0


def test_expired_token_fails_that_distributor_only_with_what_to_do(monkeypatch, simulator_factory, duckdb_url):
    sim = simulator_factory()
    box = make_sandbox(monkeypatch, sim, duckdb_url)
    expired_token = sim.manifest()["pages"][0]["access_token"]
    sim.set_faults(FaultConfig(token_expiry_after_calls=0, expire_tokens=[expired_token]))
    results = {key: sync.sync_distributor(box.wh, key) for key in box.keys}
    failed = results[box.keys[0]]
    assert not failed.success
    assert "expired" in failed.message.lower() and "long-lived" in failed.message.lower()
    assert expired_token not in failed.message and expired_token not in str(failed.errors)
    assert all(results[k].success and results[k].stored > 0 for k in box.keys[1:])


def test_fault_mix_loses_nothing_and_duplicates_nothing(monkeypatch, simulator_factory, warehouse_url):
    faults = FaultConfig(
        seed=5, transient_rate=0.2, reset_rate=0.05, truncated_rate=0.05, empty_page_rate=0.1,
        throttle_at=[3, 9], throttle_requests=1, throttle_regain_minutes=0,
    )
    sim = simulator_factory(faults=faults, leads_per_form=150)
    box = make_sandbox(monkeypatch, sim, warehouse_url)
    monkeypatch.setenv("LEADS_GRAPH_PAGE_LIMIT", "25")
    import leads_pipeline.settings as settings_module

    settings_module.get_settings.cache_clear()
    results = [sync.sync_distributor(box.wh, key) for key in box.keys]
    assert all(r.success for r in results), [r.message for r in results]
    assert box.stored() == box.expected()
    assert sum(sim.stats()["faults_injected"].values()) > 0


def _table_state(wh: Warehouse) -> dict:
    """What an uninterrupted sync must leave, independent of timestamps and sync ids."""
    with wh.transaction(read_only=True) as conn:
        return {
            "leads": sorted(
                tuple(r.values())
                for r in conn.query(
                    "SELECT meta_lead_id, distributor, form_id, created_time, email, phone, full_name, status, "
                    "CAST(custom_fields AS TEXT) AS custom FROM leads"
                )
            ),
            "rejected": sorted(tuple(r.values()) for r in conn.query("SELECT reject_key, reason FROM rejected_leads")),
            "raw": sorted(r["raw_key"] for r in conn.query("SELECT raw_key FROM raw_leads")),
            "unprocessed": conn.scalar("SELECT count(*) FROM raw_leads WHERE processed_at IS NULL"),
            "cursors": sorted(tuple(r.values()) for r in conn.query(
                "SELECT distributor, form_id, last_created_time FROM sync_cursors")),
        }


def test_sync_killed_at_random_points_then_rerun_equals_an_uninterrupted_sync(monkeypatch, simulator_factory, tmp_path):
    """kill -9 of `leads-pipeline sync` anywhere (mid-page, mid-transaction), then a re-run: identical tables."""
    scenario = Scenario(seed=21, pages=1, forms_per_page=2, leads_per_form=120, extra_leads=0, malformed_rate=0.05)
    # Every answer takes 0.15 s, so that the 24 pages of 10 outlast the first kills even on a fast machine (at 0.03 s
    # a quick machine finished the whole sync before the second kill); a slower machine only gets more kills in.
    sim = simulator_factory(scenario, faults=FaultConfig(slow_rate=1.0, slow_seconds=0.15))
    clean = make_sandbox(monkeypatch, sim, f"duckdb:///{tmp_path / 'clean.duckdb'}")
    assert sync.sync_distributor(clean.wh, clean.keys[0]).success
    expected = _table_state(clean.wh)

    killed = make_sandbox(monkeypatch, sim, f"duckdb:///{tmp_path / 'killed.duckdb'}")
    monkeypatch.setenv("LEADS_GRAPH_PAGE_LIMIT", "10")
    env = {**os.environ}
    rng = random.Random(7)
    kills = 0
    for _ in range(5):
        proc = subprocess.Popen([CLI, "sync", killed.keys[0], "--quiet"], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.8, 3.0))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
        sim.advance(seconds=0)  # no new leads: the world stays the same between attempts
    assert kills >= 3, "the sync finished too fast to be killed mid-way"
    done = subprocess.run([CLI, "sync", killed.keys[0], "--quiet"], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert _table_state(killed.wh) == expected


@pytest.mark.parametrize("backend", ["duckdb"])
def test_cli_sync_prints_the_seed_object_and_fails_with_exit_status(monkeypatch, simulator_factory, tmp_path, backend):
    sim = simulator_factory()
    box = make_sandbox(monkeypatch, sim, f"duckdb:///{tmp_path / 'cli.duckdb'}")
    ok = subprocess.run([CLI, "sync", box.keys[0]], capture_output=True, text=True, timeout=300)
    assert ok.returncode == 0, ok.stderr
    import json

    body = json.loads(ok.stdout)
    assert body["success"] is True and body["stored"] > 0 and set(body) == {"success", "fetched", "stored", "errors", "message"}
    sim.set_faults(FaultConfig(token_expiry_after_calls=0))
    bad = subprocess.run([CLI, "sync", box.keys[0]], capture_output=True, text=True, timeout=300)
    assert bad.returncode == 1
    assert json.loads(bad.stdout)["success"] is False
    assert "long-lived" in bad.stderr
    conn_test = subprocess.run([CLI, "test-connection", box.keys[0]], capture_output=True, text=True, timeout=120)
    assert conn_test.returncode == 1 and json.loads(conn_test.stdout)["success"] is False
    unknown = subprocess.run([CLI, "sync", "no-such-distributor"], capture_output=True, text=True, timeout=120)
    assert unknown.returncode == 1 and "no-such-distributor" in unknown.stderr
