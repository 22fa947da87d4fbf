"""The sync job: the ``sync_leads`` step (raw_leads, leads, rejected_leads) for one distributor partition."""

import dagster as dg

from leads_pipeline.defs.ingestion.planning import SYNC_JOB_NAME
from leads_pipeline.defs.quality.checks import TABLE_WIDE_CHECKS

sync_job = dg.define_asset_job(
    name=SYNC_JOB_NAME,
    # The cheap blocking checks (unique ids, required fields) run with every sync; the table-wide ones (contact
    # shares, freshness, form completeness, the Great Expectations suite) cost more than a small sync and run on
    # their own schedule.
    selection=dg.AssetSelection.assets("raw_leads", "leads", "rejected_leads")
    - dg.AssetSelection.checks(*TABLE_WIDE_CHECKS),
    description="Sync one distributor: read its new leads from the Graph API, land, parse and store them.",
    # Run-level retries (enabled in the instance's dagster.yaml) cover a run that died with its process.
    tags={"dagster/max_retries": "2"},
)
