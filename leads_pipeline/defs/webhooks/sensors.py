"""Webhook leads in seconds: ``webhook_inbox_sensor`` → ``webhook_leads_job`` for each distributor with pending rows.

The receiver (``leads_pipeline.web.webhooks``) stores every signed ``leadgen`` notification in ``webhook_inbox``
before answering Meta. Every ~5 s (each look of Dagster's sensor daemon) this sensor reads one small summary of the
inbox and requests one run of ``webhook_leads_job`` per distributor that has pending rows — unless a run of it is
already queued or running for that distributor (the run would pick the new rows up; the instance also limits runs per
``leads/distributor`` tag to one, so a webhook run waits for a running sync of the same distributor instead of racing
it). Unrouted
notifications are routed again when the distributors or their forms change.

The job is an op, not an asset: it does not produce a table of its own. It calls the inbox processor
(``lib.webhooks.process.process_all``), which fetches the announced leads through ``sync_distributor`` (one
``sync_runs`` row per round, trigger 'webhook'), and reports what that wrote — ``raw_leads`` and ``leads`` (and
``rejected_leads`` when it quarantined something) for the distributor's partition — so the lineage, the partitions
view and the marts' automation see webhook leads exactly like synced ones.

Run keys carry the tick time and a sequence number: Dagster drops a run key it has seen before, forever.
"""


import json
import time

import dagster as dg

from leads_pipeline.defs.ingestion.report import (
    LEADS,
    RAW,
    REJECTED,
    partition_counts,
    reporting_op,
)
from leads_pipeline.defs.partitions import distributors_partitions
from leads_pipeline.defs.resources import GraphApiResource, WarehouseResource
from leads_pipeline.lib.webhooks import inbox
from leads_pipeline.lib.webhooks.process import process_all

WEBHOOK_JOB_NAME = "webhook_leads_job"
# Dagster's sensor daemon looks at sensors every 5 s; a minimum interval under that lets this one tick at each look
# (5 or 6 would skip every other look when a tick lands a moment early: 10 s). A lead then waits up to ~5 s for the
# tick and ~3 s for its run (queued → started → landed), keeping the sensor path's p95 under 10 s (10 s ticks: 13.5
# s). A tick is one small read of the inbox; ~17,000 ticks a day, mostly skipped.
TICK_SECONDS = 4
WEBHOOK_OP_NAME = "process_webhook_inbox"
_IN_FLIGHT = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


class WebhookInboxConfig(dg.Config):
    """The distributor whose pending inbox rows this run processes."""

    distributor: str


def webhook_run_config(key: str) -> dict:
    return {"ops": {WEBHOOK_OP_NAME: {"config": {"distributor": key}}}}


def inbox_metadata(result, counts) -> dict[str, dict]:
    """Metadata per asset for one distributor's inbox processing (``InboxResult``) and its partition's rows."""
    common = {"source": "webhook", "sync_id": result.sync_id or "", "sync_ids": dg.MetadataValue.json(result.sync_ids),
              "inbox_rows": result.selected}
    return {
        RAW: {**common, "fetched": result.fetched, "graph_requests": result.graph_requests,
              "failed": result.failed, "retrying": result.retrying, "held_elsewhere": result.held_elsewhere,
              "errors": dg.MetadataValue.json(list(result.errors)),
              "dagster/table_name": RAW, "dagster/partition_row_count": counts.raw_leads},
        LEADS: {**common, "stored": result.stored, "dagster/table_name": LEADS,
                "dagster/partition_row_count": counts.leads, "dagster/row_count": counts.leads_total},
        REJECTED: {**common, "rejected": result.rejected, "dagster/table_name": REJECTED,
                   "dagster/partition_row_count": counts.rejected_leads},
    }


@reporting_op(
    WEBHOOK_OP_NAME,
    "Fetch the leads of the distributor's pending webhook_inbox rows through the sync path and report "
    "raw_leads / leads materialisations of its partition.",
)
def process_webhook_inbox(context: dg.OpExecutionContext, config: WebhookInboxConfig, warehouse: WarehouseResource,
                          graph: GraphApiResource):
    key = config.distributor
    wh = warehouse.get()
    result = process_all(wh, key, graph.client_factory(), run_id=context.run.run_id,
                         settings=graph.client_settings())
    for error in result.errors:
        context.log.warning(f"{key}: {error}")
    if result.fatal:
        raise dg.Failure(
            description=f"Distributor {key}: {result.fatal}",
            metadata={"inbox": dg.MetadataValue.json(result.to_dict())},
            allow_retries=False,
        )
    context.log.info(f"{key}: {result.selected} inbox row(s), {result.fetched} fetched, {result.stored} stored, "
                     f"{result.held_elsewhere} held by another distributor, {result.failed} failed, "
                     f"{result.retrying} to retry later")
    if not result.fetched:
        return  # nothing landed: no table changed
    metadata = inbox_metadata(result, partition_counts(wh, key))
    assets = [RAW, LEADS] + ([REJECTED] if result.rejected else [])
    for asset in assets:
        context.log_event(dg.AssetMaterialization(asset_key=asset, partition=key, metadata=metadata[asset],
                                                  description="Leads announced by Meta's webhooks."))


def build_webhook_job() -> dg.JobDefinition:
    @dg.job(
        name=WEBHOOK_JOB_NAME,
        # One step: run it in the run's own process (saves a step subprocess, i.e. seconds of latency per lead).
        executor_def=dg.in_process_executor,
        tags={"leads/kind": "webhook"},
        description="Fetch and store the leads Meta's webhooks announced, for one distributor: materialisations of "
        "its partitions of raw_leads → leads (and rejected_leads when something was quarantined).",
    )
    def webhook_leads_job():
        process_webhook_inbox()

    return webhook_leads_job


def _in_flight(context: dg.SensorEvaluationContext) -> set[str]:
    """Distributors with a webhook run queued or running."""
    runs = context.instance.get_runs(
        filters=dg.RunsFilter(job_name=WEBHOOK_JOB_NAME, statuses=_IN_FLIGHT), limit=1000
    )
    return {run.tags.get("leads/distributor") for run in runs} - {None}


def _inbox_tick(context: dg.SensorEvaluationContext, warehouse: WarehouseResource):
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
                run_key=f"webhook:{key}:{tick}:{seq}",
                run_config=webhook_run_config(key),
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
        if state.waiting:
            parts.append(f"{state.waiting} waiting to be retried (next at {state.next_attempt_at:%H:%M:%S} UTC)")
        return dg.SensorResult(skip_reason=dg.SkipReason("Webhook inbox: " + "; ".join(parts) + "."), cursor=cursor)
    # What the sensor saw in the external asset, so that webhook_inbox has a history in the UI.
    seen = dg.AssetObservation("webhook_inbox", metadata={
        "pending": sum(state.pending.values()), "unrouted": state.unrouted,
        "pending_by_distributor": dg.MetadataValue.json(state.pending)})
    return dg.SensorResult(run_requests=requests, cursor=cursor, asset_events=[seen])


def build_webhook_sensor(job: dg.JobDefinition | None = None) -> dg.SensorDefinition:
    return dg.sensor(
        name="webhook_inbox_sensor",
        job=job or build_webhook_job(),
        minimum_interval_seconds=TICK_SECONDS,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Every ~5 s: one webhook_leads_job run per distributor with pending webhook_inbox rows.",
    )(_inbox_tick)


_BUILDERS = {"webhook_leads_job": build_webhook_job,
             "webhook_inbox_sensor": lambda: build_webhook_sensor(__getattr__("webhook_leads_job"))}
_built: dict = {}


def __getattr__(name: str):
    """``webhook_inbox_sensor`` / ``webhook_leads_job`` for direct use (tests), built on first access and kept out of
    the module's namespace, so the scan of ``defs/`` does not load them next to the component's."""
    if name not in _BUILDERS:
        raise AttributeError(name)
    if name not in _built:
        _built[name] = _BUILDERS[name]()
    return _built[name]
