"""``webhook_inbox``: Meta's leadgen notifications as the HTTP receiver stored them — outside Dagster, upstream of
``raw_leads``. An external asset: Dagster does not write it; the inbox sensor records what it sees there."""

import dagster as dg

from leads_pipeline.defs.ingestion.report import table_spec

DESCRIPTION = (
    "Meta's signed `leadgen` webhook notifications (table `webhook_inbox`), written by the HTTP receiver "
    "(`leads-pipeline serve`, POST /webhooks/meta) before it answers Meta — not by Dagster. Each change is routed by "
    "its form id to the form's owner (by Page only when Meta sent no form id); a change for a form no one owns is "
    "kept as `unrouted` and routed when an owner appears. `webhook_inbox_sensor` launches `webhook_leads_job`, which "
    "fetches the announced leads through the same sync path as the scheduled syncs and records them as "
    "materialisations of the distributor's partitions of `raw_leads` → `leads` / `rejected_leads`. A lead Meta "
    "cannot serve yet (100/33) is retried with backoff, then left to the next scheduled sync."
)


def build_webhook_inbox() -> dg.AssetSpec:
    return table_spec("webhook_inbox", "inbox", {"facebook", "sql"}, description=DESCRIPTION)


def __getattr__(name: str) -> dg.AssetSpec:
    """``webhook_inbox`` for direct use (tests), built on access and kept out of the module's namespace, so the scan
    of ``defs/`` does not load it next to the component's (see ``defs/automation.py``)."""
    if name == "webhook_inbox":
        return build_webhook_inbox()
    raise AttributeError(name)
