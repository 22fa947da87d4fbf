"""The status rules: every allowed and forbidden transition, reopen, assignment and contact moving the status."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import pytest

from leads_pipeline.lib import crm
from leads_pipeline_tests.crm_fixtures import add_user_sql, insert_leads, insert_rows, lead_row, lead_state, snapshot

DOC = Path(__file__).resolve().parents[1] / "docs" / "lead-operations.md"


def test_transition_table_in_docs_matches_code():
    text = DOC.read_text()
    section = text.split("## Statuses and transitions", 1)[1].split("##", 1)[0]
    table = {}
    for line in section.splitlines():
        m = re.match(r"^\| `(\w+)` \| (.*) \|$", line)
        if m:
            table[m.group(1)] = tuple(re.findall(r"`(\w+)`", m.group(2)))
    assert table == crm.TRANSITIONS


def test_roles_matrix_in_docs_matches_code():
    section = DOC.read_text().split("## Roles", 1)[1].split("##", 1)[0]
    rows = {}
    for line in section.splitlines():
        m = re.match(r"^\| `([\w.]+)`.*\| (yes|no) \| (yes|no) \|$", line)
        if m:
            rows[m.group(1)] = (m.group(2) == "yes", m.group(3) == "yes")
    assert set(rows) == set(crm.ACTIONS)
    for action, (superadmin, staff) in rows.items():
        assert (action in crm.PERMISSIONS["superadmin"], action in crm.PERMISSIONS["staff"]) == (superadmin, staff)


def test_every_transition_allowed_or_refused(warehouse):
    """All 25 (from, to) pairs: allowed ones move and are logged; the others raise and change nothing."""
    add_user_sql(warehouse, "u1", "u1@example.com")
    pairs = [(f, t) for f in crm.STATUSES for t in crm.STATUSES]
    # every lead has an assignee, so moving to 'assigned' is judged by the table alone
    rows = {pair: lead_row(status=pair[0], assigned_to="u1") for pair in pairs}
    insert_rows(warehouse, list(rows.values()))
    ids = {pair: row["meta_lead_id"] for pair, row in rows.items()}
    allowed = [pair for pair in pairs if pair[1] in crm.TRANSITIONS[pair[0]]]
    forbidden = [pair for pair in pairs if pair not in allowed]
    assert len(allowed) == sum(len(v) for v in crm.TRANSITIONS.values())

    before = snapshot(warehouse)
    for f, t in forbidden:
        with pytest.raises(crm.InvalidTransition) as exc:
            crm.change_status(warehouse, ids[(f, t)], t, "cli")
        assert exc.value.from_status == f and exc.value.to_status == t
        assert exc.value.allowed == crm.TRANSITIONS[f]
        assert ids[(f, t)] in str(exc.value) and f"'{f}'" in str(exc.value)
    assert snapshot(warehouse) == before

    for f, t in allowed:
        result = crm.change_status(warehouse, ids[(f, t)], t, "cli")
        assert result["status"] == t and result["reopen"] == (f == "rejected")
    with warehouse.transaction() as conn:
        states = {r["meta_lead_id"]: r for r in conn.query("SELECT meta_lead_id, status, status_changed_at FROM leads")}
        moves = {r["meta_lead_id"]: (r["kind"], r["from_status"], r["to_status"]) for r in conn.query(
            "SELECT meta_lead_id, kind, from_status, to_status FROM lead_interactions")}
        n_moves = conn.scalar("SELECT count(*) FROM lead_interactions")
    assert n_moves == len(allowed)
    for f, t in allowed:
        lead_id = ids[(f, t)]
        assert states[lead_id]["status"] == t and states[lead_id]["status_changed_at"] is not None
        assert moves[lead_id] == ("reopen" if f == "rejected" else "status_change", f, t)
    for f, t in forbidden:
        assert states[ids[(f, t)]]["status"] == f


def test_invalid_transition_messages_are_clear(warehouse):
    lead = insert_leads(warehouse, 1, status="converted")[0]
    with pytest.raises(crm.InvalidTransition, match="'converted' is final"):
        crm.change_status(warehouse, lead, "new", "cli")
    lead = insert_leads(warehouse, 1, status="new")[0]
    with pytest.raises(crm.InvalidTransition, match=r"from 'new' it can go to: assigned, contacted, rejected"):
        crm.change_status(warehouse, lead, "converted", "cli")
    with pytest.raises(crm.InvalidTransition, match="already 'new'"):
        crm.change_status(warehouse, lead, "new", "cli")
    with pytest.raises(crm.InvalidInput, match="Unknown status 'won'"):
        crm.change_status(warehouse, lead, "won", "cli")


def test_moving_to_assigned_needs_an_assignee(warehouse):
    new, rejected = insert_leads(warehouse, 1, status="new")[0], insert_leads(warehouse, 1, status="rejected")[0]
    before = snapshot(warehouse)
    for lead in (new, rejected):
        with pytest.raises(crm.InvalidTransition, match="no assignee"):
            crm.change_status(warehouse, lead, "assigned", "cli")
    assert snapshot(warehouse) == before


def test_reopen_is_logged_as_reopen(warehouse):
    lead = insert_leads(warehouse, 1)[0]
    crm.change_status(warehouse, lead, "rejected", "cli", note="no budget")
    crm.change_status(warehouse, lead, "contacted", "cli", note="called back, interested again")
    timeline = crm.get_lead(warehouse, lead, actor="cli")["timeline"]
    assert [(i["kind"], i["from_status"], i["to_status"], i["body"]) for i in timeline] == [
        ("status_change", "new", "rejected", "no budget"),
        ("reopen", "rejected", "contacted", "called back, interested again"),
    ]
    with warehouse.transaction() as conn:
        actions = [r["action"] for r in conn.query("SELECT action FROM audit_log ORDER BY id")]
    assert actions == ["lead.status", "lead.reopen"]


def test_assign_moves_new_to_assigned_and_reassign_keeps_status(warehouse):
    add_user_sql(warehouse, "u1", "u1@example.com")
    add_user_sql(warehouse, "u2", "u2@example.com")
    lead = insert_leads(warehouse, 1)[0]
    r = crm.assign(warehouse, lead, "U1@Example.com", "cli")
    assert (r["from_status"], r["status"], r["assigned_to"]) == ("new", "assigned", "u1")
    state = lead_state(warehouse, lead)
    assert state["status"] == "assigned" and state["assigned_to"] == "u1" and state["status_changed_at"]
    changed_at = state["status_changed_at"]
    crm.change_status(warehouse, lead, "contacted", "cli")
    crm.assign(warehouse, lead, "u2", "cli")  # reassignment: status stays contacted
    state = lead_state(warehouse, lead)
    assert state["status"] == "contacted" and state["assigned_to"] == "u2"
    assert state["status_changed_at"] > changed_at
    kinds = [(i["kind"], i["assigned_to"], i["to_status"]) for i in crm.get_lead(warehouse, lead,
                                                                                 actor="cli")["timeline"]]
    assert kinds == [("assignment", "u1", None), ("status_change", None, "assigned"),
                     ("status_change", None, "contacted"), ("assignment", "u2", None)]
    details = crm.get_lead(warehouse, lead, actor="cli")["timeline"][-1]["details"]
    assert details == {"previous": "u1"}


def test_reopen_to_assigned_keeps_the_assignee(warehouse):
    add_user_sql(warehouse, "u1", "u1@example.com")
    lead = insert_leads(warehouse, 1)[0]
    crm.assign(warehouse, lead, "u1", "cli")
    crm.change_status(warehouse, lead, "rejected", "cli")
    crm.change_status(warehouse, lead, "assigned", "cli")
    assert lead_state(warehouse, lead)["status"] == "assigned"


def test_outbound_contact_moves_to_contacted_and_sets_first_contacted_at_once(warehouse):
    add_user_sql(warehouse, "u1", "u1@example.com")
    new_lead, assigned_lead, rejected_lead = insert_leads(warehouse, 3)
    crm.assign(warehouse, assigned_lead, "u1", "cli")
    crm.change_status(warehouse, rejected_lead, "rejected", "cli")
    t1 = dt.datetime(2026, 6, 2, 10, 0, tzinfo=dt.timezone.utc)
    t2 = t1 + dt.timedelta(hours=3)

    # inbound: the lead wrote to us; no status change, no first contact
    r = crm.log_interaction(warehouse, new_lead, "sms", "u1", "inbound", "received", body="hello?", occurred_at=t1)
    assert r["status"] == "new" and lead_state(warehouse, new_lead)["first_contacted_at"] is None

    r = crm.log_interaction(warehouse, new_lead, "call", "u1", "outbound", "no_answer", occurred_at=t1)
    assert (r["from_status"], r["status"]) == ("new", "contacted")
    state = lead_state(warehouse, new_lead)
    assert state["status"] == "contacted" and state["first_contacted_at"] == t1 and state["status_changed_at"]

    crm.log_interaction(warehouse, new_lead, "email", "u1", "outbound", "sent", occurred_at=t2)
    assert lead_state(warehouse, new_lead)["first_contacted_at"] == t1  # set once

    r = crm.log_interaction(warehouse, assigned_lead, "sms", "u1", "outbound", "sent", occurred_at=t2.isoformat())
    assert (r["from_status"], r["status"]) == ("assigned", "contacted")
    assert lead_state(warehouse, assigned_lead)["first_contacted_at"] == t2

    r = crm.log_interaction(warehouse, rejected_lead, "call", "u1", "outbound", "answered")
    assert r["status"] == "rejected" and lead_state(warehouse, rejected_lead)["status"] == "rejected"

    timeline = crm.get_lead(warehouse, new_lead, actor="cli")["timeline"]
    assert [(i["kind"], i["direction"], i["outcome"], i["to_status"]) for i in timeline] == [
        ("sms", "inbound", "received", None),
        ("call", "outbound", "no_answer", None),
        ("status_change", None, None, "contacted"),
        ("email", "outbound", "sent", None),
    ]
    assert timeline[0]["body"] == "hello?" and timeline[0]["actor"] == "u1"
    assert timeline[0]["actor_email"] == "u1@example.com"
    with warehouse.transaction() as conn:
        row = conn.query_one("SELECT before, after FROM audit_log WHERE action = 'lead.call' AND entity_id = ?",
                             [new_lead])
    assert json.loads(row["before"])["status"] == "new"
    assert json.loads(row["after"])["status"] == "contacted"


def test_manual_move_to_contacted_sets_first_contacted_at_when_empty(warehouse):
    lead = insert_leads(warehouse, 1)[0]
    crm.change_status(warehouse, lead, "contacted", "cli")
    first = lead_state(warehouse, lead)["first_contacted_at"]
    assert first is not None
    crm.log_interaction(warehouse, lead, "call", "cli", "outbound", "answered")
    assert lead_state(warehouse, lead)["first_contacted_at"] == first


def test_bad_interaction_arguments_change_nothing(warehouse):
    lead = insert_leads(warehouse, 1)[0]
    before = snapshot(warehouse)
    future = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=1)
    for args, match in [
        (("fax", "cli", "outbound", "sent"), "Unknown interaction 'fax'"),
        (("call", "cli", "sideways", "answered"), "Unknown direction"),
        (("call", "cli", "outbound", "sent"), "Outcome of a call"),
        (("call", "cli", "outbound", None), "Outcome of a call"),
    ]:
        with pytest.raises(crm.InvalidInput, match=match):
            crm.log_interaction(warehouse, lead, *args)
    with pytest.raises(crm.InvalidInput, match="in the future"):
        crm.log_interaction(warehouse, lead, "call", "cli", "outbound", "answered", occurred_at=future)
    with pytest.raises(crm.InvalidInput, match="not a date"):
        crm.log_interaction(warehouse, lead, "call", "cli", "outbound", "answered", occurred_at="yesterday")
    assert snapshot(warehouse) == before
