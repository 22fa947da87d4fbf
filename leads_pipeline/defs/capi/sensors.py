"""``meta_conversion_events_sensor``: which distributors have stages to send, every 5 minutes.

A distributor with a dataset id is due when events wait, stages were written since its last scan, or it has not sent
for a day (Meta wants events at least daily); one whose last send stopped on an error (a bad token) waits an hour
unless its settings changed (``lib.capi.due``). So new stages reach Meta within minutes, and nothing runs for
distributors that have nothing to send.
"""


from datetime import UTC, datetime

import dagster as dg

from leads_pipeline.defs.capi.assets import CAPI_JOB_NAME
from leads_pipeline.defs.partitions import distributors_partitions
from leads_pipeline.defs.resources import WarehouseResource
from leads_pipeline.lib import capi

TICK_SECONDS = 300


def _capi_tick(context: dg.SensorEvaluationContext, warehouse: WarehouseResource):
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


def build_capi_sensor() -> dg.SensorDefinition:
    return dg.sensor(
        name="meta_conversion_events_sensor",
        job_name=CAPI_JOB_NAME,
        minimum_interval_seconds=TICK_SECONDS,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Every 5 minutes: one meta_conversion_events run per distributor with lead stages to send to "
        "Meta.",
    )(_capi_tick)


def __getattr__(name: str):
    """``meta_conversion_events_sensor`` for direct use (tests), built on access and kept out of the scanned
    namespace (see ``defs/automation.py``)."""
    if name == "meta_conversion_events_sensor":
        return build_capi_sensor()
    raise AttributeError(name)
