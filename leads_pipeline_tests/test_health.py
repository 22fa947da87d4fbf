"""Health you can see, and a broken token that stops hammering Meta (issue 15), on DuckDB and PostgreSQL.

Real parts only: the Graph API simulator over HTTP (an invalid token answers 190/467) or the scripted fake Graph server
(a permission Meta refuses, then grants), the one sync path, a local SMTP server (aiosmtpd) receiving the failure
notice and the speed-to-lead digest, a Dagster instance planning the schedule, the console in-process and the CLI.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest
from click.testing import CliRunner

from leads_pipeline.defs.ingestion.planning import plan_due
from leads_pipeline.defs.quality.checks import (
    distributors_sync_health,
    leads_speed_to_lead,
)
from leads_pipeline.defs.resources import WarehouseResource
from leads_pipeline.lib.crm.notifications import send_pending
from leads_pipeline.lib.distributors import health, speed_to_lead
from leads_pipeline.lib.distributors import registry as distributors
from leads_pipeline.lib.graph import GraphClient
from leads_pipeline.lib.ingest.check import test_connection as check_connection
from leads_pipeline.lib.ingest.sync import sync_distributor
from leads_pipeline.lib.security import generate_key
from leads_pipeline.settings import get_settings
from leads_pipeline_tests.graph_fixtures import error, graph, ok  # noqa: F401 - `graph` is a fixture
from leads_pipeline_tests.pipeline_fixtures import make_sandbox
from leads_pipeline_tests.test_notifications import settings_for, smtp_server  # noqa: F401 - a fixture

BAD_TOKEN = "EAAbrokenTOKENforTESTS0123456789abcdef"
V = "/v25.0"
PAGE, FORM, FORM2 = "111111111111111", "222222222222221", "222222222222222"


def q(wh, sql, params=None):
    with wh.transaction(read_only=True) as conn:
        return conn.query(sql, params)


def notices(wh, kind):
    return q(wh, "SELECT meta_lead_id, recipient, subject, body, status FROM notification_outbox WHERE kind = ? "
                 "ORDER BY id", [kind])


# ----------------------------------------------------------------------------------------------------------------------
# Back-off of a broken token (simulator)
# ----------------------------------------------------------------------------------------------------------------------


def test_a_broken_token_backs_off_pauses_notifies_once_and_a_new_token_resumes(
        warehouse_url, simulator_factory, monkeypatch, smtp_server):  # noqa: F811 - the fixture
    controller, inbox = smtp_server
    sim = simulator_factory()
    box = make_sandbox(monkeypatch, sim, warehouse_url)
    wh, (key, other) = box.wh, box.keys
    good_token = sim.manifest()["pages"][0]["access_token"]
    distributors.update(wh, key, token=BAD_TOKEN, notify_email="ops@msh.example")

    first = sync_distributor(wh, key, trigger="schedule")
    at = datetime.now(UTC)
    assert first.status == "failed" and "access token is invalid" in first.message
    assert f"Scheduled syncs of {key} back off: next try at" in first.message
    h = health.summary(wh, key)
    assert (h.state, h.failures) == ("backing_off", 1) and "generate a new" in h.last_error
    assert timedelta(minutes=14) < h.retry_at - at <= timedelta(minutes=15)
    assert health.held_back(wh, [key, other], at) == {key: f"backing off until {h.retry_at:%Y-%m-%d %H:%M} UTC"}
    assert health.held_back(wh, [key, other], at + timedelta(minutes=16)) == {}

    # The schedule leaves it out (the due-sync plan, on a Dagster instance), the healthy one stays in.
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("distributors", [key, other])
        plan = plan_due(instance, wh, datetime.now(UTC) + timedelta(minutes=6))
    assert key in plan.held and key not in plan.due and other in plan.due

    # Each failure in a row waits longer; the fifth pauses scheduled syncs.
    waits = [h.retry_at - at]
    for _ in range(3):
        sync_distributor(wh, key, trigger="schedule")
        at = datetime.now(UTC)
        waits.append(health.summary(wh, key).retry_at - at)
    assert [round(w / timedelta(minutes=1)) for w in waits] == [15, 60, 240, 720]
    fifth = sync_distributor(wh, key, trigger="schedule")
    assert "are paused after 5 token/permission failures" in fifth.message
    h = health.summary(wh, key)
    assert (h.state, h.next_sync, h.next_sync_at, h.retry_at) == ("paused", "paused", None, None)
    assert h.status.startswith("Paused after 5 token/permission failures")
    assert health.held_back(wh, [key], datetime.now(UTC) + timedelta(days=30)) == {key: "paused"}
    assert q(wh, "SELECT message FROM sync_runs WHERE sync_id = ?", [fifth.sync_id])[0]["message"] == fifth.message

    # One notice for the whole episode, sent once; no token in it.
    [queued] = notices(wh, "sync_failure")
    assert queued["recipient"] == "ops@msh.example" and queued["meta_lead_id"].startswith(f"sync-failure:{key}:")
    sent = send_pending(wh, settings_for(controller.port), digest=True)  # a digest never swallows a notice
    assert sent.sent == 1 and sent.emails == 1 and send_pending(wh, settings_for(controller.port)).emails == 0
    [(to, message)] = inbox.messages
    body = message.get_content()
    assert to == ["ops@msh.example"] and "the token needs attention" in message["Subject"] and "--token-stdin" in body
    assert BAD_TOKEN not in body and good_token not in body and BAD_TOKEN not in message["Subject"]

    # A new token ends the episode at once (scheduled again); the next sync succeeds and clears it.
    distributors.update(wh, key, token=good_token)
    assert health.held_back(wh, [key], datetime.now(UTC)) == {}
    assert health.summary(wh, key).state == "failing"  # the last run failed; no back-off any more
    ok_run = sync_distributor(wh, key, trigger="schedule")
    assert ok_run.status == "success" and "back off" not in ok_run.message
    h = health.summary(wh, key)
    assert (h.state, h.failures, h.last_run_status) == ("ok", 0, "success") and h.last_success_at is not None
    assert "access token is invalid" in h.last_error  # the last error stays readable, with its time
    [row] = q(wh, "SELECT failures, cleared_by, paused_at FROM distributor_health WHERE distributor = ?", [key])
    assert (row["failures"], row["cleared_by"], row["paused_at"]) == (0, "sync (success)", None)

    # A later failure is a new episode: a new notice.
    distributors.update(wh, key, token=BAD_TOKEN)
    sync_distributor(wh, key)
    assert len(notices(wh, "sync_failure")) == 2


# ----------------------------------------------------------------------------------------------------------------------
# Permissions (scripted Graph API): refused for every form backs off; a successful test resumes
# ----------------------------------------------------------------------------------------------------------------------


@pytest.fixture
def wh(warehouse, monkeypatch):
    monkeypatch.setenv("LEADS_SECRET_KEY", generate_key())
    get_settings.cache_clear()
    return warehouse


@pytest.fixture
def factory(graph):  # noqa: F811 - the fixture
    def make(token: str) -> GraphClient:
        return GraphClient(token, base_url=graph.url, timeout=10, max_retries=2, backoff_base=0.01,
                           backoff_max=0.05, max_throttle_wait=30)

    return make


def forms_world(graph, denied: set[str]):  # noqa: F811
    """A Page read with its own token, two forms; Meta refuses the forms in ``denied`` for a missing permission."""
    def leads_of(form):
        def answer(rec):
            if form in denied:
                return error(10, None, "(#10) Requires leads_retrieval permission to manage the object")
            return ok({"data": [{"id": f"90000000000000{form[-1]}", "created_time": "2026-06-01T12:00:00+0000",
                                 "field_data": [{"name": "email", "values": [f"p{form[-1]}@example.com"]}]}],
                       "paging": {"cursors": {"before": "b", "after": "a"}}})
        return answer

    graph.handle("GET", f"{V}/me/accounts", lambda rec: error(
        100, None, "(#100) Tried accessing nonexisting field (accounts) on node type (Page)",
        type="GraphMethodException"))
    graph.handle("GET", f"{V}/{PAGE}/leadgen_forms", lambda rec: ok({"data": [
        {"id": f, "name": f"Form {f[-1]}", "status": "ACTIVE", "locale": "en_US"} for f in (FORM, FORM2)]}))
    graph.handle("GET", f"{V}/debug_token", lambda rec: ok({"data": {"is_valid": True, "expires_at": 0}}))
    for form in (FORM, FORM2):
        graph.handle("GET", f"{V}/{form}/leads", leads_of(form))


def test_a_permission_refused_for_every_form_backs_off_and_a_successful_test_resumes(wh, graph, factory):  # noqa: F811
    denied = {FORM, FORM2}
    forms_world(graph, denied)
    d = distributors.add(wh, "Alpha", "page-token-alpha", page_ids=[PAGE], notify_email="ops@alpha.example")

    result = sync_distributor(wh, d.key, client_factory=factory)
    assert result.fetched == 0 and "back off" in result.message
    h = health.summary(wh, d.key)
    assert h.state == "backing_off" and "leads_retrieval" in h.last_error
    assert len(notices(wh, "sync_failure")) == 1
    refused = check_connection(wh, d.key, client_factory=factory)
    assert refused["success"] is False and health.summary(wh, d.key).state == "backing_off"

    denied.clear()  # the permission is granted on Meta's side; the token stays the same
    tested = check_connection(wh, d.key, client_factory=factory)
    assert tested["success"] is True and "Scheduled syncs resume" in tested["message"]
    assert health.summary(wh, d.key).failures == 0 and health.held_back(wh, [d.key]) == {}
    [row] = q(wh, "SELECT cleared_by FROM distributor_health WHERE distributor = ?", [d.key])
    assert row["cleared_by"] == "connection test"
    assert check_connection(wh, d.key, client_factory=factory)["message"].count("resume") == 0


def test_one_refused_form_is_that_forms_failure_not_a_back_off(wh, graph, factory):  # noqa: F811
    forms_world(graph, {FORM2})
    d = distributors.add(wh, "Alpha", "page-token-alpha", page_ids=[PAGE])
    result = sync_distributor(wh, d.key, client_factory=factory)
    assert result.status == "partial" and result.stored == 1 and "back off" not in result.message
    h = health.summary(wh, d.key)
    assert (h.state, h.failures) == ("partial", 0) and "leads_retrieval" in h.last_error
    assert health.held_back(wh, [d.key]) == {} and q(wh, "SELECT * FROM distributor_health") == []


# ----------------------------------------------------------------------------------------------------------------------
# What the operator sees: summary, CLI, console, Dagster
# ----------------------------------------------------------------------------------------------------------------------


def test_health_summary_names_last_success_error_recent_leads_and_next_sync(wh):
    now = datetime.now(UTC)
    a = distributors.add(wh, "Alpha", "tok-alpha-1234567890", page_ids=["1"], interval=10)
    b = distributors.add(wh, "Beta", "tok-beta-1234567890", page_ids=["2"])
    distributors.add(wh, "Gamma", "tok-gamma-1234567890", page_ids=["3"], enabled=False)
    with wh.transaction() as conn:
        run = ("INSERT INTO sync_runs (sync_id, distributor, started_at, finished_at, success, status, message, "
               "failures) VALUES (?, ?, ?, ?, ?, ?, ?, ?)")
        conn.execute(run, ["r1", a.key, now - timedelta(hours=2), now - timedelta(hours=2), True, "success", "ok",
                           "[]"])
        conn.execute(run, ["r2", a.key, now - timedelta(minutes=4), now - timedelta(minutes=3), False, "partial",
                           "Partial sync: 3 new of 3 fetched leads stored; 1 failed (form 77)",
                           json.dumps([{"form_id": "77", "error": "nope", "what_to_do": "Check form 77."}])])
        for i, age in enumerate((timedelta(hours=1), timedelta(hours=23), timedelta(hours=25))):
            conn.execute("INSERT INTO leads (meta_lead_id, distributor, created_time, first_seen_at, updated_at) "
                         "VALUES (?, ?, ?, ?, ?)", [f"70000000000000{i}", a.key, now - age, now, now])
    found = {h.key: h for h in health.summaries(wh, now=now)}
    assert [h.key for h in health.summaries(wh, now=now)] == ["alpha", "beta", "gamma"]
    ha = found[a.key]
    assert (ha.state, ha.leads_24h, ha.last_run_status) == ("partial", 2, "partial")
    assert ha.last_success_at == now - timedelta(hours=2)
    assert ha.last_error == "Partial sync: 3 new of 3 fetched leads stored; 1 failed (form 77) — Check form 77."
    assert ha.next_sync_at - now == timedelta(minutes=6) and ha.next_sync.startswith("in 6 min")
    assert (found[b.key].state, found[b.key].next_sync, found[b.key].last_success_at) == ("never_synced", "due now",
                                                                                           None)
    assert (found["gamma"].state, found["gamma"].next_sync_at) == ("disabled", None)
    assert health.summaries(wh, [b.key], now=now)[0].key == b.key and health.summary(wh, "nobody") is None

    # The Dagster check names the unhealthy ones (none here: partial is not failing) with the table.
    check = distributors_sync_health(dg.build_asset_check_context(), warehouse=WarehouseResource(url=wh.url))
    assert check.passed and "| alpha | partial |" in check.metadata["distributors"].value


def cli(*args, input=None):
    from leads_pipeline.commands.distributors import distributors as group

    return CliRunner().invoke(group, list(args), input=input)


def test_cli_list_shows_health_and_update_sets_the_speed_to_lead_target(wh, monkeypatch):
    monkeypatch.setenv("LEADS_WAREHOUSE_URL", wh.url)
    get_settings.cache_clear()
    d = distributors.add(wh, "Alpha", "tok-alpha-1234567890", page_ids=["1"])
    listed = json.loads(cli("list").stdout)
    assert listed[0]["key"] == d.key and listed[0]["speed_to_lead_minutes"] == 60
    shown = listed[0]["health"]
    assert {"state", "status", "last_success_at", "last_error", "leads_24h", "next_sync", "next_sync_at"} <= set(shown)
    assert (shown["state"], shown["next_sync"], shown["leads_24h"]) == ("never_synced", "due now", 0)

    changed = cli("update", d.key, "--speed-to-lead", "15")
    assert changed.exit_code == 0, changed.output
    assert json.loads(changed.stdout)["speed_to_lead_minutes"] == 15
    assert json.loads(cli("update", d.key, "--speed-to-lead", "off").stdout)["speed_to_lead_minutes"] is None
    both = cli("update", d.key, "--interval", "7", "--speed-to-lead", "45")
    assert (json.loads(both.stdout)["interval_minutes"], json.loads(both.stdout)["speed_to_lead_minutes"]) == (7, 45)
    bad = cli("update", d.key, "--speed-to-lead", "soon")
    assert bad.exit_code == 1 and "whole minutes" in bad.output
    audit = q(wh, "SELECT after FROM audit_log WHERE action = 'distributor.speed_to_lead' ORDER BY id")
    assert [json.loads(r["after"])["speed_to_lead_minutes"] for r in audit] == [15, None, 45]


def test_console_distributors_page_shows_health_after_a_failed_sync(monkeypatch, warehouse, simulator):
    from leads_pipeline_tests.test_web_support import (
        ADMIN_PASSWORD,
        client,
        csrf_from,
        login,
        seed_world,
    )

    world = seed_world(monkeypatch, warehouse, graph_base_url=simulator.base_url)  # its token is not Meta's
    c = client(world.wh)
    login(c, "admin@example.com", ADMIN_PASSWORD)
    token = csrf_from(c.get("/console/distributors/msh").text)
    assert c.post("/console/distributors/msh/sync", data={"csrf_token": token}).status_code == 303
    page = c.get("/console/distributors").text
    assert "backing off" in page and "The access token is invalid" in page
    assert "Leads 24 h" in page and "Next sync" in page and "Last success" in page and "never" in page
    assert "1 h" in page  # the speed-to-lead target (60 min)


# ----------------------------------------------------------------------------------------------------------------------
# Speed to lead
# ----------------------------------------------------------------------------------------------------------------------


def test_overdue_leads_check_and_one_daily_digest(wh, smtp_server, monkeypatch):  # noqa: F811
    controller, inbox = smtp_server
    now = datetime.now(UTC)
    a = distributors.add(wh, "Alpha", "tok-alpha-1234567890", page_ids=["1"], notify_email="sales@alpha.example")
    b = distributors.add(wh, "Beta", "tok-beta-1234567890", page_ids=["2"])
    speed_to_lead.set_target(wh, b.key, "off")

    def lead(i, key, age, **cols):
        row = {"meta_lead_id": f"80000000000000{i}", "distributor": key, "form_id": "f1", "created_time": now - age,
               "first_seen_at": now, "updated_at": now, "status": "new", "full_name": f"Secret Name {i}",
               "email": f"secret{i}@example.com", "phone": f"+90532123456{i}", **cols}
        with wh.transaction() as conn:
            conn.execute(f"INSERT INTO leads ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                         list(row.values()))
        return row

    items = [
        lead(1, a.key, timedelta(minutes=90)),  # 30 min past the 60-minute target
        lead(2, a.key, timedelta(minutes=30)),  # within the target
        lead(3, a.key, timedelta(hours=5), status="assigned"),  # overdue, assigned
        lead(4, a.key, timedelta(hours=5), status="contacted", first_contacted_at=now - timedelta(hours=3)),
        lead(5, a.key, timedelta(hours=5), status="rejected"),
        lead(6, a.key, timedelta(days=30)),  # a backlog: overdue on the page, not in the check or the digest
        lead(7, b.key, timedelta(hours=5)),  # no target
    ]
    # The console's helper (one read of the targets) and its pure variant.
    late = health.overdue_minutes(wh, items, now=now)
    assert set(late) == {"800000000000001", "800000000000003", "800000000000006"}
    assert late["800000000000001"] == 30 and late["800000000000003"] == 240
    assert health.is_overdue({**items[0], "created_time": items[0]["created_time"].isoformat()}, 60, now=now)
    assert not health.is_overdue(items[0], None, now=now) and health.minutes_overdue(items[1], 60, now=now) is None

    check = leads_speed_to_lead(dg.build_asset_check_context(), warehouse=WarehouseResource(url=wh.url))
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
    assert check.metadata["breaches"].value == {a.key: 2} and "alpha: 2 (target 60 min" in check.description
    [row] = speed_to_lead.summary(wh, now=now)
    assert (row["leads"], row["contacted"], row["contacted_within_target"], row["open_breaches"]) == (5, 1, 0, 2)
    assert row["median_minutes_to_first_contact"] == 120.0 and row["longest_wait_minutes"] == 300

    assert speed_to_lead.enqueue_digests(wh, now=now, console_url="https://crm.example/console") == 1
    assert speed_to_lead.enqueue_digests(wh, now=now) == 0  # once per distributor and day
    assert send_pending(wh, settings_for(controller.port)).emails == 1
    [(to, message)] = inbox.messages
    body = message.get_content()
    assert to == ["sales@alpha.example"] and "2 leads waiting past 1 h for Alpha" in message["Subject"]
    assert "https://crm.example/console/leads/800000000000003" in body and "waiting 5 h" in body
    assert body.index("800000000000003") < body.index("800000000000001")  # longest wait first
    assert "800000000000006" not in body and "Secret Name" not in body and "secret" not in body.lower()
    # A lead contacted now is no breach any more.
    with wh.transaction() as conn:
        conn.execute("UPDATE leads SET status = 'contacted', first_contacted_at = ? WHERE meta_lead_id IN "
                     "('800000000000001', '800000000000003')", [now])
    assert leads_speed_to_lead(dg.build_asset_check_context(), warehouse=WarehouseResource(url=wh.url)).passed
