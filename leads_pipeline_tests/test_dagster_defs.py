"""The Dagster layer: definitions load, the partitions sensor, the due-sync schedule, runs through Dagster end to end,
automation of the marts, and three partition runs launched at once on one DuckDB file."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from leads_pipeline.definitions import defs
from leads_pipeline.defs.ingestion.schedules import sync_due_distributors_schedule
from leads_pipeline.defs.ingestion.sensors import distributor_partitions_sensor
from leads_pipeline.defs.resources import WarehouseResource
from leads_pipeline.lib.distributors import registry as distributors
from leads_pipeline.lib.ingest import sync
from leads_pipeline_tests.pipeline_fixtures import make_sandbox

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def definitions() -> dg.Definitions:
    return defs()


def test_definitions_load_with_lineage_checks_and_automation(definitions):
    dg.Definitions.validate_loadable(definitions)
    graph = definitions.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert {"raw_leads", "leads", "lead_stats", "conversion_funnel", "lead_daily", "lead_scores", "person_links"} <= keys
    assert graph.get(dg.AssetKey("leads")).parent_keys == {dg.AssetKey("raw_leads")}
    assert dg.AssetKey("leads") in graph.get(dg.AssetKey("conversion_funnel")).parent_keys
    checks = {c.name for c in graph.asset_check_keys}
    assert {"leads_meta_lead_id_unique", "leads_required_fields_present", "leads_contact_validity",
            "leads_freshness_per_distributor", "leads_expectation_suite"} <= checks
    for key in keys - {"lead_interactions"}:
        assert graph.get(dg.AssetKey(key)).description, f"{key} has no description for the UI"


def test_partitions_sensor_adds_new_distributors_with_an_initial_run_and_removes_deleted(duckdb_url, monkeypatch):
    monkeypatch.setenv("LEADS_SECRET_KEY", __import__("leads_pipeline.lib.security", fromlist=["x"]).generate_key())
    from leads_pipeline.settings import get_settings

    get_settings.cache_clear()
    wh = WarehouseResource(url=duckdb_url).get()
    a = distributors.add(wh, "Acme Clinic", "EAAtoken-a", page_ids=["1"])
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("distributors", ["gone-distributor"])
        ctx = dg.build_sensor_context(instance=instance, resources={"warehouse": WarehouseResource(url=duckdb_url)})
        result = distributor_partitions_sensor(ctx)
        adds = [r for r in result.dynamic_partitions_requests if isinstance(r, dg.AddDynamicPartitionsRequest)]
        deletes = [r for r in result.dynamic_partitions_requests if isinstance(r, dg.DeleteDynamicPartitionsRequest)]
        assert adds[0].partition_keys == [a.key] and deletes[0].partition_keys == ["gone-distributor"]
        assert [r.partition_key for r in result.run_requests] == [a.key]


def test_schedule_requests_runs_only_for_due_distributors(duckdb_url, monkeypatch, definitions):
    monkeypatch.setenv("LEADS_SECRET_KEY", __import__("leads_pipeline.lib.security", fromlist=["x"]).generate_key())
    from leads_pipeline.settings import get_settings

    get_settings.cache_clear()
    wh = WarehouseResource(url=duckdb_url).get()
    due = distributors.add(wh, "Due Clinic", "EAAtoken-a", page_ids=["1"], interval=5)
    fresh = distributors.add(wh, "Fresh Clinic", "EAAtoken-b", page_ids=["2"], interval=60)
    from leads_pipeline.lib.ingest import store as ingest

    sync_id = ingest.start_sync(wh, fresh.key, "test")
    ingest.finish_sync(wh, sync_id, sync.SyncResult(True, 0, 0, [], "ok"))
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("distributors", [due.key, fresh.key])
        ctx = dg.build_schedule_context(
            instance=instance,
            scheduled_execution_time=dt.datetime.now(dt.timezone.utc),
            resources={"warehouse": WarehouseResource(url=duckdb_url)},
            repository_def=definitions.get_repository_def(),
        )
        requests = sync_due_distributors_schedule.evaluate_tick(ctx).run_requests
    assert [r.partition_key for r in requests] == [due.key]
    assert requests[0].run_key.startswith(f"{due.key}:")


def test_sync_job_and_marts_through_dagster_equal_the_manifest(monkeypatch, simulator_factory, duckdb_url, definitions):
    sim = simulator_factory()
    box = make_sandbox(monkeypatch, sim, duckdb_url)
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("distributors", box.keys)
        job = definitions.resolve_job_def("sync_job")
        for key in box.keys:
            run = job.execute_in_process(partition_key=key, instance=instance)
            assert run.success
            mats = {e.asset_key.to_user_string(): e for e in run.get_asset_materialization_events()}
            meta = mats["leads"].materialization.metadata
            assert meta["dagster/partition_row_count"].value > 0 and "preview" in meta
            preview = meta["preview"].value
            assert "@" not in preview or "***@" in preview  # contact data masked in the UI
            checks = {c.check_name: c.passed for c in run.get_asset_check_evaluations()}
            # Only the cheap blocking checks run with a sync; the table-wide ones have their own job.
            assert checks == {"leads_meta_lead_id_unique": True, "leads_required_fields_present": True}
        assert box.stored() == box.expected()
        marts = definitions.resolve_job_def("marts_job").execute_in_process(instance=instance)
        assert marts.success
        quality = definitions.resolve_job_def("leads_quality_job").execute_in_process(instance=instance)
        evaluations = {c.check_name: c for c in quality.get_asset_check_evaluations()}
        assert set(evaluations) == {"leads_contact_validity", "leads_freshness_per_distributor", "leads_expectation_suite"}
        assert all(c.passed for c in evaluations.values())
        assert evaluations["leads_expectation_suite"].metadata["evaluated_rows"].value == len(box.expected()[0])
    with box.wh.transaction() as conn:
        total = conn.scalar("SELECT total FROM lead_stats WHERE distributor = '__all__'")
    assert total == len(box.expected()[0])


def test_marts_are_requested_when_leads_change(monkeypatch, simulator_factory, duckdb_url, definitions):
    sim = simulator_factory()
    box = make_sandbox(monkeypatch, sim, duckdb_url)
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("distributors", box.keys)
        first = dg.evaluate_automation_conditions(defs=definitions, instance=instance)
        definitions.resolve_job_def("sync_job").execute_in_process(partition_key=box.keys[0], instance=instance)
        second = dg.evaluate_automation_conditions(defs=definitions, instance=instance, cursor=first.cursor)
        marts = ["lead_stats", "conversion_funnel", "lead_daily", "lead_scores", "person_links"]
        requested = {m for m in marts if second.get_num_requested(dg.AssetKey(m)) == 1}
    # Only one of the distributors has synced: the others' missing partitions must not hold the marts back.
    assert requested == set(marts)
    assert first.total_requested == 0


def test_three_partition_runs_launched_at_once_on_duckdb_all_succeed(monkeypatch, simulator_factory, tmp_path):
    sim = simulator_factory(pages=3, forms_per_page=1, leads_per_form=80)
    box = make_sandbox(monkeypatch, sim, f"duckdb:///{tmp_path / 'shared.duckdb'}")
    home = tmp_path / "dagster_home"
    home.mkdir()
    env = {**os.environ, "DAGSTER_HOME": str(home), "DAGSTER_DISABLE_TELEMETRY": "1"}
    dagster = str(Path(sys.executable).with_name("dagster"))
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    with dg.DagsterInstance.from_config(str(home)) as instance:  # the instance the three CLI processes share
        instance.add_dynamic_partitions("distributors", box.keys)
    procs = [
        subprocess.Popen(
            [dagster, "asset", "materialize", "-m", "leads_pipeline.definitions", "--select", "raw_leads,leads",
             "--partition", key],
            # Not the repository: the dagster CLI loads a .env from its working directory (make demo writes one).
            env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        for key in box.keys
    ]
    outputs = [p.communicate(timeout=600)[0] for p in procs]
    codes = [p.returncode for p in procs]
    assert codes == [0, 0, 0], "\n".join(o[-2000:] for o in outputs)
    assert box.stored() == box.expected()
