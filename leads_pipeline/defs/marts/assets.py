"""Marts for analysts, rebuilt from ``leads`` and staff activity: stats, funnel, daily series, scores, person links.

Each mart is one set-based SQL refresh in ``leads_pipeline.lib.marts.analytics`` that replaces the table in a single
transaction. They refresh when any distributor's leads change, and every 15 minutes so that staff actions (which
happen outside Dagster, in the CLI and the HTTP service) reach the numbers too.
"""


from collections.abc import Callable
from dataclasses import dataclass

import dagster as dg

from leads_pipeline.defs.metadata import table_schema
from leads_pipeline.defs.resources import WarehouseResource
from leads_pipeline.lib.marts import analytics
from leads_pipeline.lib.crm import contacts
from leads_pipeline.lib.crm import notifications
from leads_pipeline.lib.warehouse import Warehouse

# Refresh when upstream leads change, and on a 15-minute tick for staff activity that Dagster does not see.
# eager() would wait while any upstream partition is missing or in progress: with one partition per distributor,
# a never-synced distributor or the constant stream of syncs would starve the marts. They read committed rows
# only, so a refresh beside running syncs is safe. (`lead_interactions` is written outside Dagster.)
_AC = dg.AutomationCondition
MART_REFRESH = (
    _AC.eager().without(~_AC.any_deps_missing()).without(~_AC.any_deps_in_progress())
    | (_AC.cron_tick_passed("*/15 * * * *") & ~_AC.in_progress())
).with_label("when leads change, and every 15 minutes")

lead_interactions = dg.AssetSpec(
    "lead_interactions",
    group_name="operations",
    kinds={"sql"},
    description=(
        "Staff activity on leads (table `lead_interactions`): status changes, assignments, notes, calls, emails, "
        "SMS. Append-only; written by the CLI and the HTTP service, not by Dagster."
    ),
)


@dataclass(frozen=True)
class Mart:
    name: str
    refresh: Callable[[Warehouse], int]
    description: str
    deps: tuple[str, ...] = ("leads", "lead_interactions")


MARTS = [
    Mart(
        "lead_stats",
        analytics.refresh_lead_stats,
        "The seed's counts per distributor and in total (`distributor = '__all__'`): total, new, assigned, "
        "contacted, converted, rejected.",
    ),
    Mart(
        "conversion_funnel",
        analytics.refresh_conversion_funnel,
        "Per distributor × form × campaign × weekly cohort: leads, how many reached assigned / contacted / "
        "converted / rejected, stage-to-stage rates, median and p90 hours from lead to first contact.",
    ),
    Mart(
        "lead_daily",
        analytics.refresh_lead_daily,
        "A daily time series per distributor: new leads (organic / paid), contacted, converted, rejected.",
    ),
    Mart(
        "lead_scores",
        analytics.refresh_lead_scores,
        "An explainable rule-based score (0–100, grade A–D) per lead, with the reasons stored beside it.",
    ),
    Mart(
        "person_links",
        analytics.refresh_person_links,
        "Leads that are the same person (same normalised email or phone) across forms and distributors.",
        deps=("leads",),
    ),
]


def _build(mart: Mart) -> dg.AssetsDefinition:
    @dg.asset(
        name=mart.name,
        deps=list(mart.deps),
        group_name="marts",
        kinds={"sql"},
        automation_condition=MART_REFRESH,
        description=mart.description,
        code_version="1",
    )
    def _mart(warehouse: WarehouseResource) -> dg.MaterializeResult:
        wh = warehouse.get()
        with wh.session():  # one open of the warehouse for the refresh and its metadata (no network I/O inside)
            rows = mart.refresh(wh)
            schema = table_schema(wh, mart.name)
        return dg.MaterializeResult(
            metadata={"dagster/row_count": rows, "dagster/table_name": mart.name, "dagster/column_schema": schema}
        )

    return _mart


mart_assets = [_build(m) for m in MARTS]


@dg.asset(
    deps=["leads"],
    group_name="operations",
    kinds={"python"},
    automation_condition=MART_REFRESH,
    code_version="1",
)
def lead_contact_matches(warehouse: WarehouseResource) -> dg.MaterializeResult:
    """CRM linking: leads matched to imported contacts / patients (table `lead_contact_matches`, `leads.contact_id`)
    by normalised email, then phone. Contacts come from `leads-pipeline contacts import FILE`."""
    matched = contacts.match_leads(warehouse.get())
    return dg.MaterializeResult(metadata={"matched": matched, "dagster/table_name": "lead_contact_matches"})


@dg.asset(
    deps=["leads"],
    group_name="operations",
    kinds={"email"},
    automation_condition=MART_REFRESH,
    code_version="1",
)
def new_lead_notifications(warehouse: WarehouseResource) -> dg.MaterializeResult:
    """New-lead emails to each distributor's notify address (table `notification_outbox`), over the SMTP server of
    LEADS_SMTP_*. Failures are recorded and retried on the next refresh; they never block ingestion."""
    wh = warehouse.get()
    queued = notifications.enqueue_new_leads(wh)
    settings = notifications.SmtpSettings()
    sent = notifications.send_pending(wh, settings) if settings.host else None
    return dg.MaterializeResult(
        metadata={
            "queued": queued,
            "sent": sent.sent if sent else 0,
            "failed": sent.failed if sent else 0,
            "smtp_configured": bool(settings.host),
        }
    )


@dg.asset(
    deps=["leads", "lead_interactions"],
    group_name="operations",
    kinds={"email"},
    automation_condition=(_AC.cron_tick_passed("0 7 * * *") & ~_AC.in_progress()).with_label("daily at 07:00 UTC"),
    code_version="1",
)
def speed_to_lead_digest(warehouse: WarehouseResource) -> dg.MaterializeResult:
    """Daily at 07:00 UTC: one email per distributor (to its notify address, through `notification_outbox`) listing
    the leads of the last 7 days still waiting past its speed-to-lead target (`distributors.speed_to_lead_minutes`),
    longest wait first, with links to the console. Once per distributor and day, however often it runs; no contact
    data in the email."""
    from leads_pipeline.lib.distributors import speed_to_lead

    wh = warehouse.get()
    queued = speed_to_lead.enqueue_digests(wh)
    settings = notifications.SmtpSettings()
    sent = notifications.send_pending(wh, settings) if settings.host else None
    return dg.MaterializeResult(
        metadata={"queued": queued, "sent": sent.sent if sent else 0, "failed": sent.failed if sent else 0,
                  "smtp_configured": bool(settings.host)}
    )
