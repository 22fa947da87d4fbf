"""The JSON API: who may call what (every mutating route × no credentials / staff / superadmin), the audit trail of
every change, the write-only access token, CSRF for session-authenticated calls, and bad input → 4xx with a message.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from leads_pipeline.lib.warehouse.migrations import MIGRATIONS

from leads_pipeline.lib import crm
from leads_pipeline.lib.crm import credentials
from leads_pipeline_tests.test_web_support import SECRET_TOKEN, World, client, login, seed_world
from leads_pipeline_tests.conftest import premigrated


@pytest.fixture
def world(monkeypatch, duckdb_url) -> World:
    from leads_pipeline.lib.warehouse import Warehouse

    wh = Warehouse(premigrated(duckdb_url))
    wh.migrate()
    return seed_world(monkeypatch, wh)


@pytest.fixture(scope="module")
def shared(tmp_path_factory) -> tuple[World, Any]:
    """One world and client for the tests that change nothing (every bad-input case is refused)."""
    from leads_pipeline.lib.warehouse import Warehouse

    wh = Warehouse(f"duckdb:///{tmp_path_factory.mktemp('web-api') / 'warehouse.duckdb'}")
    wh.migrate()
    with pytest.MonkeyPatch.context() as mp:
        w = seed_world(mp, wh)
    return w, client(wh, w.settings())


@pytest.fixture
def world_any(monkeypatch, warehouse) -> World:
    """On both backends."""
    return seed_world(monkeypatch, warehouse)


def mutations(w: World) -> list[tuple[str, str, Any, bool, str]]:
    """Every mutating route: (method, path, JSON body, superadmin only, audit action), in an order in which each
    one succeeds for a superadmin. Each lead route works on its own lead."""
    ids = w.lead_ids
    new = [i for n, i in enumerate(ids) if n % 3]  # status 'new'
    return [
        ("POST", f"/api/leads/{new[0]}/status", {"status": "contacted", "note": "called back"}, False, "lead.status"),
        ("POST", f"/api/leads/{new[1]}/assign", {"user": w.staff["email"]}, False, "lead.assign"),
        ("POST", f"/api/leads/{new[2]}/note", {"text": "Prefers WhatsApp"}, False, "lead.note"),
        ("POST", f"/api/leads/{new[3]}/interactions", {"kind": "call", "outcome": "no_answer"}, False, "lead.call"),
        ("POST", "/api/leads/bulk", {"action": "status", "ids": [new[4], new[5]], "status": "rejected",
                                     "note": "duplicate"}, False, "lead.status"),
        ("POST", "/api/leads/bulk", {"action": "delete", "ids": [new[6]], "reason": "spam"}, True, "lead.delete"),
        ("POST", f"/api/leads/{new[7]}/delete", {"reason": "privacy request"}, True, "lead.delete"),
        ("DELETE", f"/api/leads/{ids[0]}", {"reason": "privacy request"}, True, "lead.delete"),
        ("POST", "/api/distributors", {"name": "Işık Sağlık", "access_token": "EAAanothertoken1234567890",
                                       "page_ids": ["2002"], "region": "DE", "interval_minutes": 15}, True,
         "distributor.add"),
        ("PUT", "/api/distributors/msh/meta-settings", {"form_ids": ["3003"], "interval_minutes": 10,
                                                        "notify_email": "ops@example.com"}, True,
         "distributor.update"),
        ("POST", "/api/distributors/msh/test", None, True, "distributor.test"),
        ("POST", "/api/distributors/msh/sync", None, True, "distributor.sync"),
        ("POST", "/api/users", {"name": "New Person", "email": "new@example.com", "role": "staff"}, True,
         "user.add"),
        ("PUT", "/api/users/new@example.com/distributors", {"distributors": ["msh"]}, True, "user.distributors"),
        ("POST", "/api/users/new@example.com/deactivate", None, True, "user.deactivate"),
        ("POST", "/api/users/new@example.com/reactivate", None, True, "user.activate"),
    ]


def _call(c, method: str, path: str, body: Any, headers: dict[str, str]):
    return c.request(method, path, json=body, headers=headers) if body is not None else \
        c.request(method, path, headers=headers)


def test_the_matrix_covers_every_mutating_route(world):
    from leads_pipeline.web.api import api_routes

    covered = set()
    for method, path, *_ in mutations(world):
        for route in api_routes():
            if method in route.methods and route.path_regex.match(path.split("?")[0]):
                covered.add((method, route.path))
    every = {(m, r.path) for r in api_routes() for m in r.methods if m not in ("GET", "HEAD")}
    assert covered == every


def test_every_mutation_needs_credentials(world):
    c = client(world.wh)
    problems = []
    for method, path, body, _, _ in mutations(world):
        for headers in ({}, {"Authorization": "Bearer lp_not-a-real-key"}, {"X-API-Key": "nonsense"},
                        {"Authorization": "Basic YWRtaW46YWRtaW4="}):
            r = _call(c, method, path, body, headers)
            if r.status_code != 401 or r.json()["detail"]["code"] != "unauthenticated":
                problems.append(f"{method} {path} {list(headers)} → {r.status_code}")
            elif "WWW-Authenticate" not in r.headers:
                problems.append(f"{method} {path}: 401 without WWW-Authenticate")
    assert not problems, problems
    assert world.audit(entity_type="lead") == []  # nothing happened


def test_staff_is_refused_superadmin_routes_and_may_do_lead_work(world):
    c = client(world.wh)
    problems = []
    for method, path, body, superadmin_only, action in mutations(world):
        r = _call(c, method, path, body, world.headers("staff"))
        expected = 403 if superadmin_only else 200
        if r.status_code != expected:
            problems.append(f"{method} {path} → {r.status_code} (expected {expected}): {r.text[:200]}")
        elif superadmin_only:
            assert "may not" in r.json()["error"] and r.json()["detail"]["code"] == "forbidden"
    assert not problems, problems
    # Staff reads are fine; superadmin-only reads are not.
    assert c.get("/api/leads", headers=world.headers("staff")).status_code == 200
    assert c.get("/api/distributors/msh/meta-settings", headers=world.headers("staff")).status_code == 403
    # No refused operation left a trace: only the staff-allowed ones are in the audit log, by the staff user.
    actors = {row["actor"] for row in world.audit()}
    assert world.staff["id"] in actors and world.admin["id"] not in actors
    assert {r["action"] for r in world.audit(actor=world.staff["id"])} == {"lead.status", "lead.assign", "lead.note",
                                                                          "lead.call"}


def test_superadmin_may_do_everything_and_every_change_is_audited_with_the_user(world_any):
    w = world_any
    c = client(w.wh)
    before = len(w.audit())
    for method, path, body, _, action in mutations(w):
        n = len(w.audit(action=action, actor=w.admin["id"]))
        r = _call(c, method, path, body, w.headers("superadmin"))
        assert 200 <= r.status_code < 300, f"{method} {path} → {r.status_code}: {r.text[:300]}"
        rows = w.audit(action=action, actor=w.admin["id"])
        assert len(rows) > n, f"{method} {path}: no {action} audit row by {w.admin['email']}"
    assert len(w.audit()) > before
    # The seed's shapes.
    assert set(c.post("/api/distributors/msh/test", headers=w.headers("superadmin")).json()) == {"success", "message"}
    sync = c.post("/api/distributors/msh/sync", headers=w.headers("superadmin")).json()
    assert set(sync) == {"success", "fetched", "stored", "errors", "message"}
    assert sync["success"] is False and "Graph API" in sync["message"]  # nothing listens at the Graph URL


def test_revoked_keys_and_deactivated_users_are_refused(world):
    c = client(world.wh)
    assert c.get("/api/me", headers=world.headers("staff")).json()["role"] == "staff"
    keys = credentials.list_api_keys(world.wh, world.staff["email"])
    credentials.revoke_api_key(world.wh, keys[0]["prefix"])
    r = c.get("/api/me", headers=world.headers("staff"))
    assert r.status_code == 401 and "revoked" in r.json()["error"]
    crm.deactivate_user(world.wh, world.admin["email"])
    r = c.get("/api/me", headers=world.headers("superadmin"))
    # Deactivating a user revokes their keys (so reactivating them does not revive the keys).
    assert r.status_code == 401 and ("deactivated" in r.json()["error"] or "revoked" in r.json()["error"])


def test_api_keys_are_stored_only_as_hashes(world):
    with world.wh.transaction(read_only=True) as conn:
        rows = conn.query("SELECT * FROM api_keys")
    dump = json.dumps(rows, default=str)
    assert world.admin_key not in dump and world.staff_key not in dump
    assert {r["key_hash"] for r in rows} == {credentials.hash_api_key(world.admin_key), credentials.hash_api_key(world.staff_key)}
    assert all(world.admin_key.startswith(r["prefix"]) or world.staff_key.startswith(r["prefix"]) for r in rows)
    assert world.admin_key not in json.dumps(world.audit(), default=str)


def test_the_access_token_is_write_only(world):
    c = client(world.wh)
    h = world.headers("superadmin")
    r = c.put("/api/distributors/msh/meta-settings", json={"access_token": SECRET_TOKEN}, headers=h)
    assert r.status_code == 200 and SECRET_TOKEN not in r.text
    got = c.get("/api/distributors/msh/meta-settings", headers=h)
    assert got.status_code == 200 and SECRET_TOKEN not in got.text
    body = got.json()
    assert body["has_token"] is True and "access_token" not in body and "token" not in body
    from leads_pipeline.lib.security import fingerprint

    assert body["token_fingerprint"] == fingerprint(SECRET_TOKEN)
    created = c.post("/api/distributors", json={"name": "Second", "access_token": SECRET_TOKEN + "2"}, headers=h)
    assert created.status_code == 201 and SECRET_TOKEN not in created.text
    assert SECRET_TOKEN not in c.get("/api/distributors", headers=h).text
    # Nor in the console's settings page, nor in the audit log, nor stored in clear.
    login(c, "admin@example.com", "admin-password-123")
    page = c.get("/console/distributors/msh")
    assert page.status_code == 200 and SECRET_TOKEN not in page.text and body["token_fingerprint"] in page.text
    assert SECRET_TOKEN not in c.get("/console/distributors").text
    assert SECRET_TOKEN not in json.dumps(world.audit(), default=str)
    with world.wh.transaction(read_only=True) as conn:
        stored = conn.scalar("SELECT token_encrypted FROM distributors WHERE key = 'msh'")
    assert SECRET_TOKEN not in stored


def test_session_calls_to_the_api_need_the_csrf_header(world):
    c = client(world.wh)
    token = login(c, "staff@example.com", "staff-password-123")
    lead = world.lead_ids[1]
    assert c.get("/api/me").json()["via"] == "session"
    r = c.post(f"/api/leads/{lead}/note", json={"text": "no token"})
    assert r.status_code == 403 and r.json()["detail"]["code"] == "csrf_failed"
    r = c.post(f"/api/leads/{lead}/note", json={"text": "wrong token"}, headers={"X-CSRF-Token": "x" * 43})
    assert r.status_code == 403
    assert world.audit(action="lead.note") == []
    r = c.post(f"/api/leads/{lead}/note", json={"text": "right token"}, headers={"X-CSRF-Token": token})
    assert r.status_code == 200
    assert [row["actor"] for row in world.audit(action="lead.note")] == [world.staff["id"]]


BAD_INPUT = [
    # (method, path template, kwargs, status, code, words in the message)
    ("POST", "/api/leads/{new}/status", {"content": b"{not json", "headers": {"content-type": "application/json"}},
     400, "invalid_json", "not valid JSON"),
    ("POST", "/api/leads/{new}/status", {"json": ["status", "new"]}, 400, "invalid_input", "JSON object"),
    ("POST", "/api/leads/{new}/status", {"json": {}}, 400, "validation_failed", "status: field required"),
    ("POST", "/api/leads/{new}/status", {"json": {"status": "contacted", "note": 5}}, 400, "validation_failed",
     "note"),
    ("POST", "/api/leads/{new}/status", {"json": {"status": None}}, 400, "validation_failed", "status"),
    ("POST", "/api/leads/{new}/status", {"content": b"[" * 100_000 + b"]" * 100_000,
                                         "headers": {"content-type": "application/json"}}, 400, "invalid_json",
     "nested too deeply"),
    ("POST", "/api/leads/{new}/note", {"content": b'{"text": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
                                       "headers": {"content-type": "application/json"}}, 400, "invalid_json",
     "nested too deeply"),
    ("POST", "/api/leads/{new}/note", {"content": b'{"text": ' + b"[" * 900 + b"]" * 900 + b"}",
                                       "headers": {"content-type": "application/json"}}, 400, "validation_failed",
     "text"),
    ("POST", "/api/leads/{new}/note", {"content": b'{"text": "\\ud800"}',
                                       "headers": {"content-type": "application/json"}}, 400, "invalid_input",
     "not valid Unicode"),
    ("POST", "/api/leads/{new}/status", {"json": {"status": "won"}}, 400, "validation_failed", "status"),
    ("POST", "/api/leads/{new}/status", {"json": {"status": "converted"}}, 400, "invalid_transition",
     "it can go to: assigned, contacted, rejected"),
    ("POST", "/api/leads/{new}/status", {"json": {"status": "new"}}, 400, "invalid_transition", "already"),
    ("POST", "/api/leads/{new}/status", {"json": {"status": "contacted", "extra": 1}}, 400, "validation_failed",
     "extra"),
    ("POST", "/api/leads/999/status", {"json": {"status": "contacted"}}, 404, "lead_not_found", "999 not found"),
    ("GET", "/api/leads/999", {}, 404, "lead_not_found", "not found"),
    ("POST", "/api/leads/{new}/note", {"json": {"text": "   "}}, 400, "invalid_input", "empty"),
    ("POST", "/api/leads/{new}/note", {"json": {"text": "a\u0000b"}}, 400, "invalid_input", "NUL"),
    ("POST", "/api/leads/{new}/assign", {"json": {"user": "ghost@example.com"}}, 400, "unknown_user", "ghost"),
    ("POST", "/api/leads/{new}/interactions", {"json": {"kind": "sms", "outcome": "answered"}}, 400,
     "invalid_input", "Outcome of an SMS"),
    ("POST", "/api/leads/{new}/interactions", {"json": {"kind": "call", "outcome": "answered",
                                                        "occurred_at": "yesterday"}}, 400, "invalid_input",
     "not a date"),
    ("POST", "/api/leads/{new}/interactions", {"json": {"kind": "call", "outcome": "answered",
                                                        "occurred_at": "2999-01-01T00:00:00Z"}}, 400,
     "invalid_input", "future"),
    ("POST", "/api/leads/{new}/status", {"content": b"status=new", "headers": {"content-type": "text/plain"}}, 415,
     "unsupported_media_type", "JSON"),
    ("POST", "/api/leads/{new}/note", {"content": b'{"text": "' + b"x" * (1024 * 1024) + b'"}',
                                       "headers": {"content-type": "application/json"}}, 413, "too_large", "larger"),
    ("DELETE", "/api/leads/{new}", {}, 400, "missing_body", "JSON object"),
    ("DELETE", "/api/leads/{new}?reason=privacy", {"json": {"reason": "privacy"}}, 400, "invalid_input",
     "in the JSON body"),
    ("DELETE", "/api/leads/{new}", {"json": {"why": "privacy"}}, 400, "validation_failed", "reason"),
    ("POST", "/api/leads/bulk", {"json": {"action": "status", "ids": ["{new}", "404404"], "status": "rejected"}},
     404, "lead_not_found", "404404"),
    ("POST", "/api/leads/bulk", {"json": {"action": "status", "ids": ["{contacted}"], "status": "assigned"}},
     400, "invalid_transition", "Nothing was changed"),
    ("POST", "/api/leads/bulk", {"json": {"action": "assign", "filter": {}, "user": "staff@example.com"}}, 400,
     "invalid_input", "empty filter"),
    ("POST", "/api/leads/bulk", {"json": {"action": "delete", "ids": ["{new}"]}}, 400, "invalid_input", "reason"),
    ("GET", "/api/leads?page=0", {}, 400, "invalid_input", "page"),
    ("GET", "/api/leads?per_page=abc", {}, 400, "invalid_input", "whole number"),
    ("GET", "/api/leads?per_page=501", {}, 400, "invalid_input", "between 1 and 500"),
    ("GET", "/api/leads?status=won", {}, 400, "invalid_input", "Unknown status"),
    ("GET", "/api/leads?created_from=soon", {}, 400, "invalid_input", "created_from"),
    ("GET", "/api/leads?sort=colour", {}, 400, "invalid_input", "Cannot sort"),
    ("GET", "/api/leads?assigned_to=ghost", {}, 400, "unknown_user", "ghost"),
    ("GET", "/api/leads?search=a%00b", {}, 400, "invalid_input", "NUL"),
    ("GET", "/api/leads/recent?limit=0", {}, 400, "invalid_input", "limit"),
    ("GET", "/api/users?active_only=maybe", {}, 400, "invalid_input", "true or false"),
    ("POST", "/api/distributors", {"json": {"name": "MSH Med Tour", "access_token": "EAAx1234567890"}}, 409,
     "distributor_exists", "exists already"),
    ("POST", "/api/distributors", {"json": {"name": "X", "access_token": "two words"}}, 400, "validation_failed",
     "access_token"),
    ("POST", "/api/leads/{new}/note", {}, 400, "missing_body", "JSON object"),
    ("POST", "/api/distributors", {"json": {"name": "Y"}}, 400, "validation_failed", "access_token"),
    ("PUT", "/api/distributors/msh/meta-settings", {"json": {"region": "ZZ"}}, 400, "invalid_input", "region"),
    ("PUT", "/api/distributors/msh/meta-settings", {"json": {"interval_minutes": 0}}, 400, "validation_failed",
     "interval_minutes"),
    ("PUT", "/api/distributors/msh/meta-settings", {"json": {"page_ids": ["12a"]}}, 400, "validation_failed",
     "page_ids"),
    ("PUT", "/api/distributors/nope/meta-settings", {"json": {}}, 404, "distributor_not_found", "nope"),
    ("POST", "/api/distributors/nope/sync", {}, 404, "distributor_not_found", "nope"),
    ("POST", "/api/users", {"json": {"name": "A", "email": "admin@example.com", "role": "staff"}}, 409,
     "user_exists", "already exists"),
    ("POST", "/api/users", {"json": {"name": "A", "email": "not-an-email", "role": "staff"}}, 400,
     "invalid_input", "not an email"),
    ("POST", "/api/users/ghost/deactivate", {}, 404, "user_not_found", "ghost"),
    ("PUT", "/api/users/ghost/distributors", {"json": {"distributors": ["msh"]}}, 404, "user_not_found", "ghost"),
    ("PUT", "/api/users/staff@example.com/distributors", {"json": {"distributors": ["nope"]}}, 400,
     "invalid_input", "nope"),
    ("PUT", "/api/users/staff@example.com/distributors", {"json": {}}, 400, "validation_failed", "distributors"),
    ("POST", "/api/users", {"json": {"name": "A", "email": "a@example.com", "role": "staff",
                                     "distributors": ["nope"]}}, 400, "invalid_input", "nope"),
    ("GET", "/api/nothing-here", {}, 404, "not_found", "openapi.json"),
    ("PATCH", "/api/leads/{new}", {}, 405, "method_not_allowed", "not allowed"),
]


@pytest.mark.parametrize("method, path, kwargs, status, code, words", BAD_INPUT,
                         ids=[f"{m} {p.split('?')[0]} {s} {c}" for m, p, _, s, c, _ in BAD_INPUT])
def test_bad_input_is_a_4xx_with_a_message(shared, method, path, kwargs, status, code, words):
    world, c = shared
    new = world.lead_ids[1]
    contacted = world.lead_ids[0]
    path = path.replace("{new}", new).replace("{contacted}", contacted)
    kwargs = json.loads(json.dumps(kwargs, default=lambda b: b.decode("latin-1")).replace("{new}", new)
                        .replace("{contacted}", contacted)) if "json" in kwargs else kwargs
    r = c.request(method, path, headers={**world.headers("superadmin"), **kwargs.get("headers", {})},
                  **{k: v for k, v in kwargs.items() if k != "headers"})
    assert r.status_code == status, r.text[:500]
    body = r.json()
    assert set(body) == {"error", "detail"} and body["detail"]["code"] == code, body
    assert words.lower() in body["error"].lower(), body["error"]
    if code == "invalid_transition" and "allowed" in body["detail"]:
        assert body["detail"]["allowed"] == list(crm.allowed_transitions(body["detail"]["from_status"]))
    assert world.audit(actor=world.admin["id"]) == []  # a refused request changes nothing


def test_self_deactivation_is_a_conflict(world):
    c = client(world.wh)
    r = c.post(f"/api/users/{world.admin['id']}/deactivate", headers=world.headers("superadmin"))
    assert r.status_code == 409 and "yourself" in r.json()["error"]


def test_reads_mirror_the_seed(world):
    c = client(world.wh)
    h = world.headers("staff")
    stats = c.get("/api/stats", headers=h).json()
    assert stats == {"total": 12, "new": 8, "assigned": 0, "contacted": 4, "converted": 0, "rejected": 0}
    assert c.get("/api/stats?distributor=msh", headers=h).json() == stats
    assert c.get("/api/stats?distributor=other", headers=world.headers("superadmin")).json()["total"] == 0
    page = c.get("/api/leads?status=new&per_page=5&page=2", headers=h).json()
    assert (page["total"], page["page"], page["per_page"], page["pages"], len(page["items"])) == (8, 2, 5, 2, 3)
    found = c.get("/api/leads", params={"search": "ayşe"}, headers=h).json()
    assert [i["full_name"] for i in found["items"]] == ["Ayşe Kaya"]
    recent = c.get("/api/leads/recent?limit=3", headers=h).json()
    assert [r["meta_lead_id"] for r in recent] == world.lead_ids[::-1][:3]
    lead_id = world.lead_ids[1]
    c.post(f"/api/leads/{lead_id}/note", json={"text": "hello"}, headers=h)
    detail = c.get(f"/api/leads/{lead_id}", headers=h).json()
    assert detail["timeline"][-1]["kind"] == "note" and detail["timeline"][-1]["actor_email"] == "staff@example.com"


def test_health_and_openapi_are_public(world):
    c = client(world.wh)
    assert c.get("/api/health").json() == {"status": "ok", "backend": "duckdb", "schema_version": MIGRATIONS[-1][0]}
    # Monitoring probes use HEAD: the GET answer's status and headers, no body.
    head = c.head("/api/health")
    assert head.status_code == 200 and head.content == b"" and head.headers["content-type"] == "application/json"
    assert c.head("/api/leads").status_code == 401
    assert c.head("/api/leads", headers=world.headers("staff")).content == b""
    doc = c.get("/openapi.json").json()
    assert doc["openapi"].startswith("3.1")
    ops = {(m.upper(), p) for p, item in doc["paths"].items() for m in item}
    assert ("PUT", "/api/distributors/{key}/meta-settings") in ops and ("DELETE", "/api/leads/{id}") in ops
    # Every API route the app serves is in the generated document, and nothing else is (no console page, no
    # webhook, no /openapi.json itself).
    from leads_pipeline.web.api import api_routes

    served = {(m, r.path) for r in api_routes() for m in r.methods}
    assert served == ops
    assert len(ops) == 24
    for path, item in doc["paths"].items():
        for method, op in item.items():
            # The API's error answers, never FastAPI's 422; every protected route declares its credentials.
            assert "422" not in op["responses"], (method, path)
            assert {"200", "201"} & set(op["responses"]), (method, path)
            if path != "/api/health":
                assert {"401", "403"} <= set(op["responses"]) and op.get("security"), (method, path)
            if "requestBody" in op:
                assert {"400", "413", "415"} <= set(op["responses"]), (method, path)
    assert "HTTPValidationError" not in doc["components"]["schemas"]
    # The token is declared write-only.
    field = doc["components"]["schemas"]["DistributorSettingsUpdate"]["properties"]["access_token"]
    assert field["writeOnly"] is True
    assert "access_token" not in doc["components"]["schemas"]["DistributorSettings"]["properties"]
    # DELETE takes its reason in the body, not in the URL.
    delete = doc["paths"]["/api/leads/{id}"]["delete"]
    assert delete["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/Delete")
    assert all(p["in"] == "path" for p in delete["parameters"])


def test_the_meta_webhook_receiver_is_mounted(world, monkeypatch):
    from leads_pipeline.settings import get_settings

    monkeypatch.setenv("LEADS_WEBHOOK_VERIFY_TOKEN", "verify-me-please")
    get_settings.cache_clear()
    c = client(world.wh)
    r = c.get("/webhooks/meta", params={"hub.mode": "subscribe", "hub.verify_token": "verify-me-please",
                                        "hub.challenge": "1158201444"})
    assert r.status_code == 200 and r.text == "1158201444"
    # Unsigned deliveries are refused by the receiver itself (no API key or login involved).
    assert c.post("/webhooks/meta", json={"object": "page", "entry": []}).status_code in (403, 503)


def test_refusals_come_in_order_credentials_role_then_body(shared):
    """Who may call is judged before what they sent: no credentials is a 401 and a role that may not is a 403
    whatever the body; only an oversized body is refused first (it is never read whole)."""
    world, c = shared
    lead = world.lead_ids[1]
    bad_json = {"content": b"{not json", "headers": {"content-type": "application/json"}}
    r = c.post(f"/api/leads/{lead}/note", **bad_json)
    assert r.status_code == 401 and r.json()["detail"]["code"] == "unauthenticated"
    assert "WWW-Authenticate" in r.headers
    r = c.post("/api/distributors", content=b"[" * 100_000, headers={**world.headers("staff"),
                                                                     "content-type": "application/json"})
    assert r.status_code == 403 and r.json()["detail"]["code"] == "forbidden"
    r = c.request("DELETE", f"/api/leads/{lead}?reason=privacy", headers=world.headers("staff"))
    assert r.status_code == 403
    r = c.post(f"/api/leads/{lead}/note", content=b"x" * (1024 * 1024 + 1),
               headers={"content-type": "application/json"})
    assert r.status_code == 413 and r.json()["detail"]["code"] == "too_large"
    # A 405 names every method of the path, whichever route the router tried first.
    r = c.patch(f"/api/leads/{lead}", headers=world.headers("superadmin"))
    assert r.status_code == 405 and set(r.headers["Allow"].split(", ")) == {"GET", "DELETE"}
    assert world.audit(entity_type="lead") == []


def test_delete_takes_its_reason_in_the_body_and_never_from_the_url(world):
    """The reason of a privacy delete often names the person: it travels in the body; a ``?reason=`` (which access
    logs and proxies keep) is refused before anything is deleted, and the message says where to put it."""
    c = client(world.wh)
    h = world.headers("superadmin")
    lead = world.lead_ids[2]
    r = c.request("DELETE", f"/api/leads/{lead}?reason=asked+by+ayse%40example.com", headers=h)
    assert r.status_code == 400 and "JSON body" in r.json()["error"]
    r = c.request("DELETE", f"/api/leads/{lead}?reason=privacy", json={"reason": "privacy"}, headers=h)
    assert r.status_code == 400
    assert world.lead(lead) is not None and world.audit(action="lead.delete") == []
    r = c.request("DELETE", f"/api/leads/{lead}", json={"reason": "privacy request 2026-06-03"}, headers=h)
    assert r.status_code == 200, r.text
    assert r.json()["meta_lead_id"] == lead and r.json()["deleted_by"] == world.admin["id"]
    assert world.lead(lead) is None
    assert [row["entity_id"] for row in world.audit(action="lead.delete")] == [lead]
    r = c.get(f"/api/leads/{lead}", headers=h)
    assert r.status_code == 404 and r.json()["detail"]["deleted"] == [lead]


@pytest.mark.parametrize("depth", [1_000, 100_000])
def test_deeply_nested_json_is_a_400_never_a_500(shared, depth):
    """100 000 nested lists exceed the parser's recursion limit (a RecursionError, once a 500); 1 000 parse but
    are no field's type. Either way a 400 that says what is wrong, on every route that takes a body."""
    world, c = shared
    lead = world.lead_ids[1]
    nested = b"[" * depth + b"]" * depth
    bodies = {f"/api/leads/{lead}/status": b'{"status": ' + nested + b"}", f"/api/leads/{lead}/note": nested,
              "/api/leads/bulk": b'{"action": "status", "ids": ' + nested + b"}",
              "/api/distributors": b'{"name": {"a": ' + nested + b"}}", "/api/users": nested}
    for path, body in bodies.items():
        r = c.post(path, content=body, headers={**world.headers("superadmin"), "content-type": "application/json"})
        assert r.status_code == 400, (path, r.status_code, r.text[:300])
        assert r.json()["detail"]["code"] in ("invalid_json", "invalid_input", "validation_failed")
    assert world.audit(actor=world.admin["id"]) == []


def test_a_staff_user_sees_only_their_distributors_over_the_api(world):
    """The API passes the caller to ``lib/crm``: outside a staff user's distributors a lead does not exist (404),
    lists and stats cover only theirs, and a superadmin names their distributors over the API."""
    from leads_pipeline.lib.distributors import registry
    from leads_pipeline.lib.security import TokenCipher
    from leads_pipeline_tests.crm_fixtures import insert_rows, lead_row

    registry.add(world.wh, "Other Clinic", "EAAothertoken1234567890", key="other", page_ids=["2002"],
                 cipher=TokenCipher(world.secret_key))
    other = "800000000000001"
    insert_rows(world.wh, [lead_row(990, meta_lead_id=other, distributor="other", page_id="2002",
                                    full_name="Other Person", email="other.person@example.com")])
    c = client(world.wh)
    h, admin = world.headers("staff"), world.headers("superadmin")
    mine = world.lead_ids[1]

    listed = c.get("/api/leads?per_page=500", headers=h).json()
    assert listed["total"] == 12 and other not in {i["meta_lead_id"] for i in listed["items"]}
    assert c.get("/api/leads?distributor=other", headers=h).json()["total"] == 0
    assert c.get("/api/leads?search=Other", headers=h).json()["total"] == 0
    assert other not in {i["meta_lead_id"] for i in c.get("/api/leads/recent?limit=1000", headers=h).json()}
    assert c.get("/api/stats", headers=h).json()["total"] == 12
    r = c.get("/api/stats?distributor=other", headers=h)
    assert r.status_code == 404 and r.json()["detail"]["code"] == "distributor_not_found"
    assert [d["key"] for d in c.get("/api/distributors", headers=h).json()] == ["msh"]
    for method, path, body in [("GET", f"/api/leads/{other}", None),
                               ("POST", f"/api/leads/{other}/note", {"text": "mine now"}),
                               ("POST", f"/api/leads/{other}/status", {"status": "rejected"}),
                               ("POST", f"/api/leads/{other}/assign", {"user": world.staff["email"]}),
                               ("POST", f"/api/leads/{other}/interactions", {"kind": "call", "outcome": "busy"}),
                               ("POST", "/api/leads/bulk", {"action": "status", "ids": [mine, other],
                                                            "status": "rejected"})]:
        r = _call(c, method, path, body, h)
        assert r.status_code == 404 and r.json()["detail"]["code"] == "lead_not_found", (method, path, r.text)
        assert "Other Person" not in r.text
    bulk = c.post("/api/leads/bulk", json={"action": "status", "filter": {"distributor": "other"},
                                           "status": "rejected", "dry_run": True}, headers=h)
    assert bulk.status_code == 200 and bulk.json()["count"] == 0
    assert world.lead(other)["status"] == "new" and world.lead(mine)["status"] == "new"
    # The superadmin sees everything, and names the staff user's distributors (audited).
    assert c.get("/api/stats", headers=admin).json()["total"] == 13
    r = c.put(f"/api/users/{world.staff['email']}/distributors", json={"distributors": ["msh", "other"]},
              headers=admin)
    assert r.status_code == 200 and sorted(r.json()["distributors"]) == ["msh", "other"]
    assert c.put(f"/api/users/{world.staff['id']}/distributors", json={"distributors": []},
                 headers=h).status_code == 403
    assert c.get(f"/api/leads/{other}", headers=h).json()["full_name"] == "Other Person"
    assert [row["actor"] for row in world.audit(action="user.distributors")] == [world.admin["id"]]
    created = c.post("/api/users", json={"name": "Other Staff", "email": "o@example.com", "role": "staff",
                                         "distributors": ["other"]}, headers=admin)
    assert created.status_code == 201 and created.json()["distributors"] == ["other"]
    users = {u["email"]: u for u in c.get("/api/users", headers=admin).json()}
    assert users["admin@example.com"]["distributors"] is None and users["o@example.com"]["distributors"] == ["other"]
