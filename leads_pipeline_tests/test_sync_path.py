"""The one sync path (``sync_distributor``) against a scripted Graph API on loopback, on DuckDB and PostgreSQL.

Each test is a bug of issue 10: a lead id another distributor holds is named, never dropped; every run's counts
are the rows it describes; a Dagster run id is stored; an unreadable Page or form stops only itself; a throttled
``/me/accounts`` is not a Page token; concurrent landings in opposite orders do not deadlock.
"""

from __future__ import annotations

import json
import threading

import pytest

from leads_pipeline.lib.distributors import ownership
from leads_pipeline.lib.distributors import registry as distributors
from leads_pipeline.lib.graph import GraphClient
from leads_pipeline.lib.ingest import land as landing
from leads_pipeline.lib.ingest.sync import sync_distributor
from leads_pipeline.lib.security import generate_key
from leads_pipeline.settings import get_settings
from leads_pipeline_tests.graph_fixtures import (  # noqa: F401
    FakeGraph,
    Reply,
    buc_headers,
    error,
    graph,
    ok,
)

V = "/v25.0"
PAGE, PAGE2 = "111111111111111", "111111111111112"
FORM, FORM2, FORM3 = "222222222222221", "222222222222222", "222222222222223"
USER_TOKEN = "user-token-for-tests"
PAGE_TOKENS = {PAGE: "page-token-one", PAGE2: "page-token-two"}
NOT_A_USER = error(100, None, "(#100) Tried accessing nonexisting field (accounts) on node type (Page)",
                   type="GraphMethodException")


def lead(i: int, form: str = FORM) -> dict:
    return {"id": str(900000000000000 + i), "created_time": f"2026-06-01T12:{i // 60 % 60:02d}:{i % 60:02d}+0000",
            "form_id": form, "field_data": [{"name": "full_name", "values": ["Test Person"]},
                                             {"name": "email", "values": [f"person{i}@example.com"]}]}


def page_of(leads: list[dict], next_url: str | None = None) -> dict:
    paging: dict = {"cursors": {"before": "b", "after": "a"}}
    if next_url:
        paging["next"] = next_url
    return {"data": leads, "paging": paging}


def forms_of(*form_ids: str, **counts: int) -> dict:
    return {"data": [{"id": f, "name": f"Form {f[-1]}", "status": "ACTIVE", "locale": "en_US",
                      "leads_count": counts.get("leads_count", 0),
                      "expired_leads_count": counts.get("expired", 0)} for f in form_ids]}


def always(graph: FakeGraph, method: str, path: str, reply: Reply | None = None, fn=None) -> None:
    graph.handle(method, path, fn or (lambda rec: reply))


def bearer(rec) -> str:
    return rec.headers.get("authorization", "").removeprefix("Bearer ")


@pytest.fixture
def wh(warehouse, monkeypatch):
    monkeypatch.setenv("LEADS_SECRET_KEY", generate_key())
    get_settings.cache_clear()
    return warehouse


@pytest.fixture
def factory(graph):
    def make(token: str) -> GraphClient:
        return GraphClient(token, base_url=graph.url, timeout=10, max_retries=3, backoff_base=0.01,
                           backoff_max=0.05, max_throttle_wait=30)

    return make


def q(wh, sql, params=None):
    with wh.transaction(read_only=True) as conn:
        return conn.query(sql, params)


def attributed(wh) -> dict:
    """Per finished run: (stored + recovered in sync_runs, rows of leads naming the run)."""
    runs = q(wh, "SELECT sync_id, stored, recovered FROM sync_runs WHERE finished_at IS NOT NULL")
    return {r["sync_id"]: (int(r["stored"]) + int(r["recovered"] or 0),
                           int(q(wh, "SELECT count(*) AS n FROM leads WHERE sync_id = ?", [r["sync_id"]])[0]["n"]))
            for r in runs}


def page_token_world(graph: FakeGraph, forms: dict[str, list[dict]]) -> None:
    """One Page read with a Page token (no /me/accounts); each form one page of leads."""
    always(graph, "GET", f"{V}/me/accounts", NOT_A_USER)
    always(graph, "GET", f"{V}/{PAGE}/leadgen_forms", ok(forms_of(*forms)))
    for form_id, leads in forms.items():
        always(graph, "GET", f"{V}/{form_id}/leads", ok(page_of(leads)))


# ----------------------------------------------------------------------------------------------------------------------
# A lead id another distributor holds
# ----------------------------------------------------------------------------------------------------------------------


def test_a_form_taken_over_by_another_distributor_names_the_first_holder(wh, graph, factory):
    page_token_world(graph, {FORM: [lead(i) for i in range(3)]})
    a = distributors.add(wh, "Alpha", PAGE_TOKENS[PAGE], page_ids=[PAGE])
    first = sync_distributor(wh, a.key, client_factory=factory)
    assert first.status == "success" and first.stored == 3, first.message
    b = distributors.add(wh, "Beta", PAGE_TOKENS[PAGE], form_ids=[FORM])
    with wh.transaction() as conn:  # --form-id takes a form another distributor only discovered
        ownership.claim_explicit(conn, b.key, [FORM])
    always(graph, "GET", f"{V}/{FORM}/leads", ok(page_of([lead(i) for i in range(3)] + [lead(3)])))

    second = sync_distributor(wh, b.key, client_factory=factory)

    assert (second.fetched, second.stored, second.landed) == (4, 1, 4)
    assert second.held_elsewhere == {a.key: 3}
    notice = f"3 leads already belong to distributor '{a.key}' (form {FORM}): not stored for '{b.key}'"
    assert notice in second.errors and notice in second.message
    row = q(wh, "SELECT held_elsewhere, stored, landed, errors FROM sync_runs WHERE sync_id = ?", [second.sync_id])[0]
    assert json.loads(row["held_elsewhere"]) == {a.key: 3} and row["stored"] == 1 and row["landed"] == 4
    assert notice in json.loads(row["errors"])
    # Landed per distributor and marked processed: nothing is left for a later run to "recover".
    raw = q(wh, "SELECT count(*) AS n, count(processed_at) AS done FROM raw_leads WHERE distributor = ?", [b.key])[0]
    assert (raw["n"], raw["done"]) == (4, 4)
    owners = {r["meta_lead_id"]: r["distributor"] for r in q(wh, "SELECT meta_lead_id, distributor FROM leads")}
    assert sorted(owners.values()).count(a.key) == 3 and owners[lead(3)["id"]] == b.key
    assert all(stored == rows for stored, rows in attributed(wh).values())


# ----------------------------------------------------------------------------------------------------------------------
# Each run's counts are its own
# ----------------------------------------------------------------------------------------------------------------------


def test_a_sync_and_a_webhook_run_of_the_same_leads_each_count_their_own_rows(wh, graph, factory):
    leads = [lead(i) for i in range(6)]
    page_token_world(graph, {FORM: leads})
    webhook_done = threading.Event()

    def slow_page(rec):  # the sync's read waits until the webhook run has stored the same leads
        webhook_done.wait(30)
        return ok(page_of(leads))

    always(graph, "GET", f"{V}/{FORM}/leads", fn=slow_page)
    always(graph, "POST", f"{V}/", fn=lambda rec: ok([
        {"code": 200, "body": json.dumps(next(x for x in leads if x["id"] == i["relative_url"].split("?")[0]))}
        for i in json.loads(rec.form["batch"][0])]))
    d = distributors.add(wh, "Alpha", PAGE_TOKENS[PAGE], page_ids=[PAGE])
    results = {}
    cli = threading.Thread(target=lambda: results.setdefault("cli", sync_distributor(
        wh, d.key, trigger="cli", client_factory=factory)))
    cli.start()
    hook = sync_distributor(wh, d.key, client_factory=factory,
                            lead_ids=[(x["id"], PAGE, FORM) for x in leads])
    webhook_done.set()
    cli.join(60)
    sync = results["cli"]

    assert hook.trigger == "webhook" and hook.stored == 6 and hook.fetched == 6
    assert {o.status for o in hook.lead_outcomes.values()} == {"stored"}
    assert (sync.fetched, sync.landed, sync.stored) == (6, 0, 0) and sync.status == "success"
    assert "6 already stored" in sync.message
    assert all(stored == rows for stored, rows in attributed(wh).values()), attributed(wh)
    again = sync_distributor(wh, d.key, client_factory=factory, lead_ids=[(leads[0]["id"], PAGE, FORM)])
    assert again.lead_outcomes[leads[0]["id"]].status == "exists" and again.stored == 0


def test_raw_rows_a_dead_run_landed_are_recovered_by_the_next_run_and_counted_apart(wh, graph, factory):
    page_token_world(graph, {FORM: [lead(1), lead(2)]})
    d = distributors.add(wh, "Alpha", PAGE_TOKENS[PAGE], page_ids=[PAGE])
    landing.land_raw_page(wh, sync_id="run-that-died", distributor=d.key, page_id=PAGE, form_id=FORM,
                          leads=[lead(1), lead(7)])

    result = sync_distributor(wh, d.key, client_factory=factory)

    assert (result.recovered, result.stored, result.fetched, result.landed) == (2, 1, 2, 1)
    assert "2 landed by an earlier run that stopped, stored now" in result.message
    assert attributed(wh)[result.sync_id] == (3, 3)
    assert q(wh, "SELECT count(*) AS n FROM raw_leads WHERE processed_at IS NULL")[0]["n"] == 0


def test_the_callers_run_id_is_stored_on_its_own_row(wh, graph, factory):
    page_token_world(graph, {FORM: [lead(1)]})
    d = distributors.add(wh, "Alpha", PAGE_TOKENS[PAGE], page_ids=[PAGE])
    running = wh  # another process's run of the same distributor, still open
    with running.transaction() as conn:
        conn.execute("INSERT INTO sync_runs (sync_id, distributor, trigger, started_at, status) "
                     "VALUES ('other-run', ?, 'cli', CURRENT_TIMESTAMP, 'running')", [d.key])

    result = sync_distributor(wh, d.key, trigger="dagster", run_id="4f7c0d2e-dagster-run", client_factory=factory)

    rows = {r["sync_id"]: r for r in q(wh, "SELECT sync_id, run_id, status, trigger, stored FROM sync_runs")}
    mine = rows[result.sync_id]
    assert (mine["run_id"], mine["status"], mine["trigger"], mine["stored"]) == (
        "4f7c0d2e-dagster-run", "success", "dagster", 1)
    assert rows["other-run"]["status"] == "running"  # nothing closes another run's row
    assert result.to_dict()["run_id"] == "4f7c0d2e-dagster-run"


# ----------------------------------------------------------------------------------------------------------------------
# Failure isolation
# ----------------------------------------------------------------------------------------------------------------------


def test_an_unreadable_page_is_named_and_the_other_page_still_syncs(wh, graph, factory):
    always(graph, "GET", f"{V}/me/accounts", ok({"data": [
        {"id": PAGE, "name": "Other business", "access_token": PAGE_TOKENS[PAGE]},
        {"id": PAGE2, "name": "Ours", "access_token": PAGE_TOKENS[PAGE2]}]}))
    always(graph, "GET", f"{V}/{PAGE}/leadgen_forms", error(
        200, None, "(#200) The user does not have access to this Page's leads (Leads Access Manager)",
        status=403))
    always(graph, "GET", f"{V}/{PAGE2}/leadgen_forms", ok(forms_of(FORM2)))
    always(graph, "GET", f"{V}/{FORM2}/leads", ok(page_of([lead(1, FORM2), lead(2, FORM2)])))
    d = distributors.add(wh, "Alpha", USER_TOKEN)

    result = sync_distributor(wh, d.key, client_factory=factory)

    assert result.status == "partial" and result.partial and not result.success
    assert result.stored == 2 and result.message.startswith("Partial sync:")
    [failed] = result.failures
    assert failed["page_id"] == PAGE and "Leads Access Manager" in failed["error"] and failed["what_to_do"]
    assert any(PAGE in e and "Leads Access Manager" in e for e in result.errors)
    assert result.to_dict()["partial"] is True
    row = q(wh, "SELECT status, failures FROM sync_runs WHERE sync_id = ?", [result.sync_id])[0]
    assert row["status"] == "partial" and json.loads(row["failures"])[0]["page_id"] == PAGE
    [forms_read] = graph.hits("GET", f"{V}/{FORM2}/leads")
    assert bearer(forms_read) == PAGE_TOKENS[PAGE2]


def test_a_permission_error_on_one_form_stops_that_form_only(wh, graph, factory):
    page_token_world(graph, {FORM: [lead(1)], FORM2: [], FORM3: [lead(3, FORM3)]})
    always(graph, "GET", f"{V}/{FORM2}/leads", error(10, None, "(#10) Requires leads_retrieval permission"))
    d = distributors.add(wh, "Alpha", PAGE_TOKENS[PAGE], page_ids=[PAGE])

    result = sync_distributor(wh, d.key, client_factory=factory)

    assert result.status == "partial" and result.stored == 2
    assert [f["form_id"] for f in result.failures] == [FORM2]
    assert "leads_retrieval" in result.failures[0]["what_to_do"]
    stored = {r["form_id"] for r in q(wh, "SELECT DISTINCT form_id FROM leads")}
    assert stored == {FORM, FORM3}


def test_a_throttled_me_accounts_is_waited_out_not_read_as_a_page_token(wh, graph, factory):
    graph.script("GET", f"{V}/me/accounts", error(4, None, "(#4) Application request limit reached",
                                                 headers=buc_headers(0.0)))
    always(graph, "GET", f"{V}/me/accounts", ok({"data": [
        {"id": PAGE, "name": "Ours", "access_token": PAGE_TOKENS[PAGE]}]}))
    always(graph, "GET", f"{V}/{PAGE}/leadgen_forms", ok(forms_of(FORM)))
    always(graph, "GET", f"{V}/{FORM}/leads", ok(page_of([lead(1)])))
    d = distributors.add(wh, "Alpha", USER_TOKEN)

    result = sync_distributor(wh, d.key, client_factory=factory)

    assert result.status == "success" and result.stored == 1, result.message
    assert len(graph.hits("GET", f"{V}/me/accounts")) == 2
    assert {bearer(r) for r in graph.hits("GET", f"{V}/{PAGE}/leadgen_forms")} == {PAGE_TOKENS[PAGE]}


@pytest.mark.parametrize("answer", [
    error(80001, None, "(#80001) There have been too many calls to this Page", headers=buc_headers(60.0)),
    Reply(body="upstream unavailable", status=503),
], ids=["throttled-beyond-the-ceiling", "transient-after-retries"])
def test_a_failing_me_accounts_fails_the_run_with_a_retryable_message_and_never_guesses(wh, graph, factory, answer):
    always(graph, "GET", f"{V}/me/accounts", answer)
    d = distributors.add(wh, "Alpha", USER_TOKEN, page_ids=[PAGE])

    result = sync_distributor(wh, d.key, client_factory=factory)

    assert result.status == "failed" and "/me/accounts" in result.message
    assert "try" in result.message.lower() or "later" in result.message.lower()
    assert graph.hits("GET", f"{V}/{PAGE}/leadgen_forms") == []  # the user token was not used as a Page token


# ----------------------------------------------------------------------------------------------------------------------
# PostgreSQL lock order
# ----------------------------------------------------------------------------------------------------------------------


def test_landings_of_the_same_leads_in_opposite_orders_do_not_deadlock(wh):
    d = distributors.add(wh, "Alpha", PAGE_TOKENS[PAGE], page_ids=[PAGE])
    errors: list[BaseException] = []
    stored: list[int] = []
    rounds, size = 4, 400
    barrier = threading.Barrier(2)

    def land(name: str, leads: list[dict]) -> None:
        try:
            barrier.wait(10)
            done = landing.land_page(wh, sync_id=f"{name}", distributor=d.key, default_region="TR", page_id=PAGE,
                                     form_id=FORM, leads=leads)
            stored.append(done.stored)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    for r in range(rounds):
        leads = [lead(r * size + i) for i in range(size)]
        threads = [threading.Thread(target=land, args=(f"sync-{r}", list(reversed(leads)))),
                   threading.Thread(target=land, args=(f"webhook-{r}", leads))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
    assert errors == []
    assert q(wh, "SELECT count(*) AS n, count(DISTINCT meta_lead_id) AS d FROM leads")[0] == {
        "n": rounds * size, "d": rounds * size}
    assert sum(stored) == rounds * size


def test_an_import_of_leads_another_distributor_holds_names_it(wh, graph, factory, tmp_path):
    from leads_pipeline.lib.ingest import importer

    page_token_world(graph, {FORM: [lead(1), lead(2)]})
    a = distributors.add(wh, "Alpha", PAGE_TOKENS[PAGE], page_ids=[PAGE])
    assert sync_distributor(wh, a.key, client_factory=factory).stored == 2
    b = distributors.add(wh, "Beta", PAGE_TOKENS[PAGE2], page_ids=[PAGE2])
    path = tmp_path / "export.jsonl"
    path.write_text("\n".join(json.dumps(x) for x in (lead(1), lead(2), lead(3))) + "\n")

    result = importer.import_file(wh, path, b.key)

    assert (result.fetched, result.stored, result.held_elsewhere) == (3, 1, {a.key: 2})
    assert f"2 leads already belong to distributor '{a.key}': not stored for '{b.key}'" in result.message
    row = q(wh, "SELECT held_elsewhere, stored FROM sync_runs WHERE sync_id = ?", [result.sync_id])[0]
    assert json.loads(row["held_elsewhere"]) == {a.key: 2} and row["stored"] == 1


def test_leads_out_of_metas_reach_are_named_on_a_forms_first_sync_and_by_test_connection(wh, graph, factory):
    from leads_pipeline.lib.ingest.sync import test_connection as check

    page_token_world(graph, {FORM: [lead(1)]})
    always(graph, "GET", f"{V}/{PAGE}/leadgen_forms", ok(forms_of(FORM, leads_count=40, expired=12)))
    always(graph, "GET", f"{V}/debug_token", ok({"data": {"is_valid": True, "expires_at": 0, "type": "PAGE"}}))
    d = distributors.add(wh, "Alpha", PAGE_TOKENS[PAGE], page_ids=[PAGE])

    first = sync_distributor(wh, d.key, client_factory=factory)
    later = sync_distributor(wh, d.key, client_factory=factory)
    tested = check(wh, d.key, client_factory=factory)

    assert first.status == "success" and len(first.warnings) == 1
    assert "12 leads" in first.warnings[0] and "leads-pipeline import" in first.warnings[0]
    assert first.warnings[0] in first.message
    assert later.warnings == [] and "12 leads" not in later.message  # said once, on the form's first sync
    assert tested["success"] and "12 leads" in tested["message"] and "leads-pipeline import" in tested["message"]
    asked = graph.hits("GET", f"{V}/{PAGE}/leadgen_forms")[0].q("fields").split(",")
    assert {"leads_count", "expired_leads_count"} <= set(asked)


@pytest.mark.parametrize("shared", [True, False], ids=["a-lead-on-two-pages", "no-lead-on-two-pages"])
def test_pages_parsed_before_the_landing_store_what_landing_the_leads_as_received_stores(tmp_path, monkeypatch,
                                                                                          shared):
    """A sync keys and parses its pages in the fetch threads (``prepare_page``, the pages of one form merged): the
    same raw rows, leads, rejects and cursor as landing the pages' leads as received — a lead on two pages kept
    once (the first), a malformed one rejected, one landed before left alone; pages that share no lead are merged
    without copying their rows, and every one of them lands."""
    from leads_pipeline.lib.warehouse import Warehouse
    from leads_pipeline_tests.conftest import premigrated

    monkeypatch.setenv("LEADS_SECRET_KEY", generate_key())
    get_settings.cache_clear()
    wh, other = (Warehouse(premigrated(f"duckdb:///{tmp_path / name}.duckdb")) for name in ("ahead", "as-received"))
    bad = {"id": "not-a-number", "created_time": "2026-06-01T12:00:00+0000", "field_data": None}
    later_copy = {**lead(2), "ad_name": "a later copy of lead 2"}  # the first occurrence is the one landed
    first = [lead(1), lead(2), bad, lead(2)]
    second = [lead(3), later_copy, lead(4)] if shared else [lead(3), lead(5), lead(4)]
    dumps = []
    for target, ahead in ((wh, True), (other, False)):
        d = distributors.add(target, "Alpha", PAGE_TOKENS[PAGE], page_ids=[PAGE])
        kw = {"sync_id": "run-1", "distributor": d.key, "default_region": "TR", "page_id": PAGE, "form_id": FORM}
        landing.land_page(target, leads=[lead(4)], **kw)  # landed before: neither landed nor stored again
        if ahead:
            prepared = landing.merge_prepared([landing.prepare_page(p, locales={}, **kw) for p in (first, second)])
            done = landing.land_page(target, leads=prepared.leads, prepared=prepared, cursor=1780000000, **kw)
        else:
            done = landing.land_page(target, leads=first + second, cursor=1780000000, **kw)
        assert (done.landed, done.stored, done.rejected) == ((4, 3, 1) if shared else (5, 4, 1))
        with target.transaction(read_only=True) as conn:
            dumps.append([conn.query(sql) for sql in (
                "SELECT * EXCLUDE (first_seen_at, updated_at) FROM leads ORDER BY meta_lead_id",
                "SELECT * EXCLUDE (first_seen_at, last_seen_at) FROM rejected_leads ORDER BY reject_key",
                "SELECT raw_key, meta_lead_id, payload::TEXT AS payload, processed_at IS NULL AS unprocessed "
                "FROM raw_leads ORDER BY raw_key",
                "SELECT form_id, last_created_time FROM sync_cursors")])
    assert dumps[0] == dumps[1]
