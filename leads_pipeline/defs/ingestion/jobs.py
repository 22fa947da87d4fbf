"""The sync job: the ``sync_leads`` step (raw_leads, leads, rejected_leads) for one distributor partition."""

import dagster as dg
from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition

from leads_pipeline.defs.ingestion.planning import SYNC_JOB_NAME
from leads_pipeline.defs.quality.checks import CHEAP_CHECK_NAMES


def build_sync_job(in_process: bool = True) -> UnresolvedAssetJobDefinition:
    return dg.define_asset_job(
        name=SYNC_JOB_NAME,
        # The cheap blocking checks (unique ids, required fields) run with every sync; the table-wide ones (contact
        # shares, freshness, form completeness, the Great Expectations suite) cost more than a small sync and run on
        # their own cadence.
        selection=dg.AssetSelection.assets("raw_leads", "leads", "rejected_leads").without_checks()
        | dg.AssetSelection.checks(*(dg.AssetCheckKey(dg.AssetKey("leads"), n) for n in CHEAP_CHECK_NAMES)),
        description="Sync one distributor: read its new leads from the Graph API, land, parse and store them; the "
        "cheap blocking checks on `leads` run in the same run.",
        # One step: in the run's own process. A process per step made a 3–5 s sync take 35–170 s under `make dev`.
        executor_def=dg.in_process_executor if in_process else None,
        # Run-level retries (enabled in the instance's dagster.yaml) cover a run that died with its process.
        tags={"dagster/max_retries": "2"},
    )
