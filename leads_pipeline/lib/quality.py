"""Data-quality rules over the ``leads`` table: plain SQL measures, and a Great Expectations 1.x suite.

Great Expectations runs in an ephemeral context with its analytics switched off (it would otherwise send usage
events over the network). dagster-ge is not used: it requires GX < 1.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Any

from leads_pipeline.lib.crm.rules import STATUSES
from leads_pipeline.lib.normalise import EMAIL_PATTERN
from leads_pipeline.lib.warehouse import Warehouse

E164_REGEX = r"^\+[1-9][0-9]{7,14}$"
# The suite validates the newest leads only, so its cost does not grow with the table.
GX_SAMPLE_ROWS = 50_000


def duplicate_lead_ids(wh: Warehouse) -> int:
    with wh.transaction(read_only=True) as conn:
        return int(conn.scalar("SELECT count(*) - count(DISTINCT meta_lead_id) FROM leads") or 0)


def leads_missing_required(wh: Warehouse) -> int:
    """Leads lacking an id, distributor or created_time, or with neither email nor phone and no reason recorded.

    A lead without a usable contact is kept (status 'rejected', ``status_reason`` 'no valid contact', for staff to
    review or reopen), so only such a lead *without* its reason breaks the rule — unless staff have worked it: a
    lead they reopened, converted or rejected themselves carries their decision in ``lead_interactions`` instead (a
    second demo, after the first one's staff activity, failed here)."""
    with wh.transaction(read_only=True) as conn:
        return int(
            conn.scalar(
                "SELECT count(*) FROM leads l WHERE l.meta_lead_id IS NULL OR l.distributor IS NULL "
                "OR l.created_time IS NULL OR (l.email IS NULL AND l.phone IS NULL AND l.status_reason IS NULL "
                "AND NOT EXISTS (SELECT 1 FROM lead_interactions i WHERE i.meta_lead_id = l.meta_lead_id))"
            )
            or 0
        )


def contact_validity(wh: Warehouse) -> list[dict[str, Any]]:
    """Per distributor: leads, and the shares with a valid email and a valid (E.164) phone."""
    with wh.transaction(read_only=True) as conn:
        return conn.query(
            "SELECT distributor, count(*) AS leads, "
            "avg(CASE WHEN email IS NOT NULL THEN 1.0 ELSE 0.0 END) AS email_share, "
            "avg(CASE WHEN phone IS NOT NULL THEN 1.0 ELSE 0.0 END) AS phone_share "
            "FROM leads GROUP BY distributor ORDER BY distributor"
        )


def stale_distributors(wh: Warehouse, now) -> list[dict[str, Any]]:
    """Enabled distributors without a successful sync within three intervals (at least 15 minutes)."""
    with wh.transaction(read_only=True) as conn:
        rows = conn.query(
            "SELECT d.key, d.sync_interval_minutes, max(s.finished_at) AS last_success FROM distributors d "
            "LEFT JOIN sync_runs s ON s.distributor = d.key AND s.success "
            "WHERE d.enabled GROUP BY d.key, d.sync_interval_minutes ORDER BY d.key"
        )
    stale = []
    for r in rows:
        allowed = max(3 * int(r["sync_interval_minutes"]), 15) * 60
        last = r["last_success"]
        if last is None or (now - last).total_seconds() > allowed:
            stale.append({"distributor": r["key"], "last_success": str(last) if last else None})
    return stale


def form_completeness(wh: Warehouse) -> list[dict[str, Any]]:
    """Per owned form with a count from Meta: ``leads_count`` (what Meta says the form collected), ``stored`` (its
    rows in ``leads``, under any distributor) and ``quarantined`` (its rows in ``rejected_leads``), the owner and
    ``expired_leads_count`` (leads past Meta's ~90 days). A form is short when stored + quarantined < leads_count."""
    with wh.transaction(read_only=True) as conn:
        return conn.query(
            # Meta's counts as the discoveries recorded them (the highest: counts only grow).
            "WITH seen AS (SELECT form_id, max(form_name) AS form_name, max(leads_count) AS leads_count, "
            "max(expired_leads_count) AS expired_leads_count FROM distributor_forms GROUP BY form_id), "
            "held AS (SELECT form_id, count(*) AS n FROM leads WHERE form_id IS NOT NULL GROUP BY form_id), "
            "quarantined AS (SELECT form_id, count(*) AS n FROM rejected_leads WHERE form_id IS NOT NULL "
            "GROUP BY form_id) "
            "SELECT o.form_id, o.distributor, f.form_name, f.leads_count, f.expired_leads_count, "
            "COALESCE(h.n, 0) AS stored, COALESCE(q.n, 0) AS quarantined "
            "FROM form_owners o JOIN seen f ON f.form_id = o.form_id "
            "LEFT JOIN held h ON h.form_id = o.form_id LEFT JOIN quarantined q ON q.form_id = o.form_id "
            "WHERE f.leads_count IS NOT NULL ORDER BY o.distributor, o.form_id"
        )


@dataclass
class SuiteResult:
    success: bool
    evaluated_rows: int
    failures: list[dict[str, Any]] = field(default_factory=list)


def run_expectation_suite(wh: Warehouse) -> SuiteResult:
    """Validate the newest leads with a Great Expectations suite: ids present and unique, contact formats, statuses."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    import great_expectations as gx
    import pandas as pd
    from great_expectations.data_context.types.base import ProgressBarsConfig

    for name in [n for n in logging.root.manager.loggerDict if n.startswith("great_expectations")]:
        logging.getLogger(name).setLevel(logging.WARNING)  # GX pins some of its loggers at INFO

    with wh.transaction(read_only=True) as conn:
        rows = conn.query(
            "SELECT meta_lead_id, distributor, created_time, email, phone, status FROM leads "
            "ORDER BY created_time DESC LIMIT ?",
            [GX_SAMPLE_ROWS],
        )
    df = pd.DataFrame(rows, columns=["meta_lead_id", "distributor", "created_time", "email", "phone", "status"])
    context = gx.get_context(mode="ephemeral")
    context.enable_analytics(False)
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    batch = context.data_sources.add_pandas("warehouse").add_dataframe_asset("leads").add_batch_definition_whole_dataframe(
        "newest"
    )
    suite = context.suites.add(gx.ExpectationSuite(name="leads"))
    for expectation in (
        gx.expectations.ExpectColumnValuesToNotBeNull(column="meta_lead_id"),
        gx.expectations.ExpectColumnValuesToBeUnique(column="meta_lead_id"),
        gx.expectations.ExpectColumnValuesToNotBeNull(column="created_time"),
        gx.expectations.ExpectColumnValuesToMatchRegex(column="meta_lead_id", regex=r"^[0-9]+$"),
        gx.expectations.ExpectColumnValuesToMatchRegex(column="phone", regex=E164_REGEX),
        gx.expectations.ExpectColumnValuesToMatchRegex(column="email", regex=f"^{EMAIL_PATTERN}$"),
        gx.expectations.ExpectColumnValuesToBeInSet(column="status", value_set=list(STATUSES)),
    ):
        suite.add_expectation(expectation)
    validation = context.validation_definitions.add(gx.ValidationDefinition(name="leads", data=batch, suite=suite))
    result = validation.run(batch_parameters={"dataframe": df})
    failures = [
        {
            "expectation": r.expectation_config.type,
            "column": r.expectation_config.kwargs.get("column"),
            "unexpected_count": (r.result or {}).get("unexpected_count"),
        }
        for r in result.results
        if not r.success
    ]
    return SuiteResult(success=bool(result.success), evaluated_rows=len(df), failures=failures)
