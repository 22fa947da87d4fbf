"""Ingestion assets, one partition per distributor: ``raw_leads`` (as Meta sent them) → ``leads`` (parsed, deduped)."""


import dagster as dg

from leads_pipeline.defs.metadata import leads_preview, table_schema
from leads_pipeline.defs.partitions import distributors_partitions
from leads_pipeline.defs.resources import GraphApiResource, WarehouseResource
from leads_pipeline.lib.ingest import store as ingest
from leads_pipeline.lib.ingest import sync

# Transient failures left after the client's own retries (network, 5xx, short throttling) get two more attempts.
# Token and permission failures raise Failure(allow_retries=False): retrying cannot fix them.
INGEST_RETRY = dg.RetryPolicy(max_retries=2, delay=20, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS)


@dg.asset(
    partitions_def=distributors_partitions,
    group_name="ingestion",
    kinds={"facebook", "python"},
    retry_policy=INGEST_RETRY,
    code_version="1",
    tags={"leads/layer": "raw"},
)
def raw_leads(context: dg.AssetExecutionContext, warehouse: WarehouseResource, graph: GraphApiResource):
    """Leads exactly as Meta's Graph API returned them, for one distributor (table `raw_leads`).

    Reads every lead form of the distributor's Facebook Pages (configured, or discovered from its token) through
    `/{form-id}/leads`, incrementally from each form's cursor, page by page. Each page is landed as it arrives and
    deduped on the Meta lead id; a form's cursor moves only together with the last page it covers, so a run that
    dies anywhere can simply run again. A failing form is reported and the other forms still sync; an expired or
    invalid token fails this distributor only, with what to do.
    """
    key = context.partition_key
    wh = warehouse.get()
    sync_id = ingest.start_sync(wh, key, trigger=f"dagster run {context.run.run_id[:8]}")
    extracted = sync.extract(wh, key, sync_id, client_factory=graph.client_factory())
    ingest.record_extract(wh, sync_id, extracted)
    if extracted.fatal:
        ingest.finish_open_syncs(wh, key, None)
        raise dg.Failure(
            description=f"Distributor {key}: {extracted.fatal}",
            metadata={"errors": dg.MetadataValue.json(extracted.errors)},
            allow_retries=False,
        )
    for error in extracted.errors:
        context.log.warning(f"{key}: {error}")
    return dg.MaterializeResult(
        metadata={
            "fetched": extracted.fetched,
            "new_raw_rows": extracted.landed,
            "forms": extracted.forms,
            "graph_requests": extracted.graph_requests,
            "form_errors": dg.MetadataValue.json(extracted.errors),
            "sync_id": sync_id,
            "dagster/table_name": "raw_leads",
            "dagster/partition_row_count": ingest.count_rows(wh, "raw_leads", key),
        }
    )


@dg.asset(
    partitions_def=distributors_partitions,
    deps=[raw_leads],
    group_name="ingestion",
    kinds={"python", "sql"},
    code_version="1",
    tags={"leads/layer": "core"},
)
def leads(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
    """One row per Meta lead (table `leads`): answers parsed, email and phone normalised (E.164), validated.

    Parses every not-yet-processed row of `raw_leads` for the distributor. Valid leads are upserted by Meta lead
    id — a re-sync never overwrites what staff changed (status, assignment) and a deleted lead never comes back.
    Malformed leads go to `rejected_leads` with their reason. The sync's result (fetched / stored / rejected /
    errors) is recorded in `sync_runs`.
    """
    key = context.partition_key
    wh = warehouse.get()
    processed = sync.load(wh, key)
    results = ingest.finish_open_syncs(wh, key, processed)
    for result in results:
        context.log.info(f"{key}: {result.message}")
    return dg.MaterializeResult(
        metadata={
            "stored": processed.stored,
            "rejected": processed.rejected,
            "skipped_deleted": processed.skipped_deleted,
            "processed_raw_rows": processed.processed,
            "dagster/table_name": "leads",
            "dagster/partition_row_count": ingest.count_rows(wh, "leads", key),
            "dagster/row_count": ingest.count_rows(wh, "leads"),
            "dagster/column_schema": table_schema(wh, "leads"),
            "preview": dg.MetadataValue.md(leads_preview(wh, key)),
        }
    )
