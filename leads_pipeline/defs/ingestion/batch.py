"""Batched syncing: one Dagster run syncs many distributors in-process, so the run's fixed cost is shared.

Why an op job that *reports* materialisations, and not a partitioned asset run over a partition-key range:

- A Dagster run has a fixed cost of a few seconds (process start, code load, event writes; about 4 s with the
  multiprocess executor, 2 s in-process — docs/scale.md measures it here). 200 distributors on a 5-minute cadence as
  one run each is 200 runs per 5 minutes: on 2 cores the fixed cost alone is more than the machine has.
- A single run over several partitions (``BackfillPolicy.single_run`` / ``context.partition_keys``) only takes a
  *contiguous range* of partition keys. Dynamic partitions are ordered by insertion, and the distributors that are
  due at one minute are an arbitrary subset of them, so a range would re-sync distributors that are not due.
- So ``sync_batch_job`` is one op over an explicit list of keys (run config). For each distributor it calls the same
  ``sync_distributor`` the ``sync_leads`` asset calls (its own ``sync_runs`` row, with this run's id) and reports
  ``AssetMaterialization`` of ``raw_leads``, ``leads`` and ``rejected_leads`` for that partition with the same
  metadata (``report.py``), so the UI's partition view, freshness and the marts' automation see a batch exactly
  like single-partition runs.

Failure isolation: a distributor that fails (expired token, missing permission, any exception) is logged and
reported in the run's tags; the others in the batch still sync. A distributor whose sync was *partial* is
materialised with ``partial: true`` and listed in ``leads/batch_partial``. The run tags itself
``leads/batch_result = ok | partial | failed``; it fails only when every distributor it attempted failed (then
retrying the run would not help: ``allow_retries=False``).

Never two syncs of one distributor at once: ``sync_due_sensor`` leaves out distributors that a queued or running
sync already covers, and the op checks again at start and skips a distributor that a single-distributor run or an
earlier-created batch run is still syncing.
"""


import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import dagster as dg

from leads_pipeline.defs.ingestion.planning import (
    BATCH_JOB_NAME,
    BATCH_OP_NAME,
    batch_parallelism,
    distributors_in_flight,
)
from leads_pipeline.defs.ingestion.report import (
    ASSETS,
    partition_counts,
    problems,
    reporting_op,
    sync_metadata,
)
from leads_pipeline.defs.partitions import distributors_partitions
from leads_pipeline.defs.resources import GraphApiResource, WarehouseResource
from leads_pipeline.lib.ingest.sync import sync_distributor


class SyncBatchConfig(dg.Config):
    """Which distributors this run syncs; ``parallelism`` > 1 syncs that many at once on threads (PostgreSQL)."""

    distributors: list[str]
    trigger: str = "schedule"
    parallelism: int = 1


@dataclass
class _Outcome:
    key: str
    ok: bool = False
    partial: bool = False
    error: str | None = None
    seconds: float = 0.0
    events: list[Any] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _sync_one(wh, key: str, trigger: str, graph: GraphApiResource, run_id: str) -> _Outcome:
    """``sync_distributor`` for one distributor and its three materialisations; never raises."""
    outcome = _Outcome(key)
    started = time.monotonic()
    try:
        result = sync_distributor(wh, key, trigger=trigger, run_id=run_id, settings=graph.client_settings(),
                                  client_factory=graph.client_factory())
        outcome.warnings = problems(key, result)
        if result.status == "failed":
            outcome.error = result.message
        else:
            outcome.ok, outcome.partial = True, bool(result.partial)
            outcome.seconds = time.monotonic() - started
            metadata = sync_metadata(result, partition_counts(wh, key),
                                     extra={"batch_run": run_id[:8], "seconds": round(outcome.seconds, 3)})
            outcome.events = [dg.AssetMaterialization(asset_key=asset, partition=key, metadata=metadata[asset])
                              for asset in ASSETS]
    except Exception as exc:  # noqa: BLE001 - one distributor's failure must not stop the batch
        outcome.error = f"{type(exc).__name__}: {exc}"
    outcome.seconds = time.monotonic() - started
    return outcome


@reporting_op(
    BATCH_OP_NAME,
    "Sync each listed distributor (sync_distributor) and report raw_leads, leads and rejected_leads "
    "materialisations per partition.",
)
def sync_batch(context: dg.OpExecutionContext, config: SyncBatchConfig, warehouse: WarehouseResource,
               graph: GraphApiResource):
    run_id = context.run.run_id
    wh = warehouse.get()
    known = set(context.instance.get_dynamic_partitions(distributors_partitions.name))
    me = context.instance.get_run_record_by_id(run_id)
    my_created = me.create_timestamp.timestamp() if me else time.time()
    busy = distributors_in_flight(context.instance, exclude_run_id=run_id)

    todo, skipped = [], {}
    for key in dict.fromkeys(config.distributors):
        other = busy.get(key)
        if key not in known:
            skipped[key] = "no such partition (distributor removed?)"
        elif other and (not other[2] or other[1] <= my_created):
            skipped[key] = f"run {other[0][:8]} is syncing it"
        else:
            todo.append(key)
    for key, why in skipped.items():
        context.log.warning(f"{key}: skipped, {why}")

    trigger = f"dagster batch ({config.trigger})"
    started = time.monotonic()
    if config.parallelism > 1 and len(todo) > 1:
        with ThreadPoolExecutor(max_workers=config.parallelism, thread_name_prefix="sync-batch") as pool:
            outcomes = list(pool.map(lambda k: _sync_one(wh, k, trigger, graph, run_id), todo))
    else:
        outcomes = [_sync_one(wh, key, trigger, graph, run_id) for key in todo]
    elapsed = time.monotonic() - started

    failed = {}
    for o in outcomes:
        for warning in o.warnings:
            context.log.warning(warning)
        for event in o.events:
            context.log_event(event)
        if not o.ok:
            failed[o.key] = o.error or "unknown error"
            context.log.error(f"{o.key}: sync failed: {failed[o.key]}")
    synced = [o.key for o in outcomes if o.ok]
    partial = sorted(o.key for o in outcomes if o.partial)
    result = "ok" if not failed and not partial else ("failed" if not synced else "partial")
    context.instance.add_run_tags(run_id, {
        "leads/batch_result": result,
        "leads/batch_synced": str(len(synced)),
        "leads/batch_failed": ",".join(sorted(failed))[:1000],
        "leads/batch_partial": ",".join(partial)[:1000],
        "leads/batch_skipped": str(len(skipped)),
    })
    context.log.info(
        f"batch: {len(synced)} synced ({len(partial)} partially), {len(failed)} failed, {len(skipped)} skipped in "
        f"{elapsed:.1f}s ({elapsed / max(len(outcomes), 1):.2f}s per distributor)"
    )
    if failed and not synced:
        raise dg.Failure(
            description=f"All {len(failed)} distributor(s) of this batch failed: {', '.join(sorted(failed))}",
            metadata={"failed": dg.MetadataValue.json(failed), "skipped": dg.MetadataValue.json(skipped)},
            allow_retries=False,
        )


def build_batch_job() -> dg.JobDefinition:
    @dg.job(
        name=BATCH_JOB_NAME,
        executor_def=dg.in_process_executor,
        tags={"leads/kind": "batch"},
        description="Sync many distributors in one in-process run (see docs/scale.md); per-partition "
        "materialisations of raw_leads, leads and rejected_leads.",
    )
    def sync_batch_job():
        sync_batch()

    return sync_batch_job


def batch_run_config(keys: list[str], trigger: str = "schedule", parallelism: int | None = None) -> dict:
    par = parallelism if parallelism is not None else batch_parallelism()
    return {"ops": {BATCH_OP_NAME: {"config": {"distributors": list(keys), "trigger": trigger,
                                               "parallelism": par}}}}
