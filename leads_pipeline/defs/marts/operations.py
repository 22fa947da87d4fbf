"""Operations beside the marts: staff activity (external), CRM linking, new-lead emails, the speed-to-lead digest.

Built by :func:`build_operations_assets` for the ``LeadPipeline`` component (see ``defs/automation.py`` on why defs
are built by functions).
"""

import dagster as dg

from leads_pipeline.defs.automation import mart_refresh
from leads_pipeline.defs.resources import WarehouseResource
from leads_pipeline.lib.crm import contacts, notifications

_AC = dg.AutomationCondition


def lead_contact_matches(warehouse: WarehouseResource) -> dg.MaterializeResult:
    """CRM linking: leads matched to imported contacts / patients (table `lead_contact_matches`, `leads.contact_id`)
    by normalised email, then phone. Contacts come from `leads-pipeline contacts import FILE`."""
    matched = contacts.match_leads(warehouse.get())
    return dg.MaterializeResult(metadata={"matched": matched, "dagster/table_name": "lead_contact_matches"})


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


def build_operations_assets(minutes: int = 15) -> list[dg.AssetsDefinition | dg.AssetSpec]:
    refresh = mart_refresh(minutes)
    lead_interactions = dg.AssetSpec(
        "lead_interactions",
        group_name="operations",
        kinds={"sql"},
        description=(
            "Staff activity on leads (table `lead_interactions`): status changes, assignments, notes, calls, emails, "
            "SMS. Append-only; written by the CLI, the console and the HTTP service, not by Dagster (so Dagster "
            "shows no materialisation of it: the marts read it on their cadence)."
        ),
    )
    common = {"group_name": "operations", "code_version": "1"}
    return [
        lead_interactions,
        dg.asset(deps=["leads"], kinds={"python"}, automation_condition=refresh, **common)(lead_contact_matches),
        dg.asset(deps=["leads"], kinds={"email"}, automation_condition=refresh, **common)(new_lead_notifications),
        dg.asset(deps=["leads", "lead_interactions"], kinds={"email"},
                 automation_condition=(_AC.cron_tick_passed("0 7 * * *") & ~_AC.in_progress()).with_label(
                     "daily at 07:00 UTC"), **common)(speed_to_lead_digest),
    ]
