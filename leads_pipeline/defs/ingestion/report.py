"""What a sync tells the UI: one metadata dict per asset (``raw_leads``, ``leads``, ``rejected_leads``).

The single-partition assets, the batch job and the webhook job all report through here, so a partition's
materialisation looks the same whichever run produced it. The figures of the run itself (fetched, stored, rejected,
held elsewhere, failures) come from the run's own result; the table figures (rows of the partition, of the table)
are read in one warehouse session, i.e. one open of a DuckDB file, after the run's writes.
"""


from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import dagster as dg

from leads_pipeline.defs.metadata import leads_preview, table_schema
from leads_pipeline.lib.warehouse import Warehouse

RAW, LEADS, REJECTED = "raw_leads", "leads", "rejected_leads"
ASSETS = (RAW, LEADS, REJECTED)


def table_spec(key: str, layer: str, kinds: set[str], description: str, *, deps: tuple[str, ...] = ()
               ) -> dg.AssetSpec:
    """An asset of the ingestion group: ``webhook_inbox`` and the three tables a sync writes."""
    return dg.AssetSpec(key, deps=list(deps), group_name="ingestion", kinds=kinds, tags={"leads/layer": layer},
                        description=description)


def reporting_op(name: str, description: str) -> Callable[[Callable[..., Any]], dg.OpDefinition]:
    """The decorator of an op that writes no output of its own and reports materialisations of the sync's tables
    (the batch job's and the webhook job's single op)."""
    return dg.op(name=name, out={}, tags={"leads/layer": "raw"}, description=description)


@dataclass
class PartitionCounts:
    """Rows of one distributor in each table (and of the whole ``leads`` table), read together."""

    raw_leads: int
    leads: int
    rejected_leads: int
    leads_total: int
    leads_schema: dg.TableSchema | None = None
    leads_preview: str | None = None


def partition_counts(wh: Warehouse, key: str, *, detail: bool = False) -> PartitionCounts:
    """One session for every metadata query; ``detail`` adds the column schema and the masked preview (what the
    single-partition asset shows; the batch job leaves them out to stay cheap per distributor)."""
    with wh.session():
        with wh.transaction(read_only=True) as conn:
            row = conn.query_one(
                "SELECT (SELECT count(*) FROM raw_leads WHERE distributor = ?) AS raw_rows, "
                "(SELECT count(*) FROM leads WHERE distributor = ?) AS lead_rows, "
                "(SELECT count(*) FROM rejected_leads WHERE distributor = ?) AS rejected_rows, "
                "(SELECT count(*) FROM leads) AS lead_total",
                [key, key, key],
            ) or {}
        counts = PartitionCounts(int(row.get("raw_rows") or 0), int(row.get("lead_rows") or 0),
                                 int(row.get("rejected_rows") or 0), int(row.get("lead_total") or 0))
        if detail:  # further transactions on the session's connection
            counts.leads_schema = table_schema(wh, LEADS)
            counts.leads_preview = leads_preview(wh, key)
    return counts


def sync_metadata(result: Any, counts: PartitionCounts, *, extra: dict[str, Any] | None = None
                  ) -> dict[str, dict[str, Any]]:
    """Metadata per asset for one ``SyncResult`` (see ``lib/ingest/sync.py``), with the partition's row counts."""
    common: dict[str, Any] = {"sync_id": result.sync_id, "status": result.status, "partial": bool(result.partial),
                              **(extra or {})}
    held = dict(result.held_elsewhere or {})
    raw = {
        **common,
        "fetched": result.fetched,
        "landed": result.landed,
        "graph_requests": result.graph_requests,
        "held_elsewhere": dg.MetadataValue.json(held),
        "failures": dg.MetadataValue.json(list(result.failures or [])),
        "dagster/table_name": RAW,
        "dagster/partition_row_count": counts.raw_leads,
    }
    leads = {
        **common,
        "stored": result.stored,
        "recovered": result.recovered,
        "held_elsewhere_total": sum(held.values()),
        "dagster/table_name": LEADS,
        "dagster/partition_row_count": counts.leads,
        "dagster/row_count": counts.leads_total,
    }
    if counts.leads_schema is not None:
        leads["dagster/column_schema"] = counts.leads_schema
    if counts.leads_preview is not None:
        leads["preview"] = dg.MetadataValue.md(counts.leads_preview)
    rejected = {
        **common,
        "rejected": result.rejected,
        "dagster/table_name": REJECTED,
        "dagster/partition_row_count": counts.rejected_leads,
    }
    return {RAW: raw, LEADS: leads, REJECTED: rejected}


def problems(key: str, result: Any) -> list[str]:
    """The warnings a run logs for one distributor's result: each failed Page/form, the sync's own warnings (e.g.
    leads past Meta's 90 days), and leads another distributor holds."""
    out = []
    for failure in result.failures or []:
        where = ", ".join(f"{k} {failure[k]}" for k in ("page_id", "form_id") if failure.get(k)) or "distributor"
        what = failure.get("what_to_do")
        out.append(f"{key}: {where} not read: {failure.get('error')}" + (f" — {what}" if what else ""))
    out += [f"{key}: {warning}" for warning in result.warnings or []]
    for other, count in sorted((result.held_elsewhere or {}).items()):
        out.append(f"{key}: {count} lead(s) read are already held by distributor {other} (not stored again)")
    return out
