"""Reading leads: filters, search (names, emails, phones in any format), pagination, sorting, recent leads."""

from __future__ import annotations

import datetime as dt

import pytest

from leads_pipeline.lib import crm
from leads_pipeline_tests.crm_fixtures import T0, add_user_sql, insert_rows, lead_row


@pytest.fixture
def people(warehouse):
    add_user_sql(warehouse, "u1", "u1@example.com")
    rows = [
        lead_row(1, full_name="Ahmet Kaya", email="ahmet@example.com", phone="+905321234567", distributor="msh"),
        lead_row(2, full_name="Ayşe Demir", email="ayse.demir@mail.example", phone="+905339876543",
                 distributor="msh", status="assigned", assigned_to="u1"),
        lead_row(3, full_name="JOHN SMITH", email="john@example.co.uk", phone="+447700900123", distributor="uk",
                 status="contacted", assigned_to="u1"),
        lead_row(4, full_name="Mehmet 100% Öz", email=None, phone="+905551112233", distributor="msh",
                 status="rejected"),
        lead_row(5, full_name=None, email="only_mail@example.com", phone=None, distributor="uk"),
    ]
    insert_rows(warehouse, rows)
    return {r["meta_lead_id"][-1]: r["meta_lead_id"] for r in rows}  # "1".."5" → id


def ids(page):
    return [i["meta_lead_id"][-1] for i in page.items]


def test_default_list_is_newest_first_with_total(warehouse, people):
    page = crm.list_leads(warehouse, actor="cli")
    assert ids(page) == ["5", "4", "3", "2", "1"]
    assert (page.total, page.page, page.per_page, page.pages) == (5, 1, 50, 1)
    first = page.items[-1]
    assert first["full_name"] == "Ahmet Kaya" and first["custom_fields"] == {"treatment": ["hair"]}
    assert page.items[2]["assigned_to_email"] == "u1@example.com"


@pytest.mark.parametrize("query,expected", [
    ("ahmet", ["1"]),
    ("KAYA", ["1"]),
    ("john smith", ["3"]),
    ("@example.com", ["5", "1"]),
    ("mail.example", ["2"]),
    ("ayşe", ["2"]),
    ("100%", ["4"]),
    ("_mail", ["5"]),
    ("0532 123 45 67", ["1"]),          # local format with trunk 0
    ("(532) 123-4567", ["1"]),
    ("+90 533 987", ["2"]),
    ("00447700900123", ["3"]),          # international prefix 00
    ("905551112233", ["4"]),
    ("7700", ["3"]),
    ("nobody", []),
])
def test_search(warehouse, people, query, expected):
    assert ids(crm.list_leads(warehouse, search=query, actor="cli")) == expected


def test_filters_combine(warehouse, people):
    assert ids(crm.list_leads(warehouse, distributor="uk", actor="cli")) == ["5", "3"]
    assert ids(crm.list_leads(warehouse, distributor="msh,uk", status="new", actor="cli")) == ["5", "1"]
    assert ids(crm.list_leads(warehouse, status=["assigned", "contacted"], actor="cli")) == ["3", "2"]
    assert ids(crm.list_leads(warehouse, assigned_to="U1@example.com", actor="cli")) == ["3", "2"]
    assert ids(crm.list_leads(warehouse, assigned_to="u1", distributor="msh", actor="cli")) == ["2"]
    assert ids(crm.list_leads(warehouse, assigned_to="unassigned", actor="cli")) == ["5", "4", "1"]
    assert ids(crm.list_leads(warehouse, search="example.com", status="new", distributor="msh", actor="cli")) == ["1"]


def test_created_range(warehouse, people):
    # lead i was created at T0 + i hours (T0 = 2026-06-01 09:00 UTC)
    assert ids(crm.list_leads(warehouse, created_from=T0 + dt.timedelta(hours=2),
                              created_to=T0 + dt.timedelta(hours=4), actor="cli")) == ["3", "2"]
    assert ids(crm.list_leads(warehouse, created_from="2026-06-01T12:00:00+00:00", actor="cli")) == ["5", "4", "3"]
    assert crm.list_leads(warehouse, created_to="2026-06-01",
                          actor="cli").total == 5  # a bare date includes the whole day
    assert crm.list_leads(warehouse, created_to="2026-05-31", actor="cli").total == 0
    assert crm.list_leads(warehouse, created_from=dt.date(2026, 6, 2), actor="cli").total == 0


def test_pagination_and_sorting(warehouse, people):
    pages = [crm.list_leads(warehouse, per_page=2, page=p, actor="cli") for p in (1, 2, 3, 4)]
    assert [ids(p) for p in pages] == [["5", "4"], ["3", "2"], ["1"], []]
    assert {p.total for p in pages} == {5} and pages[0].pages == 3
    assert ids(crm.list_leads(warehouse, sort="created_time", actor="cli")) == ["1", "2", "3", "4", "5"]
    assert ids(crm.list_leads(warehouse, sort="full_name", actor="cli")) == ["1", "2", "3", "4", "5"]  # NULL name last
    assert ids(crm.list_leads(warehouse, sort="-status", actor="cli")) == ["4", "5", "1", "3", "2"]


def test_bad_list_arguments(warehouse, people):
    for kwargs, match in [({"page": 0}, "page starts at 1"), ({"per_page": 0}, "per_page"),
                          ({"per_page": 501}, "per_page"), ({"sort": "email"}, "Cannot sort by 'email'"),
                          ({"status": "won"}, "Unknown status"), ({"created_from": "June"}, "not a date")]:
        with pytest.raises(crm.InvalidInput, match=match):
            crm.list_leads(warehouse, **kwargs, actor="cli")
    with pytest.raises(crm.UnknownUser):
        crm.list_leads(warehouse, assigned_to="ghost@example.com", actor="cli")


def test_recent_leads(warehouse, people):
    assert [i["meta_lead_id"][-1] for i in crm.recent_leads(warehouse, limit=2, actor="cli")] == ["5", "4"]
    assert [i["meta_lead_id"][-1] for i in crm.recent_leads(warehouse, distributor="msh",
                                                            actor="cli")] == ["4", "2", "1"]
    with pytest.raises(crm.InvalidInput):
        crm.recent_leads(warehouse, limit=0, actor="cli")


def test_stats_per_distributor(warehouse, people):
    assert crm.stats(warehouse, actor="cli") == {"total": 5, "new": 2, "assigned": 1, "contacted": 1, "converted": 0,
                                    "rejected": 1}
    assert crm.stats(warehouse, "uk",
                     actor="cli") == {"total": 2, "new": 1, "assigned": 0, "contacted": 1, "converted": 0,
                                          "rejected": 0}
