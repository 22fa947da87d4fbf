"""Asset checks on ``leads``: one property per check, severities chosen by what a failure means for users."""


import datetime as dt

import dagster as dg

from leads_pipeline.defs.resources import WarehouseResource
from leads_pipeline.lib import quality
from leads_pipeline.lib.distributors import health, speed_to_lead

# Below this share of leads with a valid email (or phone), a distributor's forms probably changed: warn.
MIN_CONTACT_SHARE = 0.8


@dg.asset_check(asset="leads", blocking=True, description="Every Meta lead id appears once in `leads`.")
def leads_meta_lead_id_unique(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    duplicates = quality.duplicate_lead_ids(warehouse.get())
    return dg.AssetCheckResult(passed=duplicates == 0, metadata={"duplicate_ids": duplicates})


@dg.asset_check(
    asset="leads",
    blocking=True,
    description="Every lead has an id, a distributor and a created_time, and a lead without a usable email or phone "
    "carries the reason it was marked rejected ('no valid contact').",
)
def leads_required_fields_present(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    missing = quality.leads_missing_required(warehouse.get())
    return dg.AssetCheckResult(passed=missing == 0, metadata={"leads_missing_required": missing})


@dg.asset_check(
    asset="leads",
    description=f"Per distributor, at least {MIN_CONTACT_SHARE:.0%} of leads have a valid email and a valid phone.",
)
def leads_contact_validity(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    rows = quality.contact_validity(warehouse.get())
    low = [
        r["distributor"]
        for r in rows
        if float(r["email_share"]) < MIN_CONTACT_SHARE or float(r["phone_share"]) < MIN_CONTACT_SHARE
    ]
    table = "\n".join(
        ["| distributor | leads | valid email | valid phone |", "|---|---|---|---|"]
        + [f"| {r['distributor']} | {r['leads']} | {float(r['email_share']):.1%} | {float(r['phone_share']):.1%} |" for r in rows]
    )
    return dg.AssetCheckResult(
        passed=not low,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"below_threshold": dg.MetadataValue.json(low), "shares": dg.MetadataValue.md(table)},
    )


@dg.asset_check(
    asset="leads",
    description="Every enabled distributor synced successfully within three sync intervals (at least 15 minutes).",
)
def leads_freshness_per_distributor(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    stale = quality.stale_distributors(warehouse.get(), dt.datetime.now(dt.timezone.utc))
    return dg.AssetCheckResult(
        passed=not stale, severity=dg.AssetCheckSeverity.WARN, metadata={"stale": dg.MetadataValue.json(stale)}
    )


@dg.asset_check(
    asset="leads",
    description="Per lead form: the leads stored (plus quarantined records) are at least the form's `leads_count` "
    "as Meta reported it at discovery. WARN names each short form, its owner and the shortfall; leads older than "
    "Meta's ~90 days can no longer be read through the API — import the Ads Manager export with "
    "`leads-pipeline import FILE --distributor KEY`.",
)
def leads_form_completeness(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    rows = quality.form_completeness(warehouse.get())
    short = [
        {"form_id": r["form_id"], "form_name": r["form_name"], "distributor": r["distributor"],
         "leads_count": int(r["leads_count"]), "stored": int(r["stored"]), "quarantined": int(r["quarantined"]),
         "shortfall": int(r["leads_count"]) - int(r["stored"]) - int(r["quarantined"]),
         "expired_leads_count": r["expired_leads_count"]}
        for r in rows
        if int(r["stored"]) + int(r["quarantined"]) < int(r["leads_count"])
    ]
    lines = [
        f"- form {s['form_id']}" + (f" ({s['form_name']})" if s["form_name"] else "")
        + f" of {s['distributor']}: {s['stored']} stored + {s['quarantined']} quarantined of {s['leads_count']} "
        f"(short by {s['shortfall']}"
        + (f"; {s['expired_leads_count']} past Meta's 90 days" if s["expired_leads_count"] else "")
        + f") — `leads-pipeline import FILE --distributor {s['distributor']}`"
        for s in short
    ]
    return dg.AssetCheckResult(
        passed=not short,
        severity=dg.AssetCheckSeverity.WARN,
        description=(f"{len(short)} of {len(rows)} form(s) short of Meta's leads_count:\n" + "\n".join(lines))
        if short else f"All {len(rows)} form(s) with a count from Meta are complete.",
        metadata={
            "forms_checked": len(rows),
            "short_forms": dg.MetadataValue.json(short),
            "shortfall_total": sum(s["shortfall"] for s in short),
        },
    )


@dg.asset_check(
    asset="leads",
    description="Great Expectations suite over the newest leads: ids present and unique, E.164 phones, valid "
    "emails, known statuses.",
)
def leads_expectation_suite(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    result = quality.run_expectation_suite(warehouse.get())
    return dg.AssetCheckResult(
        passed=result.success,
        metadata={"evaluated_rows": result.evaluated_rows, "failures": dg.MetadataValue.json(result.failures)},
    )


@dg.asset_check(
    asset="leads",
    description="Speed to lead: no lead of the last 7 days waits past its distributor's target for a first contact "
    "(`distributors.speed_to_lead_minutes`, default 60; set it with `leads-pipeline distributors update KEY "
    "--speed-to-lead MINUTES`). WARN names each distributor, its open breaches and the longest wait; a daily digest "
    "email lists the leads (`speed_to_lead_digest`).",
)
def leads_speed_to_lead(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    rows = speed_to_lead.summary(warehouse.get())
    late = [r for r in rows if r["open_breaches"]]
    table = "\n".join(
        [("| distributor | target | leads (7 d) | contacted | within target | median min to contact | waiting past "
          "target | longest wait (min) |"), "|---|---|---|---|---|---|---|---|"]
        + [f"| {r['distributor']} | {r['target_minutes']} min | {r['leads']} | {r['contacted']} | "
           f"{r['contacted_within_target']} | {r['median_minutes_to_first_contact'] if r['median_minutes_to_first_contact'] is not None else '-'} | "
           f"{r['open_breaches']} | {r['longest_wait_minutes'] if r['longest_wait_minutes'] is not None else '-'} |"
           for r in rows]
    )
    return dg.AssetCheckResult(
        passed=not late,
        severity=dg.AssetCheckSeverity.WARN,
        description=("Leads waiting past the speed-to-lead target: " + "; ".join(
            f"{r['distributor']}: {r['open_breaches']} (target {r['target_minutes']} min, longest wait "
            f"{r['longest_wait_minutes']} min)" for r in late)) if late
        else f"No lead of the last {speed_to_lead.LOOKBACK_DAYS} days waits past its target.",
        metadata={"breaches": dg.MetadataValue.json({r["distributor"]: r["open_breaches"] for r in late}),
                  "per_distributor": dg.MetadataValue.md(table)},
    )


@dg.asset_check(
    asset="raw_leads",
    description="Sync health per distributor: none is failing, backing off or paused after token/permission "
    "failures. The metadata shows every distributor's state, last success, last error (in words), leads in the "
    "last 24 h and next sync — as the console's Distributors page and `leads-pipeline distributors list` do.",
)
def distributors_sync_health(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    found = health.summaries(warehouse.get())
    bad = [h for h in found if h.state in ("failing", "backing_off", "paused")]

    def cell(text: object) -> str:
        return str(text if text is not None else "-").replace("|", "/").replace("\n", " ")

    table = "\n".join(
        ["| distributor | state | last success | last error | leads 24 h | next sync |", "|---|---|---|---|---|---|"]
        + [f"| {h.key} | {h.state} | {cell(h.last_success_at and h.last_success_at.isoformat(timespec='minutes'))} | "
           f"{cell(h.last_error)} | {h.leads_24h} | {cell(h.next_sync)} |" for h in found]
    )
    return dg.AssetCheckResult(
        passed=not bad,
        severity=dg.AssetCheckSeverity.WARN,
        description="; ".join(f"{h.key} {h.state.replace('_', ' ')}: {h.last_error or h.status}" for h in bad)
        if bad else f"All {len(found)} distributor(s) healthy (or disabled / not synced yet).",
        metadata={"unhealthy": dg.MetadataValue.json({h.key: h.state for h in bad}),
                  "distributors": dg.MetadataValue.md(table)},
    )


# Checks over the whole table: too costly for every sync run, so they run on their own (see the schedule below).
TABLE_WIDE_CHECKS = [leads_contact_validity, leads_freshness_per_distributor, leads_form_completeness,
                     leads_expectation_suite, leads_speed_to_lead, distributors_sync_health]

leads_quality_job = dg.define_asset_job(
    name="leads_quality_job",
    selection=dg.AssetSelection.checks(*TABLE_WIDE_CHECKS),
    description="The table-wide data-quality checks on `leads`: contact shares, freshness, form completeness, "
    "Great Expectations, speed to lead; and the distributors' sync health.",
)


@dg.schedule(
    cron_schedule="*/30 * * * *",
    job=leads_quality_job,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Every 30 minutes: the table-wide quality checks on `leads`.",
)
def leads_quality_schedule():
    return dg.RunRequest()
