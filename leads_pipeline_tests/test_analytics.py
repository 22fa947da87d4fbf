"""Marts against counts worked out by hand from a small scripted dataset, on DuckDB and PostgreSQL."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import pytest

from leads_pipeline.lib.marts import analytics

WEEK_A = datetime(2026, 6, 2, 9, 0, tzinfo=UTC)  # a Tuesday; its cohort week is Monday 2026-06-01
WEEK_B = datetime(2026, 6, 10, 9, 0, tzinfo=UTC)  # a Wednesday; cohort week Monday 2026-06-08


def add_lead(conn, lead_id, distributor="d1", created=WEEK_A, status="new", **cols):
    row = {
        "meta_lead_id": lead_id,
        "distributor": distributor,
        "form_id": "f1",
        "created_time": created,
        "status": status,
        "first_seen_at": created,
        "updated_at": created,
        **cols,
    }
    if isinstance(row.get("custom_fields"), dict):
        row["custom_fields"] = json.dumps(row["custom_fields"])
    names = ", ".join(row)
    conn.execute(f"INSERT INTO leads ({names}) VALUES ({', '.join('?' * len(row))})", list(row.values()))


def add_event(conn, lead_id, kind, at, distributor="d1", **cols):
    row = {"meta_lead_id": lead_id, "distributor": distributor, "kind": kind, "occurred_at": at, **cols}
    names = ", ".join(row)
    conn.execute(f"INSERT INTO lead_interactions ({names}) VALUES ({', '.join('?' * len(row))})", list(row.values()))


def status_path(conn, lead_id, created, *statuses, distributor="d1"):
    """status_change events new→s1→s2…, one hour apart."""
    prev = "new"
    for i, s in enumerate(statuses, start=1):
        add_event(conn, lead_id, "status_change", created + timedelta(hours=i), distributor,
                  from_status=prev, to_status=s)
        prev = s


def h(n: float) -> timedelta:
    return timedelta(hours=n)


@pytest.fixture
def scripted(warehouse):
    """Ten leads; the expected figures in the tests below are worked out from these by hand."""
    paid_c1 = {"campaign_id": "c1", "campaign_name": "Campaign One", "is_organic": False}
    paid_c2 = {"campaign_id": "c2", "campaign_name": "Campaign Two", "is_organic": False}
    a, b = WEEK_A, WEEK_B
    with warehouse.transaction() as conn:
        add_lead(conn, "L1", created=a, status="new", **paid_c1)
        add_lead(conn, "L2", created=a, status="assigned", **paid_c1)
        status_path(conn, "L2", a, "assigned")
        add_lead(conn, "L3", created=a, status="contacted", first_contacted_at=a + h(2), **paid_c1)
        status_path(conn, "L3", a, "assigned", "contacted")
        # Converted; first_contacted_at not filled: the first outbound call counts (the inbound SMS before it not).
        add_lead(conn, "L4", created=a, status="converted", status_changed_at=a + h(30), **paid_c1)
        status_path(conn, "L4", a, "assigned", "contacted", "converted")
        add_event(conn, "L4", "sms", a + h(1), direction="inbound")
        add_event(conn, "L4", "call", a + h(4), direction="outbound", outcome="answered")
        add_event(conn, "L4", "call", a + h(9), direction="outbound", outcome="answered")
        # Contacted, then rejected: still reached contacted.
        add_lead(conn, "L5", created=a, status="rejected", first_contacted_at=a + h(6), **paid_c1)
        status_path(conn, "L5", a, "assigned", "contacted", "rejected")
        # Junk, rejected straight from new.
        add_lead(conn, "L6", created=a, status="rejected", **paid_c2)
        status_path(conn, "L6", a, "rejected")
        # Reopened: contacted → rejected → reopened to assigned; reached contacted, not rejected now.
        add_lead(conn, "L7", created=b, status="assigned", first_contacted_at=b + h(1), **paid_c1)
        status_path(conn, "L7", b, "assigned", "contacted", "rejected")
        add_event(conn, "L7", "reopen", b + h(5), from_status="rejected", to_status="assigned")
        # Contacted with no status history at all (set directly).
        add_lead(conn, "L8", created=b, status="contacted", first_contacted_at=b + h(10), **paid_c2)
        # New, only an inbound message: not contacted.
        add_lead(conn, "L9", created=b, status="new", **paid_c2)
        add_event(conn, "L9", "sms", b + h(1), direction="inbound")
        # Another distributor, organic (no campaign).
        add_lead(conn, "L10", distributor="d2", created=a, status="converted", form_id="f2", is_organic=True,
                 first_contacted_at=a + h(8), status_changed_at=a + h(50))
    return warehouse


def _funnel(wh):
    with wh.transaction() as conn:
        rows = conn.query("SELECT * FROM conversion_funnel")
    return {(r["distributor"], r["form_id"], r["campaign_id"], r["cohort_week"]): r for r in rows}


def test_lead_stats_by_hand(scripted):
    assert analytics.refresh_lead_stats(scripted) == 3
    with scripted.transaction() as conn:
        rows = {r["distributor"]: r for r in conn.query("SELECT * FROM lead_stats")}
        live_all = analytics.live_stats(conn)
        live_d1 = analytics.live_stats(conn, "d1")
    fig = ("total", "new", "assigned", "contacted", "converted", "rejected")
    assert {k: rows["d1"][k] for k in fig} == dict(total=9, new=2, assigned=2, contacted=2, converted=1, rejected=2)
    assert {k: rows["d2"][k] for k in fig} == dict(total=1, new=0, assigned=0, contacted=0, converted=1, rejected=0)
    assert {k: rows["__all__"][k] for k in fig} == dict(total=10, new=2, assigned=2, contacted=2, converted=2,
                                                        rejected=2)
    assert live_all == {k: rows["__all__"][k] for k in fig}
    assert live_d1 == {k: rows["d1"][k] for k in fig}
    assert rows["d1"]["refreshed_at"] is not None


def test_lead_stats_empty_warehouse_has_all_row(warehouse):
    assert analytics.refresh_lead_stats(warehouse) == 1
    with warehouse.transaction() as conn:
        assert conn.query_one("SELECT total, new FROM lead_stats WHERE distributor = '__all__'") == {"total": 0,
                                                                                                     "new": 0}


def test_conversion_funnel_by_hand(scripted):
    assert analytics.refresh_conversion_funnel(scripted) == 5
    f = _funnel(scripted)
    wa, wb = date(2026, 6, 1), date(2026, 6, 8)
    assert set(f) == {("d1", "f1", "c1", wa), ("d1", "f1", "c2", wa), ("d1", "f1", "c1", wb), ("d1", "f1", "c2", wb),
                      ("d2", "f2", None, wa)}

    def counts(r):
        return (r["leads"], r["reached_assigned"], r["reached_contacted"], r["converted"], r["rejected"])

    r = f[("d1", "f1", "c1", wa)]  # L1..L5
    assert r["campaign_name"] == "Campaign One"
    assert counts(r) == (5, 4, 3, 1, 1)
    assert r["rate_assigned"] == pytest.approx(0.8)
    assert r["rate_contacted"] == pytest.approx(0.6)
    assert r["rate_converted"] == pytest.approx(1 / 3)
    assert r["median_hours_to_first_contact"] == pytest.approx(4.0)  # 2 h, 4 h (first outbound call), 6 h
    assert r["p90_hours_to_first_contact"] == pytest.approx(5.6)

    r = f[("d1", "f1", "c2", wa)]  # L6, rejected from new
    assert counts(r) == (1, 0, 0, 0, 1)
    assert r["rate_converted"] is None and r["median_hours_to_first_contact"] is None

    r = f[("d1", "f1", "c1", wb)]  # L7, reopened
    assert counts(r) == (1, 1, 1, 0, 0)
    assert r["median_hours_to_first_contact"] == pytest.approx(1.0)

    r = f[("d1", "f1", "c2", wb)]  # L8 (contacted, no history), L9 (new, inbound only)
    assert counts(r) == (2, 1, 1, 0, 0)
    assert r["median_hours_to_first_contact"] == pytest.approx(10.0)

    r = f[("d2", "f2", None, wa)]
    assert counts(r) == (1, 1, 1, 1, 0)
    assert r["rate_converted"] == pytest.approx(1.0)


def add_conversion_event(conn, lead_id, stage, status, distributor="d1", at=WEEK_A):
    """A row of the Conversions API outbox (migration 13), with only the columns of the D1/D2 contract."""
    row = {"event_id": f"{distributor}:{lead_id}:{stage}:{at.isoformat()}", "distributor": distributor,
           "meta_lead_id": lead_id, "stage": stage, "event_name": stage.title(), "event_time": at, "status": status,
           "attempts": 0 if status == "pending" else 1, "last_error": "Invalid Lead ID" if status == "failed" else None,
           "created_at": at, "sent_at": at + h(1) if status == "sent" else None,
           "batch_id": "b1" if status in ("sent", "failed") else None}
    names = ", ".join(row)
    conn.execute(f"INSERT INTO conversion_events ({names}) VALUES ({', '.join('?' * len(row))})", list(row.values()))


def _docs_query(title: str) -> str:
    """The SQL block that follows the paragraph starting with ``title`` in docs/analytics.md."""
    from pathlib import Path

    text = (Path(__file__).parents[1] / "docs" / "analytics.md").read_text("utf-8")
    after = text[text.index(title):]
    return after[after.index("```sql") + len("```sql"):].split("```", 1)[0]


def test_funnel_stages_reported_to_meta_by_hand(scripted):
    """Only stages Meta accepted (status 'sent') count, per group of the lead; a lead's several stages all count, the
    other figures of the group are not multiplied by the join, and an event of a lead no longer in `leads` counts
    nowhere. The per-distributor query of docs/analytics.md gives the hand-counted totals."""
    analytics.refresh_conversion_funnel(scripted)
    assert {k: r["stages_reported_to_meta"] for k, r in _funnel(scripted).items()} == dict.fromkeys(_funnel(scripted),
                                                                                                    0)
    a, b = WEEK_A, WEEK_B
    with scripted.transaction() as conn:
        for stage, status in (("new", "sent"), ("assigned", "sent"), ("contacted", "sent"), ("converted", "pending")):
            add_conversion_event(conn, "L4", stage, status, at=a + h(len(stage)))  # 3 sent
        for stage, status in (("new", "sent"), ("assigned", "failed"), ("contacted", "expired")):
            add_conversion_event(conn, "L3", stage, status)  # 1 sent
        add_conversion_event(conn, "L2", "new", "sent")
        add_conversion_event(conn, "L2", "assigned", "sent")  # 2 sent
        add_conversion_event(conn, "L6", "new", "sent")
        add_conversion_event(conn, "L6", "rejected", "sent")  # 2 sent, group (d1, f1, c2, A)
        for k, stage in enumerate(("new", "assigned", "contacted", "rejected", "assigned")):  # reopened: 5 sent
            add_conversion_event(conn, "L7", stage, "sent", at=b + h(k))
        add_conversion_event(conn, "L8", "new", "pending")  # 0 sent
        add_conversion_event(conn, "L10", "new", "sent", distributor="d2")
        add_conversion_event(conn, "L10", "converted", "sent", distributor="d2")  # 2 sent
        add_conversion_event(conn, "L99", "new", "sent")  # no such lead (deleted): nowhere
    assert analytics.refresh_conversion_funnel(scripted) == 5
    f = _funnel(scripted)
    wa, wb = date(2026, 6, 1), date(2026, 6, 8)
    assert {k: r["stages_reported_to_meta"] for k, r in f.items()} == {
        ("d1", "f1", "c1", wa): 6, ("d1", "f1", "c2", wa): 2, ("d1", "f1", "c1", wb): 5, ("d1", "f1", "c2", wb): 0,
        ("d2", "f2", None, wa): 2}
    r = f[("d1", "f1", "c1", wa)]  # L1..L5, as in test_conversion_funnel_by_hand: the join multiplies nothing
    assert (r["leads"], r["reached_assigned"], r["reached_contacted"], r["converted"], r["rejected"]) == (5, 4, 3, 1, 1)
    assert r["median_hours_to_first_contact"] == pytest.approx(4.0)
    assert r["p90_hours_to_first_contact"] == pytest.approx(5.6)

    with scripted.transaction() as conn:
        rows = conn.query(_docs_query("Stages reported to Meta per distributor"))
    got = {r["distributor"]: (r["leads"], r["assigned"], r["contacted"], r["converted"], r["stages_reported_to_meta"],
                              float(r["stages_per_lead"])) for r in rows}
    assert got == {"d1": (9, 6, 5, 1, 13, 1.44), "d2": (1, 1, 1, 1, 2, 2.0)}


def test_funnel_medians_on_a_known_set(warehouse):
    with warehouse.transaction() as conn:
        for i, hours in enumerate([1, 2, 3, 10]):
            add_lead(conn, f"M{i}", status="contacted", campaign_id="c", first_contacted_at=WEEK_A + h(hours))
        add_lead(conn, "M9", status="new", campaign_id="c")  # never contacted: not part of the median
    analytics.refresh_conversion_funnel(warehouse)
    (r,) = _funnel(warehouse).values()
    assert r["leads"] == 5
    assert r["median_hours_to_first_contact"] == pytest.approx(2.5)
    assert r["p90_hours_to_first_contact"] == pytest.approx(7.9)  # 3 + 0.7 × (10 − 3)


def test_refresh_replaces_contents(scripted):
    analytics.refresh_conversion_funnel(scripted)
    with scripted.transaction() as conn:
        conn.execute("DELETE FROM leads WHERE distributor = 'd2'")
    assert analytics.refresh_conversion_funnel(scripted) == 4
    assert analytics.refresh_lead_stats(scripted) == 2


def test_lead_daily_by_hand(scripted):
    n = analytics.refresh_lead_daily(scripted)
    with scripted.transaction() as conn:
        rows = conn.query("SELECT * FROM lead_daily ORDER BY distributor, day")
    assert n == len(rows)
    by = {(r["distributor"], r["day"]): r for r in rows}
    a, b = WEEK_A.date(), WEEK_B.date()
    # d1 on day A: L1–L6 created (all paid); L3, L4 (call at +4 h), L5 first contacted that day.
    r = by[("d1", a)]
    assert (r["new_leads"], r["organic_leads"], r["paid_leads"], r["contacted"]) == (6, 0, 6, 3)
    # L4 converted at +30 h (status_changed_at) → the next day; L5, L6 rejected (no status_changed_at: last
    # status change to rejected, same day).
    assert (r["converted"], r["rejected"]) == (0, 2)
    assert by[("d1", a + timedelta(days=1))]["converted"] == 1
    r = by[("d1", b)]
    assert (r["new_leads"], r["contacted"], r["converted"], r["rejected"]) == (3, 2, 0, 0)
    r = by[("d2", a)]
    assert (r["new_leads"], r["organic_leads"], r["paid_leads"], r["contacted"]) == (1, 1, 0, 1)
    assert by[("d2", a + timedelta(days=2))]["converted"] == 1
    assert sum(r["new_leads"] for r in rows) == 10
    assert sum(r["converted"] for r in rows) == 2 and sum(r["rejected"] for r in rows) == 2


def test_lead_daily_has_a_row_for_every_day_up_to_today(scripted):
    """A daily chart never skips a day: each distributor has one row per UTC day from its first lead to today,
    zeros where nothing happened."""
    analytics.refresh_lead_daily(scripted)
    with scripted.transaction() as conn:
        rows = conn.query("SELECT * FROM lead_daily ORDER BY distributor, day")
        today = conn.scalar("SELECT CURRENT_DATE")
    for distributor in ("d1", "d2"):
        days = [r["day"] for r in rows if r["distributor"] == distributor]
        assert days[0] == WEEK_A.date() and days[-1] == today
        assert days == [days[0] + timedelta(days=i) for i in range((today - days[0]).days + 1)]
    quiet = next(r for r in rows if r["distributor"] == "d1" and r["day"] == WEEK_A.date() + timedelta(days=3))
    figures = ("new_leads", "organic_leads", "paid_leads", "contacted", "converted", "rejected")
    assert {k: quiet[k] for k in figures} == dict.fromkeys(figures, 0)
    assert quiet["refreshed_at"] is not None


def test_funnel_and_daily_share_one_definition_of_lead_facts():
    """The per-lead facts (stages reached, first contact, outcome time) are written out in both SQL files, so that
    each is a query an analyst can run alone; they must stay the same text."""
    def facts(name):
        text = analytics.builtin_sql_path(name).read_text("utf-8")
        return text[text.index("-- lead facts: begin"):text.index("-- lead facts: end")]

    assert facts("conversion_funnel") == facts("lead_daily")


# lead_scores (rules, grades, ranks, the spread on demo and benchmark data): test_scores.py.


def test_person_links_across_distributors(warehouse):
    with warehouse.transaction() as conn:
        add_lead(conn, "P1", distributor="d1", form_id="f1", email="a@x.com", phone="+905321111111")
        add_lead(conn, "P2", distributor="d2", form_id="f2", email="a@x.com")  # same email, other distributor
        add_lead(conn, "P3", distributor="d2", form_id="f3", email="b@y.com", phone="+905321111111")  # P1's phone
        add_lead(conn, "P4", distributor="d1", form_id="f1", phone="+905322222222")
        add_lead(conn, "P5", distributor="d3", form_id="f9", email="c@z.com", phone="+905322222222")
        add_lead(conn, "P6", distributor="d1", form_id="f1", email="alone@x.com", phone="+905329999999")
    assert analytics.refresh_person_links(warehouse) == 5
    with warehouse.transaction() as conn:
        rows = {r["meta_lead_id"]: r for r in conn.query("SELECT * FROM person_links")}
    assert set(rows) == {"P1", "P2", "P3", "P4", "P5"}
    assert {rows[k]["person_id"] for k in ("P1", "P2", "P3")} == {"P1"}
    assert {rows[k]["person_id"] for k in ("P4", "P5")} == {"P4"}
    assert {k: r["match_on"] for k, r in rows.items()} == {"P1": "email", "P2": "email", "P3": "phone",
                                                             "P4": "phone", "P5": "phone"}
    assert (rows["P3"]["distributor"], rows["P3"]["form_id"]) == ("d2", "f3")
    # Idempotent: a second refresh writes the same set.
    assert analytics.refresh_person_links(warehouse) == 5


def test_refresh_all(scripted):
    out = analytics.refresh_all(scripted)
    assert out["lead_stats"] == 3 and out["conversion_funnel"] == 5 and out["lead_scores"] == 10
    assert out["person_links"] == 0


def test_stats_command(scripted, warehouse_url, monkeypatch):
    from click.testing import CliRunner

    from leads_pipeline.commands.stats import stats
    from leads_pipeline.settings import get_settings

    monkeypatch.setenv("LEADS_WAREHOUSE_URL", warehouse_url)
    get_settings.cache_clear()
    runner = CliRunner()
    out = runner.invoke(stats, [])
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout) == {"total": 10, "new": 2, "assigned": 2, "contacted": 2, "converted": 2,
                                      "rejected": 2}
    out = runner.invoke(stats, ["--distributor", "d2"])
    assert json.loads(out.stdout) == {"total": 1, "new": 0, "assigned": 0, "contacted": 0, "converted": 1,
                                      "rejected": 0}
    out = runner.invoke(stats, ["--distributor", "nope"])
    assert out.exit_code == 1 and "no distributor 'nope'" in out.stderr


def test_per_lead_marts_are_erased_with_the_lead():
    from leads_pipeline.lib.crm.privacy import PERSONAL_DATA_TABLES

    for table in ("lead_scores", "person_links", "lead_contact_matches", "notification_outbox"):
        assert (table, "meta_lead_id") in PERSONAL_DATA_TABLES
