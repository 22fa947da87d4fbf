"""``webhook_inbox_sensor`` → ``webhook_leads_job``: the simulator's webhooks reach ``leads`` through Dagster, and
the run records ``raw_leads`` / ``leads`` materialisations of the distributor's partition (no asset of its own)."""

from __future__ import annotations

import json

import dagster as dg
import pytest

from leads_pipeline.defs.resources import GraphApiResource, WarehouseResource
from leads_pipeline.defs.webhooks.assets import webhook_inbox
from leads_pipeline.defs.webhooks.sensors import webhook_inbox_sensor, webhook_leads_job, webhook_run_config
from leads_pipeline.lib.webhooks import inbox
from leads_pipeline_tests.test_webhook_support import (  # noqa: F401 - fixtures
    add_sim_distributor,
    configure,
    inbox_rows,
    lead_ids,
    live_receiver,
    world,
)


def _defs() -> dg.Definitions:
    return dg.Definitions(
        assets=[webhook_inbox],
        sensors=[webhook_inbox_sensor],
        jobs=[webhook_leads_job],
        resources={"warehouse": WarehouseResource(), "graph": GraphApiResource()},
    )


def _tick(instance, cursor: str | None) -> dg.SensorResult:
    context = dg.build_sensor_context(instance=instance, cursor=cursor,
                                      resources={"warehouse": WarehouseResource()})
    result = webhook_inbox_sensor(context)
    assert isinstance(result, dg.SensorResult)
    return result


def test_sensor_and_job_bring_webhook_leads_into_leads(world, monkeypatch) -> None:
    wh, _receiver, sim, manifest = world
    configure(monkeypatch, warehouse_url=wh.url)
    announced = sim.advance(leads=3)
    assert sim.flush_webhooks(30)
    defs = _defs()

    with dg.instance_for_test() as instance:
        # 1. No distributor owns the forms yet: nothing to run, the changes are kept and reported.
        first = _tick(instance, None)
        assert not first.run_requests
        assert "3 unrouted" in first.skip_reason.skip_message
        assert {r["status"] for r in inbox_rows(wh).values()} == {"unrouted"}

        # 2. The distributor arrives (and its partition): the sensor routes the changes and asks for one run.
        key = add_sim_distributor(wh, monkeypatch, manifest)
        instance.add_dynamic_partitions("distributors", [key])
        second = _tick(instance, first.cursor)
        assert {r["status"] for r in inbox_rows(wh).values()} == {"pending"}
        (request,) = second.run_requests
        assert request.run_config == webhook_run_config(key)
        assert request.tags["leads/distributor"] == key and request.tags["leads/trigger"] == "webhook"
        assert request.run_key.startswith(f"webhook:{key}:")
        # What the sensor saw in the external asset is on record.
        (seen,) = second.asset_events
        assert seen.asset_key == dg.AssetKey("webhook_inbox") and seen.metadata["pending"].value == 3

        # 3. While a run for the distributor is running (or queued), no second one is requested.
        job = defs.resolve_job_def("webhook_leads_job")
        running = instance.create_run_for_job(job, status=dg.DagsterRunStatus.STARTED,
                                             run_config=webhook_run_config(key), tags={"leads/distributor": key})
        third = _tick(instance, second.cursor)
        assert not third.run_requests and "run in flight" in third.skip_reason.skip_message
        instance.delete_run(running.run_id)

        # Run keys never repeat (Dagster drops a key it has seen, forever).
        fourth = _tick(instance, third.cursor)
        assert fourth.run_requests[0].run_key != request.run_key

        # 4. The run fetches the leads through the sync path and reports the distributor's partitions.
        run = job.execute_in_process(run_config=request.run_config, instance=instance, tags=request.tags)
        assert run.success
        assert set(announced) <= lead_ids(wh)
        assert {r["status"] for r in inbox_rows(wh).values()} == {"processed"}
        events = run.get_asset_materialization_events()
        assert {(e.asset_key.to_user_string(), e.partition) for e in events} == {("raw_leads", key), ("leads", key)}
        leads_meta = next(e for e in events if e.asset_key == dg.AssetKey("leads")).materialization.metadata
        assert leads_meta["stored"].value == 3 and leads_meta["source"].value == "webhook"
        with wh.transaction(read_only=True) as conn:
            sync = conn.query_one("SELECT trigger, run_id, stored, status FROM sync_runs WHERE sync_id = ?",
                                  [leads_meta["sync_id"].value])
            partition_rows = conn.scalar("SELECT count(*) FROM leads WHERE distributor = ?", [key])
        assert sync["run_id"] == run.run_id and sync["stored"] == 3 and sync["trigger"] == "webhook"
        assert leads_meta["dagster/partition_row_count"].value == partition_rows
        # The partitions view and the marts' automation see the webhook leads as `leads` of that partition.
        leads_event = instance.get_latest_materialization_event(dg.AssetKey("leads"))
        assert leads_event is not None and leads_event.dagster_event.partition == key
        assert key in instance.get_materialized_partitions(dg.AssetKey("raw_leads"))
        assert instance.get_latest_materialization_event(dg.AssetKey("webhook_leads")) is None

        # 5. Nothing pending any more; duplicates announced again change nothing.
        fifth = _tick(instance, fourth.cursor)
        assert not fifth.run_requests and "0 pending" in fifth.skip_reason.skip_message
        assert json.loads(fifth.cursor)["seq"] >= 2

        # 6. A run with nothing left to fetch reports no materialisation (no table changed).
        idle = job.execute_in_process(run_config=webhook_run_config(key), instance=instance)
        assert idle.success and not idle.get_asset_materialization_events()


def test_sensor_skips_distributors_without_a_partition(world, monkeypatch) -> None:
    wh, _receiver, sim, manifest = world
    configure(monkeypatch, warehouse_url=wh.url)
    key = add_sim_distributor(wh, monkeypatch, manifest)
    sim.advance(leads=1)
    assert sim.flush_webhooks(30)
    with dg.instance_for_test() as instance:
        result = _tick(instance, None)
        assert not result.run_requests and f"{key} (no partition yet)" in result.skip_reason.skip_message
    assert inbox.pending_by_distributor(wh) == {key: 1}


def test_job_fails_clearly_on_a_distributor_wide_error(world, monkeypatch) -> None:
    wh, _receiver, sim, manifest = world
    configure(monkeypatch, warehouse_url=wh.url)
    key = add_sim_distributor(wh, monkeypatch, manifest)
    sim.advance(leads=1)
    assert sim.flush_webhooks(30)
    # the simulator no longer knows the token: 190 on every call
    from leads_pipeline.lib.distributors import registry as distributors

    distributors.update(wh, key, token="EAAunknowntoken000000000000000")
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("distributors", [key])
        run = _defs().resolve_job_def("webhook_leads_job").execute_in_process(
            run_config=webhook_run_config(key), instance=instance, raise_on_error=False)
        assert not run.success
        failure = run.get_step_failure_events()[0].step_failure_data.error.message
        assert key in failure and "token" in failure.lower()
        assert "EAAunknowntoken" not in failure
        assert not run.get_asset_materialization_events()
    assert inbox.pending_by_distributor(wh) == {key: 1}  # kept for the next run


@pytest.mark.slow
def test_project_definitions_include_the_sensor_job_and_the_external_inbox() -> None:
    from leads_pipeline.definitions import defs

    loaded = defs()
    sensor = loaded.resolve_sensor_def("webhook_inbox_sensor")
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    # At each look of Dagster's sensor daemon (every 5 s), not every other one: p95 webhook → lead under 10 s.
    from dagster._daemon.sensor import MIN_INTERVAL_LOOP_TIME

    assert sensor.minimum_interval_seconds < MIN_INTERVAL_LOOP_TIME
    job = loaded.resolve_job_def("webhook_leads_job")
    assert job.executor_def.name == "in_process"
    graph = loaded.resolve_asset_graph()
    inbox_node = graph.get(dg.AssetKey("webhook_inbox"))
    assert not inbox_node.is_executable and inbox_node.group_name == "ingestion"
    assert dg.AssetKey("webhook_inbox") in graph.get(dg.AssetKey("raw_leads")).parent_keys
