"""``sync_runs``: one row per run, created and finished by that run alone, and the result object it describes.

Why each run owns its row: a Dagster run, a CLI sync and the webhook processor may work on one distributor at the same
time; a row found by "the distributor's open run" (the old hidden channel between two assets) was closed by whichever
process came last, with that process's counts. Here :func:`start_run` returns the row's id, the run keeps it, and
:func:`finish_run` writes that run's own figures to that row only. A run that dies leaves its row ``running``; the
leads it landed are stored by the next run of the distributor, which counts them as ``recovered``.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import asdict, dataclass, field
from typing import Any

from leads_pipeline.lib.ingest.codec import dumps, now
from leads_pipeline.lib.warehouse import Warehouse, retry_conflicts

__all__ = [
    "LEAD_OUTCOMES",
    "STATUSES",
    "LeadOutcome",
    "SyncResult",
    "conclude",
    "count_rows",
    "finish_run",
    "new_sync_id",
    "start_run",
]

#: ``sync_runs.status``: ``running`` until the run finishes; then one of the others.
STATUSES = ("running", "success", "partial", "failed")
#: What happened to each lead id a webhook run was asked for (``SyncResult.lead_outcomes``).
LEAD_OUTCOMES = ("stored", "exists", "held_elsewhere", "quarantined", "deleted", "not_found", "retry", "failed")


@dataclass
class LeadOutcome:
    """One requested lead id's fate (see :data:`LEAD_OUTCOMES`); ``error`` says why when it is not stored."""

    status: str
    error: str | None = None


@dataclass
class SyncResult:
    """The seed's result object (:meth:`seed_dict`) plus the run's own figures, as kept in ``sync_runs``.

    Counts are this run's: ``fetched`` leads it read from Meta, ``landed`` raw rows it added, ``stored`` rows it
    created in ``leads``, ``rejected`` rows it quarantined, ``recovered`` leads it stored from raw rows a dead run
    had landed, ``held_elsewhere`` lead ids it read that another distributor holds (by distributor).
    ``failures``: the Pages and forms that failed, each ``{"page_id"|"form_id", "error", "what_to_do"}``.
    """

    success: bool
    fetched: int
    stored: int
    errors: list[str]
    message: str
    distributor: str = ""
    sync_id: str = ""
    rejected: int = 0
    graph_requests: int = 0
    partial: bool = False
    status: str = "success"
    held_elsewhere: dict[str, int] = field(default_factory=dict)
    failures: list[dict[str, Any]] = field(default_factory=list)
    lead_outcomes: dict[str, LeadOutcome] = field(default_factory=dict)
    run_id: str | None = None
    trigger: str = "manual"
    landed: int = 0
    recovered: int = 0
    skipped_deleted: int = 0
    warnings: list[str] = field(default_factory=list)

    def seed_dict(self) -> dict[str, Any]:
        """Exactly the seed's JSON: ``{"success","fetched","stored","errors","message"}``."""
        return {k: getattr(self, k) for k in ("success", "fetched", "stored", "errors", "message")}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def new_sync_id() -> str:
    """A unique, time-ordered sync id, e.g. ``20260601T123456123456Z-9f2c1a7b`` (sorts by start time)."""
    return f"{now():%Y%m%dT%H%M%S%fZ}-{secrets.token_hex(4)}"


def start_run(wh: Warehouse, distributor: str, trigger: str = "manual", run_id: str | None = None) -> str:
    """Insert this run's ``sync_runs`` row (status ``running``) and return its ``sync_id``."""
    sync_id = new_sync_id()

    def write() -> None:
        with wh.transaction() as conn:
            conn.execute(
                "INSERT INTO sync_runs (sync_id, distributor, trigger, started_at, run_id, status) "
                "VALUES (?, ?, ?, ?, ?, 'running')",
                [sync_id, distributor, trigger or "manual", now(), run_id],
            )

    retry_conflicts(write, what="start run")
    return sync_id


def finish_run(wh: Warehouse, result: Any) -> None:
    """Write a finished run's figures to its own row (``result.sync_id``): a :class:`SyncResult`, or any object or
    dict with the seed's fields (the importer's result)."""

    def get(name: str, default: Any = None) -> Any:
        value = result.get(name, default) if isinstance(result, dict) else getattr(result, name, default)
        return default if value is None else value

    success = bool(get("success", False))
    status = get("status", "success" if success else "failed")

    def write() -> None:
        with wh.transaction() as conn:
            conn.execute(
                "UPDATE sync_runs SET finished_at = ?, success = ?, status = ?, fetched = ?, landed = ?, stored = ?, "
                "rejected = ?, recovered = ?, errors = ?, message = ?, graph_requests = ?, held_elsewhere = ?, "
                "failures = ? WHERE sync_id = ?",
                [now(), success, status, int(get("fetched", 0)), int(get("landed", 0)), int(get("stored", 0)),
                 int(get("rejected", 0)), int(get("recovered", 0)), dumps(list(get("errors", []))),
                 get("message"), int(get("graph_requests", 0)), dumps(dict(get("held_elsewhere", {}))),
                 dumps(list(get("failures", []))), get("sync_id")],
            )

    retry_conflicts(write, what="finish run")


_TABLE_RE = re.compile(r"[a-z_][a-z0-9_]*")


def count_rows(wh: Warehouse, table: str, distributor: str | None = None) -> int:
    """Rows in ``table`` (of one distributor when given; the table needs a ``distributor`` column then)."""
    if not _TABLE_RE.fullmatch(table):
        raise ValueError(f"not a table name: {table!r}")
    with wh.transaction(read_only=True) as conn:
        if distributor is None:
            return int(conn.scalar(f"SELECT count(*) FROM {table}") or 0)
        return int(conn.scalar(f"SELECT count(*) FROM {table} WHERE distributor = ?", [distributor]) or 0)


def _plural(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def conclude(result: SyncResult, stored: Any, *, key: str, fatal: str | None, ok_units: int,
             warnings: list[str]) -> None:
    """Fill in a finished run's status, counts and message from what its stores did (``stored``: a
    ``ProcessResult``). ``failed``: ``fatal`` is set, or something failed and nothing was read; ``partial``: some
    Pages, forms or leads failed and the rest was read; else ``success``."""
    result.stored = stored.stored
    result.rejected = stored.rejected
    result.skipped_deleted = stored.skipped_deleted
    result.held_elsewhere = stored.held_elsewhere
    result.warnings = list(warnings)
    notices = [f"{_plural(n, 'lead already belongs', 'leads already belong')} to distributor '{owner}'"
               f"{f' (form {form})' if form else ''}: not stored for '{key}'"
               for (owner, form), n in sorted(stored.held.items(), key=lambda kv: (kv[0][0], kv[0][1] or ""))]
    result.errors.extend(notices)
    if fatal is not None:
        result.status = "failed"
    elif result.failures or result.partial:
        result.status = "partial" if ok_units or result.stored or result.recovered else "failed"
    else:
        result.status = "success"
    result.partial = result.status == "partial"
    result.success = result.status == "success"
    parts = [f"{result.stored} new of {result.fetched} fetched leads stored"]
    if result.rejected:
        parts.append(f"{result.rejected} rejected (see rejected_leads)")
    known = result.fetched - result.landed - result.skipped_deleted
    if known > 0:
        parts.append(f"{known} already stored")
    if result.skipped_deleted:
        parts.append(f"{result.skipped_deleted} deleted on request, not brought back")
    if result.recovered:
        parts.append(f"{result.recovered} landed by an earlier run that stopped, stored now")
    summary = "; ".join(parts + notices)
    if fatal is not None:
        message = f"Sync failed: {fatal}"
    elif result.status == "failed":
        message = f"Sync failed: {'; '.join(result.errors[:3])}"
    elif result.status == "partial":
        what = ", ".join(f"{k.split('_')[0]} {v}" for f in result.failures for k, v in f.items() if k.endswith("_id"))
        failed = f"{len(result.failures)} failed ({what})" if result.failures else "some leads failed (see errors)"
        message = f"Partial sync: {summary}; {failed}"
    else:
        message = summary
    if warnings:
        message += "; " + "; ".join(warnings)
    result.message = message
