"""From notification to lead: the simulator's signed webhooks → the receiver (real HTTP) → ``process_inbox`` → ``leads``."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from leads_pipeline.lib.webhooks import inbox
from leads_pipeline.lib.graph import GraphError, TransientGraphError
from leads_pipeline_tests.test_webhook_support import (  # noqa: F401 - fixtures
    SAMPLE_DASHBOARD,
    add_sim_distributor,
    configure,
    http,
    inbox_rows,
    lead_ids,
    leadgen_body,
    live_receiver,
    signed_headers,
    spy_factory,
    world,
)

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
    result = inbox.process_inbox(wh, key, factory)
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
    assert inbox.process_inbox(wh, key, factory).selected == 0
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
    result = inbox.process_inbox(wh, key, factory)
    assert requested == [kept]
    assert result.deleted == 1 and result.stored == 1
    rows = inbox_rows(wh)
    assert (rows[early]["status"], rows[late]["status"], rows[kept]["status"]) == ("deleted", "deleted", "processed")
    assert lead_ids(wh) == {kept}


def test_app_dashboard_test_payload_fails_with_meta_message_and_is_not_retried(world, monkeypatch, http) -> None:
    wh, receiver, sim, manifest = world
    key = add_sim_distributor(wh, monkeypatch, manifest, extra_pages=("444444444444",))
    resp = http.post(receiver.webhook_url, data=SAMPLE_DASHBOARD,
                     headers=signed_headers(SAMPLE_DASHBOARD, manifest["app_secret"]))
    assert resp.status_code == 200 and resp.json()["unrouted"] == 0

    factory, requested = spy_factory(sim.base_url)
    result = inbox.process_inbox(wh, key, factory)
    assert (result.fetched, result.failed, result.retrying) == (0, 1, 0)
    row = inbox_rows(wh)["444444444444"]
    assert row["status"] == "failed" and row["processed_at"] is not None
    assert "100/33" in row["error"] and "444444444444" in row["error"] and "does not exist" in row["error"]
    # not retried: the next rounds find nothing to do
    for _ in range(3):
        assert inbox.process_inbox(wh, key, factory).selected == 0
    assert requested == ["444444444444"]
    assert inbox.summary(wh, "failed")["recent_errors"][0]["leadgen_id"] == "444444444444"


def test_invalid_token_keeps_rows_pending_with_what_to_do(world, monkeypatch) -> None:
    wh, _receiver, sim, manifest = world
    key = add_sim_distributor(wh, monkeypatch, manifest)
    sim.advance(leads=2)
    assert sim.flush_webhooks(30)

    def bad_factory(token: str):
        from leads_pipeline.lib.graph import GraphClient

        return GraphClient("EAAnotavalidtoken0000000000000", base_url=sim.base_url, max_retries=0)

    result = inbox.process_inbox(wh, key, bad_factory, max_attempts=3)
    assert result.fatal and "token" in result.fatal.lower()
    assert "EAAnotavalidtoken" not in result.fatal
    rows = [r for r in inbox_rows(wh).values() if r["distributor"] == key]
    assert {r["status"] for r in rows} == {"pending"}
    assert all(r["error"].startswith("attempt 1/3 failed: ") for r in rows)


# ----------------------------------------------------------------------------------------------------------------------
# Outcomes with a scripted Graph client (no simulator needed)
# ----------------------------------------------------------------------------------------------------------------------


class ScriptedClient:
    """Stands in for GraphClient: a page token (no /me/accounts), answers from ``script`` per lead id."""

    def __init__(self, script: dict, calls: list):
        self.script = script
        self.calls = calls
        self.request_count = 0

    def me_accounts(self):
        self.request_count += 1
        raise GraphError("(#100) Tried accessing nonexisting field (accounts) on node type (Page)", code=100)

    def with_token(self, token: str):
        return self

    def get_leads_batch(self, ids):
        ids = list(ids)
        self.calls.append(ids)
        self.request_count += 1
        out = {}
        for i in ids:
            answer = self.script[i]
            out[i] = answer() if callable(answer) else answer
        return out

    def close(self):
        pass


def _lead(lead_id: str, email: str | None = "ayse@example.com") -> dict:
    fields = [{"name": "full_name", "values": ["Ayşe Yılmaz"]}]
    if email:
        fields.append({"name": "email", "values": [email]})
    return {"id": lead_id, "created_time": "2026-06-01T10:00:00+0000", "form_id": "900", "field_data": fields}


@pytest.fixture
def routed(warehouse, monkeypatch):
    from leads_pipeline.lib.distributors import registry as distributors
    from leads_pipeline.lib.security import generate_key

    configure(monkeypatch, secret_key=generate_key())
    d = distributors.add(warehouse, "Scripted", "EAAscripted000000000000000000", page_ids=["111"])
    return warehouse, d.key


def _store(wh, *ids: str) -> None:
    inbox.store_changes(wh, [inbox.Change(leadgen_id=i, page_id="111", form_id="900") for i in ids])


def test_transient_failures_retry_then_fail_after_the_attempt_limit(routed) -> None:
    wh, key = routed
    _store(wh, "1", "2")
    calls: list = []
    script = {"1": _lead("1"), "2": TransientGraphError("Meta timed out on this batch item (null)", attempts=3)}
    factory = lambda token: ScriptedClient(script, calls)  # noqa: E731
    first = inbox.process_inbox(wh, key, factory, max_attempts=3)
    assert (first.stored, first.retrying, first.failed) == (1, 1, 0)
    row = inbox_rows(wh)["2"]
    assert row["status"] == "pending" and row["error"].startswith("attempt 1/3 failed: ")
    assert inbox.pending_by_distributor(wh) == {key: 1}
    second = inbox.process_inbox(wh, key, factory, max_attempts=3)
    assert second.retrying == 1 and inbox_rows(wh)["2"]["error"].startswith("attempt 2/3 failed: ")
    third = inbox.process_inbox(wh, key, factory, max_attempts=3)
    assert third.failed == 1
    row = inbox_rows(wh)["2"]
    assert row["status"] == "failed" and row["error"].startswith("gave up after 3 attempts: ")
    assert inbox.process_inbox(wh, key, factory, max_attempts=3).selected == 0
    assert calls == [["1", "2"], ["2"], ["2"]]


def test_transient_then_success(routed) -> None:
    wh, key = routed
    _store(wh, "5")
    answers = iter([TransientGraphError("HTTP 503"), _lead("5")])
    calls: list = []
    factory = lambda token: ScriptedClient({"5": lambda: next(answers)}, calls)  # noqa: E731
    assert inbox.process_inbox(wh, key, factory).retrying == 1
    assert inbox.process_inbox(wh, key, factory).stored == 1
    row = inbox_rows(wh)["5"]
    assert (row["status"], row["error"]) == ("processed", None)


def test_a_malformed_lead_is_rejected_with_its_reason(routed) -> None:
    wh, key = routed
    _store(wh, "7", "8")
    calls: list = []
    script = {"7": _lead("7", email="not-an-email"), "8": _lead("8")}
    result = inbox.process_inbox(wh, key, lambda token: ScriptedClient(script, calls))
    assert (result.fetched, result.stored, result.rejected) == (2, 1, 1)
    rows = inbox_rows(wh)
    assert (rows["7"]["status"], rows["8"]["status"]) == ("rejected", "processed")
    with wh.transaction(read_only=True) as conn:
        assert conn.scalar("SELECT reason FROM rejected_leads WHERE meta_lead_id = '7'")


def test_whole_batch_failure_and_drain_over_several_rounds(routed) -> None:
    wh, key = routed
    ids = [str(100 + i) for i in range(25)]
    _store(wh, *ids)
    calls: list = []
    script = {i: _lead(i) for i in ids}
    result = inbox.process_all(wh, key, lambda token: ScriptedClient(script, calls), limit=10)
    assert result.stored == 25 and result.selected == 25
    assert [len(c) for c in calls] == [10, 10, 5]

    _store(wh, "999")

    class Down(ScriptedClient):
        def get_leads_batch(self, ids):
            raise TransientGraphError("connection reset", attempts=7)

    down = inbox.process_all(wh, key, lambda token: Down({}, []), limit=10)
    assert down.retrying == 1 and down.fatal is None and "connection reset" in down.errors[0]
    assert inbox_rows(wh)["999"]["status"] == "pending"
