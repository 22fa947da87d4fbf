"""``leads-pipeline webhooks subscribe | inbox | process`` against the simulator and a real warehouse."""

from __future__ import annotations

import json

from click.testing import CliRunner

from leads_pipeline.cli import main
from leads_pipeline.lib.webhooks import inbox
from leads_pipeline.lib.webhooks.delivery import parse_delivery
from leads_pipeline_tests.test_webhook_support import (  # noqa: F401 - fixtures
    SAMPLE_DOC_NUMERIC,
    SAMPLE_POSTMAN,
    add_sim_distributor,
    configure,
    inbox_rows,
    lead_ids,
    live_receiver,
    world,
)


def _run(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_subscribe_installs_leadgen_on_every_page_and_explains_the_dashboard(world, monkeypatch) -> None:
    wh, _receiver, sim, manifest = world
    configure(monkeypatch, warehouse_url=wh.url, webhook_verify_token="vt-123456")
    key = add_sim_distributor(wh, monkeypatch, manifest)  # user token: page tokens come from /me/accounts
    result = _run("webhooks", "subscribe", key, "--public-url", "https://leads.example.com")
    assert result.exit_code == 0, result.output
    for page in manifest["pages"]:
        assert f"Page {page['id']}: subscribed (leadgen)" in result.output
    assert all("leadgen" in (p.installed_fields or []) for p in sim.simulator.world.pages)
    out = result.output
    assert "https://leads.example.com/webhooks/meta" in out
    assert "LEADS_WEBHOOK_VERIFY_TOKEN (set)" in out and "vt-123456" not in out
    assert "leadgen" in out and "Page object" in out
    for permission in ("leads_retrieval", "pages_manage_metadata", "pages_show_list", "pages_read_engagement"):
        assert permission in out

    as_json = _run("webhooks", "subscribe", key, "--json")
    data = json.loads(as_json.output)
    assert data["success"] and {p["page_id"] for p in data["pages"]} == {p["id"] for p in manifest["pages"]}
    assert all(p["fields"] == ["leadgen"] for p in data["pages"])


def test_subscribe_with_a_page_token_and_with_a_broken_one(world, monkeypatch) -> None:
    wh, _receiver, sim, manifest = world
    configure(monkeypatch, warehouse_url=wh.url)
    key = add_sim_distributor(wh, monkeypatch, manifest, token="page", name="Page Token Clinic")
    ok = _run("webhooks", "subscribe", key)
    assert ok.exit_code == 0, ok.output
    assert f"Page {manifest['pages'][0]['id']}: subscribed (leadgen)" in ok.output
    assert "https://<your host>/webhooks/meta" in ok.output

    from leads_pipeline.lib.distributors import registry as distributors

    distributors.update(wh, key, token="EAAbrokentoken00000000000000000")
    broken = CliRunner().invoke(main, ["webhooks", "subscribe", key])
    assert broken.exit_code == 1
    assert "token" in broken.output.lower() and "EAAbrokentoken" not in broken.output
    unknown = CliRunner().invoke(main, ["webhooks", "subscribe", "nobody"])
    assert unknown.exit_code == 1 and "No distributor" in unknown.output


def test_inbox_counts_and_unrouted_pages(warehouse, monkeypatch) -> None:
    configure(monkeypatch, warehouse_url=warehouse.url)
    empty = _run("webhooks", "inbox")
    assert "empty" in empty.output
    inbox.store_changes(warehouse, parse_delivery(SAMPLE_POSTMAN) + parse_delivery(SAMPLE_DOC_NUMERIC))
    data = json.loads(_run("webhooks", "inbox", "--json").output)
    assert data["total"] == 3 and data["by_status"] == {"unrouted": 3}
    assert {(p["page_id"], p["form_id"]): p["rows"] for p in data["unrouted"]} == {
        ("123123123", "12312312312"): 2, ("138124712925158", "172036835026334"): 1}
    text = _run("webhooks", "inbox").output
    assert "3 inbox row(s): unrouted 3" in text and "page 123123123 form 12312312312: 2 row(s)" in text
    assert json.loads(_run("webhooks", "inbox", "--status", "pending", "--json").output)["total"] == 0
    assert CliRunner().invoke(main, ["webhooks", "inbox", "--status", "bogus"]).exit_code == 2


def test_process_stores_pending_leads_without_dagster(world, monkeypatch) -> None:
    wh, _receiver, sim, manifest = world
    configure(monkeypatch, warehouse_url=wh.url)
    announced = sim.advance(leads=4)
    assert sim.flush_webhooks(30)
    assert {r["status"] for r in inbox_rows(wh).values()} == {"unrouted"}  # nobody owns the forms yet
    key = add_sim_distributor(wh, monkeypatch, manifest)  # its discovery claims them: the registry re-routes
    assert {r["status"] for r in inbox_rows(wh).values()} == {"pending"}
    result = _run("webhooks", "process")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["rerouted"] == 0
    (only,) = data["distributors"]
    assert only["distributor"] == key and only["stored"] == 4 and only["fatal"] is None
    assert set(announced) <= lead_ids(wh)
    assert {r["status"] for r in inbox_rows(wh).values()} == {"processed"}
    again = json.loads(_run("webhooks", "process", key).output)
    assert again["distributors"][0]["selected"] == 0


def test_subscribe_with_a_callback_url_subscribes_the_app_and_the_sandbox_delivers(warehouse, live_receiver,
                                                                                      monkeypatch) -> None:
    """`webhooks subscribe --callback-url` does what Meta's App Dashboard does (POST /{app-id}/subscriptions): the
    simulator checks the URL with the hub.challenge handshake against the real receiver, then delivers the new leads
    of the Pages that installed the app. Without the app secret or the verify token it says which is missing."""
    from leads_pipeline.simulator import SimulatorServer
    from leads_pipeline_tests.test_webhook_support import SCENARIO

    with SimulatorServer(SCENARIO) as sim:
        manifest = sim.manifest()
        configure(monkeypatch, graph_base_url=sim.base_url, warehouse_url=warehouse.url)
        key = add_sim_distributor(warehouse, monkeypatch, manifest)
        receiver = live_receiver(warehouse)
        no_secret = _run("webhooks", "subscribe", "--callback-url", receiver.webhook_url)
        assert no_secret.exit_code == 1 and "LEADS_APP_SECRET" in no_secret.output
        configure(monkeypatch, app_secret=manifest["app_secret"])
        no_token = _run("webhooks", "subscribe", "--callback-url", receiver.webhook_url)
        assert no_token.exit_code == 1 and "LEADS_WEBHOOK_VERIFY_TOKEN" in no_token.output
        assert all(p.installed_fields is None for p in sim.simulator.world.pages)  # refused before touching Meta
        configure(monkeypatch, webhook_verify_token="sandbox-verify-token")

        result = _run("webhooks", "subscribe", "--callback-url", receiver.webhook_url, "--json")
        assert result.exit_code == 0, result.output
        data = json.loads(result.output)
        assert data["success"] and [d["distributor"] for d in data["distributors"]] == [key]
        assert data["app_subscription"] == {"app_id": manifest["app_id"], "object": "page", "fields": ["leadgen"],
                                            "callback_url": receiver.webhook_url}
        assert "sandbox-verify-token" not in result.output and manifest["app_secret"] not in result.output
        assert sim.simulator.world.app_subscriptions["page"]["callback_url"] == receiver.webhook_url

        new_ids = sim.advance(leads=4)
        assert sim.flush_webhooks(20)
    assert set(inbox_rows(warehouse)) >= set(new_ids) and len(new_ids) == 4
