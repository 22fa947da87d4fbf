"""Batched syncing (P6): one due-sync sensor plans once per tick and requests either one sync_job run per distributor
(a few due) or batch runs (many due), never both; a batch run calls the one sync path per distributor in-process
with one materialisation per partition and table; a failing distributor fails alone; and no distributor is ever in
two runs at once."""

from __future__ import annotations

import dagster as dg
import pytest

from leads_pipeline.definitions import defs
from leads_pipeline.defs.ingestion import planning
from leads_pipeline.defs.ingestion.batch import batch_run_config
from leads_pipeline.defs.ingestion.planning import BATCH_JOB_NAME, distributors_in_flight, split_batches
from leads_pipeline.defs.ingestion.sensors import sync_due_sensor
from leads_pipeline.defs.resources import WarehouseResource
from leads_pipeline.lib.distributors import registry as distributors
from leads_pipeline.lib.security import generate_key
from leads_pipeline.settings import get_settings
from leads_pipeline.simulator import FaultConfig
from leads_pipeline_tests.pipeline_fixtures import make_sandbox

TABLES = {"raw_leads", "leads", "rejected_leads"}


@pytest.fixture(scope="module")
def definitions() -> dg.Definitions:
    return defs()


def _registry(monkeypatch, url: str, count: int) -> list[str]:
    monkeypatch.setenv("LEADS_SECRET_KEY", generate_key())
    get_settings.cache_clear()
    wh = WarehouseResource(url=url).get()
    return [distributors.add(wh, f"Clinic {i:03d}", f"EAAtoken-{i}", page_ids=[str(i)], interval=5).key
            for i in range(count)]


def _tick(instance, url, definitions, monkeypatch=None) -> tuple[list[dg.RunRequest], int, str | None]:
    """One evaluation of the sensor: (run requests, how many times it computed the due plan, skip message)."""
    plans = []
    if monkeypatch is not None:
        real = distributors.due_for_sync
        monkeypatch.setattr(planning.distributors, "due_for_sync",
                            lambda *a, **k: plans.append(1) or real(*a, **k))
    ctx = dg.build_sensor_context(instance=instance, resources={"warehouse": WarehouseResource(url=url)},
                                  definitions=definitions)
    result = sync_due_sensor(ctx)
    if isinstance(result, dg.SkipReason):
        return [], len(plans), result.skip_message
    return list(result), len(plans), None


def test_split_batches_is_even_and_keeps_every_key_once():
    keys = [f"k{i}" for i in range(130)]
    batches = split_batches(keys, 50)
    assert [len(b) for b in batches] == [44, 43, 43]
    assert [k for b in batches for k in b] == keys
    assert split_batches(keys[:3], 50) == [keys[:3]] and split_batches([], 50) == []


def test_many_due_distributors_become_batch_runs_from_one_plan(duckdb_url, monkeypatch, definitions):
    keys = _registry(monkeypatch, duckdb_url, 11)
    monkeypatch.setenv("LEADS_SYNC_BATCH_SIZE", "4")
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("distributors", keys)
        requests, plans, _ = _tick(instance, duckdb_url, definitions, monkeypatch)
    assert plans == 1  # planned once for both jobs
    assert {r.job_name for r in requests} == {BATCH_JOB_NAME}  # and only batches: no single runs beside them
    groups = [r.run_config["ops"]["sync_batch"]["config"]["distributors"] for r in requests]
    assert [len(g) for g in groups] == [4, 4, 3]
    assert sorted(k for g in groups for k in g) == sorted(keys)
    assert len({r.run_key for r in requests}) == 3 and all(r.run_key.startswith("batch:") for r in requests)
    assert all(r.tags["leads/trigger"] == "schedule" and "leads/distributor" not in r.tags for r in requests)


def test_a_few_due_distributors_get_one_sync_job_run_each_from_one_plan(duckdb_url, monkeypatch, definitions):
    keys = _registry(monkeypatch, duckdb_url, 3)
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("distributors", keys)
        requests, plans, _ = _tick(instance, duckdb_url, definitions, monkeypatch)
    assert plans == 1
    assert {r.job_name for r in requests} == {"sync_job"}
    assert sorted(r.partition_key for r in requests) == sorted(keys)
    assert all(r.tags == {"leads/distributor": r.partition_key, "leads/trigger": "schedule"} for r in requests)
    assert all(r.run_key.startswith(f"{r.partition_key}:") for r in requests)


def test_only_due_distributors_are_requested(duckdb_url, monkeypatch, definitions):
    from leads_pipeline.lib.ingest import runs

    monkeypatch.setenv("LEADS_SECRET_KEY", generate_key())
    get_settings.cache_clear()
    wh = WarehouseResource(url=duckdb_url).get()
    due = distributors.add(wh, "Due Clinic", "EAAtoken-a", page_ids=["1"], interval=5)
    fresh = distributors.add(wh, "Fresh Clinic", "EAAtoken-b", page_ids=["2"], interval=60)
    sync_id = runs.start_run(wh, fresh.key, "test")
    runs.finish_run(wh, runs.SyncResult(True, 0, 0, [], "ok", distributor=fresh.key, sync_id=sync_id))
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("distributors", [due.key, fresh.key])
        requests, _, _ = _tick(instance, duckdb_url, definitions)
        assert [r.partition_key for r in requests] == [due.key]
        # Nothing due: the tick says so.
        instance.delete_dynamic_partition("distributors", due.key)
        requests, _, skip = _tick(instance, duckdb_url, definitions)
    assert not requests and "No distributor is due" in skip


def test_distributors_in_a_pending_or_running_run_are_not_requested_again(duckdb_url, monkeypatch, definitions):
    keys = _registry(monkeypatch, duckdb_url, 8)
    monkeypatch.setenv("LEADS_SYNC_BATCH_THRESHOLD", "2")
    job = definitions.resolve_job_def(BATCH_JOB_NAME)
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("distributors", keys)
        # A running batch run with the first three, and a not-yet-started single run of the fourth.
        instance.create_run_for_job(job, run_config=batch_run_config(keys[:3]), status=dg.DagsterRunStatus.STARTED)
        sync_job = definitions.resolve_job_def("sync_job")
        instance.create_run_for_job(sync_job, tags={"leads/distributor": keys[3], "dagster/partition": keys[3]},
                                    status=dg.DagsterRunStatus.NOT_STARTED)
        assert set(distributors_in_flight(instance)) == set(keys[:4])
        batched, _, _ = _tick(instance, duckdb_url, definitions)
    requested = [k for r in batched for k in r.run_config["ops"]["sync_batch"]["config"]["distributors"]]
    assert sorted(requested) == sorted(keys[4:])


def _materializations(result) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for event in result.get_asset_materialization_events():
        out.setdefault(event.asset_key.to_user_string(), set()).add(event.partition)
    return out


def test_batch_run_stores_exactly_the_manifest_with_one_materialization_per_partition(
        monkeypatch, simulator_factory, warehouse_url):
    sim = simulator_factory(pages=5, forms_per_page=1, leads_per_form=40)
    box = make_sandbox(monkeypatch, sim, warehouse_url)
    job = defs().resolve_job_def(BATCH_JOB_NAME)  # loaded now: its resources read the sandbox's environment
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("distributors", box.keys)
        result = job.execute_in_process(run_config=batch_run_config(box.keys), instance=instance)
        assert result.success
        assert _materializations(result) == {table: set(box.keys) for table in TABLES}
        assert box.stored() == box.expected()
        # Each partition's figures are its own sync's, and equal the rows that sync wrote.
        for event in result.get_asset_materialization_events():
            if event.asset_key.to_user_string() == "leads":
                meta = event.materialization.metadata
                with box.wh.transaction(read_only=True) as conn:
                    rows = conn.scalar("SELECT count(*) FROM leads WHERE sync_id = ?", [meta["sync_id"].value])
                    run_id = conn.scalar("SELECT run_id FROM sync_runs WHERE sync_id = ?", [meta["sync_id"].value])
                assert meta["stored"].value == rows == meta["dagster/partition_row_count"].value > 0
                assert run_id == result.run_id
        tags = instance.get_run_by_id(result.run_id).tags
        assert tags["leads/batch_result"] == "ok" and tags["leads/batch_synced"] == str(len(box.keys))
        # The partitions view sees every distributor materialized.
        status = instance.get_materialized_partitions(dg.AssetKey("leads"))
        assert set(box.keys) <= set(status)
        # New leads, a second batch: only the new ones are stored, still exactly the manifest.
        sim.advance(leads=20)
        again = job.execute_in_process(run_config=batch_run_config(box.keys, parallelism=3), instance=instance)
        assert again.success and box.stored() == box.expected()
    with box.wh.transaction(read_only=True) as conn:
        runs = conn.query("SELECT distributor, success, trigger FROM sync_runs")
    assert len(runs) == 2 * len(box.keys) and all(r["success"] for r in runs)
    assert all(r["trigger"] == "dagster batch (schedule)" for r in runs)


def test_expired_token_fails_that_distributor_alone_and_the_run_says_so(
        monkeypatch, simulator_factory, duckdb_url):
    sim = simulator_factory(pages=3, forms_per_page=1, leads_per_form=30)
    box = make_sandbox(monkeypatch, sim, duckdb_url)
    expired = sim.manifest()["pages"][0]["access_token"]
    sim.set_faults(FaultConfig(token_expiry_after_calls=0, expire_tokens=[expired]))
    job = defs().resolve_job_def(BATCH_JOB_NAME)
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("distributors", box.keys)
        result = job.execute_in_process(run_config=batch_run_config(box.keys), instance=instance)
        assert result.success  # partial: the others synced
        tags = instance.get_run_by_id(result.run_id).tags
        assert tags["leads/batch_result"] == "partial" and tags["leads/batch_failed"] == box.keys[0]
        assert _materializations(result) == {table: set(box.keys[1:]) for table in TABLES}
        errors = [e.message for e in instance.all_logs(result.run_id) if e.level >= 40]
        assert any(box.keys[0] in m and "expired" in m.lower() for m in errors)
        assert not any(expired in m for m in errors)

        # A batch of only the failing distributor fails the run, and is not retried.
        alone = job.execute_in_process(run_config=batch_run_config(box.keys[:1]), instance=instance,
                                       raise_on_error=False)
        assert not alone.success
        assert instance.get_run_by_id(alone.run_id).tags["leads/batch_result"] == "failed"
    with box.wh.transaction(read_only=True) as conn:
        rows = conn.query("SELECT distributor, success, status, message FROM sync_runs ORDER BY started_at")
    failed = [r for r in rows if not r["success"]]
    assert {r["status"] for r in failed} == {"failed"}
    assert {r["distributor"] for r in failed} == {box.keys[0]} and len(failed) == 2
    assert all("expired" in r["message"].lower() for r in failed)
    valid_others = {i for p in sim.manifest()["pages"][1:] for f in p["forms"] for i in f["valid_lead_ids"]}
    assert box.stored()[0] == valid_others


def test_a_batch_skips_a_distributor_that_another_run_is_syncing(monkeypatch, simulator_factory, duckdb_url):
    sim = simulator_factory(pages=2, forms_per_page=1, leads_per_form=20)
    box = make_sandbox(monkeypatch, sim, duckdb_url)
    definitions = defs()
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("distributors", box.keys)
        busy = instance.create_run_for_job(definitions.resolve_job_def("sync_job"), status=dg.DagsterRunStatus.STARTED,
                                           tags={"leads/distributor": box.keys[0], "dagster/partition": box.keys[0]})
        result = definitions.resolve_job_def(BATCH_JOB_NAME).execute_in_process(
            run_config=batch_run_config(box.keys), instance=instance)
        assert result.success
        assert _materializations(result) == {table: {box.keys[1]} for table in TABLES}
        tags = instance.get_run_by_id(result.run_id).tags
        assert tags["leads/batch_skipped"] == "1"
        warnings = [e.message for e in instance.all_logs(result.run_id) if e.level == 30]
        assert any(busy.run_id[:8] in m for m in warnings)
