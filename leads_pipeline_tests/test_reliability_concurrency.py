"""Concurrency: 10 distributors synced by 10 ``leads-pipeline sync`` processes at once (DuckDB: one writer at a time,
yet no lock failure reaches the user; PostgreSQL: concurrent writers), and staff working leads while a sync re-lands
and re-processes the very same leads — the staff's changes survive.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time


from leads_pipeline.lib import crm
from leads_pipeline.lib.ingest import sync
from leads_pipeline.simulator import FaultConfig
from leads_pipeline_tests.crm_fixtures import add_user_sql
from leads_pipeline_tests.pipeline_fixtures import make_sandbox
from leads_pipeline_tests.reliability_fixtures import CLI, duplicate_counts, settings_env


def test_ten_distributors_synced_by_ten_processes_at_once(monkeypatch, simulator_factory, warehouse_url):
    # A little latency per Graph request keeps the ten runs overlapping for their whole length.
    sim = simulator_factory(pages=10, forms_per_page=1, leads_per_form=30, extra_leads=0,
                            faults=FaultConfig(slow_rate=1.0, slow_seconds=0.01))
    box = make_sandbox(monkeypatch, sim, warehouse_url)
    assert len(box.keys) == 10
    settings_env(monkeypatch, graph_page_limit="10")
    env = dict(os.environ)
    started = time.monotonic()
    procs = {key: subprocess.Popen([CLI, "sync", key], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   text=True) for key in box.keys}
    outputs = {key: p.communicate(timeout=300) for key, p in procs.items()}
    seconds = time.monotonic() - started
    codes = {key: p.returncode for key, p in procs.items()}
    assert codes == {key: 0 for key in box.keys}, {k: outputs[k][1][-500:] for k, c in codes.items() if c}
    for key, (out, err) in outputs.items():
        body = json.loads(out)
        assert body["success"] is True and body["stored"] > 0, body
        # Waiting for another sync's turn on the DuckDB file is said in words (who waits, for whom), never as an
        # error or a traceback.
        assert "Traceback" not in err and "could not set lock" not in err.lower(), err[-500:]
        for line in filter(None, err.splitlines()):
            assert line.startswith("WARNING") and "is waiting for the DuckDB warehouse" in line, line
    assert box.stored() == box.expected()
    assert duplicate_counts(box.wh) == {"leads": 0, "raw_leads": 0, "webhook_inbox": 0}
    with box.wh.transaction(read_only=True) as conn:
        runs = conn.query("SELECT distributor, success FROM sync_runs")
    assert sorted(r["distributor"] for r in runs) == sorted(box.keys) and all(r["success"] for r in runs)
    print(f"\nCONCURRENCY 10 syncs on {warehouse_url.split(':')[0]}: {len(box.expected()[0])} leads in {seconds:.1f}s")


def _staff_work(wh, lead_ids: list[str], user: str, errors: list, done: dict) -> None:
    """Each lead: assigned, a note, contacted (every third one then rejected with a note)."""
    for i, lead_id in enumerate(lead_ids):
        try:
            crm.assign(wh, lead_id, user, "cli")
            crm.add_note(wh, lead_id, f"called back #{i}", user)
            crm.change_status(wh, lead_id, "contacted", user)
            final = "contacted"
            if i % 3 == 0:
                crm.change_status(wh, lead_id, "rejected", user, note="not interested")
                final = "rejected"
            done[lead_id] = final
        except Exception as exc:  # noqa: BLE001 - collected and asserted on in the main thread
            errors.append(f"{lead_id}: {type(exc).__name__}: {exc}")


def test_staff_changes_survive_a_sync_that_relands_and_reprocesses_the_same_leads(monkeypatch, simulator_factory,
                                                                                 warehouse_url):
    sim = simulator_factory(pages=1, forms_per_page=2, leads_per_form=40, extra_leads=0)
    box = make_sandbox(monkeypatch, sim, warehouse_url)
    key = box.keys[0]
    settings_env(monkeypatch, graph_page_limit="20", sync_lookback_seconds=str(10 ** 9))  # re-read everything
    assert sync.sync_distributor(box.wh, key).success
    user = add_user_sql(box.wh, "u-staff", "staff@example.com", role="staff", distributors=(key,))
    with box.wh.transaction(read_only=True) as conn:
        lead_ids = sorted(r["meta_lead_id"] for r in conn.query("SELECT meta_lead_id FROM leads"))[:24]

    errors: list[str] = []
    done: dict[str, str] = {}
    staff = threading.Thread(target=_staff_work, args=(box.wh, lead_ids, user, errors, done))
    resyncs = 0
    staff.start()
    while staff.is_alive() or resyncs < 2:
        # Force the overlap: forget the cursors and mark every raw row unprocessed, so this sync re-reads every
        # lead from Meta and re-parses every raw row while the staff thread changes those very leads.
        with box.wh.transaction() as conn:
            conn.execute("DELETE FROM sync_cursors")
            conn.execute("UPDATE raw_leads SET processed_at = NULL")
        result = sync.sync_distributor(box.wh, key)
        assert result.success, result.message
        assert result.stored == 0
        resyncs += 1
    staff.join()
    assert not errors, errors[:5]
    assert len(done) == len(lead_ids)
    with box.wh.transaction(read_only=True) as conn:
        rows = {r["meta_lead_id"]: r for r in conn.query(
            "SELECT meta_lead_id, status, assigned_to FROM leads WHERE meta_lead_id IN ("
            + ",".join("?" for _ in lead_ids) + ")", lead_ids)}
        notes = {r["meta_lead_id"]: r["n"] for r in conn.query(
            "SELECT meta_lead_id, count(*) AS n FROM lead_interactions WHERE kind = 'note' GROUP BY meta_lead_id")}
    for lead_id, final in done.items():
        assert rows[lead_id]["status"] == final, lead_id
        assert rows[lead_id]["assigned_to"] == user
        assert notes.get(lead_id) == 1
    assert box.stored() == box.expected()
    assert duplicate_counts(box.wh) == {"leads": 0, "raw_leads": 0, "webhook_inbox": 0}
    print(f"\nCONCURRENCY staff vs re-sync on {warehouse_url.split(':')[0]}: {len(done)} leads worked, "
          f"{resyncs} full re-syncs meanwhile")
