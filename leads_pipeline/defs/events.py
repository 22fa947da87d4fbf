"""CLI syncs and imports recorded in Dagster: runless materialisations of the distributor's partitions.

``leads-pipeline sync KEY`` and ``leads-pipeline import FILE --distributor KEY`` write the same tables as a Dagster
run, outside Dagster. Without a record the UI's latest materialisation, row counts and the marts' automation lag
behind the warehouse. :func:`record_cli_sync` reports ``raw_leads``, ``leads`` and ``rejected_leads`` of that
partition to the local instance, with the metadata a run gives (``ingestion/report.py``), via
``instance.report_runless_asset_event``.

Only when an instance exists already (``DAGSTER_HOME``, or the ``data/dagster_home`` that ``make demo`` / ``make dev``
use): a command never creates one. Never fails or slows the command: any error is swallowed (a CLI sync's outcome is
its JSON, not this record), and the report is written by a detached child process that imports dagster. No
personal data: the metadata is counts and ids (no preview of the leads).
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

log = logging.getLogger(__name__)



def instance_home() -> Path | None:
    """The Dagster instance's home: ``DAGSTER_HOME`` when set, else the project's ``data/dagster_home`` when it holds
    a ``dagster.yaml`` (made by ``make demo`` / ``make dev``); None when there is no instance to report to."""
    env = os.environ.get("DAGSTER_HOME")
    if env:
        return Path(env) if Path(env).is_dir() else None
    from leads_pipeline.settings import get_settings

    home = get_settings().data_dir / "dagster_home"
    return home if (home / "dagster.yaml").is_file() else None


_FIELDS = ("sync_id", "status", "partial", "fetched", "landed", "graph_requests", "held_elsewhere", "failures",
           "stored", "recovered", "rejected")
_DEFAULTS = {"status": "success", "partial": False, "held_elsewhere": {}, "failures": [], "sync_id": ""}


def _counts(wh: Any, key: str) -> dict[str, int]:
    """The partition's rows (the figures ``report.partition_counts`` gives a run), read here without dagster."""
    with wh.transaction(read_only=True) as conn:
        row = conn.query_one(
            "SELECT (SELECT count(*) FROM raw_leads WHERE distributor = ?) AS raw_leads, "
            "(SELECT count(*) FROM leads WHERE distributor = ?) AS leads, "
            "(SELECT count(*) FROM rejected_leads WHERE distributor = ?) AS rejected_leads, "
            "(SELECT count(*) FROM leads) AS leads_total", [key, key, key]) or {}
    return {k: int(row.get(k) or 0) for k in ("raw_leads", "leads", "rejected_leads", "leads_total")}


def record_cli_sync(key: str, result: Any, *, wh: Any = None, source: str = "cli sync", wait: bool = False) -> bool:
    """Report the CLI run's materialisations of ``key``'s partitions; True when handed over (or, with ``wait``,
    recorded). Never raises.

    The report is written by a detached child process (``python -m leads_pipeline.defs.events``): importing dagster
    and opening the instance take 1–2 s, which the command does not wait for. The parent reads the partition's row
    counts (one short read) and passes them with the result's figures as JSON on the child's stdin.
    """
    try:
        home = instance_home()
        if home is None or getattr(result, "status", "success") == "failed" or not getattr(result, "success", True):
            return False
        if wh is None:
            from leads_pipeline.lib.warehouse import connect

            wh = connect()
        payload = {"home": str(home), "key": key, "source": source, "counts": _counts(wh, key),
                   "result": {f: _jsonable(getattr(result, f, _DEFAULTS.get(f, 0))) for f in _FIELDS}}
        if wait:
            return _report(payload)
        child = subprocess.Popen([sys.executable, "-m", "leads_pipeline.defs.events"], stdin=subprocess.PIPE,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        child.stdin.write(json.dumps(payload).encode())
        child.stdin.close()
        return True
    except Exception as exc:  # noqa: BLE001 - a record in the UI must never fail the command
        log.debug("not recorded in Dagster: %s", type(exc).__name__)
        return False


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def _report(payload: dict) -> bool:
    """Write the three runless materialisations (in the child process)."""
    import dagster as dg

    from leads_pipeline.defs.ingestion.report import ASSETS, PartitionCounts, sync_metadata
    from leads_pipeline.defs.partitions import distributors_partitions

    key, source = payload["key"], payload["source"]
    result = SimpleNamespace(**payload["result"])
    metadata = sync_metadata(result, PartitionCounts(**payload["counts"]), extra={"source": source})
    with dg.DagsterInstance.from_config(payload["home"]) as instance:
        if not instance.has_dynamic_partition(distributors_partitions.name, key):
            instance.add_dynamic_partitions(distributors_partitions.name, [key])
        for asset in ASSETS:
            instance.report_runless_asset_event(dg.AssetMaterialization(
                asset_key=asset, partition=key, metadata=metadata[asset],
                description=f"`leads-pipeline {source.removeprefix('cli ')}` on the command line (no Dagster run)."))
    return True


if __name__ == "__main__":  # the detached child of record_cli_sync
    try:
        _report(json.loads(sys.stdin.read()))
    except Exception:  # noqa: BLE001 - nobody is waiting for this process; the command already answered
        sys.exit(1)
