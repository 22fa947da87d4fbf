"""The sync job: ``raw_leads`` then ``leads`` for one distributor partition."""

import dagster as dg

from leads_pipeline.defs.quality.checks import TABLE_WIDE_CHECKS

sync_job = dg.define_asset_job(
    name="sync_job",
    # The cheap blocking checks (unique ids, required fields) run with every sync; the table-wide ones (contact
    # shares, freshness, the Great Expectations suite) cost more than a small sync and run on their own schedule.
    selection=dg.AssetSelection.assets("raw_leads", "leads") - dg.AssetSelection.checks(*TABLE_WIDE_CHECKS),
    description="Sync one distributor: read new leads from the Graph API, then parse and store them.",
    # Run-level retries (enabled in the instance's dagster.yaml) cover a run that died with its process.
    tags={"dagster/max_retries": "2"},
)
