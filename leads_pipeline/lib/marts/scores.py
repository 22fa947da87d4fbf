"""``lead_scores``: an explainable rule-based score (0–100), a grade (A–D) and a rank per lead.

Why these rules (issue 15): the first rules rewarded what nearly every lead has (a valid email and phone, a name, three
answers, a budget question answered, a paid ad), so 92 % of the demo's and the benchmark's leads were grade A and
"the best new leads to call" were thousands of ties at 90. The rules are now calibrated on the demo world (the
simulator's sandbox) and the benchmark data (``benchmarks/datagen.py``), whose forms are real medical-tourism forms:

- reachability still counts (phone, email, name), but is no longer most of the score;
- the *answers* separate leads: a budget in the upper half of what the form offers, travel planned within three
  months, treatments of interest named (and several of them);
- the lead's own behaviour: an inbound call, email or SMS (they came back to us);
- freshness: a lead that arrived within the hour (or the day) is worth calling first.

Every rule that applies is stored in ``reasons`` with its points and a sentence, so a grade is always explained.
Grades are fixed bands of the score (``GRADE_BANDS``); on the demo and benchmark data none holds more than 40 % of the
leads (``leads_pipeline_tests/test_scores.py`` holds that). ``score_rank`` orders each distributor's leads by score,
then the newest first (then the id): the tie-break by recency, in one column.

Budget and travel answers are free text as the form's options read (``€3.500_-_€5.000``, ``$10k+``, ``July 2026``).
They are read in Python once per distinct answer (a few dozen per form, however many leads), staged, and joined in
the one set-based SQL statement that writes the table.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from dataclasses import dataclass

from leads_pipeline.lib.warehouse import Conn, Warehouse

__all__ = [
    "GRADE_BANDS",
    "QUALIFYING_QUESTIONS",
    "SCORE_RULES",
    "ScoreRule",
    "budget_amount",
    "refresh_lead_scores",
    "travel_month",
]


@dataclass(frozen=True)
class ScoreRule:
    """One explainable scoring rule: ``points`` are added when ``when`` (SQL over the score facts) is true.

    Score facts: ``email``, ``phone``, ``full_name``, ``first_name``, ``last_name``, ``is_organic`` (leads columns),
    ``n_interests`` (treatments / services of interest named), ``budget_tier`` (``upper``: in the upper half of the
    form's budget options; ``lower``; ``stated``: an amount the form's other answers cannot rank), ``travel_months``
    (months from the lead to the travel date it named; 0 for "as soon as possible"), ``replied`` (an inbound call,
    email or SMS was logged), ``age_hours`` (hours since ``created_time`` at scoring).
    """

    rule: str
    points: int
    detail: str
    when: str


# Question keys (lower-cased, matched as substrings) of the qualifying questions.
QUALIFYING_QUESTIONS: dict[str, tuple[str, ...]] = {
    "budget": ("budget", "butce", "bütçe", "price_range", "price range"),
    "interest": ("treatment", "procedure", "interest", "service", "operation", "surgery", "package", "tedavi",
                 "islem", "işlem"),
    "timing": ("travel", "when", "month", "seyahat", "zaman", "tarih", "reise"),
}

SCORE_RULES: tuple[ScoreRule, ...] = (
    ScoreRule("valid_phone", 15, "valid phone number (E.164)", "phone IS NOT NULL"),
    ScoreRule("valid_email", 10, "valid email address", "email IS NOT NULL"),
    ScoreRule("name_given", 5, "name given", "trim(COALESCE(full_name, first_name, last_name, '')) <> ''"),
    ScoreRule("interest_named", 10, "treatment or service of interest named", "n_interests >= 1"),
    ScoreRule("several_interests", 5, "2 or more treatments or services of interest", "n_interests >= 2"),
    ScoreRule("budget_upper", 15, "budget in the upper half of the form's options", "budget_tier = 'upper'"),
    ScoreRule("budget_stated", 5, "budget stated (lower half of the form's options)",
              "budget_tier IN ('lower', 'stated')"),
    ScoreRule("travel_soon", 15, "plans to travel within 3 months", "travel_months BETWEEN 0 AND 3"),
    ScoreRule("travel_planned", 5, "travel month named, more than 3 months ahead", "travel_months > 3"),
    ScoreRule("replied", 10, "replied: an inbound call, email or SMS was logged", "replied"),
    ScoreRule("paid_campaign", 5, "came from a paid ad campaign", "is_organic = FALSE"),
    ScoreRule("fresh_1h", 10, "arrived within the last hour", "age_hours <= 1"),
    ScoreRule("fresh_24h", 5, "arrived within the last 24 hours", "age_hours > 1 AND age_hours <= 24"),
)

# Lowest score of each grade, best first (calibrated: see the module docstring and docs/analytics.md).
GRADE_BANDS: tuple[tuple[str, int], ...] = (("A", 70), ("B", 60), ("C", 50), ("D", 0))

# --------------------------------------------------------------------------------------------- reading answers

_AMOUNT = re.compile(r"(\d[\d.,]*)\s*([kK]\b|[kK](?=[^a-zA-Z]|$))?")
_BELOW = re.compile(r"^\W*(<|under\b|less than|below|up to|max)", re.IGNORECASE)
_ABOVE = re.compile(r"(^\W*(>|over\b|more than|above|from)|\+\s*$)", re.IGNORECASE)

_MONTHS: dict[str, int] = {}
for _i, _names in enumerate((
        ("january", "jan", "ocak", "januar", "janvier", "enero"),
        ("february", "feb", "şubat", "subat", "februar", "février", "fevrier", "febrero"),
        ("march", "mar", "mart", "märz", "maerz", "mars", "marzo"),
        ("april", "apr", "nisan", "avril", "abril"),
        ("may", "mayıs", "mayis", "mai", "mayo"),
        ("june", "jun", "haziran", "juni", "juin", "junio"),
        ("july", "jul", "temmuz", "juli", "juillet", "julio"),
        ("august", "aug", "ağustos", "agustos", "août", "aout", "agosto"),
        ("september", "sep", "sept", "eylül", "eylul", "septembre", "septiembre"),
        ("october", "oct", "ekim", "oktober", "octobre", "octubre"),
        ("november", "nov", "kasım", "kasim", "novembre", "noviembre"),
        ("december", "dec", "aralık", "aralik", "dezember", "décembre", "decembre", "diciembre"),
), start=1):
    for _name in _names:
        _MONTHS[_name] = _i
_WORD = re.compile(r"[^\W\d_]+", re.UNICODE)
_YEAR = re.compile(r"\b(20\d\d)\b")
_SOON = re.compile(r"as soon as possible|\basap\b|this month|immediately|hemen|en kısa|sofort", re.IGNORECASE)


def _number(text: str) -> float | None:
    """``2.000`` / ``2,000`` → 2000 (thousands separators), ``1.5`` → 1.5."""
    digits = text.strip(".,")
    if re.fullmatch(r"\d{1,3}([.,]\d{3})+", digits):
        return float(re.sub(r"[.,]", "", digits))
    try:
        return float(digits.replace(",", "."))
    except ValueError:
        return None


def budget_amount(answer: str) -> float | None:
    """A sortable amount for a budget option: its first number (``k`` = thousand), a little below it for "under /
    <", a little above for "over / > / +"; None when it names no amount ("Not sure yet")."""
    text = answer.replace("_", " ").strip()
    match = _AMOUNT.search(text)
    if match is None:
        return None
    value = _number(match.group(1))
    if value is None:
        return None
    if match.group(2):
        value *= 1000
    if _BELOW.search(text):
        value -= 0.5
    elif _ABOVE.search(text):
        value += 0.5
    return value


def travel_month(answer: str) -> tuple[int | None, int | None, bool]:
    """``(month 1–12, year or None, as soon as possible)`` named by a travel-date answer (English, Turkish, German,
    French or Spanish month names); ``(None, None, False)`` when it names none."""
    text = answer.replace("_", " ").lower()
    if _SOON.search(text):
        return None, None, True
    for word in _WORD.findall(text):
        month = _MONTHS.get(word)
        if month is not None:
            year = _YEAR.search(text)
            return month, int(year.group(1)) if year else None, False
    return None, None, False


def _first_value(answer_json: str) -> str:
    try:
        values = json.loads(answer_json)
    except (TypeError, ValueError):
        return str(answer_json or "")
    if isinstance(values, list):
        return next((str(v) for v in values if str(v or "").strip()), "")
    return str(values or "")


def _key_match(patterns: tuple[str, ...], column: str = "a.key") -> str:
    return "(" + " OR ".join(f"strpos(lower({column}), {_sql_str(p)}) > 0" for p in patterns) + ")"


def _sql_str(text: str) -> str:
    # The warehouse wrapper rewrites '?' and '%' for PostgreSQL, so neither may appear in a literal here.
    if "?" in text or "%" in text:
        raise ValueError(f"score rule text may not contain '?' or '%': {text!r}")
    return "'" + text.replace("'", "''") + "'"


_ANSWERS = """
SELECT DISTINCT l.distributor, l.form_id, a.key, CAST(a.value AS TEXT) AS answer
FROM leads l, json_each(CAST(l.custom_fields AS JSON)) AS a
WHERE substr(a.key, 1, 1) <> '_' AND {match}"""


def _stage_answers(conn: Conn) -> None:
    """Stage the tier of every distinct budget answer and the month of every distinct travel answer (per
    distributor, form and question), for the scoring statement to join. One scan of the answers for both."""
    budget_keys, timing_keys = QUALIFYING_QUESTIONS["budget"], QUALIFYING_QUESTIONS["timing"]
    found = conn.query(_ANSWERS.format(match=f"({_key_match(budget_keys)} OR {_key_match(timing_keys)})"))
    options: dict[tuple, dict[str, float | None]] = defaultdict(dict)
    months = []
    for r in found:
        key = r["key"].lower()
        if any(p in key for p in budget_keys):
            options[(r["distributor"], r["form_id"], r["key"])][r["answer"]] = budget_amount(_first_value(r["answer"]))
        elif any(p in key for p in timing_keys):
            month, year, soon = travel_month(_first_value(r["answer"]))
            if month is not None or soon:
                months.append((r["distributor"], r["form_id"], r["key"], r["answer"], month, year, soon))
    tiers = []
    for (distributor, form_id, key), answers in options.items():
        ranked = sorted({v for v in answers.values() if v is not None})
        for answer, amount in answers.items():
            if amount is None:
                continue
            if len(ranked) < 2:
                tier = "stated"
            else:
                tier = "upper" if ranked.index(amount) + 1 > len(ranked) / 2 else "lower"
            tiers.append((distributor, form_id, key, answer, tier))
    conn.stage("score_budget_tiers", {"distributor": "TEXT", "form_id": "TEXT", "key": "TEXT", "answer": "TEXT",
                                      "tier": "TEXT"}, tiers)
    conn.stage("score_travel_months", {"distributor": "TEXT", "form_id": "TEXT", "key": "TEXT", "answer": "TEXT",
                                       "month": "BIGINT", "year": "BIGINT", "soon": "BOOLEAN"}, months)


def _lead_scores_sql(json_type: str) -> str:
    score = " + ".join(f"(CASE WHEN {r.when} THEN {r.points} ELSE 0 END)" for r in SCORE_RULES)
    reasons = ", ".join(
        f"CASE WHEN {r.when} THEN "
        f"{_sql_str(json.dumps({'rule': r.rule, 'points': r.points, 'detail': r.detail}, ensure_ascii=False))} END"
        for r in SCORE_RULES
    )
    grade = " ".join(f"WHEN score >= {low} THEN '{g}'" for g, low in GRADE_BANDS)
    non_empty = "regexp_replace(CAST(a.value AS TEXT), '[\\[\\]\", ]|null', '', 'g') <> ''"
    quotes = "(length(CAST(a.value AS TEXT)) - length(replace(CAST(a.value AS TEXT), '\"', ''))) / 2"
    created_month = "(CAST(extract(year FROM l.created_time) AS BIGINT) * 12 + CAST(extract(month FROM l.created_time) AS BIGINT) - 1)"
    return f"""
INSERT INTO lead_scores (meta_lead_id, distributor, score, grade, reasons, scored_at, score_rank)
WITH answers AS (
    SELECT l.meta_lead_id,
           sum(CASE WHEN {_key_match(QUALIFYING_QUESTIONS['interest'])} AND {non_empty} THEN {quotes} ELSE 0 END)
               AS n_interests,
           max(CASE b.tier WHEN 'upper' THEN 3 WHEN 'lower' THEN 2 WHEN 'stated' THEN 1 END) AS budget_level,
           min(CASE WHEN t.soon THEN 0
                    WHEN t.year IS NOT NULL THEN t.year * 12 + t.month - 1 - {created_month}
                    WHEN t.month IS NOT NULL THEN mod(t.month - CAST(extract(month FROM l.created_time) AS BIGINT) + 12, 12)
               END) FILTER (WHERE t.answer IS NOT NULL) AS travel_months
    FROM leads l
    JOIN json_each(CAST(l.custom_fields AS JSON)) AS a ON substr(a.key, 1, 1) <> '_'
    LEFT JOIN score_budget_tiers b ON b.distributor = l.distributor AND b.form_id IS NOT DISTINCT FROM l.form_id
         AND b.key = a.key AND b.answer = CAST(a.value AS TEXT)
    LEFT JOIN score_travel_months t ON t.distributor = l.distributor AND t.form_id IS NOT DISTINCT FROM l.form_id
         AND t.key = a.key AND t.answer = CAST(a.value AS TEXT)
    GROUP BY l.meta_lead_id
),
replies AS (
    SELECT DISTINCT meta_lead_id FROM lead_interactions
    WHERE kind IN ('call', 'email', 'sms') AND direction = 'inbound'
),
sf AS (
    SELECT l.meta_lead_id, l.distributor, l.created_time, l.email, l.phone, l.full_name, l.first_name, l.last_name,
           l.is_organic,
           COALESCE(a.n_interests, 0) AS n_interests,
           CASE a.budget_level WHEN 3 THEN 'upper' WHEN 2 THEN 'lower' WHEN 1 THEN 'stated' END AS budget_tier,
           a.travel_months,
           r.meta_lead_id IS NOT NULL AS replied,
           (extract(epoch FROM CURRENT_TIMESTAMP) - extract(epoch FROM l.created_time)) / 3600.0 AS age_hours
    FROM leads l
    LEFT JOIN answers a ON a.meta_lead_id = l.meta_lead_id
    LEFT JOIN replies r ON r.meta_lead_id = l.meta_lead_id
),
scored AS (
    SELECT meta_lead_id, distributor, created_time, LEAST(100, GREATEST(0, {score})) AS score,
           '[' || concat_ws(',', {reasons}) || ']' AS reasons
    FROM sf
)
SELECT meta_lead_id, distributor, score, CASE {grade} ELSE 'D' END, CAST(reasons AS {json_type}), CURRENT_TIMESTAMP,
       row_number() OVER (PARTITION BY distributor ORDER BY score DESC, created_time DESC, meta_lead_id)
FROM scored"""


def refresh_lead_scores(wh: Warehouse) -> int:
    """Rebuild ``lead_scores``: score 0–100 from ``SCORE_RULES``, grade from ``GRADE_BANDS``, the fired rules as
    ``reasons`` (a JSON list of ``{"rule", "points", "detail"}``) and ``score_rank`` (1 = the distributor's best
    lead; equal scores: the newest first)."""
    with wh.transaction() as conn:
        _stage_answers(conn)
        conn.execute("DELETE FROM lead_scores")
        conn.execute(_lead_scores_sql(wh.dialect.json))
        return int(conn.scalar("SELECT count(*) FROM lead_scores"))
