"""The whole Dagster graph as the UI shows it, against a checked-in snapshot (``data/dagster_definitions.json``).

Asset keys, deps, groups, owners, kinds, partitions, automation labels, freshness windows, checks (blocking,
severity is per result so: blocking + automation), jobs with what they select and their executors, sensors and
schedules. A change to any of these is a change users see; it must show up in review as a diff of this file.

Regenerate after an intended change::

    LEADS_UPDATE_SNAPSHOTS=1 .venv/bin/python -m pytest leads_pipeline_tests/test_dagster_snapshot.py
"""

from __future__ import annotations

import difflib
import json
import os
from pathlib import Path

import dagster as dg
import pytest

from leads_pipeline.definitions import defs

SNAPSHOT = Path(__file__).parent / "data" / "dagster_definitions.json"
# Read at import: the suite's autouse fixture removes LEADS_* variables from each test's environment.
UPDATE = bool(os.environ.get("LEADS_UPDATE_SNAPSHOTS"))


def _label(condition) -> str | None:
    return None if condition is None else (condition.get_label() or type(condition).__name__)


def _freshness(policy) -> dict | None:
    if policy is None:
        return None
    out = {"type": type(policy).__name__}
    for name in ("fail_window", "warn_window"):
        window = getattr(policy, name, None)
        if window is not None:
            out[name] = str(getattr(window, "to_timedelta", lambda: window)())
    for name in ("deadline_cron", "lower_bound_delta", "timezone"):
        if getattr(policy, name, None) is not None:
            out[name] = str(getattr(policy, name))
    return out


def describe(definitions: dg.Definitions) -> dict:
    """A JSON-able description of everything a user sees of the definitions (sorted, stable)."""
    graph = definitions.resolve_asset_graph()
    assets = {}
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        partitions = node.partitions_def
        assets[key.to_user_string()] = {
            "deps": sorted(k.to_user_string() for k in node.parent_keys),
            "group": node.group_name,
            "owners": sorted(node.owners),
            "kinds": sorted(node.kinds),
            "partitions": getattr(partitions, "name", None) or (type(partitions).__name__ if partitions else None),
            "executable": node.is_executable,
            "automation": _label(node.automation_condition),
            "freshness": _freshness(getattr(node, "freshness_policy", None)),
            "has_description": bool(node.description),
        }
    checks = {}
    for check_key in sorted(graph.asset_check_keys, key=lambda k: k.to_user_string()):
        spec = graph.get_check_spec(check_key)
        checks[check_key.to_user_string()] = {"blocking": spec.blocking,
                                              "automation": _label(spec.automation_condition),
                                              "has_description": bool(spec.description)}
    jobs = {}
    for job in sorted(definitions.resolve_all_job_defs(), key=lambda j: j.name):
        if job.name == "__ASSET_JOB":
            continue
        layer = job.asset_layer
        jobs[job.name] = {
            "assets": sorted(k.to_user_string() for k in layer.selected_asset_keys),
            "checks": sorted(k.to_user_string() for d in layer.data for k in d.assets_def.check_keys),
            "ops": sorted(n.name for n in job.nodes) if not layer.selected_asset_keys else [],
            "executor": job.executor_def.name,
        }
    sensors = {}
    for sensor in sorted(definitions.sensors or [], key=lambda s: s.name):
        sensors[sensor.name] = {"interval_seconds": sensor.minimum_interval_seconds,
                                "default_status": sensor.default_status.value,
                                "jobs": sorted(t.job_name for t in sensor.targets if t.job_name)}
    schedules = {s.name: {"cron": s.cron_schedule, "job": s.job_name} for s in definitions.schedules or []}
    return {"assets": assets, "checks": checks, "jobs": jobs, "sensors": sensors, "schedules": schedules}


@pytest.fixture(scope="module")
def described() -> dict:
    return describe(defs())


def test_definitions_match_the_checked_in_snapshot(described):
    text = json.dumps(described, indent=2, sort_keys=True) + "\n"
    if UPDATE:
        SNAPSHOT.write_text(text)
    assert SNAPSHOT.is_file(), f"no snapshot yet: run with LEADS_UPDATE_SNAPSHOTS=1 to write {SNAPSHOT}"
    expected = SNAPSHOT.read_text()
    if text != expected:
        diff = "".join(difflib.unified_diff(expected.splitlines(True), text.splitlines(True),
                                            "checked-in snapshot", "definitions now", n=2))
        pytest.fail("The Dagster definitions changed (users see this). If intended, regenerate with "
                    f"LEADS_UPDATE_SNAPSHOTS=1:\n{diff}")


def test_every_asset_has_owners_and_the_watched_ones_a_freshness_policy(described):
    assets = described["assets"]
    assert all(a["owners"] for a in assets.values()), [k for k, a in assets.items() if not a["owners"]]
    for key in ("raw_leads", "leads", "rejected_leads", "lead_stats", "conversion_funnel"):
        assert assets[key]["freshness"] and assets[key]["freshness"]["type"] == "TimeWindowFreshnessPolicy", key
    assert not [c for c in described["checks"] if c.split(":")[1].startswith(c.split(":")[0] + "_")]
    blocking = {k for k, c in described["checks"].items() if c["blocking"]}
    assert blocking == set(described["jobs"]["sync_job"]["checks"])  # cheap checks: with each sync, blocking
    assert all(c["automation"] for k, c in described["checks"].items() if k not in blocking)  # own cadence
    assert {j["executor"] for n, j in described["jobs"].items() if n.startswith(("sync", "webhook"))} == {"in_process"}
