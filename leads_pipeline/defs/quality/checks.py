"""Asset checks on ``leads`` and ``raw_leads``: one property per check, severities chosen by what a failure means.

Two kinds, shown as such in the UI (each description says when it runs):

- cheap checks (unique ids, required fields): blocking, in every sync run, so they judge the rows that run wrote;
- table-wide checks (contact shares, per-distributor freshness, form completeness, the Great Expectations suite,
  speed to lead, sync health): they read the whole table, which costs more than a small sync, so they run in runs
  of their own (``defs/automation.py``: after the table changes, and every 15 minutes by default) and in
  ``leads_quality_job``.

Every result carries a sentence saying what was found and where (its description, also as ``problem`` metadata when
it fails), not only JSON. The functions are plain (callable with ``dg.build_asset_check_context()``);
:func:`build_checks` wraps them as Dagster checks — see ``defs/automation.py`` on why defs are built by functions.
"""


import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

import dagster as dg
from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition

from leads_pipeline.defs.automation import table_checks
from leads_pipeline.defs.resources import WarehouseResource
from leads_pipeline.lib import quality
from leads_pipeline.lib.distributors import health, speed_to_lead

# Below this share of leads with a valid email (or phone), a distributor's forms probably changed: warn.
MIN_CONTACT_SHARE = 0.8


def _result(passed: bool, sentence: str, metadata: dict, severity=dg.AssetCheckSeverity.ERROR) -> dg.AssetCheckResult:
    """A result whose description is ``sentence``; a failed one repeats it as ``problem`` metadata."""
    if not passed:
        metadata = {"problem": dg.MetadataValue.text(sentence), **metadata}
    return dg.AssetCheckResult(passed=passed, severity=severity, description=sentence, metadata=metadata)


def leads_meta_lead_id_unique(context: dg.AssetCheckExecutionContext,
        warehouse: WarehouseResource) -> dg.AssetCheckResult:
    duplicates = quality.duplicate_lead_ids(warehouse.get())
    return _result(duplicates == 0,
                   f"{duplicates} Meta lead id(s) appear more than once in table `leads` (its primary key is "
                   "meta_lead_id: the warehouse's constraints were changed?)." if duplicates
                   else "Every Meta lead id appears once in `leads`.",
                   {"duplicate_ids": duplicates})


def leads_required_fields_present(context: dg.AssetCheckExecutionContext,
        warehouse: WarehouseResource) -> dg.AssetCheckResult:
    missing = quality.leads_missing_required(warehouse.get())
    return _result(missing == 0,
                   f"{missing} row(s) of `leads` lack an id, a distributor or a created_time, or are without contact "
                   "and carry no reason: `SELECT * FROM leads WHERE created_time IS NULL OR distributor IS NULL` "
                   "finds the first kind." if missing else "Every lead has an id, a distributor, a created_time and, "
                   "without a usable contact, its reason.",
                   {"leads_missing_required": missing})


def leads_contact_validity(context: dg.AssetCheckExecutionContext,
        warehouse: WarehouseResource) -> dg.AssetCheckResult:
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
    return _result(not low,
                   f"Distributor(s) {', '.join(low)}: fewer than {MIN_CONTACT_SHARE:.0%} of their leads have a valid "
                   "email or phone (did a form's questions change?)." if low
                   else f"Every distributor has at least {MIN_CONTACT_SHARE:.0%} valid emails and phones.",
                   {"below_threshold": dg.MetadataValue.json(low), "shares": dg.MetadataValue.md(table)},
                   dg.AssetCheckSeverity.WARN)


def leads_freshness_per_distributor(context: dg.AssetCheckExecutionContext,
        warehouse: WarehouseResource) -> dg.AssetCheckResult:
    stale = quality.stale_distributors(warehouse.get(), dt.datetime.now(dt.timezone.utc))
    return _result(not stale,
                   "No successful sync within three intervals for: " + "; ".join(
                       f"{s['distributor']} (last success {s['last_success'] or 'never'})" for s in stale)
                   + " — see `leads-pipeline distributors list`." if stale
                   else "Every enabled distributor synced successfully within three sync intervals.",
                   {"stale": dg.MetadataValue.json(stale)}, dg.AssetCheckSeverity.WARN)


def leads_form_completeness(context: dg.AssetCheckExecutionContext,
        warehouse: WarehouseResource) -> dg.AssetCheckResult:
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
    return _result(
        not short,
        (f"{len(short)} of {len(rows)} form(s) short of Meta's leads_count:\n" + "\n".join(lines))
        if short else f"All {len(rows)} form(s) with a count from Meta are complete.",
        {"forms_checked": len(rows), "short_forms": dg.MetadataValue.json(short),
         "shortfall_total": sum(s["shortfall"] for s in short)},
        dg.AssetCheckSeverity.WARN,
    )


def leads_expectation_suite(context: dg.AssetCheckExecutionContext,
        warehouse: WarehouseResource) -> dg.AssetCheckResult:
    result = quality.run_expectation_suite(warehouse.get())
    failed = "; ".join(f"{f['expectation']} on column {f['column']} ({f['unexpected_count']} unexpected)"
                       for f in result.failures)
    return _result(result.success,
                   f"Great Expectations found problems in the newest {result.evaluated_rows} leads: {failed}."
                   if not result.success else f"The newest {result.evaluated_rows} leads meet every expectation.",
                   {"evaluated_rows": result.evaluated_rows, "failures": dg.MetadataValue.json(result.failures)})


def leads_speed_to_lead(context: dg.AssetCheckExecutionContext,
        warehouse: WarehouseResource) -> dg.AssetCheckResult:
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
    return _result(
        not late,
        ("Leads waiting past the speed-to-lead target: " + "; ".join(
            f"{r['distributor']}: {r['open_breaches']} (target {r['target_minutes']} min, longest wait "
            f"{r['longest_wait_minutes']} min)" for r in late)) if late
        else f"No lead of the last {speed_to_lead.LOOKBACK_DAYS} days waits past its target.",
        {"breaches": dg.MetadataValue.json({r["distributor"]: r["open_breaches"] for r in late}),
         "per_distributor": dg.MetadataValue.md(table)},
        dg.AssetCheckSeverity.WARN,
    )


def distributors_sync_health(context: dg.AssetCheckExecutionContext,
        warehouse: WarehouseResource) -> dg.AssetCheckResult:
    found = health.summaries(warehouse.get())
    bad = [h for h in found if h.state in ("failing", "backing_off", "paused")]

    def cell(text: object) -> str:
        return str(text if text is not None else "-").replace("|", "/").replace("\n", " ")

    table = "\n".join(
        ["| distributor | state | last success | last error | leads 24 h | next sync |", "|---|---|---|---|---|---|"]
        + [f"| {h.key} | {h.state} | {cell(h.last_success_at and h.last_success_at.isoformat(timespec='minutes'))} | "
           f"{cell(h.last_error)} | {h.leads_24h} | {cell(h.next_sync)} |" for h in found]
    )
    return _result(
        not bad,
        "; ".join(f"{h.key} {h.state.replace('_', ' ')}: {h.last_error or h.status}" for h in bad)
        if bad else f"All {len(found)} distributor(s) healthy (or disabled / not synced yet).",
        {"unhealthy": dg.MetadataValue.json({h.key: h.state for h in bad}),
         "distributors": dg.MetadataValue.md(table)},
        dg.AssetCheckSeverity.WARN,
    )


@dataclass(frozen=True)
class CheckSpec:
    """One check as the UI shows it: its name (without the asset's: the UI prints `leads` beside it), its asset, the
    function, whether it is cheap (blocking, with each sync) or table-wide (its own cadence), and what it checks."""

    name: str
    asset: str
    fn: Callable[..., dg.AssetCheckResult]
    cheap: bool
    what: str


CHECKS = [
    CheckSpec("meta_lead_id_unique", "leads", leads_meta_lead_id_unique, True,
              "Every Meta lead id appears once in `leads`."),
    CheckSpec("required_fields_present", "leads", leads_required_fields_present, True,
              "Every lead has an id, a distributor and a created_time, and a lead without a usable email or phone "
              "carries the reason it was marked rejected ('no valid contact')."),
    CheckSpec("contact_validity", "leads", leads_contact_validity, False,
              f"Per distributor, at least {MIN_CONTACT_SHARE:.0%} of leads have a valid email and a valid phone."),
    CheckSpec("freshness_per_distributor", "leads", leads_freshness_per_distributor, False,
              "Every enabled distributor synced successfully within three sync intervals (at least 15 minutes)."),
    CheckSpec("form_completeness", "leads", leads_form_completeness, False,
              "Per lead form: the leads stored (plus quarantined records) are at least the form's `leads_count` as "
              "Meta reported it at discovery. WARN names each short form, its owner and the shortfall; leads older "
              "than Meta's ~90 days can no longer be read through the API — import the Ads Manager export with "
              "`leads-pipeline import FILE --distributor KEY`."),
    CheckSpec("expectation_suite", "leads", leads_expectation_suite, False,
              "Great Expectations suite over the newest leads: ids present and unique, E.164 phones, valid emails, "
              "known statuses."),
    CheckSpec("speed_to_lead", "leads", leads_speed_to_lead, False,
              "Speed to lead: no lead of the last 7 days waits past its distributor's target for a first contact "
              "(`distributors.speed_to_lead_minutes`, default 60; set it with `leads-pipeline distributors update "
              "KEY --speed-to-lead MINUTES`). WARN names each distributor, its open breaches and the longest wait; "
              "a daily digest email lists the leads (`speed_to_lead_digest`)."),
    CheckSpec("sync_health", "raw_leads", distributors_sync_health, False,
              "Sync health per distributor: none is failing, backing off or paused after token/permission failures. "
              "The metadata shows every distributor's state, last success, last error (in words), leads in the last "
              "24 h and next sync — as the console's Distributors page and `leads-pipeline distributors list` do."),
]
CHEAP_CHECK_NAMES = [c.name for c in CHECKS if c.cheap]
TABLE_WIDE_CHECK_KEYS = [dg.AssetCheckKey(dg.AssetKey(c.asset), c.name) for c in CHECKS if not c.cheap]
QUALITY_JOB_NAME = "leads_quality_job"


def build_checks(table_minutes: int = 15) -> list[dg.AssetChecksDefinition]:
    """The checks as Dagster objects: cheap ones blocking (they run in each sync run: ``sync_job`` selects them),
    table-wide ones with their own automation condition (after changes, and every ``table_minutes``)."""
    out = []
    for c in CHECKS:
        when = ("Runs with every sync (blocking: a failure stops the run before the marts see the rows)."
                if c.cheap else "Reads the whole table, so it runs in a run of its own after the table changes "
                f"(and every {table_minutes} minutes), not inside each sync; also in `leads_quality_job`.")
        out.append(dg.asset_check(
            asset=c.asset, name=c.name, blocking=c.cheap, description=f"{c.what}\n\n{when}",
            automation_condition=None if c.cheap else table_checks(table_minutes),
        )(c.fn))
    return out


def build_quality_job(in_process: bool = True) -> UnresolvedAssetJobDefinition:
    return dg.define_asset_job(
        name=QUALITY_JOB_NAME,
        selection=dg.AssetSelection.checks(*TABLE_WIDE_CHECK_KEYS),
        description="The table-wide data-quality checks on `leads`: contact shares, freshness, form completeness, "
        "Great Expectations, speed to lead; and the distributors' sync health.",
        executor_def=dg.in_process_executor if in_process else None,
    )
