"""From notification to lead: the simulator's signed webhooks → the receiver (real HTTP) → ``process_inbox`` (the
one sync path) → ``leads``; and each lead outcome's inbox status, against a scripted Graph server."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from leads_pipeline.lib.distributors import registry as distributors
from leads_pipeline.lib.webhooks import inbox
from leads_pipeline.lib.webhooks.delivery import Change, parse_delivery
from leads_pipeline.lib.webhooks.process import process_all, process_inbox
from leads_pipeline_tests.test_webhook_support import (  # noqa: F401 - fixtures
    FORM,
    PAGE,
    SAMPLE_DASHBOARD,
    add_sim_distributor,
    http,
    inbox_rows,
    lead_ids,
    lead_server,
    leadgen_body,
    live_receiver,
    signed_headers,
    spy_factory,
    world,
)

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)

def _tombstone(wh, lead_id: str, key: str) -> None:
    with wh.transaction() as conn:
        conn.execute("INSERT INTO lead_tombstones (meta_lead_id, distributor, deleted_at, reason) VALUES (?, ?, ?, ?)",
                     [lead_id, key, datetime.now(timezone.utc), "test"])


@pytest.mark.parametrize("token", ["user", "page"])
def test_simulator_webhooks_become_leads_exactly_once(world, monkeypatch, token) -> None:
    wh, _receiver, sim, manifest = world
    key = add_sim_distributor(wh, monkeypatch, manifest, token=token)
    new_ids = sim.advance(leads=6)
    assert sim.flush_webhooks(30)
    stats = sim.stats()["webhooks"]
    assert stats["posts_failed"] == 0 and stats["duplicates_delivered"] == stats["changes_delivered"] > 0

    rows = inbox_rows(wh)
    page_ids = {p["id"] for p in manifest["pages"]} if token == "user" else {manifest["pages"][0]["id"]}
    owned = {i for i, r in rows.items() if r["page_id"] in page_ids}
    assert set(rows) == set(new_ids)  # every announced lead, each stored once
    assert all(r["deliveries"] == 2 for r in rows.values())  # ... though delivered twice
    assert {rows[i]["status"] for i in owned} == {"pending"}
    assert inbox.pending_by_distributor(wh) == {key: len(owned)}

    factory, requested = spy_factory(sim.base_url, manifest["app_secret"])
    result = process_inbox(wh, key, factory)
    assert (result.selected, result.fetched, result.stored, result.failed, result.retrying) == (
        len(owned), len(owned), len(owned), 0, 0)
    assert result.fatal is None
    assert sorted(requested) == sorted(owned)
    assert owned <= lead_ids(wh)
    rows = inbox_rows(wh)
    assert {rows[i]["status"] for i in owned} == {"processed"}
    assert all(rows[i]["processed_at"] is not None and rows[i]["error"] is None for i in owned)
    with wh.transaction(read_only=True) as conn:
        stored = conn.query("SELECT meta_lead_id, distributor, page_id, form_id, status FROM leads")
    assert {r["distributor"] for r in stored} == {key} and {r["status"] for r in stored} == {"new"}
    assert {r["page_id"] for r in stored} <= page_ids

    # Meta delivers one of them again later: stored once, never fetched again
    again = leadgen_body([{"leadgen_id": next(iter(owned)), "page_id": rows[next(iter(owned))]["page_id"]}])
    import requests

    assert requests.post(_receiver.webhook_url, data=again, headers=signed_headers(again, manifest["app_secret"]),
                         timeout=10).status_code == 200
    assert process_inbox(wh, key, factory).selected == 0
    assert len(requested) == len(owned)


def test_tombstoned_leads_are_never_fetched(world, monkeypatch, http) -> None:
    wh, receiver, sim, manifest = world
    key = add_sim_distributor(wh, monkeypatch, manifest)
    form = manifest["pages"][0]["forms"][0]
    page_id = manifest["pages"][0]["id"]
    early, late, kept = form["valid_lead_ids"][:3]
    _tombstone(wh, early, key)  # deleted before Meta (re)announces it
    body = leadgen_body([{"leadgen_id": i, "page_id": page_id, "form_id": form["id"]} for i in (early, late, kept)])
    resp = http.post(receiver.webhook_url, data=body, headers=signed_headers(body, manifest["app_secret"]))
    assert resp.status_code == 200
    assert inbox_rows(wh)[early]["status"] == "deleted"
    _tombstone(wh, late, key)  # deleted after the notification was stored, before processing

    factory, requested = spy_factory(sim.base_url)
    result = process_inbox(wh, key, factory)
    assert requested == [kept]
    assert result.deleted == 1 and result.stored == 1
    rows = inbox_rows(wh)
    assert (rows[early]["status"], rows[late]["status"], rows[kept]["status"]) == ("deleted", "deleted", "processed")
    assert lead_ids(wh) == {kept}


def test_invalid_token_keeps_rows_pending_with_what_to_do(world, monkeypatch) -> None:
    wh, _receiver, sim, manifest = world
    key = add_sim_distributor(wh, monkeypatch, manifest)
    sim.advance(leads=2)
    assert sim.flush_webhooks(30)

    def bad_factory(token: str):
        from leads_pipeline.lib.graph import GraphClient

        return GraphClient("EAAnotavalidtoken0000000000000", base_url=sim.base_url, max_retries=0)

    result = process_inbox(wh, key, bad_factory, now=T0)
    assert result.fatal and "token" in result.fatal.lower()
    assert "EAAnotavalidtoken" not in result.fatal
    rows = [r for r in inbox_rows(wh).values() if r["distributor"] == key]
    assert {r["status"] for r in rows} == {"pending"}
    assert {(r["attempts"], r["next_attempt_at"]) for r in rows} == {(1, T0 + timedelta(minutes=1))}
    assert all("EAAnotavalidtoken" not in r["error"] for r in rows)


# ----------------------------------------------------------------------------------------------------------------------
# Outcomes with a scripted Graph server (real HTTP)
# ----------------------------------------------------------------------------------------------------------------------


def _store(wh, *ids: str) -> None:
    inbox.store_changes(wh, [Change(leadgen_id=i, page_id=PAGE, form_id=FORM) for i in ids])


def test_app_dashboard_test_payload_is_retried_on_schedule_not_every_round(lead_server) -> None:
    """The App Dashboard's "Test" lead (444444444444) does not exist: 100/33, as for a lead Meta cannot serve yet.
    It waits for its next attempt instead of failing at once (issue 10); the horizon is in test_webhook_routing."""
    wh, server, _key, factory = lead_server
    dash = distributors.add(wh, "Dashboard", "EAAGusertoken000000000000000000000001", page_ids=["444444444444"],
                            form_ids=["444444444444"]).key
    inbox.store_changes(wh, parse_delivery(SAMPLE_DASHBOARD))
    result = process_inbox(wh, dash, factory, now=T0)
    assert (result.fetched, result.failed, result.retrying) == (0, 0, 1)
    row = inbox_rows(wh)["444444444444"]
    assert row["status"] == "pending" and row["processed_at"] is None and row["attempts"] == 1
    assert "100/33" in row["error"] and "444444444444" in row["error"] and "does not exist" in row["error"]
    for _ in range(3):  # not due yet: nothing taken, nothing fetched
        assert process_inbox(wh, dash, factory, now=T0 + timedelta(seconds=30)).selected == 0
    assert server.reads["444444444444"] == 1
    assert inbox.summary(wh, "pending")["recent_errors"][0]["leadgen_id"] == "444444444444"


def test_transient_failure_waits_then_succeeds(lead_server) -> None:
    wh, server, key, factory = lead_server
    ok, flaky = server.lead("1001"), server.lead("1002")
    server.flaky[flaky] = 1  # Meta times out on this batch item once (null)
    _store(wh, ok, flaky)
    first = process_inbox(wh, key, factory, now=T0)
    assert (first.stored, first.retrying, first.failed, first.fatal) == (1, 1, 0, None)
    row = inbox_rows(wh)[flaky]
    assert (row["status"], row["attempts"], row["next_attempt_at"]) == ("pending", 1, T0 + timedelta(minutes=1))
    assert "timed out" in row["error"]
    assert inbox.pending_by_distributor(wh) == {key: 1}
    second = process_inbox(wh, key, factory, now=T0 + timedelta(minutes=1))
    assert second.stored == 1
    row = inbox_rows(wh)[flaky]
    assert (row["status"], row["error"]) == ("processed", None)
    assert lead_ids(wh) == {ok, flaky}


def test_a_record_that_cannot_be_a_lead_is_rejected_with_its_reason(lead_server) -> None:
    wh, server, key, factory = lead_server
    broken = server.lead("7", field_data="not a list")
    unreachable = server.lead("8", email="not-an-email")  # a lead all the same: stored, status rejected (issue 10)
    _store(wh, broken, unreachable)
    result = process_inbox(wh, key, factory, now=T0)
    assert (result.fetched, result.stored, result.rejected) == (2, 1, 1)
    rows = inbox_rows(wh)
    assert (rows["7"]["status"], rows["8"]["status"]) == ("rejected", "processed")
    with wh.transaction(read_only=True) as conn:
        assert conn.scalar("SELECT reason FROM rejected_leads WHERE meta_lead_id = '7'")
        assert conn.scalar("SELECT status FROM leads WHERE meta_lead_id = '8'") == "rejected"


def test_a_lead_another_distributor_holds_is_said_so(lead_server) -> None:
    wh, server, key, factory = lead_server
    held = server.lead("9001")
    _store(wh, held)
    assert process_inbox(wh, key, factory, now=T0).stored == 1
    other = distributors.add(wh, "Other", "EAAGusertoken000000000000000000000002", form_ids=["730000000000001"]).key
    with wh.transaction() as conn:  # the inbox forgot it (e.g. purged); Meta announces it for the other's form
        conn.execute("DELETE FROM webhook_inbox WHERE leadgen_id = ?", [held])
    inbox.store_changes(wh, [Change(leadgen_id=held, page_id=PAGE, form_id="730000000000001")])
    assert inbox_rows(wh)[held]["distributor"] == other
    result = process_inbox(wh, other, factory, now=T0)
    assert (result.held_elsewhere, result.stored) == (1, 0)
    row = inbox_rows(wh)[held]
    assert row["status"] == "held_elsewhere" and key in row["error"]
    assert inbox.summary(wh)["by_status"]["held_elsewhere"] == 1
    with wh.transaction(read_only=True) as conn:
        assert conn.query("SELECT distributor FROM leads WHERE meta_lead_id = ?", [held]) == [{"distributor": key}]


def test_drain_over_several_rounds_each_its_own_run_and_a_whole_batch_failure(lead_server) -> None:
    wh, server, key, factory = lead_server
    ids = [server.lead(str(100 + i)) for i in range(25)]
    _store(wh, *ids)
    result = process_all(wh, key, factory, limit=10, now=T0)
    assert result.stored == 25 and result.selected == 25
    assert len(set(result.sync_ids)) == 3
    with wh.transaction(read_only=True) as conn:
        runs = conn.query("SELECT sync_id, stored, trigger FROM sync_runs WHERE distributor = ? ORDER BY sync_id",
                          [key])
    assert [(r["stored"], r["trigger"]) for r in runs] == [(10, "webhook"), (10, "webhook"), (5, "webhook")]

    server.lead("999")
    _store(wh, "999")
    server.down = True
    down = process_all(wh, key, factory, limit=10, now=T0)
    assert down.retrying == 1 and down.errors
    assert inbox_rows(wh)["999"]["status"] == "pending"
    server.down = False
    assert process_all(wh, key, factory, limit=10, now=T0 + timedelta(minutes=1)).stored == 1
