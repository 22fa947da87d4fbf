"""Bulk requests: validated as a whole first (one bad id → nothing changed), then applied set-based."""

from __future__ import annotations

import json

import pytest

from leads_pipeline.lib import crm
from leads_pipeline.lib.warehouse import connection
from leads_pipeline_tests.crm_fixtures import add_user_sql, insert_leads, lead_state, snapshot


def test_bulk_status_by_ids(warehouse):
    ids = insert_leads(warehouse, 4)
    result = crm.bulk(warehouse, "status", ids=",".join(ids[:3]) + "," + ids[0], actor="cli", status="rejected",
                      note="duplicates")
    assert (result.count, result.ids, result.action, result.dry_run) == (3, ids[:3], "status", False)
    assert [lead_state(warehouse, i)["status"] for i in ids] == ["rejected"] * 3 + ["new"]
    with warehouse.transaction() as conn:
        rows = conn.query("SELECT meta_lead_id, kind, from_status, to_status, body, details FROM lead_interactions "
                          "ORDER BY meta_lead_id")
        audit = conn.query("SELECT entity_id, action, after FROM audit_log ORDER BY entity_id")
    assert [(r["meta_lead_id"], r["kind"], r["from_status"], r["to_status"], r["body"]) for r in rows] == [
        (i, "status_change", "new", "rejected", "duplicates") for i in ids[:3]]
    bulk_ids = {json.loads(r["details"])["bulk_id"] for r in rows}
    assert len(bulk_ids) == 1
    assert [(a["entity_id"], a["action"]) for a in audit] == [(i, "lead.status") for i in ids[:3]]
    assert {json.loads(a["after"])["bulk_id"] for a in audit} == bulk_ids


def test_one_unknown_id_refuses_the_whole_request(warehouse):
    ids = insert_leads(warehouse, 3)
    crm.delete_lead(warehouse, ids[2], "cli", "request")
    before = snapshot(warehouse)
    with pytest.raises(crm.LeadNotFound) as exc:
        crm.bulk(warehouse, "status", ids=[ids[0], "404", ids[1], ids[2]], actor="cli", status="contacted")
    assert exc.value.ids == ["404", ids[2]]
    assert str(exc.value) == (f"2 of the 4 leads not found: 404, {ids[2]} ({ids[2]} deleted earlier on a privacy "
                              "request). Nothing was changed.")
    for action, args in (("assign", {"user": "cli"}), ("delete", {"reason": "x"})):
        with pytest.raises(crm.CrmError):
            crm.bulk(warehouse, action, ids=[ids[0], "404"], actor="cli", **args)
    assert snapshot(warehouse) == before


def test_one_invalid_transition_refuses_the_whole_request(warehouse):
    ok = insert_leads(warehouse, 3, status="contacted")
    converted = insert_leads(warehouse, 2, status="converted")
    new = insert_leads(warehouse, 1, status="new")
    before = snapshot(warehouse)
    with pytest.raises(crm.BulkInvalidTransition) as exc:
        crm.bulk(warehouse, "status", ids=ok + converted + new, actor="cli", status="converted")
    err = exc.value
    assert isinstance(err, crm.InvalidTransition)
    assert sorted(err.ids) == sorted(converted + new)
    assert str(err) == (
        f"Cannot move 3 of the selected leads to 'converted': {converted[0]}, {converted[1]} (already 'converted'); "
        f"{new[0]} ('new' can only go to assigned, contacted, rejected). Nothing was changed.")
    assert snapshot(warehouse) == before


def test_bulk_by_filter_assigns_and_moves_only_new_leads(warehouse):
    add_user_sql(warehouse, "u1", "u1@example.com")
    new_msh = insert_leads(warehouse, 3, distributor="msh")
    contacted_msh = insert_leads(warehouse, 1, distributor="msh", status="contacted")
    other = insert_leads(warehouse, 2, distributor="other")
    result = crm.bulk(warehouse, "assign", filter={"distributor": "msh"}, actor="cli", user="u1@example.com")
    assert sorted(result.ids) == sorted(new_msh + contacted_msh)
    assert [lead_state(warehouse, i)["status"] for i in new_msh + contacted_msh] == ["assigned"] * 3 + ["contacted"]
    assert {lead_state(warehouse, i)["assigned_to"] for i in new_msh + contacted_msh} == {"u1"}
    assert {lead_state(warehouse, i)["assigned_to"] for i in other} == {None}
    timeline = crm.get_lead(warehouse, new_msh[0], actor="cli")["timeline"]
    assert [i["kind"] for i in timeline] == ["assignment", "status_change"]
    assert crm.bulk(warehouse, "status", filter={"distributor": "nobody"}, actor="cli", status="new").count == 0


def test_dry_run_validates_and_changes_nothing(warehouse):
    ids = insert_leads(warehouse, 2)
    before = snapshot(warehouse)
    result = crm.bulk(warehouse, "delete", filter={"status": "new"}, actor="cli", reason="test", dry_run=True)
    assert (result.count, sorted(result.ids), result.dry_run) == (2, sorted(ids), True)
    assert snapshot(warehouse) == before


def test_bulk_request_errors(warehouse):
    insert_leads(warehouse, 1)
    for kwargs, match in [
        ({"action": "explode", "ids": ["1"]}, "Unknown bulk action"),
        ({"action": "status", "ids": ["1"]}, "needs status"),
        ({"action": "status", "ids": ["1"], "status": "new", "user": "x"}, "does not take user"),
        ({"action": "status", "ids": [" ", ""], "status": "new"}, "No lead ids"),
        ({"action": "status", "status": "new"}, "at least one filter"),
        ({"action": "status", "filter": {"status": None}, "status": "new"}, "at least one filter"),
        ({"action": "status", "filter": {"colour": "red"}, "status": "new"}, "Unknown filter colour"),
        ({"action": "status", "ids": ["1"], "filter": {"status": "new"}, "status": "new"}, "not both"),
        ({"action": "delete", "ids": ["1"], "reason": " "}, "reason for deleting is empty"),
    ]:
        action = kwargs.pop("action")
        with pytest.raises(crm.InvalidInput, match=match):
            crm.bulk(warehouse, action, actor="cli", **kwargs)


def _count_statements(monkeypatch) -> list[str]:
    seen: list[str] = []
    for name in ("execute", "query", "stage"):
        original = getattr(connection.Conn, name)

        def wrapper(self, *args, _original=original, _name=name, **kwargs):
            seen.append(_name)
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(connection.Conn, name, wrapper)
    return seen


@pytest.mark.parametrize("action,args", [("status", {"status": "rejected"}), ("assign", {"user": "u1"}),
                                          ("delete", {"reason": "x"})])
def test_bulk_is_set_based(warehouse, monkeypatch, action, args):
    """The statements a bulk request runs do not grow with the number of leads, and it is one transaction."""
    add_user_sql(warehouse, "u1", "u1@example.com", distributors=("a", "b"))
    small, large = insert_leads(warehouse, 2, distributor="a"), insert_leads(warehouse, 40, distributor="b")
    transactions = []
    original = connection.Warehouse.transaction
    monkeypatch.setattr(connection.Warehouse, "transaction",
                        lambda self, *a, **k: transactions.append(1) or original(self, *a, **k))
    seen = _count_statements(monkeypatch)
    crm.bulk(warehouse, action, ids=small, actor="cli", **args)
    n_small = len(seen)
    seen.clear()
    crm.bulk(warehouse, action, ids=large, actor="cli", **args)
    assert len(seen) == n_small
    assert len(transactions) == 2
