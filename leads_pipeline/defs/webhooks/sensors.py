"""Webhook leads in seconds: ``webhook_inbox_sensor`` → ``webhook_leads_job`` for each distributor with pending rows.

The receiver (``leads_pipeline.web.webhooks``) stores every signed ``leadgen`` notification in ``webhook_inbox``
before answering Meta. Every ~10 s this sensor reads one small summary of the inbox and requests one run of
``webhook_leads`` per distributor that has pending rows — unless a run of it is already queued or running for that
distributor (the run would pick the new rows up; the instance also limits runs per ``leads/distributor`` tag to one,
so a webhook run waits for a running sync of the same distributor instead of racing it). Unrouted notifications are
routed again when the distributors (or the forms their syncs discovered) change.

Run keys carry the tick time and a sequence number: Dagster drops a run key it has seen before, forever.
"""


import json
import time

import dagster as dg

from leads_pipeline.defs.metadata import leads_preview
from leads_pipeline.defs.partitions import distributors_partitions
from leads_pipeline.defs.resources import GraphApiResource, WarehouseResource
from leads_pipeline.lib.webhooks import inbox
from leads_pipeline.lib.ingest import store as ingest

WEBHOOK_JOB_NAME = "webhook_leads_job"
_IN_FLIGHT = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


@dg.asset(
    partitions_def=distributors_partitions,
    group_name="ingestion",
    kinds={"facebook", "python"},
    code_version="1",
    tags={"leads/layer": "core"},
)
def webhook_leads(context: dg.AssetExecutionContext, warehouse: WarehouseResource, graph: GraphApiResource):
    """Fetches the leads named by Meta's leadgen webhooks and stores them into `leads`, for one distributor.

    Takes the distributor's pending rows of `webhook_inbox`, reads those leads by id through Graph batch requests
    (50 ids per request, with the Page's token), lands them in `raw_leads` (deduped on the lead id; the forms' sync
    cursors are not moved) and parses them into `leads` / `rejected_leads`. Each inbox row is then marked
    `processed`, `rejected`, `deleted` (tombstoned, never fetched) or `failed` with Meta's reason (e.g. 100/33 for
    the App Dashboard's test lead); a transient failure leaves it `pending` for the next run, up to 8 attempts.
    The scheduled sync still reads every form, so a notification Meta never delivered loses nothing.
    """
    key = context.partition_key
    wh = warehouse.get()
    result = inbox.process_all(wh, key, graph.client_factory())
    for error in result.errors:
        context.log.warning(f"{key}: {error}")
    if result.fatal:
        raise dg.Failure(
            description=f"Distributor {key}: {result.fatal}",
            metadata={"inbox": dg.MetadataValue.json(result.to_dict())},
            allow_retries=False,
        )
    if result.stored:
        # The rows went into the `leads` table: tell Dagster, so that the marts (eager on `leads`) refresh.
        context.log_event(
            dg.AssetMaterialization(
                asset_key="leads",
                partition=key,
                description="New leads from webhook notifications (webhook_leads).",
                metadata={"stored": result.stored, "source": "webhook",
                          "dagster/partition_row_count": ingest.count_rows(wh, "leads", key)},
            )
        )
    return dg.MaterializeResult(
        metadata={
            "inbox_rows": result.selected,
            "fetched": result.fetched,
            "stored": result.stored,
            "rejected": result.rejected,
            "deleted": result.deleted,
            "failed": result.failed,
            "retrying": result.retrying,
            "graph_requests": result.graph_requests,
            "errors": dg.MetadataValue.json(result.errors),
            "dagster/table_name": "leads",
            "preview": dg.MetadataValue.md(leads_preview(wh, key)) if result.stored else "_no new leads_",
        }
    )


webhook_leads_job = dg.define_asset_job(
    name=WEBHOOK_JOB_NAME,
    selection=dg.AssetSelection.assets(webhook_leads),
    description="Fetch and store the leads Meta's webhooks announced, for one distributor.",
    # One step: run it in the run's own process (saves a step subprocess, i.e. seconds of latency per lead).
    executor_def=dg.in_process_executor,
)


def _in_flight(context: dg.SensorEvaluationContext) -> set[str]:
    """Distributors with a webhook run queued or running."""
    runs = context.instance.get_runs(
        filters=dg.RunsFilter(job_name=WEBHOOK_JOB_NAME, statuses=_IN_FLIGHT), limit=1000
    )
    return {run.tags.get("leads/distributor") or run.tags.get("dagster/partition") for run in runs} - {None}


@dg.sensor(
    job=webhook_leads_job,
    minimum_interval_seconds=10,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Every ~10 s: one webhook_leads run per distributor with pending webhook_inbox rows.",
)
def webhook_inbox_sensor(context: dg.SensorEvaluationContext, warehouse: WarehouseResource):
    previous = json.loads(context.cursor) if context.cursor else {}
    wh = warehouse.get()
    state = inbox.overview(wh)
    rerouted = 0
    routing = previous.get("routing")
    if state.unrouted and state.routing_version != routing:
        rerouted = inbox.reroute_unrouted(wh)
        if rerouted:
            state = inbox.overview(wh)
    routing = state.routing_version
    seq = int(previous.get("seq", 0))
    known = set(context.instance.get_dynamic_partitions(distributors_partitions.name))
    busy = _in_flight(context) if state.pending else set()
    tick = int(time.time())
    requests = []
    waiting = []
    for key, count in state.pending.items():
        if key not in known:
            waiting.append(f"{key} (no partition yet)")
            continue
        if key in busy:
            waiting.append(f"{key} (run in flight)")
            continue
        seq += 1
        requests.append(
            dg.RunRequest(
                partition_key=key,
                run_key=f"webhook:{key}:{tick}:{seq}",
                tags={"leads/distributor": key, "leads/trigger": "webhook", "leads/inbox_pending": str(count)},
            )
        )
    cursor = json.dumps({"seq": seq, "routing": routing}, sort_keys=True)
    if not requests:
        parts = [f"{sum(state.pending.values())} pending"]
        if waiting:
            parts.append("waiting: " + ", ".join(waiting))
        if state.unrouted:
            parts.append(f"{state.unrouted} unrouted (see `leads-pipeline webhooks inbox`)")
        if rerouted:
            parts.append(f"{rerouted} rerouted")
        return dg.SensorResult(skip_reason=dg.SkipReason("Webhook inbox: " + "; ".join(parts) + "."), cursor=cursor)
    return dg.SensorResult(run_requests=requests, cursor=cursor)
