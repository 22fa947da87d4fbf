"""The sweep: every minute, sync each enabled distributor whose interval (default 5 minutes) has passed.

Webhooks bring leads in seconds; these schedules are what catch the deliveries Meta never made. Two schedules share
one plan (``_due_now``) and split the work by how many distributors are due at a tick:

- a few (at most ``LEADS_SYNC_BATCH_THRESHOLD``, default 4): ``sync_due_distributors_schedule`` requests one
  ``sync_job`` run per distributor (partitioned runs, one per distributor at a time by the instance's
  ``leads/distributor`` tag limit);
- more: ``sync_due_batches_schedule`` requests ``sync_batch_job`` runs of up to ``LEADS_SYNC_BATCH_SIZE`` (default
  50) distributors each, synced in-process so one run's fixed cost is shared (see ``batch.py`` and docs/scale.md).

Both leave out distributors that a queued or running sync already covers, so a distributor is never in two runs.

A distributor whose interval ends before the *next* tick is synced at this one (``TICK_SLACK``): syncs start a few
seconds to a minute after their tick, so without the slack a 5-minute interval would be served every 6 minutes
(measured in the soak, docs/scale.md). With it a sync is at most one tick early and never a tick late.
"""


from datetime import timedelta

import dagster as dg

from leads_pipeline.defs.ingestion.batch import (
    batch_run_config,
    batch_size,
    batch_threshold,
    distributors_in_flight,
    split_batches,
)
from leads_pipeline.defs.resources import WarehouseResource
from leads_pipeline.lib.distributors import registry as distributors

TICK_SLACK = timedelta(seconds=60)  # the schedules' period: "* * * * *"


def _due_now(context: dg.ScheduleEvaluationContext, warehouse: WarehouseResource) -> list[str]:
    """Due, known (has a partition) and not already queued or running in any sync run."""
    now = context.scheduled_execution_time + TICK_SLACK
    known = set(context.instance.get_dynamic_partitions("distributors"))
    in_flight = distributors_in_flight(context.instance)
    return [key for key in distributors.due_for_sync(warehouse.get(), now) if key in known and key not in in_flight]


@dg.schedule(
    cron_schedule="* * * * *",
    job_name="sync_job",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Every minute: one sync run per due distributor, when only a few are due (else the batches do it).",
)
def sync_due_distributors_schedule(context: dg.ScheduleEvaluationContext, warehouse: WarehouseResource):
    due = _due_now(context, warehouse)
    if not due:
        return dg.SkipReason("No distributor is due for a sync.")
    if len(due) > batch_threshold():
        return dg.SkipReason(f"{len(due)} distributors due: sync_due_batches_schedule syncs them in batches.")
    tick = context.scheduled_execution_time.strftime("%Y%m%dT%H%M")
    return [
        dg.RunRequest(partition_key=key, run_key=f"{key}:{tick}", tags={"leads/distributor": key, "leads/trigger": "schedule"})
        for key in due
    ]


@dg.schedule(
    cron_schedule="* * * * *",
    job_name="sync_batch_job",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Every minute: when many distributors are due, batched sync runs of up to LEADS_SYNC_BATCH_SIZE each.",
)
def sync_due_batches_schedule(context: dg.ScheduleEvaluationContext, warehouse: WarehouseResource):
    due = _due_now(context, warehouse)
    if len(due) <= batch_threshold():
        return dg.SkipReason(f"{len(due)} distributor(s) due: few enough for one sync_job run each.")
    tick = context.scheduled_execution_time.strftime("%Y%m%dT%H%M")
    batches = split_batches(due, batch_size())
    return [
        dg.RunRequest(
            run_key=f"batch:{tick}:{i}",
            run_config=batch_run_config(keys),
            tags={"leads/trigger": "schedule", "leads/batch": f"{tick}-{i}", "leads/batch_size": str(len(keys))},
        )
        for i, keys in enumerate(batches)
    ]
