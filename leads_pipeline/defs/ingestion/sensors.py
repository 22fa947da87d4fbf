"""The ingestion sensors: partitions in step with the ``distributors`` table, and the one due-sync plan per tick.

``distributor_partitions_sensor``: a distributor added with the CLI or the HTTP API gets its partition and an
initial (backfill) sync run on the next tick; a removed one loses its partition.

``sync_due_sensor``: every minute, plans once which distributors are due (``planning.plan_due``) and requests either
one ``sync_job`` run per distributor or ``sync_batch_job`` runs — one sensor for both jobs, so there is one plan and
no two instigators skipping each other. Webhooks bring leads in seconds; this sweep catches what Meta never
delivered.
"""


from datetime import UTC, datetime

import dagster as dg

from leads_pipeline.defs.ingestion.batch import batch_run_config
from leads_pipeline.defs.ingestion.planning import BATCH_JOB_NAME, SYNC_JOB_NAME, TICK_SECONDS, plan_due
from leads_pipeline.defs.partitions import distributors_partitions
from leads_pipeline.defs.resources import WarehouseResource
from leads_pipeline.lib.distributors import registry as distributors


def _partitions(context: dg.SensorEvaluationContext, warehouse: WarehouseResource):
    rows = distributors.list_all(warehouse.get())
    wanted = {d.key: d for d in rows}
    known = set(context.instance.get_dynamic_partitions(distributors_partitions.name))
    added = sorted(set(wanted) - known)
    removed = sorted(known - set(wanted))
    if not added and not removed:
        return dg.SkipReason(f"{len(known)} distributor partition(s), all in step with the table.")
    requests = []
    if added:
        requests.append(distributors_partitions.build_add_request(added))
    if removed:
        requests.append(distributors_partitions.build_delete_request(removed))
    runs = [
        dg.RunRequest(
            partition_key=key,
            run_key=f"initial:{key}:{wanted[key].created_at:%Y%m%dT%H%M%S}",
            tags={"leads/distributor": key, "leads/trigger": "initial"},
        )
        for key in added
        if wanted[key].enabled
    ]
    return dg.SensorResult(run_requests=runs, dynamic_partitions_requests=requests)


def _due(context: dg.SensorEvaluationContext, warehouse: WarehouseResource):
    now = datetime.now(UTC)
    plan = plan_due(context.instance, warehouse.get(), now)
    # Run keys are remembered forever: the tick's time (ticks are at least a minute apart) makes them unique.
    tick = now.strftime("%Y%m%dT%H%M%S")
    busy = f" ({len(plan.busy)} already in a queued or running sync)" if plan.busy else ""
    if plan.held:  # token/permission failures: backing off or paused (lib/distributors/health.py)
        held = sorted(plan.held.items())
        more = f" and {len(held) - 10} more" if len(held) > 10 else ""
        busy += " (held back: " + ", ".join(f"{k} {why}" for k, why in held[:10]) + more + ")"
    if not plan.due:
        return dg.SkipReason(f"No distributor is due for a sync{busy}.")
    if plan.singles:
        context.log.info(f"{len(plan.singles)} due: one {SYNC_JOB_NAME} run each{busy}")
        return [
            dg.RunRequest(job_name=SYNC_JOB_NAME, partition_key=key, run_key=f"{key}:{tick}",
                          tags={"leads/distributor": key, "leads/trigger": "schedule"})
            for key in plan.singles
        ]
    context.log.info(f"{len(plan.due)} due: {len(plan.batches)} {BATCH_JOB_NAME} run(s){busy}")
    return [
        dg.RunRequest(
            job_name=BATCH_JOB_NAME,
            run_key=f"batch:{tick}:{i}",
            run_config=batch_run_config(keys),
            tags={"leads/trigger": "schedule", "leads/batch": f"{tick}-{i}", "leads/batch_size": str(len(keys))},
        )
        for i, keys in enumerate(plan.batches)
    ]


def build_partitions_sensor() -> dg.SensorDefinition:
    return dg.sensor(
        name="distributor_partitions_sensor",
        job_name=SYNC_JOB_NAME,
        minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Adds a partition (and an initial sync run) per new distributor; removes deleted ones.",
    )(_partitions)


def build_sync_due_sensor(sync_job=None, batch_job=None) -> dg.SensorDefinition:
    """The sensor over the component's two sync jobs (built here when not given: direct use in tests)."""
    from leads_pipeline.defs.ingestion.batch import build_batch_job
    from leads_pipeline.defs.ingestion.jobs import build_sync_job

    return dg.sensor(
        name="sync_due_sensor",
        jobs=[sync_job or build_sync_job(), batch_job or build_batch_job()],
        minimum_interval_seconds=TICK_SECONDS,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Every minute: the distributors due for a sync, planned once — one sync_job run each when a few "
        "are due, sync_batch_job runs of up to LEADS_SYNC_BATCH_SIZE when many are.",
    )(_due)


_BUILDERS = {"distributor_partitions_sensor": build_partitions_sensor, "sync_due_sensor": build_sync_due_sensor}
_built: dict[str, dg.SensorDefinition] = {}


def __getattr__(name: str) -> dg.SensorDefinition:
    """``sensors.sync_due_sensor`` etc. for direct use (tests, scripts), built on first access and kept out of the
    module's namespace, so that the scan of ``defs/`` does not load them next to the component's."""
    if name not in _BUILDERS:
        raise AttributeError(name)
    if name not in _built:
        _built[name] = _BUILDERS[name]()
    return _built[name]
