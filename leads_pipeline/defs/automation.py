"""Declarative automation: the evaluator (declared explicitly, running by default) and the named conditions.

The conditions carry labels because the UI shows them on each asset and check: an analyst reads "when leads change,
and every 15 minutes" on a mart, and "after the table changes, in a run of their own" on a table-wide check.

Everything here is built by functions (``build_*``): ``load_from_defs_folder`` collects any definition found at a
module's top level under ``defs/``, and the ``LeadPipeline`` component builds these objects itself.
"""

import dagster as dg

_AC = dg.AutomationCondition


def mart_refresh(minutes: int = 15) -> dg.AutomationCondition:
    """Refresh when upstream leads change, and on a ``minutes`` tick for staff activity that Dagster does not see.

    eager() would wait while any upstream partition is missing or in progress: with one partition per distributor, a
    never-synced distributor or the constant stream of syncs would starve the marts. They read committed rows only,
    so a refresh beside running syncs is safe. (`lead_interactions` is written outside Dagster.)
    """
    return (
        _AC.eager().without(~_AC.any_deps_missing()).without(~_AC.any_deps_in_progress())
        | (_AC.cron_tick_passed(f"*/{minutes} * * * *") & ~_AC.in_progress())
    ).with_label(f"when leads change, and every {minutes} minutes")


MART_REFRESH = mart_refresh(15)


def after_marts() -> dg.AutomationCondition:
    """The readers' snapshot: once after the marts it copies have refreshed (none of them still running)."""
    return (
        _AC.any_deps_updated().since_last_handled() & ~_AC.any_deps_in_progress() & ~_AC.in_progress()
    ).with_label("after the marts refresh")


def table_checks(minutes: int = 15) -> dg.AutomationCondition:
    """The table-wide checks' own runs: after the table they judge changed (any partition of it, since the checks
    were last requested), and every ``minutes`` (what changes outside Dagster: staff work, time passing); never two
    at once. They read the whole `leads` table (and GX loads a suite), which costs more than a small sync, so they
    are not in the sync runs; a run of them follows the syncs of one automation tick (30 s), so the UI shows them
    evaluated against the latest materialisation, not "Not evaluated" between two 30-minute schedules."""
    return (
        (_AC.any_deps_updated().since_last_handled() | _AC.cron_tick_passed(f"*/{minutes} * * * *"))
        & ~_AC.in_progress()
    ).with_label(f"after the table changes, in a run of their own (and every {minutes} minutes)")


def build_automation_sensor() -> dg.AutomationConditionSensorDefinition:
    return dg.AutomationConditionSensorDefinition(
        "leads_automation_sensor",
        target=dg.AssetSelection.all(),
        default_status=dg.DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=30,
        description="Evaluates the automation conditions: the marts refresh when leads change and on their cadence; "
        "the table-wide checks on `leads` run on theirs.",
    )
