"""Issue 10, webhooks: routed by form to its owner, kept until an owner exists, retried while Meta cannot serve the
lead yet (100/33), reopened by Meta's re-delivery, and every processing round a ``sync_runs`` row of its own.

Two worlds, real HTTP both: the simulator (a Page with two forms, a real sync's discovery) for the routing, and a
scripted Graph server (:class:`LeadServer`) that answers 100/33 for a lead's first reads, for the retries. Time is
driven through ``process_inbox(now=…)``, never slept.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest

from leads_pipeline.lib.distributors import ownership
from leads_pipeline.lib.distributors import registry as distributors
from leads_pipeline.lib.ingest.sync import sync_distributor
from leads_pipeline.lib.security import generate_key
from leads_pipeline.lib.webhooks import inbox
from leads_pipeline.lib.webhooks.delivery import Change
from leads_pipeline.lib.webhooks.process import (
    MAX_ATTEMPTS,
    RETRY_HORIZON,
    process_inbox,
)
from leads_pipeline.simulator import Scenario, SimulatorServer
from leads_pipeline_tests.test_webhook_support import (  # noqa: F401 - fixtures
    FORM,
    PAGE,
    configure,
    http,
    inbox_rows,
    lead_server,
    leadgen_body,
    live_receiver,
    signed_headers,
    spy_factory,
)

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)


def _leads_by_id(wh) -> dict[str, str]:
    with wh.transaction(read_only=True) as conn:
        return {r["meta_lead_id"]: r["distributor"] for r in conn.query("SELECT meta_lead_id, distributor FROM leads")}


# ----------------------------------------------------------------------------------------------------------------------
# One Page, two forms, two distributors (the simulator)
# ----------------------------------------------------------------------------------------------------------------------

TWO_FORMS = Scenario(seed=5, pages=1, forms_per_page=2, leads_per_form=3, extra_leads=60, malformed_rate=0.0,
                     invalid_contact_rate=0.0, same_person_rate=0.0)


@pytest.fixture
def page_world(warehouse, live_receiver, monkeypatch):
    """(warehouse, receiver, simulator, manifest, F1, F2, factory): one Page carrying forms F1 and F2."""
    receiver = live_receiver(warehouse)
    sim = SimulatorServer(TWO_FORMS, webhook_url=receiver.webhook_url,
                          webhook_options={"duplicate_rate": 0.0, "seed": 1, "backoff_initial": 0.01})
    sim.start()
    manifest = sim.manifest()
    configure(monkeypatch, app_secret=manifest["app_secret"], graph_base_url=sim.base_url, secret_key=generate_key())
    (page,) = manifest["pages"]
    f1, f2 = (f["id"] for f in page["forms"])
    factory, _requested = spy_factory(sim.base_url, manifest["app_secret"])
    yield warehouse, receiver, sim, manifest, f1, f2, factory
    sim.stop()


def _new_leads(wh, sim, forms: set[str], want: int = 2) -> dict[str, str]:
    """Let the simulator's people submit leads until at least ``want`` arrived (by webhook) on each form of
    ``forms``; returns {lead id: form id} of every new lead."""
    new: dict[str, str] = {}
    for _ in range(20):
        ids = sim.advance(leads=4)
        assert sim.flush_webhooks(30)
        rows = inbox_rows(wh)
        new.update({i: rows[i]["form_id"] for i in ids})
        counts = Counter(new.values())
        if all(counts[f] >= want for f in forms):
            return new
    raise AssertionError(f"the simulator sent no leads for {forms}")


def test_a_webhook_for_f2_becomes_bs_lead_when_a_claims_f1_and_its_discovery_saw_f2(page_world) -> None:
    wh, _receiver, sim, manifest, f1, f2, factory = page_world
    a = distributors.add(wh, "Clinic A", manifest["user_token"], form_ids=[f1])
    b = distributors.add(wh, "Clinic B", manifest["user_token"], form_ids=[f2])
    first = sync_distributor(wh, a.key, client_factory=factory)  # A's discovery lists F1 and F2 of the Page
    assert first.success, first.message
    with wh.transaction(read_only=True) as conn:
        assert set(ownership.owned_forms(conn, a.key)) == {f1}

    new = _new_leads(wh, sim, {f1, f2})
    rows = inbox_rows(wh)
    assert {rows[i]["distributor"] for i, f in new.items() if f == f2} == {b.key}
    assert {rows[i]["distributor"] for i, f in new.items() if f == f1} == {a.key}

    assert process_inbox(wh, a.key, factory).selected == sum(1 for f in new.values() if f == f1)
    assert process_inbox(wh, b.key, factory).stored == sum(1 for f in new.values() if f == f2)
    owners = _leads_by_id(wh)
    assert {owners[i] for i, f in new.items() if f == f2} == {b.key}  # never A's
    assert {owners[i] for i, f in new.items() if f == f1} == {a.key}
    assert {r["status"] for r in inbox_rows(wh).values()} == {"processed"}


def test_f2_goes_to_b_when_a_has_no_ids_and_discovered_f2_before_b_claimed_it(page_world) -> None:
    wh, _receiver, sim, manifest, f1, f2, factory = page_world
    a = distributors.add(wh, "Clinic A", manifest["user_token"])  # no --page-id, no --form-id
    assert sync_distributor(wh, a.key, client_factory=factory).success  # discovery takes F1 and F2 (nobody's yet)
    with wh.transaction(read_only=True) as conn:
        assert set(ownership.owned_forms(conn, a.key)) == {f1, f2}
    b = distributors.add(wh, "Clinic B", manifest["user_token"], form_ids=[f2])  # takes F2 over
    with wh.transaction(read_only=True) as conn:
        assert set(ownership.owned_forms(conn, a.key)) == {f1}

    new = _new_leads(wh, sim, {f1, f2})
    rows = inbox_rows(wh)
    assert {rows[i]["distributor"] for i, f in new.items() if f == f2} == {b.key}
    process_inbox(wh, b.key, factory)
    again = sync_distributor(wh, a.key, client_factory=factory)  # A's discovery never takes F2 back
    assert again.success, again.message
    process_inbox(wh, a.key, factory)
    owners = _leads_by_id(wh)
    assert {owners[i] for i, f in new.items() if f == f2} == {b.key}
    assert {owners[i] for i, f in new.items() if f == f1} == {a.key}
    with wh.transaction(read_only=True) as conn:
        assert set(ownership.owned_forms(conn, a.key)) == {f1}


def test_a_change_for_a_form_nobody_owns_waits_and_is_routed_when_a_distributor_claims_it(page_world, http) -> None:
    wh, receiver, _sim, manifest, f1, f2, factory = page_world
    a = distributors.add(wh, "Clinic A", manifest["user_token"], form_ids=[f1])
    page_id = manifest["pages"][0]["id"]
    f2_lead = next(f for f in manifest["pages"][0]["forms"] if f["id"] == f2)["valid_lead_ids"][0]
    f2_other = "999000000000001"  # a lead of a form created after the last sync (Meta cannot serve it here)
    body = leadgen_body([{"leadgen_id": f2_lead, "page_id": page_id, "form_id": f2}])
    resp = http.post(receiver.webhook_url, data=body, headers=signed_headers(body, manifest["app_secret"]))
    assert resp.status_code == 200 and resp.json()["unrouted"] == 1
    assert inbox_rows(wh)[f2_lead]["status"] == "unrouted"  # not A's, although A has the Page's other form
    assert process_inbox(wh, a.key, factory).selected == 0
    assert inbox.summary(wh)["unrouted"][0] | {"last_received_at": None} == {
        "page_id": page_id, "form_id": f2, "rows": 1, "last_received_at": None}

    b = distributors.add(wh, "Clinic B", manifest["user_token"], form_ids=[f2])
    assert (inbox_rows(wh)[f2_lead]["status"], inbox_rows(wh)[f2_lead]["distributor"]) == ("pending", b.key)
    assert process_inbox(wh, b.key, factory).stored == 1
    assert _leads_by_id(wh) == {f2_lead: b.key}

    # A claim made inside another transaction, without the registry's re-routing call (a sync's discovery):
    # the next processing round routes the waiting change itself — nothing waits for an owner that exists.
    inbox.store_changes(wh, [Change(leadgen_id=f2_other, page_id=page_id, form_id="799")])
    assert inbox_rows(wh)[f2_other]["status"] == "unrouted"
    c = distributors.add(wh, "Clinic C", manifest["user_token"])
    with wh.transaction() as conn:
        assert ownership.claim_discovered(conn, c.key, [{"id": "799", "name": "New form", "page_id": page_id,
                                                          "status": "ACTIVE", "locale": "en_GB", "leads_count": 1,
                                                          "expired_leads_count": 0}]) == {"799"}
    assert inbox_rows(wh)[f2_other]["status"] == "unrouted"
    assert process_inbox(wh, c.key, factory).selected == 1
    assert inbox_rows(wh)[f2_other]["distributor"] == c.key


# ----------------------------------------------------------------------------------------------------------------------
# Leads Meta cannot serve yet (a scripted Graph server)
# ----------------------------------------------------------------------------------------------------------------------

def _announce(wh, *lead_ids: str) -> None:
    inbox.store_changes(wh, [Change(leadgen_id=i, page_id=PAGE, form_id=FORM, created_time=1780308000)
                             for i in lead_ids])


def _run_row(wh, sync_id: str) -> dict:
    with wh.transaction(read_only=True) as conn:
        return conn.query_one("SELECT * FROM sync_runs WHERE sync_id = ?", [sync_id])


def test_a_lead_meta_cannot_serve_yet_is_retried_on_schedule_until_it_is_readable(lead_server) -> None:
    wh, server, key, factory = lead_server
    late = server.lead("800000000000001")
    server.missing[late] = 2  # 100/33 for the first two reads, as right after the event
    _announce(wh, late)

    first = process_inbox(wh, key, factory, now=T0)
    assert (first.selected, first.retrying, first.failed, first.stored) == (1, 1, 0, 0)
    row = inbox_rows(wh)[late]
    assert (row["status"], row["attempts"]) == ("pending", 1)
    assert row["next_attempt_at"] == T0 + timedelta(minutes=1) and "100/33" in row["error"]
    assert row["sync_id"] == first.sync_id
    assert inbox.overview(wh, now=T0).pending == {}  # not due: the sensor asks for no run
    assert inbox.overview(wh, now=T0 + timedelta(minutes=1)).pending == {key: 1}

    reads = server.reads[late]
    assert process_inbox(wh, key, factory, now=T0 + timedelta(seconds=59)).selected == 0  # next_attempt_at honoured
    assert server.reads[late] == reads
    second = process_inbox(wh, key, factory, now=T0 + timedelta(minutes=1))
    assert second.retrying == 1
    row = inbox_rows(wh)[late]
    assert row["attempts"] == 2 and row["next_attempt_at"] == T0 + timedelta(minutes=3)
    text = inbox.summary(wh)
    assert text["by_distributor"][0]["next_attempt_at"] == (T0 + timedelta(minutes=3)).isoformat()

    third = process_inbox(wh, key, factory, now=T0 + timedelta(minutes=3))
    assert (third.stored, third.retrying) == (1, 0)
    row = inbox_rows(wh)[late]
    assert (row["status"], row["error"], row["next_attempt_at"]) == ("processed", None, None)
    assert _leads_by_id(wh) == {late: key} and server.reads[late] == 3
    # each round had a sync run of its own, trigger 'webhook', whose counts are the rows it handled
    runs = [first.sync_id, second.sync_id, third.sync_id]
    assert len(set(runs)) == 3
    for sync_id, stored in zip(runs, (0, 0, 1)):
        run = _run_row(wh, sync_id)
        assert run["trigger"] == "webhook" and run["distributor"] == key and run["stored"] == stored
    assert row["sync_id"] == third.sync_id


def test_after_the_retry_horizon_it_is_failed_handed_to_the_sweep_and_a_redelivery_reopens_it(lead_server) -> None:
    wh, server, key, factory = lead_server
    gone = server.lead("800000000000002")
    server.missing[gone] = -1
    _announce(wh, gone)
    now, rounds = T0, 0
    while inbox_rows(wh)[gone]["status"] == "pending":
        process_inbox(wh, key, factory, now=now)
        rounds += 1
        row = inbox_rows(wh)[gone]
        now = row["next_attempt_at"] or now
    assert rounds == MAX_ATTEMPTS == server.reads[gone]
    assert now - T0 >= RETRY_HORIZON - timedelta(minutes=5)  # retried for about 12 hours
    row = inbox_rows(wh)[gone]
    assert row["status"] == "failed" and row["attempts"] == MAX_ATTEMPTS and row["processed_at"] is not None
    assert "100/33" in row["error"] and "handed to the scheduled sync" in row["error"]
    assert process_inbox(wh, key, factory, now=now + timedelta(days=1)).selected == 0
    assert inbox.summary(wh, "failed")["recent_errors"][0]["leadgen_id"] == gone

    # Meta delivers it again (it retries for 36 h): reopened, a fresh schedule, and now it is readable
    server.missing[gone] = 0
    _announce(wh, gone)
    row = inbox_rows(wh)[gone]
    assert (row["status"], row["attempts"], row["next_attempt_at"], row["error"], row["deliveries"]) == (
        "pending", 0, None, None, 2)
    done = process_inbox(wh, key, factory, now=now + timedelta(days=1))
    assert done.stored == 1 and inbox_rows(wh)[gone]["status"] == "processed"
    # a re-delivery of a processed change changes nothing and fetches nothing
    reads = server.reads[gone]
    _announce(wh, gone)
    row = inbox_rows(wh)[gone]
    assert (row["status"], row["deliveries"]) == ("processed", 3)
    assert process_inbox(wh, key, factory, now=now + timedelta(days=2)).selected == 0
    assert server.reads[gone] == reads


def test_each_round_is_a_sync_run_whose_counts_equal_the_rows(lead_server) -> None:
    wh, server, key, factory = lead_server
    ready = [server.lead(f"81000000000000{i}") for i in range(4)]
    late = server.lead("819000000000000")
    server.missing[late] = 1
    _announce(wh, *ready, late)
    result = process_inbox(wh, key, factory, now=T0)
    assert (result.selected, result.stored, result.retrying) == (5, 4, 1)
    run = _run_row(wh, result.sync_id)
    with wh.transaction(read_only=True) as conn:
        in_leads = conn.scalar("SELECT count(*) FROM leads WHERE sync_id = ?", [result.sync_id])
        processed = conn.scalar("SELECT count(*) FROM webhook_inbox WHERE sync_id = ? AND status = 'processed'",
                                [result.sync_id])
        handled = conn.scalar("SELECT count(*) FROM webhook_inbox WHERE sync_id = ?", [result.sync_id])
    assert run["trigger"] == "webhook" and run["status"] in ("success", "partial")
    assert run["stored"] == in_leads == processed == 4 and run["fetched"] == 4 and handled == 5
    again = process_inbox(wh, key, factory, now=T0 + timedelta(minutes=1))
    assert again.sync_id != result.sync_id and again.stored == 1
    assert _run_row(wh, again.sync_id)["stored"] == 1
