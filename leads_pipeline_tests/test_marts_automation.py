"""The marts' automation never waits for every distributor's partition.

Dagster's ``eager()`` holds an asset back while any upstream partition is missing or in progress. With one partition
per distributor, a distributor never synced (or one whose sync is always running somewhere) would starve the marts
for everyone. ``MART_REFRESH`` drops those two parts; ``test_dagster_defs.test_marts_are_requested_when_leads_change``
covers a partition never synced, this the one being synced right now.
"""

from __future__ import annotations

import dagster as dg
from dagster._core.storage.dagster_run import DagsterRunStatus

from leads_pipeline.definitions import defs
from leads_pipeline.defs.automation import MART_REFRESH
from leads_pipeline_tests.pipeline_fixtures import make_sandbox

REFRESHED = ["lead_stats", "conversion_funnel", "lead_daily", "lead_scores", "person_links", "lead_contact_matches",
             "new_lead_notifications"]
_SYNCED = frozenset(dg.AssetKey(k) for k in ("raw_leads", "leads", "rejected_leads"))


def _labels(condition) -> set[str]:
    out = {condition.get_label() or type(condition).__name__}
    for child in condition.children:
        out |= _labels(child)
    return out


def test_the_refresh_condition_has_no_wait_for_missing_or_running_upstream_partitions():
    labels = _labels(MART_REFRESH)
    assert "any_deps_missing" not in labels and "any_deps_in_progress" not in labels
    assert "any_deps_updated" in labels  # still refreshed when leads change


def test_marts_refresh_while_another_distributors_sync_is_running(monkeypatch, simulator_factory, duckdb_url):
    box = make_sandbox(monkeypatch, simulator_factory(pages=2), duckdb_url)
    definitions = defs()
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("distributors", box.keys)
        first = dg.evaluate_automation_conditions(defs=definitions, instance=instance)
        job = definitions.resolve_job_def("sync_job")
        # Distributor B's sync has started (and never synced before); A's finishes meanwhile.
        instance.create_run_for_job(job, tags={"dagster/partition": box.keys[1]}, status=DagsterRunStatus.STARTED,
                                    asset_selection=_SYNCED)
        assert job.execute_in_process(partition_key=box.keys[0], instance=instance).success
        second = dg.evaluate_automation_conditions(defs=definitions, instance=instance, cursor=first.cursor)
    assert first.total_requested == 0
    assert {a for a in REFRESHED if second.get_num_requested(dg.AssetKey(a)) == 1} == set(REFRESHED)
