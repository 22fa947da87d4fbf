"""Lead operations end to end: stats after a scripted day, the audit trail, roles, errors that change nothing."""

from __future__ import annotations

import json

import pytest

from leads_pipeline.lib import crm
from leads_pipeline.lib.crm import operations
from leads_pipeline_tests.crm_fixtures import add_distributor_sql, add_user_sql, insert_leads, lead_state, snapshot


def _audit(wh):
    with wh.transaction() as conn:
        rows = conn.query("SELECT actor, action, entity_type, entity_id, before, after FROM audit_log ORDER BY id")
    for r in rows:
        r["before"] = json.loads(r["before"]) if r["before"] else None
        r["after"] = json.loads(r["after"]) if r["after"] else None
    return rows


def test_scripted_day_stats_and_audit_log(warehouse):
    """A day's work on two distributors; stats equal counts by hand, and every action is in the audit log."""
    admin = crm.add_user(warehouse, "Admin", "admin@msh.example", "superadmin")
    ayse = crm.add_user(warehouse, "Ayşe", "ayse@msh.example", "staff", distributors=[add_distributor_sql(warehouse)])
    msh = insert_leads(warehouse, 8, distributor="msh")
    other = insert_leads(warehouse, 3, distributor="other")

    expected_actions = [("cli", "user.add", ""), ("cli", "user.add", "")]

    def did(actor, action, lead):
        expected_actions.append((actor, action, lead))

    crm.assign(warehouse, msh[0], ayse["email"], admin["email"])
    did(admin["id"], "lead.assign", msh[0])
    crm.assign(warehouse, msh[1], ayse["id"], admin["id"])
    did(admin["id"], "lead.assign", msh[1])
    crm.assign(warehouse, msh[2], "ayse@msh.example", "cli")
    did("cli", "lead.assign", msh[2])
    crm.log_interaction(warehouse, msh[1], "call", ayse["email"], "outbound", "answered", body="wants a quote")
    did(ayse["id"], "lead.call", msh[1])
    crm.change_status(warehouse, msh[1], "converted", ayse["email"], note="booked")
    did(ayse["id"], "lead.status", msh[1])
    crm.log_interaction(warehouse, msh[2], "email", ayse["email"], "outbound", "bounced")
    did(ayse["id"], "lead.email", msh[2])
    crm.change_status(warehouse, msh[2], "rejected", ayse["email"])
    did(ayse["id"], "lead.status", msh[2])
    crm.change_status(warehouse, msh[3], "rejected", "system", note="spam")
    did("system", "lead.status", msh[3])
    crm.change_status(warehouse, msh[3], "new", admin["email"])
    did(admin["id"], "lead.reopen", msh[3])
    crm.add_note(warehouse, msh[4], "call after 18:00", ayse["email"])
    did(ayse["id"], "lead.note", msh[4])
    crm.log_interaction(warehouse, msh[5], "sms", ayse["email"], "outbound", "delivered")
    did(ayse["id"], "lead.sms", msh[5])
    crm.change_status(warehouse, other[0], "contacted", "cli")
    did("cli", "lead.status", other[0])
    crm.change_status(warehouse, other[0], "converted", "cli")
    did("cli", "lead.status", other[0])
    crm.change_status(warehouse, other[1], "rejected", "cli")
    did("cli", "lead.status", other[1])
    crm.delete_lead(warehouse, msh[7], admin["email"], "privacy request")
    did(admin["id"], "lead.delete", msh[7])
    result = crm.bulk(warehouse, "status", ids=[msh[4], msh[6]], actor="cli", status="rejected")
    assert result.count == 2
    did("cli", "lead.status", msh[4]); did("cli", "lead.status", msh[6])

    # By hand: msh 0 assigned, 1 converted, 2 rejected, 3 new (reopened), 4 rejected, 5 contacted, 6 rejected,
    # 7 deleted; other 0 converted, 1 rejected, 2 new.
    assert crm.stats(warehouse, distributor="msh", actor="cli") == {
        "total": 7, "new": 1, "assigned": 1, "contacted": 1, "converted": 1, "rejected": 3}
    assert crm.stats(warehouse, distributor="other", actor="cli") == {
        "total": 3, "new": 1, "assigned": 0, "contacted": 0, "converted": 1, "rejected": 1}
    assert crm.stats(warehouse, actor="cli") == {
        "total": 10, "new": 2, "assigned": 1, "contacted": 1, "converted": 2, "rejected": 4}
    assert crm.stats(warehouse, distributor="nobody", actor="cli") == {k: 0 for k in crm.stats(warehouse, actor="cli")}

    audit = _audit(warehouse)
    assert [(a["actor"], a["action"], a["entity_id"] if a["entity_type"] == "lead" else "") for a in audit] == \
        expected_actions
    assert all(a["entity_type"] == "lead" for a in audit if a["action"].startswith("lead."))
    by_action = {(a["action"], a["entity_id"]): a for a in audit}
    assert by_action[("lead.assign", msh[0])]["before"] == {"status": "new", "assigned_to": None}
    assert by_action[("lead.assign", msh[0])]["after"] == {"status": "assigned", "assigned_to": ayse["id"]}
    assert by_action[("lead.reopen", msh[3])]["before"] == {"status": "rejected"}
    assert by_action[("lead.reopen", msh[3])]["after"]["status"] == "new"
    # the audit log never holds note or message text
    assert not any("18:00" in json.dumps(a) or "wants a quote" in json.dumps(a) for a in audit)

    # every action is also in the timeline (except the deleted lead's, which are erased)
    kinds = [i["kind"] for i in crm.get_lead(warehouse, msh[1], actor="cli")["timeline"]]
    assert kinds == ["assignment", "status_change", "call", "status_change", "status_change"]


def test_get_lead_returns_the_lead_with_assignee_and_parsed_json(warehouse):
    add_user_sql(warehouse, "u1", "u1@example.com")
    lead = insert_leads(warehouse, 1, full_name="Mehmet Yılmaz")[0]
    crm.assign(warehouse, lead, "u1", "cli")
    item = crm.get_lead(warehouse, lead, actor="cli")
    assert item["full_name"] == "Mehmet Yılmaz"
    assert item["assigned_to"] == "u1" and item["assigned_to_email"] == "u1@example.com"
    assert item["custom_fields"] == {"treatment": ["hair"]}
    assert [i["kind"] for i in item["timeline"]] == ["assignment", "status_change"]


ROLE_CASES = [
    ("lead.status", lambda wh, lead, actor: crm.change_status(wh, lead, "contacted", actor)),
    ("lead.assign", lambda wh, lead, actor: crm.assign(wh, lead, "staff@example.com", actor)),
    ("lead.note", lambda wh, lead, actor: crm.add_note(wh, lead, "hello", actor)),
    ("lead.log", lambda wh, lead, actor: crm.log_interaction(wh, lead, "call", actor, "outbound", "answered")),
    ("lead.delete", lambda wh, lead, actor: crm.delete_lead(wh, lead, actor, "request")),
    ("lead.delete", lambda wh, lead, actor: crm.bulk(wh, "delete", ids=[lead], actor=actor, reason="request")),
    ("lead.status", lambda wh, lead, actor: crm.bulk(wh, "status", ids=[lead], actor=actor, status="rejected")),
    ("lead.assign", lambda wh, lead, actor: crm.bulk(wh, "assign", ids=[lead], actor=actor,
                                                     user="staff@example.com")),
    ("user.manage", lambda wh, lead, actor: crm.add_user(wh, "X", "x@example.com", "staff", actor=actor)),
    ("user.manage", lambda wh, lead, actor: crm.deactivate_user(wh, "admin@example.com", actor=actor)),
]


@pytest.mark.parametrize("role", ["superadmin", "staff"])
def test_role_matrix(warehouse, role):
    """Each operation succeeds for a role that has its permission, and is refused (changing nothing) otherwise."""
    add_user_sql(warehouse, "admin", "admin@example.com", "superadmin")
    add_user_sql(warehouse, "staff", "staff@example.com", "staff")
    actor = f"{'admin' if role == 'superadmin' else 'staff'}@example.com"
    for action, op in ROLE_CASES:
        lead = insert_leads(warehouse, 1)[0]
        if action in crm.PERMISSIONS[role]:
            op(warehouse, lead, actor)
        else:
            before = snapshot(warehouse)
            with pytest.raises(crm.PermissionDenied, match=f"{actor} \\({role}\\) may not"):
                op(warehouse, lead, actor)
            assert snapshot(warehouse) == before
    if role == "staff":
        with pytest.raises(crm.PermissionDenied, match="may not delete leads; ask a superadmin"):
            crm.delete_lead(warehouse, insert_leads(warehouse, 1)[0], "staff", "request")


def test_authorize_is_data_driven():
    staff = {"id": "u", "email": "s@example.com", "role": "staff", "active": True}
    for action in crm.ACTIONS:
        assert crm.can(staff, action) == (action in crm.PERMISSIONS["staff"])
        assert crm.can({"role": "superadmin"}, action)
        assert not crm.can({"role": "superadmin", "active": False}, action)
    crm.authorize(staff, "lead.status")
    with pytest.raises(crm.PermissionDenied, match="change distributor settings"):
        crm.authorize(staff, "distributor.manage")
    with pytest.raises(ValueError, match="unknown action"):
        crm.authorize(staff, "lead.explode")
    assert crm.can(crm.Principal(id="cli", role="superadmin"), "lead.delete")


def test_actor_must_exist_and_be_active(warehouse):
    add_user_sql(warehouse, "gone", "gone@example.com", "superadmin", active=False)
    lead = insert_leads(warehouse, 1)[0]
    before = snapshot(warehouse)
    with pytest.raises(crm.UnknownUser, match="nobody@example.com"):
        crm.change_status(warehouse, lead, "contacted", "nobody@example.com")
    with pytest.raises(crm.PermissionDenied, match="deactivated"):
        crm.change_status(warehouse, lead, "contacted", "gone@example.com")
    with pytest.raises(crm.InvalidInput, match="actor"):
        crm.change_status(warehouse, lead, "contacted", "")
    assert snapshot(warehouse) == before


def test_unknown_ids_and_bad_input_change_nothing(warehouse):
    add_user_sql(warehouse, "u1", "u1@example.com")
    add_user_sql(warehouse, "old", "old@example.com", active=False)
    lead = insert_leads(warehouse, 1)[0]
    before = snapshot(warehouse)
    for op in (
        lambda: crm.change_status(warehouse, "999", "contacted", "cli"),
        lambda: crm.assign(warehouse, "999", "u1", "cli"),
        lambda: crm.add_note(warehouse, "999", "x", "cli"),
        lambda: crm.log_interaction(warehouse, "999", "call", "cli", "outbound", "answered"),
        lambda: crm.delete_lead(warehouse, "999", "cli", "request"),
        lambda: crm.get_lead(warehouse, "999", actor="cli"),
    ):
        with pytest.raises(crm.LeadNotFound, match="Lead 999 not found") as exc:
            op()
        assert exc.value.lead_id == "999"
    with pytest.raises(crm.UnknownUser, match="No user 'nobody@example.com'"):
        crm.assign(warehouse, lead, "nobody@example.com", "cli")
    with pytest.raises(crm.UnknownUser, match="old@example.com is deactivated"):
        crm.assign(warehouse, lead, "old", "cli")
    with pytest.raises(crm.InvalidInput, match="note is empty"):
        crm.add_note(warehouse, lead, "   ", "cli")
    with pytest.raises(crm.InvalidInput, match="reason"):
        crm.delete_lead(warehouse, lead, "cli", "")
    assert snapshot(warehouse) == before


def test_a_failure_midway_rolls_the_whole_operation_back(warehouse, monkeypatch):
    add_user_sql(warehouse, "u1", "u1@example.com")
    lead = insert_leads(warehouse, 1)[0]
    before = snapshot(warehouse)

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(operations, "audit_many", broken)  # fails after the interaction rows and the UPDATE
    with pytest.raises(RuntimeError):
        crm.assign(warehouse, lead, "u1", "cli")
    monkeypatch.setattr(operations, "audit", broken)
    with pytest.raises(RuntimeError):
        crm.log_interaction(warehouse, lead, "call", "cli", "outbound", "answered")
    assert snapshot(warehouse) == before
    assert lead_state(warehouse, lead)["status"] == "new"
