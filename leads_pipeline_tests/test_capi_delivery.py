"""Conversions API for CRM, end to end: stages staff record become events in the outbox and reach the simulator's
CRM dataset over real HTTP, once — on DuckDB and PostgreSQL.

The issue's acceptance list, one test each: four stages → four events in time order; a second send sends none; a 500
on the first upload loses and duplicates nothing; one rejected lead id → the others delivered, that one reported; a
distributor without a dataset id sends nothing. Then batching, expiry (ours and Meta's), a bad token, the send lease,
bulk actions and reopenings, the backfill horizon, a changed stage mapping, hashed contacts and the test event code.
The simulator is the oracle (it counts an event id it saw before as a duplicate), read through its HTTP debug routes.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import time
from dataclasses import dataclass
from typing import Any

import pytest
import requests

from leads_pipeline.lib import capi, crm
from leads_pipeline.lib.graph import GraphClient
from leads_pipeline.lib.ingest import sync
from leads_pipeline.lib.warehouse import Warehouse
from leads_pipeline.simulator import FaultConfig, SimulatorServer
from leads_pipeline_tests.pipeline_fixtures import make_sandbox

UNKNOWN_LEAD = "9999999999999999"  # 16 digits the simulator never served
NOW = lambda: dt.datetime.now(dt.UTC)


@dataclass
class Loop:
    """A synced distributor whose stages go to its Page's CRM dataset on the simulator."""

    sim: SimulatorServer
    wh: Warehouse
    key: str
    dataset: str
    admin: str

    def events(self) -> list[dict[str, Any]]:
        """What the dataset accepted (each record with the event as received), in arrival order."""
        r = requests.get(f"{self.sim.base_url}/__simulator/datasets/{self.dataset}/events", timeout=30)
        assert r.status_code == 200, r.text[:300]
        return r.json()["events"]

    def summary(self) -> dict[str, Any]:
        r = requests.get(f"{self.sim.base_url}/__simulator/datasets", timeout=30)
        return next(d for d in r.json()["datasets"] if d["id"] == self.dataset)

    def send(self, **kwargs: Any) -> capi.SendResult:
        return capi.send(self.wh, self.key, **kwargs)

    def leads(self) -> list[str]:
        with self.wh.transaction(read_only=True) as conn:
            return [r["meta_lead_id"] for r in conn.query(
                "SELECT meta_lead_id FROM leads WHERE distributor = ? ORDER BY meta_lead_id", [self.key])]

    def outbox(self, **where: Any) -> list[dict[str, Any]]:
        sql = "SELECT * FROM conversion_events WHERE distributor = ?"
        params: list[Any] = [self.key]
        for column, value in where.items():
            sql += f" AND {column} = ?"
            params.append(value)
        with self.wh.transaction(read_only=True) as conn:
            return conn.query(sql + " ORDER BY event_time, event_id", params)

    def sql(self, statement: str, params: list[Any] | None = None) -> None:
        with self.wh.transaction() as conn:
            conn.execute(statement, params or [])


def _loop(monkeypatch, sim: SimulatorServer, warehouse_url: str, *, configure: bool = True, **settings: Any) -> Loop:
    box = make_sandbox(monkeypatch, sim, warehouse_url)
    key = box.keys[0]
    assert sync.sync_distributor(box.wh, key).success
    page = sim.manifest()["pages"][0]
    if configure:
        capi.configure(box.wh, key, dataset_id=page["capi_dataset_id"], crm_name="Test CRM", **settings)
    admin = crm.add_user(box.wh, "Admin Person", "admin@example.com", "superadmin", actor="system")["id"]
    return Loop(sim, box.wh, key, page["capi_dataset_id"], admin)


@pytest.fixture
def loop(monkeypatch, simulator_factory, warehouse_url) -> Loop:
    sim = simulator_factory(seed=31, pages=1, forms_per_page=1, leads_per_form=12, extra_leads=0, malformed_rate=0.0)
    return _loop(monkeypatch, sim, warehouse_url)


def _dataset_requests(sim: SimulatorServer) -> int:
    return int(sim.stats().get("by_route", {}).get("dataset_events", 0))


def _insert_lead(loop: Loop, lead_id: str) -> None:
    now = NOW()
    loop.sql("INSERT INTO leads (meta_lead_id, distributor, created_time, status, first_seen_at, updated_at) "
             "VALUES (?, ?, ?, 'new', ?, ?)", [lead_id, loop.key, now - dt.timedelta(hours=1), now, now])


# ------------------------------------------------------------------------------------------------- acceptance


def test_four_stages_become_four_events_in_time_order_and_a_second_send_sends_none(loop):
    lead = loop.leads()[0]
    crm.assign(loop.wh, lead, "admin@example.com", loop.admin)
    crm.change_status(loop.wh, lead, "contacted", loop.admin)
    crm.change_status(loop.wh, lead, "converted", loop.admin)

    first = loop.send()
    assert first.status == "ok" and first.exit_code == 0, first.message
    events = loop.events()
    assert first.sent == len(events) == len(loop.leads()) + 3 and first.failed == first.expired == first.pending == 0
    mine = [e for e in events if e["lead_id"] == lead]
    assert [e["event_name"] for e in mine] == ["Initial Lead", "Assigned", "Contacted", "Converted"]
    assert [e["event_time"] for e in mine] == sorted(e["event_time"] for e in mine)
    for e in mine:
        sent = e["event"]
        assert sent["action_source"] == "system_generated"
        assert sent["custom_data"] == {"event_source": "crm", "lead_event_source": "Test CRM"}
        assert sent["user_data"] == {"lead_id": int(lead)}  # Meta's lead id as an integer; nothing personal
        assert isinstance(sent["event_time"], int) and isinstance(sent["event_id"], str)
    rows = loop.outbox(meta_lead_id=lead)
    assert [r["stage"] for r in rows] == ["new", "assigned", "contacted", "converted"]
    assert {r["status"] for r in rows} == {"sent"} and all(r["sent_at"] and r["batch_id"] for r in rows)
    assert [r["event_id"] for r in rows] == [e["event_id"] for e in mine]

    requests_before = _dataset_requests(loop.sim)
    second = loop.send()
    assert (second.status, second.sent, second.enqueued, second.requests) == ("ok", 0, 0, 0)
    assert _dataset_requests(loop.sim) == requests_before
    assert len(loop.events()) == len(events) and loop.summary()["duplicates"] == 0


def test_a_500_on_the_first_upload_is_retried_by_the_client_and_duplicates_nothing(loop):
    loop.sim.set_faults(FaultConfig(routes=["dataset_events"], count_routes_only=True, transient_at=[1],
                                    transient_kinds=["http_500"]))
    result = loop.send()
    assert result.status == "ok" and result.sent == len(loop.leads()), result.message
    assert loop.sim.stats()["faults_injected"].get("http_500") == 1
    assert len(loop.events()) == len(loop.leads()) and loop.summary()["duplicates"] == 0
    assert {r["status"] for r in loop.outbox()} == {"sent"}


def test_a_500_without_retries_left_keeps_every_event_pending_and_the_next_send_delivers_each_once(loop):
    loop.sim.set_faults(FaultConfig(routes=["dataset_events"], count_routes_only=True, transient_at=[1],
                                    transient_kinds=["http_500"]))
    no_retries = lambda token: GraphClient(token, base_url=loop.sim.base_url, max_retries=0)
    first = loop.send(client_factory=no_retries)
    n = len(loop.leads())
    assert (first.status, first.exit_code, first.sent, first.pending) == ("failed", 1, 0, n)
    assert "500" in first.errors[0]
    assert loop.events() == []
    rows = loop.outbox()
    assert len(rows) == n and {(r["status"], r["attempts"]) for r in rows} == {("pending", 1)}
    assert all("500" in r["last_error"] for r in rows)

    second = loop.send(client_factory=no_retries)
    assert (second.status, second.sent, second.pending) == ("ok", n, 0)
    assert len(loop.events()) == n and loop.summary()["duplicates"] == 0
    assert loop.send().sent == 0 and len(loop.events()) == n


def test_one_rejected_lead_id_is_isolated_the_others_delivered_and_it_is_reported(loop):
    _insert_lead(loop, UNKNOWN_LEAD)
    lead = loop.leads()[1]
    crm.change_status(loop.wh, lead, "contacted", loop.admin)

    result = loop.send()
    n = len(loop.leads())  # the unknown lead included
    assert (result.status, result.exit_code, result.failed, result.sent) == ("partial", 2, 1, n - 1 + 1)
    assert result.requests > 1  # the whole batch was refused, then split
    received = loop.events()
    assert len(received) == n and UNKNOWN_LEAD not in {e["lead_id"] for e in received}
    assert loop.summary()["duplicates"] == 0 and loop.summary()["requests_rejected"] >= 1
    [bad] = loop.outbox(status="failed")
    assert bad["meta_lead_id"] == UNKNOWN_LEAD and bad["attempts"] == 1
    assert "2804036" in bad["last_error"] and "lead id" in bad["last_error"].lower()
    assert "rejected by Meta" in result.message

    again = loop.send()  # a rejected event is not sent again
    assert (again.sent, again.failed, again.requests) == (0, 0, 0)


def test_a_distributor_without_a_dataset_id_sends_nothing(monkeypatch, simulator_factory, warehouse_url):
    sim = simulator_factory(seed=32, pages=1, forms_per_page=1, leads_per_form=8, extra_leads=0, malformed_rate=0.0)
    loop = _loop(monkeypatch, sim, warehouse_url, configure=False)
    lead = loop.leads()[0]
    crm.change_status(loop.wh, lead, "contacted", loop.admin)
    result = loop.send()
    assert (result.status, result.exit_code, result.sent, result.requests) == ("not_configured", 1, 0, 0)
    assert "--capi-dataset-id" in result.message
    assert loop.outbox() == [] and _dataset_requests(sim) == 0 and loop.events() == []
    assert capi.due(loop.wh) == [] and capi.send_all(loop.wh) == []

    # Configured, then switched off again: what waits stays waiting, nothing is sent.
    capi.configure(loop.wh, loop.key, dataset_id=loop.dataset)
    assert capi.enqueue(loop.wh, loop.key) == len(loop.leads()) + 1
    capi.configure(loop.wh, loop.key, dataset_id=None)
    assert loop.send().status == "not_configured" and _dataset_requests(sim) == 0
    assert len(loop.outbox(status="pending")) == len(loop.leads()) + 1


# ------------------------------------------------------------------------------------------------- delivery rules


def test_batches_carry_at_most_1000_events(monkeypatch, simulator_factory, warehouse_url):
    sim = simulator_factory(seed=33, pages=1, forms_per_page=1, leads_per_form=1100, extra_leads=0,
                            malformed_rate=0.0)
    loop = _loop(monkeypatch, sim, warehouse_url)
    result = loop.send()
    assert (result.status, result.sent, result.requests) == ("ok", 1100, 2), result.message
    summary = loop.summary()
    assert summary["events_received"] == 1100 and summary["requests_accepted"] == 2 and summary["duplicates"] == 0


def test_events_past_metas_seven_days_are_expired_not_sent(loop):
    lead = loop.leads()[2]
    # The dataset was set up ten days ago; a stage recorded eight days ago waited through an outage.
    loop.sql("UPDATE capi_settings SET configured_at = ? WHERE distributor = ?",
             [NOW() - dt.timedelta(days=10), loop.key])
    loop.sql("INSERT INTO lead_interactions (meta_lead_id, distributor, kind, actor, from_status, to_status, "
             "occurred_at, recorded_at) VALUES (?, ?, 'status_change', 'system', 'new', 'rejected', ?, ?)",
             [lead, loop.key, NOW() - dt.timedelta(days=8), NOW()])
    result = loop.send()
    assert (result.status, result.exit_code, result.expired, result.sent) == ("partial", 2, 1, len(loop.leads()))
    [old] = loop.outbox(status="expired")
    assert old["stage"] == "rejected" and "7-day" in old["last_error"] and old["attempts"] == 0
    assert "Rejected" not in {e["event_name"] for e in loop.events()}


def test_an_event_meta_finds_too_old_alone_is_marked_expired(loop):
    """Our clock says 6 days 22 hours; Meta's runs 3 hours ahead and refuses it: it is expired, the rest sent."""
    lead = loop.leads()[3]
    loop.sql("UPDATE capi_settings SET configured_at = ? WHERE distributor = ?",
             [NOW() - dt.timedelta(days=9), loop.key])
    loop.sql("INSERT INTO lead_interactions (meta_lead_id, distributor, kind, actor, from_status, to_status, "
             "occurred_at, recorded_at) VALUES (?, ?, 'status_change', 'system', 'new', 'contacted', ?, ?)",
             [lead, loop.key, NOW() - dt.timedelta(days=6, hours=22), NOW()])
    loop.sim.simulator.wall_clock = lambda: time.time() + 3 * 3600
    result = loop.send()
    assert (result.status, result.expired, result.failed, result.sent) == ("partial", 1, 0, len(loop.leads()))
    [old] = loop.outbox(status="expired")
    assert old["stage"] == "contacted" and "2804003" in old["last_error"] and old["attempts"] == 1


def test_a_bad_token_stops_delivery_keeps_events_pending_and_never_shows_the_token(loop):
    bad = "EAAthisTokenIsNotKnownToMeta0123456789"
    capi.configure(loop.wh, loop.key, token=bad)
    result = loop.send()
    assert (result.status, result.sent, result.pending) == ("failed", 0, len(loop.leads()))
    assert any("token" in e.lower() for e in result.errors)
    rows = loop.outbox()
    assert {r["status"] for r in rows} == {"pending"} and all("190" in r["last_error"] for r in rows)
    with loop.wh.transaction(read_only=True) as conn:
        stored = conn.query_one("SELECT * FROM capi_settings WHERE distributor = ?", [loop.key])
    texts = [repr(result.to_dict()), repr(rows), repr({k: v for k, v in stored.items() if k != "token_encrypted"})]
    assert not any(bad in t for t in texts) and bad not in stored["token_encrypted"]
    assert capi.due(loop.wh) == []  # waits before trying a failing token again…

    capi.configure(loop.wh, loop.key, token=None)  # … unless the settings change: back to the distributor's token
    assert capi.due(loop.wh) == [loop.key]
    again = loop.send()
    assert (again.status, again.sent) == ("ok", len(loop.leads()))
    assert len(loop.events()) == len(loop.leads())


def test_an_unknown_dataset_stops_delivery_without_marking_any_event_failed(loop):
    capi.configure(loop.wh, loop.key, dataset_id="123456789012345")  # not a dataset this token can see
    result = loop.send()
    assert (result.status, result.sent, result.failed, result.requests) == ("failed", 0, 0, 1)
    assert "123456789012345" in result.errors[0]
    assert {r["status"] for r in loop.outbox()} == {"pending"}
    capi.configure(loop.wh, loop.key, dataset_id=loop.dataset)
    assert loop.send().sent == len(loop.leads()) and loop.summary()["duplicates"] == 0


def test_a_second_sender_waits_for_the_lease_and_sends_nothing(loop):
    loop.sql("UPDATE capi_settings SET lease_id = 'other-sender', lease_until = ? WHERE distributor = ?",
             [NOW() + dt.timedelta(minutes=5), loop.key])
    busy = loop.send()
    assert (busy.status, busy.exit_code, busy.sent, busy.requests) == ("busy", 0, 0, 0)
    assert busy.pending == len(loop.leads()) and _dataset_requests(loop.sim) == 0
    loop.sql("UPDATE capi_settings SET lease_until = ? WHERE distributor = ?",
             [NOW() - dt.timedelta(seconds=1), loop.key])  # the other sender died: its lease ran out
    assert loop.send().sent == len(loop.leads())
    with loop.wh.transaction(read_only=True) as conn:
        assert conn.query_one("SELECT lease_id, lease_until FROM capi_settings WHERE distributor = ?",
                              [loop.key]) == {"lease_id": None, "lease_until": None}


def test_bulk_actions_and_reopenings_go_the_same_way(loop):
    ids = loop.leads()[:3]
    crm.bulk(loop.wh, "status", ids=ids, status="rejected", note="duplicate", actor=loop.admin)
    crm.change_status(loop.wh, ids[0], "contacted", loop.admin)  # reopened
    assert loop.send().status == "ok"
    by_lead: dict[str, list[str]] = {}
    for e in loop.events():
        by_lead.setdefault(e["lead_id"], []).append(e["event_name"])
    assert by_lead[ids[0]] == ["Initial Lead", "Rejected", "Contacted"]
    assert by_lead[ids[1]] == by_lead[ids[2]] == ["Initial Lead", "Rejected"]


def test_stages_before_the_backfill_week_are_never_enqueued(loop):
    a, b = loop.leads()[4:6]
    for lead, days in ((a, 8), (b, 6)):
        loop.sql("INSERT INTO lead_interactions (meta_lead_id, distributor, kind, actor, from_status, to_status, "
                 "occurred_at, recorded_at) VALUES (?, ?, 'status_change', 'system', 'new', 'contacted', ?, ?)",
                 [lead, loop.key, NOW() - dt.timedelta(days=days), NOW()])
    assert loop.send().status == "ok"
    stages = {(r["meta_lead_id"], r["stage"]) for r in loop.outbox()}
    assert (b, "contacted") in stages and (a, "contacted") not in stages


def test_a_changed_mapping_renames_and_drops_what_waits_and_leaves_what_was_sent(loop):
    first, second = loop.leads()[:2]
    crm.change_status(loop.wh, first, "rejected", loop.admin)
    assert loop.send().status == "ok"
    crm.change_status(loop.wh, second, "contacted", loop.admin)
    crm.change_status(loop.wh, second, "converted", loop.admin)
    crm.bulk(loop.wh, "status", ids=[loop.leads()[2]], status="rejected", actor=loop.admin)
    assert capi.enqueue(loop.wh, loop.key) == 3
    capi.configure(loop.wh, loop.key, stage_events={"converted": "Purchase", "rejected": None})
    assert [(r["stage"], r["event_name"]) for r in loop.outbox(status="pending")] == [
        ("contacted", "Contacted"), ("converted", "Purchase")]
    assert loop.send().sent == 2
    names = [e["event_name"] for e in loop.events()]
    assert names.count("Rejected") == 1 and names[-2:] == ["Contacted", "Purchase"]
    # A stage no longer mapped is not enqueued either.
    crm.change_status(loop.wh, loop.leads()[3], "rejected", loop.admin)
    assert capi.enqueue(loop.wh, loop.key) == 0


def test_hashed_contacts_are_off_by_default_and_normalised_and_hashed_when_on(loop):
    capi.configure(loop.wh, loop.key, hashed_contacts=True, test_event_code="TEST12345")
    with loop.wh.transaction(read_only=True) as conn:
        lead = conn.query_one("SELECT meta_lead_id, email, phone FROM leads WHERE distributor = ? AND email IS NOT "
                              "NULL AND phone IS NOT NULL ORDER BY meta_lead_id LIMIT 1", [loop.key])
    assert loop.send().status == "ok"
    [event] = [e for e in loop.events() if e["lead_id"] == lead["meta_lead_id"]]
    user = event["event"]["user_data"]
    assert user["em"] == [hashlib.sha256(lead["email"].strip().lower().encode()).hexdigest()]
    assert user["ph"] == [hashlib.sha256(lead["phone"].lstrip("+").encode()).hexdigest()]
    assert event["test_event_code"] == "TEST12345"
    texts = repr(event["event"])
    assert lead["email"] not in texts and lead["phone"].lstrip("+") not in texts


def test_two_scans_enqueue_each_stage_once_with_a_deterministic_id(loop):
    lead = loop.leads()[0]
    crm.change_status(loop.wh, lead, "contacted", loop.admin)
    n = capi.enqueue(loop.wh, loop.key)
    assert n == len(loop.leads()) + 1 and capi.enqueue(loop.wh, loop.key) == 0
    [row] = loop.outbox(meta_lead_id=lead, stage="contacted")
    assert row["event_id"] == capi.event_id(loop.key, lead, "contacted", row["event_time"])


def test_a_deleted_lead_leaves_no_event_behind(loop):
    lead = loop.leads()[0]
    crm.change_status(loop.wh, lead, "contacted", loop.admin)
    crm.delete_lead(loop.wh, lead, loop.admin, reason="privacy request")
    assert loop.send().status == "ok"
    assert loop.outbox(meta_lead_id=lead) == [] and lead not in {e["lead_id"] for e in loop.events()}
