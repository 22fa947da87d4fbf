"""Users: unique normalised emails, roles, deactivation, who may be assigned and who may act."""

from __future__ import annotations

import json

import pytest

from leads_pipeline.lib import crm
from leads_pipeline_tests.crm_fixtures import add_distributor_sql, insert_leads, lead_state


def test_add_list_get_and_deactivate(warehouse):
    ayse = crm.add_user(warehouse, "  Ayşe Kaya ", "  Ayse.Kaya@MSH.example ", "staff")
    assert ayse["email"] == "ayse.kaya@msh.example" and ayse["name"] == "Ayşe Kaya" and ayse["role"] == "staff"
    assert ayse["id"].startswith("usr_") and ayse["active"] is True
    admin = crm.add_user(warehouse, "Admin", "admin@msh.example", "SuperAdmin")
    assert admin["role"] == "superadmin"
    assert [u["email"] for u in crm.list_users(warehouse,
                                               actor="cli")] == ["ayse.kaya@msh.example", "admin@msh.example"]
    assert crm.get_user(warehouse, "AYSE.KAYA@msh.example")["id"] == ayse["id"]
    assert crm.get_user(warehouse, ayse["id"])["email"] == ayse["email"]

    crm.deactivate_user(warehouse, ayse["email"], actor=admin["email"])
    assert crm.get_user(warehouse, ayse["id"])["active"] is False
    assert [u["email"] for u in crm.list_users(warehouse, include_inactive=False, actor="cli")] == ["admin@msh.example"]
    crm.reactivate_user(warehouse, ayse["id"])
    assert crm.get_user(warehouse, ayse["id"])["active"] is True

    with warehouse.transaction() as conn:
        audit = conn.query("SELECT actor, action, entity_type, entity_id, after FROM audit_log ORDER BY id")
    assert [(a["actor"], a["action"], a["entity_type"], a["entity_id"]) for a in audit] == [
        ("cli", "user.add", "user", ayse["id"]), ("cli", "user.add", "user", admin["id"]),
        (admin["id"], "user.deactivate", "user", ayse["id"]), ("cli", "user.activate", "user", ayse["id"])]
    assert json.loads(audit[0]["after"])["email"] == "ayse.kaya@msh.example"


def test_user_validation(warehouse):
    crm.add_user(warehouse, "Ayşe", "ayse@msh.example", "staff")
    with pytest.raises(crm.UserExists, match="ayse@msh.example already exists"):
        crm.add_user(warehouse, "Other Ayşe", " AYSE@msh.example", "superadmin")
    with pytest.raises(crm.InvalidInput, match="Unknown role 'manager'"):
        crm.add_user(warehouse, "M", "m@msh.example", "manager")
    with pytest.raises(crm.InvalidInput, match="not an email"):
        crm.add_user(warehouse, "M", "not-an-email", "staff")
    with pytest.raises(crm.InvalidInput, match="needs a name"):
        crm.add_user(warehouse, " ", "m@msh.example", "staff")
    with pytest.raises(crm.UnknownUser, match="No user 'ghost'"):
        crm.get_user(warehouse, "ghost")
    with pytest.raises(crm.UnknownUser):
        crm.deactivate_user(warehouse, "ghost")
    assert len(crm.list_users(warehouse, actor="cli")) == 1


def test_staff_cannot_manage_users(warehouse):
    crm.add_user(warehouse, "Staff", "staff@msh.example", "staff")
    with pytest.raises(crm.PermissionDenied, match="may not add or deactivate users"):
        crm.add_user(warehouse, "New", "new@msh.example", "superadmin", actor="staff@msh.example")
    with pytest.raises(crm.PermissionDenied):
        crm.deactivate_user(warehouse, "staff@msh.example", actor="staff@msh.example")
    assert len(crm.list_users(warehouse, actor="cli")) == 1


def test_deactivated_user_can_neither_be_assigned_nor_act_but_keeps_history(warehouse):
    ayse = crm.add_user(warehouse, "Ayşe", "ayse@msh.example", "staff", distributors=[add_distributor_sql(warehouse)])
    lead, other = insert_leads(warehouse, 2)
    crm.assign(warehouse, lead, ayse["email"], "cli")
    crm.deactivate_user(warehouse, ayse["id"])
    with pytest.raises(crm.UnknownUser, match="deactivated"):
        crm.assign(warehouse, other, ayse["email"], "cli")
    with pytest.raises(crm.PermissionDenied, match="deactivated"):
        crm.add_note(warehouse, lead, "hi", ayse["email"])
    assert lead_state(warehouse, lead)["assigned_to"] == ayse["id"]
    assert crm.list_leads(warehouse, assigned_to=ayse["email"],
                          actor="cli").total == 1  # still findable by the old assignee
