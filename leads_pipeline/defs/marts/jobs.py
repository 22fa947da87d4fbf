"""``marts_job``: every mart and operations asset refreshed at once, in one process (the demo runs it after its
syncs; the automation refreshes the same assets on its own otherwise). ``analytics_snapshot``: the readers' copy."""

import dagster as dg
from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition

MARTS_JOB_NAME = "marts_job"


def build_marts_job(in_process: bool = True) -> UnresolvedAssetJobDefinition:
    return dg.define_asset_job(
        name=MARTS_JOB_NAME,
        selection=dg.AssetSelection.groups("marts", "operations") - dg.AssetSelection.assets("lead_interactions"),
        description="Refresh the marts (stats, funnel, daily, scores, person links), CRM matches and notifications, "
        "then the readers' snapshot. Used by `leads-pipeline demo`; the automation runs the same assets when leads "
        "change and every 15 minutes.",
        # The marts all write one warehouse: steps in one process, one after another (no process per step).
        executor_def=dg.in_process_executor if in_process else None,
    )
