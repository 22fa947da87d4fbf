"""docs/analytics.md on the demo's data: every example query returns rows, and the demo's figures are believable.

An analyst's first hour: `make demo`, then the example queries of docs/analytics.md in a notebook. A query that
returns nothing on the demo (a hard-coded date the demo's data is not in, a "last 8 weeks" over data of months ago)
or figures no sales team has (a median first contact of 200 days, every contact on one day) tell them the demo or
the docs are wrong. The demo is the session's shared run (``demo_dir``, demo_fixtures.py); its warehouse is opened
read-only here.

How the queries are found: fenced code blocks whose info string starts with ``sql`` in docs/analytics.md; each block
holds one or more statements ending in ``;``. A statement preceded by a comment line ``-- PostgreSQL`` is that
backend's spelling of the one before it (``-- DuckDB``): the demo runs on DuckDB, so it is checked on PostgreSQL
(a migrated, empty warehouse) for being valid there, as is every statement not marked for one backend.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

# One demo per session: under pytest-xdist (`-n 2 --dist loadgroup`) every test of it runs on one worker.
pytestmark = pytest.mark.xdist_group("demo")
DOC = Path(__file__).resolve().parents[1] / "docs" / "analytics.md"
#: Queries that find problems, which a healthy demo does not have (the lead text that introduces them → why).
EMPTY_ON_A_HEALTHY_DEMO = {
    "Notifications that are failing": "the demo queues no email (its distributors have no notify_email)",
}


@dataclass(frozen=True)
class Query:
    title: str  # the prose line that introduces the block
    line: int
    sql: str
    backend: str | None  # "duckdb" / "postgres" when marked for one, else None (both)

    def __str__(self) -> str:
        return f"docs/analytics.md:{self.line} ({self.title[:60]})"


def extract(text: str) -> list[Query]:
    """Every SQL statement of the doc's ```sql blocks, with the prose line before its block and its backend."""
    queries = []
    for block in re.finditer(r"^```sql[^\n]*\n(.*?)^```[ \t]*$", text, re.MULTILINE | re.DOTALL):
        before = [line.strip() for line in text[:block.start()].splitlines() if line.strip()]
        title = before[-1] if before else ""
        first = text.count("\n", 0, block.start(1)) + 1
        offset = 0
        for part in re.split(r"(?<=;)[ \t]*\n", block.group(1)):
            lines = part.splitlines()
            marks = [line.strip()[2:].strip().lower() for line in lines if line.strip().startswith("--")]
            code = "\n".join(line for line in lines if not line.strip().startswith("--")).strip()
            if code:
                backend = next((b for b, word in (("duckdb", "duckdb"), ("postgres", "postgresql"))
                                if marks and marks[0] == word), None)
                queries.append(Query(title, first + offset, code.rstrip(";"), backend))
            offset += len(lines)
    return queries


QUERIES = extract(DOC.read_text(encoding="utf-8"))


def test_the_doc_has_example_queries_and_the_exceptions_name_real_ones() -> None:
    assert len(QUERIES) >= 10, [str(q) for q in QUERIES]
    titles = {q.title for q in QUERIES}
    for title in EMPTY_ON_A_HEALTHY_DEMO:
        assert any(t.startswith(title) for t in titles), f"{title!r} is no longer a query of docs/analytics.md"
    assert {q.backend for q in QUERIES} >= {None, "duckdb", "postgres"}


@pytest.fixture(scope="module")
def demo_db(demo_dir):
    import duckdb

    con = duckdb.connect(str(demo_dir / "data" / "leads.duckdb"), read_only=True)
    con.execute("SET TimeZone = 'UTC'")  # as docs/analytics.md's notebook example does
    yield con
    con.close()


@pytest.mark.slow
def test_every_example_query_returns_rows_on_the_demo(demo_db) -> None:
    problems = []
    for q in QUERIES:
        if q.backend == "postgres":
            continue
        try:
            rows = demo_db.sql(q.sql).fetchall()
        except Exception as exc:  # noqa: BLE001 - every failing query is reported at once
            problems.append(f"{q}: {type(exc).__name__}: {str(exc).splitlines()[0]}")
            continue
        expected_empty = any(q.title.startswith(t) for t in EMPTY_ON_A_HEALTHY_DEMO)
        if not rows and not expected_empty:
            problems.append(f"{q}: no rows on the demo's data")
        if rows and all(v is None for row in rows for v in row):
            problems.append(f"{q}: only NULLs on the demo's data")
    assert not problems, "\n".join(problems)


@pytest.mark.postgres
def test_every_portable_or_postgresql_query_is_valid_on_postgresql(postgres_url) -> None:
    from leads_pipeline.lib.warehouse import Warehouse

    wh = Warehouse(postgres_url)
    wh.migrate()
    problems = []
    for q in QUERIES:
        if q.backend == "duckdb":
            continue
        try:
            with wh.transaction(read_only=True) as conn:
                conn.query(q.sql)
        except Exception as exc:  # noqa: BLE001 - every failing query is reported at once
            problems.append(f"{q}: {type(exc).__name__}: {str(exc).splitlines()[0]}")
    assert not problems, "\n".join(problems)


@pytest.mark.slow
def test_the_demo_reads_like_a_sales_team_working_its_leads(demo_db) -> None:
    one = lambda sql: demo_db.execute(sql).fetchone()  # noqa: E731
    # The history lies behind now, up to now: the newest lead arrived within the last day, the oldest weeks ago.
    oldest, newest, now = one("SELECT min(created_time), max(created_time), now() FROM leads")
    assert now - newest < dt.timedelta(days=1) and now - oldest > dt.timedelta(days=28), (oldest, newest, now)
    # Time to first contact: hours, not months; never before the lead arrived; nothing dated in the future.
    median, p90, contacted, early = one(
        "SELECT median(h), quantile_cont(h, 0.9), count(*), count(*) FILTER (WHERE h < 0) FROM ("
        "SELECT (epoch(first_contacted_at) - epoch(created_time)) / 3600 AS h FROM leads "
        "WHERE first_contacted_at IS NOT NULL)")
    assert contacted > 1000 and early == 0
    assert 0.1 <= median <= 200 and p90 <= 24 * 14, (median, p90)
    future = one("SELECT count(*) FROM lead_interactions WHERE occurred_at > now() + INTERVAL '5 minutes'")[0]
    assert future == 0
    # The funnel's medians are in hours too (per distributor × form × campaign × week).
    funnel = one("SELECT median(median_hours_to_first_contact), max(median_hours_to_first_contact) "
                 "FROM conversion_funnel")
    assert 0.1 <= funnel[0] <= 200, funnel
    # Contacts per day follow the leads over the history: no single day holds most of them.
    days, busiest, total = one("SELECT count(*) FILTER (WHERE contacted > 0), max(contacted), sum(contacted) "
                               "FROM (SELECT day, sum(contacted) AS contacted FROM lead_daily GROUP BY day)")
    assert days >= 28 and busiest <= 0.1 * total, (days, busiest, total)
    # Outcomes come days after the first contact, and some leads convert.
    converted, outcome_days = one(
        "SELECT count(*), median(epoch(status_changed_at) - epoch(first_contacted_at)) / 86400 FROM leads "
        "WHERE status = 'converted'")
    assert converted > 50 and 0.5 <= outcome_days <= 30, (converted, outcome_days)
