"""``meta_conversion_events``: one distributor's lead stages sent to Meta (Conversions API for CRM), per partition.

The body is one call of ``lib.capi.send`` — enqueue the stages staff and syncs recorded, expire what is older than
Meta's 7 days, deliver the rest in batches of at most 1,000 — and its figures as run metadata: sent, rejected,
expired, pending, the oldest pending event's age. A run that could send nothing (a bad token, an unknown dataset,
Meta unreachable after the client's retries) fails without Dagster retries: the events stay pending and the sensor
tries again later. A distributor without a dataset id sends nothing and says so.
"""


import dagster as dg
from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition

from leads_pipeline.defs.partitions import distributors_partitions
from leads_pipeline.defs.resources import GraphApiResource, WarehouseResource
from leads_pipeline.lib import capi

CAPI_STATUS_TAG = "leads/capi_status"

DESCRIPTION = (
    "Each lead's stages (arrival, assigned, contacted, converted, rejected, reopenings) sent to the distributor's CRM "
    "dataset through Meta's Conversions API for CRM, so Lead Ads optimise for leads that convert (table "
    "`conversion_events`, the outbox).\n\nStages come from `leads` and `lead_interactions` (whatever changed them: "
    "console, API, CLI, bulk actions); each is one event with an idempotent id, sent once. Meta rejects a whole "
    "request for one bad event: the batch is split, the rest delivered, the bad one marked failed with Meta's "
    "message. Events older than 7 days are marked expired. Set up with `leads-pipeline distributors update KEY "
    "--capi-dataset-id ID` (docs/conversions-api.md)."
)


def send_metadata(result: capi.SendResult) -> dict[str, dg.MetadataValue]:
    """The run's figures (no token, no personal data: counts, the dataset id, Meta's messages)."""
    age = result.oldest_pending_age_seconds
    metadata: dict[str, dg.MetadataValue] = {
        "status": dg.MetadataValue.text(result.status),
        "sent": dg.MetadataValue.int(result.sent),
        "rejected": dg.MetadataValue.int(result.failed),
        "expired": dg.MetadataValue.int(result.expired),
        "pending": dg.MetadataValue.int(result.pending),
        "oldest_pending_age_seconds": dg.MetadataValue.float(float(age)) if age is not None
        else dg.MetadataValue.null(),
        "enqueued": dg.MetadataValue.int(result.enqueued),
        "requests": dg.MetadataValue.int(result.requests),
        "dataset_id": dg.MetadataValue.text(result.dataset_id or ""),
        "test_event_code": dg.MetadataValue.bool(result.test_event_code),
        "dagster/table_name": dg.MetadataValue.text("conversion_events"),
    }
    if result.errors:
        metadata["errors"] = dg.MetadataValue.json(result.errors)
    if result.messages:
        metadata["meta_messages"] = dg.MetadataValue.json(result.messages[:20])
    return metadata


def meta_conversion_events(context: dg.AssetExecutionContext, warehouse: WarehouseResource,
                           graph: GraphApiResource) -> dg.MaterializeResult:
    key = context.partition_key
    result = capi.send(warehouse.get(), key, settings=graph.client_settings(), client_factory=graph.client_factory())
    context.instance.add_run_tags(context.run.run_id, {CAPI_STATUS_TAG: result.status})
    metadata = send_metadata(result)
    if result.status == "failed":
        raise dg.Failure(description=result.message, metadata=metadata, allow_retries=False)
    for error in result.errors:
        context.log.warning(f"{key}: {error}")
    context.log.info(result.message)
    return dg.MaterializeResult(metadata=metadata)


def build_capi_asset() -> dg.AssetsDefinition:
    return dg.asset(
        name="meta_conversion_events",
        deps=["leads", "lead_interactions"],
        partitions_def=distributors_partitions,
        group_name="conversions_api",
        kinds={"facebook", "python"},
        code_version="1",
        description=DESCRIPTION,
    )(meta_conversion_events)


CAPI_JOB_NAME = "meta_conversion_events_job"


def build_capi_job(in_process: bool = True) -> UnresolvedAssetJobDefinition:
    return dg.define_asset_job(
        name=CAPI_JOB_NAME,
        selection=dg.AssetSelection.assets("meta_conversion_events"),
        description="Send one distributor's lead stages to Meta's Conversions API for CRM.",
        executor_def=dg.in_process_executor if in_process else None,
    )
