"""The due-sync plan: which distributors to sync now, and in which runs (one per distributor, or batches).

Computed once per tick by ``sync_due_sensor`` (``sensors.py``), for both jobs:

- a few due (at most ``LEADS_SYNC_BATCH_THRESHOLD``, default 4): one ``sync_job`` run per distributor — a
  partitioned run keeps the per-partition run history, and a handful of runs is cheap;
- more: ``sync_batch_job`` runs of up to ``LEADS_SYNC_BATCH_SIZE`` (default 50) distributors each, synced in one
  process so that a run's fixed cost of seconds is shared (``batch.py``, docs/scale.md).

Distributors that a queued or running sync already covers are left out, so a distributor is never in two runs.
So are distributors backing off or paused after token/permission failures (``lib/distributors/health.py``): a broken
token no longer fails a run every interval; its next try is pushed out, then paused until the operator acts.
A distributor whose interval ends before the *next* tick is synced at this one (``TICK_SLACK``): runs start a few
seconds after their tick, so without the slack a 5-minute interval would be served every 6 minutes (measured in the
soak, docs/scale.md). With it a sync is at most one tick early and never a tick late.
"""


import os
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import dagster as dg

from leads_pipeline.lib.distributors import health
from leads_pipeline.lib.distributors import registry as distributors
from leads_pipeline.lib.warehouse import Warehouse

SYNC_JOB_NAME = "sync_job"
BATCH_JOB_NAME = "sync_batch_job"
BATCH_OP_NAME = "sync_batch"

# The due-sync sensor's interval; also how far ahead a tick looks (see the module docstring).
TICK_SECONDS = 60
TICK_SLACK = timedelta(seconds=TICK_SECONDS)

# Distributors per batch run (LEADS_SYNC_BATCH_SIZE). 200 due distributors → 4 runs of 50; with 3 concurrent runs a
# 5-minute cycle needs 4 run overheads instead of 200. Smaller batches finish sooner; larger ones cost fewer runs.
DEFAULT_BATCH_SIZE = 50
# More than this many due distributors at one tick → batched runs; this many or fewer → one sync_job run each
# (LEADS_SYNC_BATCH_THRESHOLD).
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


def batch_parallelism() -> int:
    return _env_int("LEADS_SYNC_BATCH_PARALLELISM", 1)


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
        elif run.job_name == SYNC_JOB_NAME:
            key = run.tags.get("leads/distributor") or run.tags.get("dagster/partition")
            if key:
                out.setdefault(key, (run.run_id, created, False))
    return out


@dataclass
class DuePlan:
    """One tick's plan: either single-distributor runs or batches, never both."""

    due: list[str]
    singles: list[str] = field(default_factory=list)
    batches: list[list[str]] = field(default_factory=list)
    busy: list[str] = field(default_factory=list)
    held: dict[str, str] = field(default_factory=dict)  # backing off / paused: key → why


def plan_due(instance: dg.DagsterInstance, wh: Warehouse, now: datetime) -> DuePlan:
    """Due (within the next tick), known (has a partition) and not already queued or running in any sync run."""
    known = set(instance.get_dynamic_partitions("distributors"))
    in_flight = distributors_in_flight(instance)
    candidates = [key for key in distributors.due_for_sync(wh, now + TICK_SLACK) if key in known]
    held = health.held_back(wh, candidates, now + TICK_SLACK)
    candidates = [key for key in candidates if key not in held]
    due = [key for key in candidates if key not in in_flight]
    plan = DuePlan(due=due, busy=[key for key in candidates if key in in_flight], held=held)
    if len(due) <= batch_threshold():
        plan.singles = due
    else:
        plan.batches = split_batches(due, batch_size())
    return plan
