"""One distributor's sync as one step: ``raw_leads`` → ``leads`` and ``rejected_leads`` (the quarantine), per partition.

The three tables are written by one call of the one sync path (``lib.ingest.sync.sync_distributor``), so they are
one ``multi_asset``: Dagster shows the lineage, the step is the sync, and each table gets its own materialisation with
this run's figures. Nothing passes between steps through the warehouse any more (the old ``raw_leads`` step left an
open ``sync_runs`` row for the ``leads`` step to close).

Outcomes:

- success: three materialisations (fetched / stored / rejected, row counts, a masked preview);
- partial (a Page or form could not be read; the others were): the same materialisations with ``partial: true``
  and the ``failures`` (id, Meta's message, what to do), a warning per failure, and the run tagged
  ``leads/sync_status=partial`` so that it stands out in the Runs list;
- failed (the token or its permissions): ``dg.Failure`` without retries, since retrying cannot fix a token; the
  distributor backs off (its next scheduled sync is pushed out, then paused: ``lib/distributors/health.py``), and the
  failure's metadata says until when.

Every outcome carries the distributor's health (``health/state``, ``health/next_sync``, ``health/last_success``,
``health/leads_24h``), the same summary as the console's Distributors page and the ``distributors_sync_health``
check.
"""


import dagster as dg

from leads_pipeline.defs.ingestion.report import (
    ASSETS,
    LEADS,
    RAW,
    REJECTED,
    partition_counts,
    problems,
    sync_metadata,
    table_spec,
)
from leads_pipeline.defs.partitions import distributors_partitions
from leads_pipeline.defs.resources import GraphApiResource, WarehouseResource
from leads_pipeline.lib.distributors import health
from leads_pipeline.lib.ingest.sync import sync_distributor

# An exception the sync did not turn into a result (e.g. the warehouse was unreachable) gets two more attempts.
# Graph API throttling and transient errors are retried inside the client; a token failure is final.
INGEST_RETRY = dg.RetryPolicy(max_retries=2, delay=20, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS)

SYNC_STATUS_TAG = "leads/sync_status"

# What each table holds, as the asset's description in the UI.
_DESCRIPTIONS = {
    RAW: (
        "Leads exactly as Meta's Graph API returned them, one partition per distributor (table `raw_leads`).\n\n"
        "A sync reads the forms the distributor owns (claimed with `--form-id`, or found on its Pages and claimed"
        " by no one else) incrementally from each form's cursor, and lands each page in a short transaction, "
        "deduped on the Meta lead id; no Graph call happens while the warehouse is held. A Page or form that "
        "cannot be read is reported (id, Meta's message, what to do) and the others still sync: the run is then "
        "*partial*. Leads announced by webhooks (`webhook_inbox`) land here too, through the same sync path."
    ),
    LEADS: (
        "One row per Meta lead (table `leads`), every lead with an id: answers parsed (every value kept), email "
        "and phone normalised with the lead's own signals; a lead with no usable email or phone is kept with "
        "`status = 'rejected'` and its reason, for staff to review.\n\n"
        "Upserted by Meta lead id: a re-sync never overwrites what staff changed, and a deleted lead never comes "
        "back. A lead id another distributor already holds is not stored twice; the run reports it by name "
        "(`held_elsewhere`). Each run's figures are its own row in `sync_runs`."
    ),
    REJECTED: (
        "The quarantine (table `rejected_leads`): records Meta served that cannot be a lead — no usable id, no "
        "parseable `created_time`, or `field_data` not a list — with the reason and the payload as received."
    ),
}


def _health_metadata(wh, key: str) -> dict:
    """The distributor's health after the run, as metadata (empty when it cannot be read: never fails the run)."""
    try:
        h = health.summary(wh, key)
    except Exception:  # noqa: BLE001 - the sync's own outcome matters more than its health summary
        return {}
    if h is None:
        return {}
    return {"health/state": h.state, "health/status": h.status, "health/next_sync": h.next_sync,
            "health/last_success": h.last_success_at.isoformat() if h.last_success_at else "never",
            "health/leads_24h": h.leads_24h}


def _specs() -> list[dg.AssetSpec]:
    """The three tables one sync writes."""
    return [
        table_spec(RAW, "raw", {"facebook", "python"}, _DESCRIPTIONS[RAW], deps=("webhook_inbox",)),
        table_spec(LEADS, "core", {"python", "sql"}, _DESCRIPTIONS[LEADS], deps=(RAW,)),
        table_spec(REJECTED, "quarantine", {"python", "sql"}, _DESCRIPTIONS[REJECTED], deps=(RAW,)),
    ]


def sync_leads(context: dg.AssetExecutionContext, warehouse: WarehouseResource, graph: GraphApiResource):
    """The step of :func:`build_sync_assets` (a plain function here: see ``defs/automation.py`` on factories)."""
    key = context.partition_key
    wh = warehouse.get()
    trigger = f"dagster {context.run.tags.get('leads/trigger', 'manual')}"
    result = sync_distributor(wh, key, trigger=trigger, run_id=context.run.run_id,
                              settings=graph.client_settings(), client_factory=graph.client_factory())
    context.instance.add_run_tags(context.run.run_id, {SYNC_STATUS_TAG: result.status})
    for warning in problems(key, result):
        context.log.warning(warning)
    state = _health_metadata(wh, key)
    if result.status == "failed":
        raise dg.Failure(
            description=f"Distributor {key}: {result.message}",
            metadata={"sync_id": result.sync_id, "failures": dg.MetadataValue.json(list(result.failures or [])),
                      **state},
            allow_retries=False,
        )
    context.log.info(f"{key}: {result.message}")
    metadata = sync_metadata(result, partition_counts(wh, key, detail=True), extra=state)
    for asset in ASSETS:
        yield dg.MaterializeResult(asset_key=asset, metadata=metadata[asset])


def build_sync_assets() -> dg.AssetsDefinition:
    """``raw_leads`` → ``leads`` / ``rejected_leads``: one step per distributor partition (``sync_leads``)."""
    return dg.multi_asset(
        name="sync_leads",
        specs=_specs(),
        partitions_def=distributors_partitions,
        retry_policy=INGEST_RETRY,
        can_subset=False,  # one sync writes all three tables
        code_version="2",
        description="Sync one distributor: read its new leads from the Graph API, land, parse and store them.",
    )(sync_leads)
