"""A job that refreshes every mart and operations asset at once (used by the demo; automation does it otherwise)."""

import dagster as dg

marts_job = dg.define_asset_job(
    name="marts_job",
    selection=dg.AssetSelection.groups("marts", "operations") - dg.AssetSelection.assets("lead_interactions"),
    description="Refresh the marts (stats, funnel, daily, scores, person links), CRM matches and notifications.",
)
