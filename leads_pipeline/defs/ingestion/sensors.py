"""Keeps the ``distributors`` partitions in step with the ``distributors`` table.

A distributor added with the CLI or the HTTP API gets its partition and an initial (backfill) sync run on the next
tick; a removed one loses its partition.
"""


import dagster as dg

from leads_pipeline.defs.partitions import distributors_partitions
from leads_pipeline.defs.resources import WarehouseResource
from leads_pipeline.lib.distributors import registry as distributors


@dg.sensor(
    job_name="sync_job",
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Adds a partition (and an initial sync run) per new distributor; removes deleted ones.",
)
def distributor_partitions_sensor(context: dg.SensorEvaluationContext, warehouse: WarehouseResource):
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
