"""A deleted lead never returns, and the aggregate marts hold no personal data.

After ``crm.delete_lead``: a sync whose lookback re-reads every lead from Meta, a webhook replay of the lead's
leadgen_id (received, then processed), and an import of a file holding it (when ``lib/ingest/importer.py`` exists) — the
lead is absent from ``leads`` and its email, phone and name appear in no row of any table of the warehouse. The marts
that need no PII (``lead_stats``, ``conversion_funnel``, ``lead_daily``) hold none of the leads' emails, phones or
names. On DuckDB and PostgreSQL.
"""

from __future__ import annotations

import json


from leads_pipeline.lib import crm
from leads_pipeline.lib.graph import make_client
from leads_pipeline.lib.marts import analytics
from leads_pipeline.lib.webhooks import process as inbox_process
from leads_pipeline.lib.ingest import sync
from leads_pipeline.lib.security import sign
from leads_pipeline.lib.warehouse import Warehouse
from leads_pipeline_tests.pipeline_fixtures import make_sandbox
from leads_pipeline_tests.reliability_fixtures import settings_env


def _all_rows_text(wh: Warehouse) -> dict[str, str]:
    """Every row of every table of the warehouse as text, per table."""
    out = {}
    with wh.transaction(read_only=True) as conn:
        tables = [r["table_name"] for r in conn.query(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() "
            "AND table_type = 'BASE TABLE'")]
        for table in tables:
            out[table] = "\n".join(repr(tuple(r.values())) for r in conn.query(f'SELECT * FROM "{table}"'))
    return out


def _where(wh: Warehouse, needles: dict[str, str]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for table, text in _all_rows_text(wh).items():
        low = text.lower()
        hits = [label for label, value in needles.items() if value and value.lower() in low]
        if hits:
            found[table] = hits
    return found


def _webhook_body(page_id: str, form_id: str, lead_id: str) -> bytes:
    return json.dumps({"object": "page", "entry": [{"id": page_id, "time": 1, "changes": [{"field": "leadgen", "value": {
        "leadgen_id": lead_id, "page_id": page_id, "form_id": form_id, "created_time": 1}}]}]}).encode()


def test_a_deleted_lead_never_returns_by_sync_webhook_or_import(monkeypatch, simulator_factory, warehouse_url):
    sim = simulator_factory(pages=1, forms_per_page=2, leads_per_form=40, extra_leads=0)
    box = make_sandbox(monkeypatch, sim, warehouse_url)
    key = box.keys[0]
    app_secret = sim.manifest()["app_secret"]
    settings_env(monkeypatch, sync_lookback_seconds=str(10 ** 9), app_secret=app_secret)
    assert sync.sync_distributor(box.wh, key).success
    with box.wh.transaction(read_only=True) as conn:
        victim = conn.query_one(
            "SELECT meta_lead_id, page_id, form_id, email, phone, full_name FROM leads "
            "WHERE email IS NOT NULL AND phone IS NOT NULL AND full_name IS NOT NULL ORDER BY meta_lead_id LIMIT 1")
        others = conn.scalar("SELECT count(*) FROM leads")
    assert victim is not None
    lead_id = victim["meta_lead_id"]
    needles = {"email": victim["email"], "phone": victim["phone"], "name": victim["full_name"]}
    assert _where(box.wh, needles)  # the scan does find it before the deletion

    crm.delete_lead(box.wh, lead_id, "cli", reason="privacy request")
    assert _where(box.wh, needles) == {}

    # 1. A sync re-reading every lead (lookback covering all, cursors forgotten).
    with box.wh.transaction() as conn:
        conn.execute("DELETE FROM sync_cursors")
    result = sync.sync_distributor(box.wh, key)
    assert result.success and result.fetched >= others
    # 2. A webhook replay of its leadgen_id, received by the HTTP receiver, then processed.
    from starlette.applications import Starlette
    from starlette.testclient import TestClient

    from leads_pipeline.web.webhooks import close_writers, webhook_routes

    body = _webhook_body(victim["page_id"], victim["form_id"], lead_id)
    with TestClient(Starlette(routes=webhook_routes(box.wh))) as client:
        resp = client.post("/webhooks/meta", content=body,
                           headers={"X-Hub-Signature-256": sign(body, app_secret), "Content-Type": "application/json"})
    close_writers()
    assert resp.status_code == 200, resp.text
    processed = inbox_process.process_all(box.wh, key, lambda token: make_client(token))
    assert processed.stored == 0
    with box.wh.transaction(read_only=True) as conn:
        assert conn.scalar("SELECT status FROM webhook_inbox WHERE leadgen_id = ?", [lead_id]) == "deleted"
    # 3. Analytics refresh (marts read leads).
    analytics.refresh_all(box.wh)

    with box.wh.transaction(read_only=True) as conn:
        assert conn.scalar("SELECT count(*) FROM leads WHERE meta_lead_id = ?", [lead_id]) == 0
        assert conn.scalar("SELECT count(*) FROM leads") == others - 1
        assert conn.scalar("SELECT count(*) FROM lead_tombstones WHERE meta_lead_id = ?", [lead_id]) == 1
    assert _where(box.wh, needles) == {}


def test_import_of_a_file_holding_a_deleted_lead_does_not_bring_it_back(monkeypatch, simulator_factory, tmp_path,
                                                                        warehouse_url):
    from leads_pipeline.lib.ingest import importer

    sim = simulator_factory(pages=1, forms_per_page=1, leads_per_form=30, extra_leads=0)
    box = make_sandbox(monkeypatch, sim, warehouse_url)
    key = box.keys[0]
    assert sync.sync_distributor(box.wh, key).success
    with box.wh.transaction(read_only=True) as conn:
        victim = conn.query_one(
            "SELECT l.meta_lead_id, l.email, l.phone, l.full_name, CAST(r.payload AS TEXT) AS payload FROM leads l "
            "JOIN raw_leads r ON r.raw_key = l.meta_lead_id WHERE l.email IS NOT NULL AND l.full_name IS NOT NULL "
            "ORDER BY l.meta_lead_id LIMIT 1")
        other = conn.query_one("SELECT CAST(payload AS TEXT) AS payload FROM raw_leads WHERE raw_key <> ? "
                               "AND meta_lead_id IS NOT NULL LIMIT 1", [victim["meta_lead_id"]])
        before = conn.scalar("SELECT count(*) FROM leads")
    needles = {"email": victim["email"], "phone": victim["phone"], "name": victim["full_name"]}
    crm.delete_lead(box.wh, victim["meta_lead_id"], "cli", reason="privacy request")
    # A JSON-lines file holding the deleted lead (as Meta returned it), once alone and once inside a Graph page.
    path = tmp_path / "export.jsonl"
    lead = json.loads(victim["payload"])
    path.write_text(json.dumps(lead) + "\n" + json.dumps({"data": [lead, json.loads(other["payload"])]}) + "\n")
    importer.import_file(box.wh, path, key, fmt="jsonl", workers=0)
    with box.wh.transaction(read_only=True) as conn:
        assert conn.scalar("SELECT count(*) FROM leads WHERE meta_lead_id = ?", [victim["meta_lead_id"]]) == 0
        assert conn.scalar("SELECT count(*) FROM leads") == before - 1
    # Not even the raw payload comes back: every landing path drops tombstoned ids before writing.
    assert _where(box.wh, needles) == {}


def test_marts_hold_no_email_phone_or_name(monkeypatch, simulator_factory, warehouse_url):
    sim = simulator_factory(pages=2, forms_per_page=1, leads_per_form=40, extra_leads=0)
    box = make_sandbox(monkeypatch, sim, warehouse_url)
    for key in box.keys:
        assert sync.sync_distributor(box.wh, key).success
    counts = analytics.refresh_all(box.wh)
    with box.wh.transaction(read_only=True) as conn:
        people = conn.query("SELECT email, phone, full_name, first_name, last_name FROM leads")
        marts = {}
        for table in ("lead_stats", "conversion_funnel", "lead_daily"):
            rows = conn.query(f"SELECT * FROM {table}")
            assert rows, f"{table} is empty: nothing was checked ({counts})"
            marts[table] = "\n".join(repr(tuple(r.values())) for r in rows).lower()
    values = {str(v).lower() for p in people for v in p.values() if v and len(str(v)) >= 5}
    assert len(values) > 50
    leaks = {table: sorted(v for v in values if v in text)[:3] for table, text in marts.items()}
    assert {t: v for t, v in leaks.items() if v} == {}
