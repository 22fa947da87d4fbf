"""Batched syncing: one Dagster run syncs many distributors in-process, so the run's fixed cost is shared.

Why an op job that *reports* materializations, and not a partitioned asset run over a partition-key range:

- A Dagster run has a fixed cost of a few seconds (process start, code load, event writes; about 4 s with the
  multiprocess executor, 2 s in-process — docs/scale.md measures it here). 200 distributors on a 5-minute cadence as
  one run each is 200 runs per 5 minutes: on 2 cores the fixed cost alone is more than the machine has.
- A single run over several partitions (``BackfillPolicy.single_run`` / ``context.partition_keys``) only takes a
  *contiguous range* of partition keys. Dynamic partitions are ordered by insertion, and the distributors that are
  due at one minute are an arbitrary subset of them, so a range would re-sync distributors that are not due (and
  could not be told apart from the due ones in the run's tags). Ranges are also launched as backfills, not by a
  plain ``RunRequest`` from a schedule.
- So ``sync_batch_job`` is one op over an explicit list of keys (run config). For each distributor it runs exactly
  what the ``raw_leads`` and ``leads`` assets run (``sync.extract`` then ``sync.load``, recorded in ``sync_runs``)
  and then emits ``AssetMaterialization(raw_leads|leads, partition=key)`` with the same figures, so the UI's
  partition view, freshness and the marts' automation see the batch exactly like single-partition runs.

Failure isolation: a distributor that fails (expired token, missing permission, any exception) is recorded as a
failed sync in ``sync_runs`` and logged; the others in the batch still sync. The run tags itself
``leads/batch_result = ok | partial | failed`` and lists the failed keys in ``leads/batch_failed``; the run fails
only when every distributor it attempted failed (then retrying the run would not help: ``allow_retries=False``).

Never two syncs of one distributor at once: the schedules leave out distributors that a queued or running sync or
batch run already covers (``distributors_in_flight``), and the op checks again at start and skips a distributor that
a single-distributor run or an earlier-created batch run is still syncing. The single-distributor ``sync_job``
stays for initial (backfill) syncs of new distributors, webhooks and manual runs.
"""


import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import dagster as dg

from leads_pipeline.defs.partitions import distributors_partitions
from leads_pipeline.defs.resources import GraphApiResource, WarehouseResource
from leads_pipeline.lib.ingest import store as ingest
from leads_pipeline.lib.ingest import sync

BATCH_JOB_NAME = "sync_batch_job"
BATCH_OP_NAME = "sync_batch"

# Distributors per batch run (LEADS_SYNC_BATCH_SIZE). 200 due distributors → 4 runs of 50; with 3 concurrent runs a
# 5-minute cycle needs 4 run overheads instead of 200. Smaller batches finish sooner; larger ones cost fewer runs.
DEFAULT_BATCH_SIZE = 50
# More than this many due distributors at one tick → batched runs; this many or fewer → one sync_job run each
# (LEADS_SYNC_BATCH_THRESHOLD). A handful of runs is cheap and keeps the per-partition run history.
DEFAULT_BATCH_THRESHOLD = 4

ACTIVE_STATUSES = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]


def _env_int(name: str, default: int) -> int:
    try:
        value = int(os.environ.get(name, "") or default)
    except ValueError:
        return default
    return max(value, 1)


def batch_size() -> int:
    return _env_int("LEADS_SYNC_BATCH_SIZE", DEFAULT_BATCH_SIZE)


def batch_threshold() -> int:
    return _env_int("LEADS_SYNC_BATCH_THRESHOLD", DEFAULT_BATCH_THRESHOLD)


def split_batches(keys: list[str], size: int) -> list[list[str]]:
    """``keys`` in ``ceil(len/size)`` batches of nearly equal size (order kept): 130 by 50 → 44, 43, 43."""
    if not keys:
        return []
    count = -(-len(keys) // max(size, 1))
    base, extra = divmod(len(keys), count)
    out, start = [], 0
    for i in range(count):
        end = start + base + (1 if i < extra else 0)
        out.append(keys[start:end])
        start = end
    return out


def batch_keys(run: dg.DagsterRun) -> list[str]:
    """The distributors a batch run was asked to sync (from its run config)."""
    try:
        return list(run.run_config["ops"][BATCH_OP_NAME]["config"]["distributors"])
    except (KeyError, TypeError):
        return []


def distributors_in_flight(instance: dg.DagsterInstance, *, exclude_run_id: str | None = None
                           ) -> dict[str, tuple[str, float, bool]]:
    """Distributor → (run id, run creation time, is a batch run) for every queued or running sync of it."""
    out: dict[str, tuple[str, float, bool]] = {}
    records = instance.get_run_records(filters=dg.RunsFilter(statuses=ACTIVE_STATUSES))
    for record in records:
        run = record.dagster_run
        if run.run_id == exclude_run_id:
            continue
        created = record.create_timestamp.timestamp()
        if run.job_name == BATCH_JOB_NAME:
            for key in batch_keys(run):
                out.setdefault(key, (run.run_id, created, True))
        else:
            key = run.tags.get("leads/distributor") or run.tags.get("dagster/partition")
            if key and run.job_name == "sync_job":
                out.setdefault(key, (run.run_id, created, False))
    return out


class SyncBatchConfig(dg.Config):
    """Which distributors this run syncs; ``parallelism`` > 1 syncs that many at once on threads (PostgreSQL)."""

    distributors: list[str]
    trigger: str = "schedule"
    parallelism: int = 1


@dataclass
class _Outcome:
    key: str
    ok: bool = False
    error: str | None = None
    seconds: float = 0.0
    events: list[Any] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _sync_one(wh, key: str, trigger: str, factory, run_id: str) -> _Outcome:
    """``raw_leads`` then ``leads`` for one distributor, exactly as the assets do; never raises."""
    outcome = _Outcome(key)
    started = time.monotonic()
    try:
        sync_id = ingest.start_sync(wh, key, trigger=trigger)
        extracted = sync.extract(wh, key, sync_id, client_factory=factory)
        ingest.record_extract(wh, sync_id, extracted)
        if extracted.fatal:
            ingest.finish_open_syncs(wh, key, None)
            outcome.error = extracted.fatal
            return outcome
        outcome.warnings = [f"{key}: {e}" for e in extracted.errors]
        processed = sync.load(wh, key)
        ingest.finish_open_syncs(wh, key, processed)
        outcome.seconds = time.monotonic() - started
        common = {"batch_run": run_id[:8], "sync_id": sync_id}
        outcome.events = [
            dg.AssetMaterialization(
                asset_key="raw_leads", partition=key,
                metadata={**common, "fetched": extracted.fetched, "new_raw_rows": extracted.landed,
                          "forms": extracted.forms, "graph_requests": extracted.graph_requests,
                          "form_errors": dg.MetadataValue.json(extracted.errors),
                          "dagster/table_name": "raw_leads",
                          "dagster/partition_row_count": ingest.count_rows(wh, "raw_leads", key)},
            ),
            dg.AssetMaterialization(
                asset_key="leads", partition=key,
                metadata={**common, "stored": processed.stored, "rejected": processed.rejected,
                          "skipped_deleted": processed.skipped_deleted, "processed_raw_rows": processed.processed,
                          "seconds": round(outcome.seconds, 3), "dagster/table_name": "leads",
                          "dagster/partition_row_count": ingest.count_rows(wh, "leads", key)},
            ),
        ]
        outcome.ok = True
    except Exception as exc:  # noqa: BLE001 - one distributor's failure must not stop the batch
        outcome.error = f"{type(exc).__name__}: {exc}"
        try:
            ingest.finish_open_syncs(wh, key, None)
        except Exception:  # noqa: BLE001 - the warehouse itself may be what failed
            pass
    outcome.seconds = time.monotonic() - started
    return outcome


@dg.op(
    name=BATCH_OP_NAME,
    out={},
    tags={"leads/layer": "raw"},
    description="Sync each listed distributor (raw_leads then leads) and report one materialization per partition.",
)
def sync_batch(context: dg.OpExecutionContext, config: SyncBatchConfig, warehouse: WarehouseResource,
               graph: GraphApiResource):
    run_id = context.run.run_id
    wh = warehouse.get()
    factory = graph.client_factory()
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

    trigger = f"dagster batch {run_id[:8]} ({config.trigger})"
    started = time.monotonic()
    if config.parallelism > 1 and len(todo) > 1:
        with ThreadPoolExecutor(max_workers=config.parallelism, thread_name_prefix="sync-batch") as pool:
            outcomes = list(pool.map(lambda k: _sync_one(wh, k, trigger, factory, run_id), todo))
    else:
        outcomes = [_sync_one(wh, key, trigger, factory, run_id) for key in todo]
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
    result = "ok" if not failed else ("failed" if not synced else "partial")
    context.instance.add_run_tags(run_id, {
        "leads/batch_result": result,
        "leads/batch_synced": str(len(synced)),
        "leads/batch_failed": ",".join(sorted(failed))[:1000],
        "leads/batch_skipped": str(len(skipped)),
    })
    context.log.info(
        f"batch: {len(synced)} synced, {len(failed)} failed, {len(skipped)} skipped in {elapsed:.1f}s "
        f"({elapsed / max(len(outcomes), 1):.2f}s per distributor)"
    )
    if failed and not synced:
        raise dg.Failure(
            description=f"All {len(failed)} distributor(s) of this batch failed: {', '.join(sorted(failed))}",
            metadata={"failed": dg.MetadataValue.json(failed), "skipped": dg.MetadataValue.json(skipped)},
            allow_retries=False,
        )


@dg.job(
    name=BATCH_JOB_NAME,
    executor_def=dg.in_process_executor,
    tags={"leads/kind": "batch"},
    description="Sync many distributors in one in-process run (see docs/scale.md); per-partition materializations.",
)
def sync_batch_job():
    sync_batch()


def batch_run_config(keys: list[str], trigger: str = "schedule", parallelism: int | None = None) -> dict:
    par = parallelism if parallelism is not None else _env_int("LEADS_SYNC_BATCH_PARALLELISM", 1)
    return {"ops": {BATCH_OP_NAME: {"config": {"distributors": list(keys), "trigger": trigger,
                                               "parallelism": par}}}}
