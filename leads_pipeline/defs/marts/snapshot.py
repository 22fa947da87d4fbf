"""``analytics_snapshot``: the read-only copy of the DuckDB warehouse that notebooks and `leads-pipeline sql` read.

Published after the marts refresh (``lib.warehouse.snapshot.publish``: a temp file, fsynced, renamed atomically,
under the warehouse's lock), so an analyst's open notebook never holds the live file the pipeline writes. On
PostgreSQL there is nothing to copy: readers query the server, and the asset says so.
"""

import dagster as dg

from leads_pipeline.defs.resources import WarehouseResource

DESCRIPTION = (
    "Read-only copy for notebooks and `leads-pipeline sql`: the DuckDB warehouse as of this marts refresh, published "
    "atomically beside it (`<data dir>/<warehouse>.readonly.duckdb`). Readers open it instead of the live file, so "
    "they never wait for, or block, a sync. Nothing to publish on PostgreSQL (readers query the server)."
)
MARTS = ("lead_stats", "conversion_funnel", "lead_daily", "lead_scores", "person_links")


def analytics_snapshot(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    """Publish the snapshot (see :data:`DESCRIPTION`)."""
    from leads_pipeline.lib.warehouse import snapshot

    wh = warehouse.get()
    path = snapshot.publish(wh)
    if path is None:
        context.log.info("PostgreSQL warehouse: readers query the server; no snapshot to publish.")
        return dg.MaterializeResult(metadata={"published": False})
    return dg.MaterializeResult(metadata={"published": True, "path": dg.MetadataValue.path(str(path)),
                                          "bytes": path.stat().st_size})


def build_snapshot_asset() -> dg.AssetsDefinition:
    from leads_pipeline.defs.automation import after_marts

    return dg.asset(
        name="analytics_snapshot",
        deps=list(MARTS),
        group_name="marts",
        kinds={"duckdb"},
        automation_condition=after_marts(),
        code_version="1",
        description=DESCRIPTION,
    )(analytics_snapshot)
