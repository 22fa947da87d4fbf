"""The sync job: ``raw_leads`` then ``leads`` for one distributor partition."""

import dagster as dg

sync_job = dg.define_asset_job(
    name="sync_job",
    selection=dg.AssetSelection.assets("raw_leads", "leads"),
    description="Sync one distributor: read new leads from the Graph API, then parse and store them.",
    # Run-level retries (enabled in the instance's dagster.yaml) cover a run that died with its process.
    tags={"dagster/max_retries": "2"},
)
