"""Analytics marts: ``lead_stats``, ``conversion_funnel``, ``lead_daily``, ``lead_scores``, ``person_links``.

Each ``refresh_*`` function rebuilds one table from ``leads`` and ``lead_interactions`` with set-based SQL, replacing
its contents in one transaction (DELETE + INSERT … SELECT), and returns the number of rows written. The same SQL runs
on DuckDB and PostgreSQL (both accept ``FILTER``, ``GROUPING SETS``, ``percentile_cont … WITHIN GROUP``,
``json_each``, ``concat_ws``); the only per-backend spelling is the JSON type name of a cast, taken from the
dialect. Readers never see a half-built mart: the old contents stay visible until the transaction commits.

Definitions (also in ``docs/analytics.md``):

- Stage rank: new/other 0, assigned 1, contacted 2, converted 3 (rejected is an outcome, not a stage).
- A lead *reached* a stage when its current status, or any ``to_status``/``from_status`` recorded in its
  interactions (status changes, reopens), ranks at or beyond it: a lead contacted and then rejected, or rejected
  and then reopened, still counts as having reached contacted.
- ``converted`` / ``rejected`` count the lead's *current* status (a converted lead that was reopened is no longer
  converted).
- First contact: ``leads.first_contacted_at``, else the earliest outbound (or direction not given) call, email or
  SMS interaction. Hours to first contact = that minus ``created_time``, never below 0.
- Stages reported to Meta: ``conversion_events`` rows with status ``sent`` (Meta accepted them through the
  Conversions API) for the group's leads, joined on the lead id; pending, failed and expired ones do not count.
"""

from __future__ import annotations

from leads_pipeline.lib.crm.rules import STATUSES
from leads_pipeline.lib.warehouse import Conn, Warehouse

ALL_DISTRIBUTORS = "__all__"


def _rank(col: str) -> str:
    return f"(CASE {col} WHEN 'assigned' THEN 1 WHEN 'contacted' THEN 2 WHEN 'converted' THEN 3 ELSE 0 END)"


# Per-lead facts shared by the funnel, the daily table and the scores: one pass over the interactions that matter.
_CONTACT_KINDS = "('call', 'email', 'sms')"
_OUTBOUND = f"kind IN {_CONTACT_KINDS} AND COALESCE(direction, 'outbound') = 'outbound'"
LEAD_FACTS_CTES = f"""
ev AS (
    SELECT meta_lead_id,
           max(GREATEST({_rank('to_status')}, {_rank('from_status')})) AS ev_rank,
           min(CASE WHEN {_OUTBOUND} THEN occurred_at END) AS first_outbound_at,
           max(CASE WHEN to_status = 'converted' THEN occurred_at END) AS last_to_converted_at,
           max(CASE WHEN to_status = 'rejected' THEN occurred_at END) AS last_to_rejected_at
    FROM lead_interactions
    WHERE to_status IS NOT NULL OR from_status IS NOT NULL OR ({_OUTBOUND})
    GROUP BY meta_lead_id
),
facts AS (
    SELECT l.meta_lead_id, l.distributor, l.form_id, l.campaign_id, l.campaign_name, l.created_time, l.status,
           l.is_organic,
           GREATEST({_rank('l.status')}, COALESCE(ev.ev_rank, 0)) AS reached_rank,
           COALESCE(l.first_contacted_at, ev.first_outbound_at) AS first_contact_at,
           -- GREATEST ignores NULLs on both backends: a lead never contacted must stay NULL, not 0.
           CASE WHEN COALESCE(l.first_contacted_at, ev.first_outbound_at) IS NOT NULL THEN GREATEST(0.0, CAST(
               (extract(epoch FROM COALESCE(l.first_contacted_at, ev.first_outbound_at))
                - extract(epoch FROM l.created_time)) / 3600.0 AS DOUBLE PRECISION)) END AS hours_to_first_contact,
           COALESCE(l.status_changed_at,
                    CASE l.status WHEN 'converted' THEN ev.last_to_converted_at
                                  WHEN 'rejected' THEN ev.last_to_rejected_at END,
                    l.updated_at) AS outcome_at
    FROM leads l LEFT JOIN ev ON ev.meta_lead_id = l.meta_lead_id
)"""


def _status_counts() -> str:
    counts = [f"count(*) FILTER (WHERE status = '{s}') AS {s}" for s in STATUSES]
    return ",\n       ".join(["count(*) AS total", *counts])


# --------------------------------------------------------------------------------------------------- lead_stats

LIVE_STATS_SQL = f"SELECT {_status_counts()}\nFROM leads"

LEAD_STATS_SQL = f"""
INSERT INTO lead_stats (distributor, total, new, assigned, contacted, converted, rejected, refreshed_at)
SELECT COALESCE(distributor, '{ALL_DISTRIBUTORS}') AS distributor,
       {_status_counts()},
       CURRENT_TIMESTAMP
FROM leads
GROUP BY GROUPING SETS ((distributor), ())"""


def live_stats(conn: Conn, distributor: str | None = None) -> dict[str, int]:
    """The seed's ``{"total","new","assigned","contacted","converted","rejected"}`` computed now from ``leads``."""
    if distributor is None:
        row = conn.query_one(LIVE_STATS_SQL)
    else:
        row = conn.query_one(LIVE_STATS_SQL + " WHERE distributor = ?", [distributor])
    assert row is not None
    return {k: int(row[k] or 0) for k in ("total", *STATUSES)}


def _replace(wh: Warehouse, table: str, insert_sql: str) -> int:
    with wh.transaction() as conn:
        conn.execute(f"DELETE FROM {table}")
        conn.execute(insert_sql)
        return int(conn.scalar(f"SELECT count(*) FROM {table}"))


def refresh_lead_stats(wh: Warehouse) -> int:
    """Rebuild ``lead_stats``: one row per distributor plus ``'__all__'`` (always present, zeros when empty)."""
    return _replace(wh, "lead_stats", LEAD_STATS_SQL)


# -------------------------------------------------------------------------------------------- conversion_funnel

CONVERSION_FUNNEL_SQL = f"""
INSERT INTO conversion_funnel (distributor, form_id, campaign_id, campaign_name, cohort_week, leads,
    reached_assigned, reached_contacted, converted, rejected, rate_assigned, rate_contacted, rate_converted,
    median_hours_to_first_contact, p90_hours_to_first_contact, stages_reported_to_meta, refreshed_at)
WITH {LEAD_FACTS_CTES},
-- Stages Meta accepted through the Conversions API (the outbox of lib/capi), per lead: one row per lead, so the join
-- below multiplies no lead and the percentiles stay over leads.
reported AS (
    SELECT meta_lead_id, count(*) AS stages
    FROM conversion_events
    WHERE status = 'sent'
    GROUP BY meta_lead_id
),
g AS (
    SELECT f.distributor, f.form_id, f.campaign_id, max(f.campaign_name) AS campaign_name,
           CAST(date_trunc('week', f.created_time) AS DATE) AS cohort_week,
           count(*) AS leads,
           count(*) FILTER (WHERE f.reached_rank >= 1) AS reached_assigned,
           count(*) FILTER (WHERE f.reached_rank >= 2) AS reached_contacted,
           count(*) FILTER (WHERE f.status = 'converted') AS converted,
           count(*) FILTER (WHERE f.status = 'rejected') AS rejected,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY f.hours_to_first_contact) AS median_hours,
           percentile_cont(0.9) WITHIN GROUP (ORDER BY f.hours_to_first_contact) AS p90_hours,
           CAST(COALESCE(sum(r.stages), 0) AS BIGINT) AS stages_reported_to_meta
    FROM facts f LEFT JOIN reported r ON r.meta_lead_id = f.meta_lead_id
    GROUP BY f.distributor, f.form_id, f.campaign_id, CAST(date_trunc('week', f.created_time) AS DATE)
)
SELECT distributor, form_id, campaign_id, campaign_name, cohort_week, leads,
       reached_assigned, reached_contacted, converted, rejected,
       CAST(reached_assigned AS DOUBLE PRECISION) / leads,
       CAST(reached_contacted AS DOUBLE PRECISION) / leads,
       CAST(converted AS DOUBLE PRECISION) / NULLIF(reached_contacted, 0),
       median_hours, p90_hours, stages_reported_to_meta, CURRENT_TIMESTAMP
FROM g"""


def refresh_conversion_funnel(wh: Warehouse) -> int:
    """Rebuild ``conversion_funnel``: one row per distributor, form, campaign and weekly cohort (Monday, UTC),
    with the stages Meta accepted for those leads (``stages_reported_to_meta``)."""
    return _replace(wh, "conversion_funnel", CONVERSION_FUNNEL_SQL)


# --------------------------------------------------------------------------------------------------- lead_daily

LEAD_DAILY_SQL = f"""
INSERT INTO lead_daily (distributor, day, new_leads, organic_leads, paid_leads, contacted, converted, rejected,
    refreshed_at)
WITH {LEAD_FACTS_CTES},
parts AS (
    SELECT distributor, CAST(created_time AS DATE) AS day, 1 AS new_leads,
           CASE WHEN is_organic THEN 1 ELSE 0 END AS organic_leads,
           CASE WHEN is_organic = FALSE THEN 1 ELSE 0 END AS paid_leads,
           0 AS contacted, 0 AS converted, 0 AS rejected
    FROM facts
    UNION ALL
    SELECT distributor, CAST(first_contact_at AS DATE), 0, 0, 0, 1, 0, 0
    FROM facts WHERE first_contact_at IS NOT NULL
    UNION ALL
    SELECT distributor, CAST(outcome_at AS DATE), 0, 0, 0, 0,
           CASE WHEN status = 'converted' THEN 1 ELSE 0 END, CASE WHEN status = 'rejected' THEN 1 ELSE 0 END
    FROM facts WHERE status IN ('converted', 'rejected')
)
SELECT distributor, day, sum(new_leads), sum(organic_leads), sum(paid_leads), sum(contacted), sum(converted),
       sum(rejected), CURRENT_TIMESTAMP
FROM parts
GROUP BY distributor, day"""


def refresh_lead_daily(wh: Warehouse) -> int:
    """Rebuild ``lead_daily``: per distributor and UTC day, leads created / first contacted / now converted or
    rejected (each lead counted once per figure, on the day it reached its current outcome)."""
    return _replace(wh, "lead_daily", LEAD_DAILY_SQL)


# -------------------------------------------------------------------------------------------------- lead_scores

# The scores live in their own module (rules calibrated on the demo and benchmark data; answers read in Python).
from .scores import (  # noqa: F401
    GRADE_BANDS,
    QUALIFYING_QUESTIONS,
    SCORE_RULES,
    ScoreRule,
    refresh_lead_scores,
)

# ------------------------------------------------------------------------------------------------- person_links

# Only leads whose email or phone is shared with another lead take part; everything else is a person of one.
PERSON_CANDIDATES_SQL = """
WITH c AS (
    SELECT meta_lead_id, distributor, form_id, NULLIF(lower(trim(email)), '') AS email, NULLIF(trim(phone), '') AS phone
    FROM leads
),
de AS (SELECT email FROM c WHERE email IS NOT NULL GROUP BY email HAVING count(*) > 1),
dp AS (SELECT phone FROM c WHERE phone IS NOT NULL GROUP BY phone HAVING count(*) > 1)
SELECT c.meta_lead_id, c.distributor, c.form_id, de.email, dp.phone
FROM c
LEFT JOIN de ON de.email = c.email
LEFT JOIN dp ON dp.phone = c.phone
WHERE de.email IS NOT NULL OR dp.phone IS NOT NULL"""


def _components(rows: list[dict]) -> dict[str, str]:
    """Union-find over leads joined by a shared email or phone: lead id → person id (the group's smallest lead id)."""
    parent = list(range(len(rows)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first_with: dict[tuple[str, str], int] = {}
    for i, r in enumerate(rows):
        for key in (("e", r["email"]), ("p", r["phone"])):
            if key[1] is None:
                continue
            j = first_with.setdefault(key, i)
            if j != i:
                a, b = find(i), find(j)
                if a != b:
                    parent[a] = b
    smallest: dict[int, str] = {}
    for i, r in enumerate(rows):
        root = find(i)
        if root not in smallest or r["meta_lead_id"] < smallest[root]:
            smallest[root] = r["meta_lead_id"]
    return {r["meta_lead_id"]: smallest[find(i)] for i, r in enumerate(rows)}


def refresh_person_links(wh: Warehouse) -> int:
    """Rebuild ``person_links``: leads sharing a normalised email or phone (across forms and distributors, also
    transitively) get one ``person_id`` (the smallest ``meta_lead_id`` of the group); ``match_on`` is ``email`` when
    the lead's email is shared, else ``phone``."""
    with wh.transaction() as conn:
        rows = conn.query(PERSON_CANDIDATES_SQL)
        person = _components(rows)
        conn.stage(
            "person_links_stage",
            {"person_id": "TEXT", "meta_lead_id": "TEXT", "distributor": "TEXT", "form_id": "TEXT", "match_on": "TEXT"},
            [
                (person[r["meta_lead_id"]], r["meta_lead_id"], r["distributor"], r["form_id"],
                 "email" if r["email"] is not None else "phone")
                for r in rows
            ],
        )
        conn.execute("DELETE FROM person_links")
        conn.execute(
            "INSERT INTO person_links (person_id, meta_lead_id, distributor, form_id, match_on, linked_at) "
            "SELECT person_id, meta_lead_id, distributor, form_id, match_on, CURRENT_TIMESTAMP FROM person_links_stage"
        )
        return len(rows)


# ---------------------------------------------------------------------------------------------------- all marts

REFRESHERS = {
    "lead_stats": refresh_lead_stats,
    "conversion_funnel": refresh_conversion_funnel,
    "lead_daily": refresh_lead_daily,
    "lead_scores": refresh_lead_scores,
    "person_links": refresh_person_links,
}


def refresh_all(wh: Warehouse) -> dict[str, int]:
    """Every mart, each in its own transaction; returns rows written per table."""
    return {name: fn(wh) for name, fn in REFRESHERS.items()}
