"""``meta_conversion_events_sensor``: which distributors have stages to send, every 5 minutes.

A distributor with a dataset id is due when events wait, stages were written since its last scan, or it has not sent
for a day (Meta wants events at least daily); one whose last send stopped on an error (a bad token) waits an hour
unless its settings changed (``lib.capi.due``). So new stages reach Meta within minutes, and nothing runs for
distributors that have nothing to send.
"""


from datetime import UTC, datetime

import dagster as dg

from leads_pipeline.defs.capi.assets import capi_job
from leads_pipeline.defs.partitions import distributors_partitions
from leads_pipeline.defs.resources import WarehouseResource
from leads_pipeline.lib import capi

TICK_SECONDS = 300


@dg.sensor(
    job=capi_job,
    minimum_interval_seconds=TICK_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Every 5 minutes: one meta_conversion_events run per distributor with lead stages to send to Meta.",
)
def meta_conversion_events_sensor(context: dg.SensorEvaluationContext, warehouse: WarehouseResource):
    now = datetime.now(UTC)
    known = set(context.instance.get_dynamic_partitions(distributors_partitions.name))
    due = [key for key in capi.due(warehouse.get(), now) if key in known]
    if not due:
        return dg.SkipReason("No distributor has Conversions API events to send.")
    tick = now.strftime("%Y%m%dT%H%M%S")
    return [
        dg.RunRequest(partition_key=key, run_key=f"capi:{key}:{tick}",
                      tags={"leads/distributor": key, "leads/trigger": "schedule"})
        for key in due
    ]
