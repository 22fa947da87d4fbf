"""``crm.bulk(..., at=...)``: a history of staff work dated when it happened (the demo's seeding), kept in order.

The demo's staff activity follows each lead's own time: assigned minutes after it arrived, contacted hours later,
converted days later. It is written through the library's bulk operations with ``at``, so the same validation,
tenancy and audit apply; what ``at`` adds must never produce a history no real team could have (a contact before
the lead arrived, an outcome before its contact, anything in the future).
"""

from __future__ import annotations

import datetime as dt
import json

import pytest

from leads_pipeline.lib import crm
from leads_pipeline_tests.crm_fixtures import T0, add_user_sql, insert_leads, lead_state, snapshot


def _ids_with_times(ids: list[str], hours: float) -> dict[str, dt.datetime]:
    """Each lead id → its created_time (T0 + i h in crm_fixtures) + ``hours``."""
    out = {}
    for lead_id in ids:
        i = int(lead_id) - 100000000000000
        out[lead_id] = T0 + dt.timedelta(hours=i + hours)
    return out


def test_a_backdated_history_is_dated_per_lead_and_recorded_now(warehouse):
    ids = insert_leads(warehouse, 3)
    staff = add_user_sql(warehouse, "u_staff", "staff@example.com")
    assigned = _ids_with_times(ids, 0.1)
    contacted = _ids_with_times(ids, 2.5)
    before = dt.datetime.now(dt.UTC)
    crm.bulk(warehouse, "assign", ids=ids, user=staff, actor="cli", at=assigned)
    crm.bulk(warehouse, "status", ids=ids, status="contacted", actor="cli", at=contacted)
    crm.bulk(warehouse, "status", ids=ids[:1], status="converted", actor="cli", at=T0 + dt.timedelta(days=3))
    for lead_id in ids:
        state = lead_state(warehouse, lead_id)
        assert state["first_contacted_at"] == contacted[lead_id]
        hours = (state["first_contacted_at"] - (T0 + dt.timedelta(hours=int(lead_id) - 100000000000000)))
        assert hours == dt.timedelta(hours=2.5)
    assert lead_state(warehouse, ids[0])["status_changed_at"] == T0 + dt.timedelta(days=3)
    with warehouse.transaction(read_only=True) as conn:
        rows = conn.query("SELECT meta_lead_id, kind, to_status, occurred_at, recorded_at FROM lead_interactions "
                          "WHERE meta_lead_id = ? ORDER BY occurred_at", [ids[1]])
        audit = conn.query("SELECT action, occurred_at, after FROM audit_log WHERE entity_id = ? ORDER BY id",
                           [ids[1]])
    assert [(r["kind"], r["to_status"], r["occurred_at"]) for r in rows] == [
        ("assignment", None, assigned[ids[1]]), ("status_change", "assigned", assigned[ids[1]]),
        ("status_change", "contacted", contacted[ids[1]])]
    # Written now, dated then: recorded_at and the audit rows are the moment of writing, and the audit names the date.
    assert all(r["recorded_at"] >= before for r in rows)
    assert [a["action"] for a in audit] == ["lead.assign", "lead.status"]
    assert all(a["occurred_at"] >= before for a in audit)
    assert json.loads(audit[1]["after"])["occurred_at"] == contacted[ids[1]].isoformat()


def test_a_history_out_of_order_or_in_the_future_changes_nothing(warehouse):
    ids = insert_leads(warehouse, 2)
    staff = add_user_sql(warehouse, "u_staff", "staff@example.com")
    crm.bulk(warehouse, "assign", ids=ids, user=staff, actor="cli", at=_ids_with_times(ids, 1))
    before = snapshot(warehouse)
    cases = [
        (_ids_with_times(ids, -1), "before they arrived or before their last status change"),  # before created
        (_ids_with_times(ids, 0.5), "before they arrived or before their last status change"),  # before assigned
        ({ids[0]: T0 + dt.timedelta(days=1)}, "have no time in 'at'"),  # one target without a time
        (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1), "would be dated in the future"),
    ]
    for at, words in cases:
        with pytest.raises(crm.InvalidInput, match=words):
            crm.bulk(warehouse, "status", ids=ids, status="contacted", actor="cli", at=at)
    with pytest.raises(crm.InvalidInput, match="takes no 'at'"):
        crm.bulk(warehouse, "delete", ids=ids, reason="request", actor="cli", at=T0)
    assert snapshot(warehouse) == before


def test_backdating_keeps_tenancy(warehouse):
    ids = insert_leads(warehouse, 1, distributor="other")
    staff = add_user_sql(warehouse, "u_staff", "staff@example.com", distributors=("msh",))
    with pytest.raises(crm.LeadNotFound):
        crm.bulk(warehouse, "status", ids=ids, status="contacted", actor=staff, at=_ids_with_times(ids, 1))
    assert lead_state(warehouse, ids[0])["status"] == "new"
