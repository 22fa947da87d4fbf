"""Tenancy in lib/crm: a staff user sees and works only the leads of their distributors; outside the scope a lead is
answered as if it did not exist. Every read and every change, on DuckDB and PostgreSQL."""

from __future__ import annotations

import pytest

from leads_pipeline.lib import crm
from leads_pipeline.lib.warehouse.migrations import v010_user_scopes
from leads_pipeline_tests.crm_fixtures import add_distributor_sql, add_user_sql, insert_leads, snapshot


@pytest.fixture
def world(warehouse):
    """Two distributors A and B with leads; a superadmin, staff of A (two), staff of B, staff with no distributor."""
    add_distributor_sql(warehouse, "a")
    add_distributor_sql(warehouse, "b")
    a = insert_leads(warehouse, 3, distributor="a", full_name="Alice Anders", email="alice@a.example")
    b = insert_leads(warehouse, 2, distributor="b", full_name="Bob Brown", email="bob@b.example")
    add_user_sql(warehouse, "admin", "admin@x.example", "superadmin")
    add_user_sql(warehouse, "sa", "sa@x.example", distributors=("a",))
    add_user_sql(warehouse, "sa2", "sa2@x.example", distributors=("a",))
    add_user_sql(warehouse, "sb", "sb@x.example", distributors=("b",))
    add_user_sql(warehouse, "none", "none@x.example", distributors=())
    return {"a": a, "b": b}


def ids(items):
    return sorted(i["meta_lead_id"] for i in items)


def test_reads_cover_only_the_scope(warehouse, world):
    a, b = world["a"], world["b"]
    assert ids(crm.list_leads(warehouse, actor="sa").items) == sorted(a)
    assert crm.list_leads(warehouse, actor="sa").total == 3
    # A filter only ever narrows the scope: asking for B's leads, or searching for them, finds nothing.
    assert crm.list_leads(warehouse, actor="sa", distributor="b").total == 0
    assert crm.list_leads(warehouse, actor="sa", distributor="a,b").total == 3
    assert crm.list_leads(warehouse, actor="sa", search="bob").total == 0
    assert ids(crm.recent_leads(warehouse, 1000, actor="sa")) == sorted(a)
    assert ids(crm.recent_leads(warehouse, 1000, "b", actor="sa")) == []
    assert crm.stats(warehouse, actor="sa")["total"] == 3
    with pytest.raises(crm.DistributorNotVisible, match="No distributor with key 'b'"):
        crm.stats(warehouse, "b", actor="sa")
    assert [d.key for d in crm.visible_distributors(warehouse, actor="sa")] == ["a"]
    with pytest.raises(crm.LeadNotFound):
        crm.get_lead(warehouse, b[0], actor="sa")
    assert crm.get_lead(warehouse, a[0], actor="sa")["meta_lead_id"] == a[0]
    # The superadmin and the command line see everything; a staff user with no distributor sees nothing.
    for actor in ("admin", "cli"):
        assert crm.list_leads(warehouse, actor=actor).total == 5
        assert crm.stats(warehouse, "b", actor=actor)["total"] == 2
        assert [d.key for d in crm.visible_distributors(warehouse, actor=actor)] == ["a", "b"]
    assert crm.list_leads(warehouse, actor="none").total == 0
    assert crm.recent_leads(warehouse, 10, actor="none") == []
    assert crm.stats(warehouse, actor="none")["total"] == 0


def test_a_user_list_shows_only_users_who_share_a_distributor(warehouse, world):
    assert sorted(u["id"] for u in crm.list_users(warehouse, actor="sa")) == ["admin", "sa", "sa2"]
    assert sorted(u["id"] for u in crm.list_users(warehouse, actor="sb")) == ["admin", "sb"]
    assert sorted(u["id"] for u in crm.list_users(warehouse, actor="admin")) == ["admin", "none", "sa", "sa2", "sb"]
    listed = {u["id"]: u["distributors"] for u in crm.list_users(warehouse, actor="admin")}
    assert listed == {"admin": None, "none": [], "sa": ["a"], "sa2": ["a"], "sb": ["b"]}
    with pytest.raises(crm.UnknownUser):
        crm.get_user(warehouse, "sb@x.example", actor="sa")
    # Filtering leads by a user one cannot see is the same answer as an unknown user.
    with pytest.raises(crm.UnknownUser):
        crm.list_leads(warehouse, actor="sa", assigned_to="sb@x.example")


@pytest.mark.parametrize("change", [
    lambda wh, lead: crm.change_status(wh, lead, "contacted", "sa"),
    lambda wh, lead: crm.assign(wh, lead, "sa@x.example", "sa"),
    lambda wh, lead: crm.add_note(wh, lead, "a note", "sa"),
    lambda wh, lead: crm.log_interaction(wh, lead, "call", "sa", outcome="answered"),
], ids=["status", "assign", "note", "interaction"])
def test_changes_outside_the_scope_are_not_found_and_change_nothing(warehouse, world, change):
    before = snapshot(warehouse)
    with pytest.raises(crm.LeadNotFound) as caught:
        change(warehouse, world["b"][0])
    assert caught.value.deleted == [] and world["b"][0] in str(caught.value)
    assert snapshot(warehouse) == before
    change(warehouse, world["a"][0])  # the same change in scope works
    assert snapshot(warehouse) != before


def test_bulk_refuses_ids_outside_the_scope_and_a_filter_covers_only_the_scope(warehouse, world):
    a, b = world["a"], world["b"]
    before = snapshot(warehouse)
    with pytest.raises(crm.LeadNotFound, match="1 of the 2 leads not found"):
        crm.bulk(warehouse, "status", ids=[a[0], b[0]], status="rejected", actor="sa")
    assert snapshot(warehouse) == before
    done = crm.bulk(warehouse, "status", filter={"status": "new"}, status="rejected", actor="sa")
    assert sorted(done.ids) == sorted(a)
    assert crm.stats(warehouse, "b", actor="admin")["new"] == 2
    assert crm.bulk(warehouse, "assign", filter={"distributor": "b"}, user="sa@x.example", actor="sa").count == 0


def test_a_lead_is_assigned_only_to_a_user_who_can_see_it(warehouse, world):
    a = world["a"]
    with pytest.raises(crm.UnknownUser, match="No user 'sb@x.example'"):
        crm.assign(warehouse, a[0], "sb@x.example", "sa")  # staff of A cannot even see staff of B
    with pytest.raises(crm.UnknownUser, match="cannot see the leads of 'a'"):
        crm.assign(warehouse, a[0], "sb@x.example", "admin")  # the superadmin is told why
    with pytest.raises(crm.UnknownUser, match="cannot see the leads of 'a'"):
        crm.bulk(warehouse, "assign", ids=a, user="sb@x.example", actor="admin")
    assert crm.assign(warehouse, a[0], "sa2@x.example", "sa")["assigned_to"] == "sa2"
    assert crm.assign(warehouse, a[1], "admin@x.example", "sa")["assigned_to"] == "admin"


def test_a_deleted_lead_of_another_distributor_is_not_even_told_deleted(warehouse, world):
    b = world["b"][0]
    crm.delete_lead(warehouse, b, "admin", "privacy request")
    with pytest.raises(crm.LeadNotFound) as caught:
        crm.get_lead(warehouse, b, actor="sa")
    assert caught.value.deleted == [] and "deleted" not in str(caught.value)
    with pytest.raises(crm.LeadNotFound) as caught:
        crm.get_lead(warehouse, b, actor="sb")
    assert caught.value.deleted == [b]


def test_scopes_are_managed_by_superadmins_and_audited(warehouse, world):
    with pytest.raises(crm.PermissionDenied):
        crm.set_user_distributors(warehouse, "sa", ["a", "b"], actor="sa")
    with pytest.raises(crm.InvalidInput, match="No distributor 'c'"):
        crm.set_user_distributors(warehouse, "sa", ["c"], actor="admin")
    with pytest.raises(crm.InvalidInput, match="superadmin sees every distributor"):
        crm.set_user_distributors(warehouse, "admin", ["a"], actor="admin")
    assert crm.set_user_distributors(warehouse, "sa", ["b", "a"], actor="admin")["distributors"] == ["a", "b"]
    assert crm.list_leads(warehouse, actor="sa").total == 5
    crm.set_user_distributors(warehouse, "sa", [], actor="admin")
    assert crm.list_leads(warehouse, actor="sa").total == 0
    user = crm.add_user(warehouse, "New", "new@x.example", "staff", distributors=["b"], actor="admin")
    assert user["distributors"] == ["b"] and crm.list_leads(warehouse, actor=user["id"]).total == 2
    with warehouse.transaction() as conn:
        audit = conn.query("SELECT actor, action, entity_id, before, after FROM audit_log "
                           "WHERE action = 'user.distributors' ORDER BY id")
    assert [(r["actor"], r["entity_id"]) for r in audit] == [("admin", "sa"), ("admin", "sa")]


@pytest.mark.parametrize("value", [",", " , ", ",,"])
def test_an_empty_filter_list_is_a_clear_error(warehouse, world, value):
    for name in ("status", "distributor"):
        with pytest.raises(crm.InvalidInput, match=f"The {name} filter names nothing"):
            crm.list_leads(warehouse, actor="admin", **{name: value})


def test_the_migration_keeps_a_single_distributor_installation_working(warehouse):
    """Upgrading: staff of the only distributor keep seeing it; with several, nobody is granted everything."""
    backfill = v010_user_scopes.statements(warehouse.dialect)[-1]
    add_distributor_sql(warehouse, "only")
    add_user_sql(warehouse, "old", "old@x.example", distributors=())
    with warehouse.transaction() as conn:
        conn.execute(backfill)
    assert crm.get_user(warehouse, "old")["distributors"] == ["only"]
    add_distributor_sql(warehouse, "second")
    add_user_sql(warehouse, "old2", "old2@x.example", distributors=())
    with warehouse.transaction() as conn:
        conn.execute("DELETE FROM user_distributors")
        conn.execute(backfill)
    assert crm.get_user(warehouse, "old")["distributors"] == []
    assert crm.get_user(warehouse, "old2")["distributors"] == []
