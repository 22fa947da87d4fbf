"""Tenancy over HTTP: every lead route × role × in/out of scope, over the JSON API and the console, on DuckDB and
PostgreSQL. A staff user of ``msh`` must get 404 for a lead of ``other`` (as if it did not exist) and never its data;
a list, search, recent leads, stats, the distributor and user lists cover only ``msh``; a superadmin sees everything.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from leads_pipeline.lib import crm
from leads_pipeline.lib.distributors import registry
from leads_pipeline.lib.security import TokenCipher
from leads_pipeline.lib.warehouse import Warehouse
from leads_pipeline_tests.conftest import POSTGRES_URL
from leads_pipeline_tests.crm_fixtures import insert_rows, lead_row
from leads_pipeline_tests.test_web_support import STAFF_PASSWORD, World, client, login, seed_world

_FIRST = ["Zerrin", "Quentin", "Xavier", "Wilma", "Yusuf", "Vera"]
OTHER_NAMES = [f"{_FIRST[i % 6]} Gizlisoy{i:02d}" for i in range(30)]  # other's leads: 30, one per case
OTHER_STAFF = "other.staff@example.com"


class Tenants:
    """The seed world (distributor ``msh``, its staff, a superadmin) plus a second distributor ``other`` with its own
    leads and staff user."""

    def __init__(self, world: World):
        self.world = world
        wh = world.wh
        registry.add(wh, "Other Clinic", "EAAothertoken1234567890", key="other", page_ids=["2002"],
                     cipher=TokenCipher(world.secret_key))
        crm.add_user(wh, "Other Staff", OTHER_STAFF, "staff", distributors=["other"])
        rows = [lead_row(950 + i, meta_lead_id=f"{710000000000000 + i}", distributor="other", page_id="2002",
                         full_name=name, email=f"{name.split()[1].lower()}@other.example") for i, name in
                enumerate(OTHER_NAMES)]
        insert_rows(wh, rows)
        self.other_ids = [r["meta_lead_id"] for r in rows]
        self.msh_ids = list(world.lead_ids)
        self._msh = iter(self.msh_ids[1:])
        self._other = iter(self.other_ids[1:])

    def fresh(self, scope: str, status: str | None = None) -> str:
        """A lead of ``msh`` (in) or ``other`` (out) no earlier case has changed (with ``status``, one in it)."""
        leads = self._msh if scope == "in" else self._other
        while True:
            lead = next(leads)
            with self.world.wh.transaction(read_only=True) as conn:
                if status is None or conn.scalar("SELECT status FROM leads WHERE meta_lead_id = ?", [lead]) == status:
                    return lead

    def snapshot(self) -> list[tuple]:
        with self.world.wh.transaction(read_only=True) as conn:
            return [tuple(r.values()) for t in ("leads", "lead_interactions", "lead_tombstones") for r in
                    conn.query(f"SELECT * FROM {t} ORDER BY 1")]


def _url(backend: str, tmp_path_factory) -> Iterator[str]:
    if backend == "duckdb":
        yield f"duckdb:///{tmp_path_factory.mktemp('tenancy') / 'warehouse.duckdb'}"
        return
    import psycopg

    try:
        psycopg.connect(POSTGRES_URL, connect_timeout=3).close()
    except Exception as exc:  # noqa: BLE001
        import os

        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"PostgreSQL is not reachable ({type(exc).__name__}); under CI=true it must be")
        pytest.skip(f"PostgreSQL is not reachable ({type(exc).__name__})")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    yield f"{POSTGRES_URL}{'&' if '?' in POSTGRES_URL else '?'}options=-csearch_path%3D{schema}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture(scope="module", params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def tenants(request, tmp_path_factory) -> Iterator[tuple[Tenants, Any]]:
    """One two-distributor world per backend, shared by the matrix (each case works on its own lead)."""
    for url in _url(request.param, tmp_path_factory):
        wh = Warehouse(url)
        wh.migrate()
        with pytest.MonkeyPatch.context() as mp:
            t = Tenants(seed_world(mp, wh, leads=30))
        yield t, client(wh, t.world.settings())


# (method, path, JSON body, staff may do it at all)
LEAD_ROUTES = [
    ("GET", "/api/leads/{id}", None, True),
    ("POST", "/api/leads/{id}/status", {"status": "rejected", "note": "not interested"}, True),
    ("POST", "/api/leads/{id}/assign", {"user": "staff@example.com"}, True),
    ("POST", "/api/leads/{id}/note", {"text": "Prefers WhatsApp"}, True),
    ("POST", "/api/leads/{id}/interactions", {"kind": "call", "outcome": "answered"}, True),
    ("POST", "/api/leads/{id}/delete", {"reason": "privacy request"}, False),
    ("DELETE", "/api/leads/{id}", {"reason": "privacy request"}, False),
]


def _leaks(t: Tenants, text: str) -> list[str]:
    """Anything of ``other``'s leads (names, emails, ids) in a response."""
    found = [n for n in OTHER_NAMES if n in text or f"{n.split()[1]}@" in text.lower()]
    found += [i for i in t.other_ids if i in text]
    return found + (["@other.example"] if "@other.example" in text else [])


@pytest.mark.parametrize("role", ["staff", "superadmin"])
@pytest.mark.parametrize("scope", ["in", "out"])
@pytest.mark.parametrize("method,path,body,staff_may", LEAD_ROUTES, ids=[f"{m} {p}" for m, p, _, _ in LEAD_ROUTES])
def test_api_lead_routes(tenants, role, scope, method, path, body, staff_may):
    t, c = tenants
    lead = t.fresh(scope)
    before = t.snapshot()
    r = c.request(method, path.format(id=lead), headers=t.world.headers(role),
                  **({"json": body} if body is not None else {}))
    if role == "superadmin":
        if method == "POST" and path.endswith("/assign") and scope == "out":
            # staff@example.com works msh only: the superadmin is told they cannot see other's lead.
            assert r.status_code == 400 and "cannot see the leads of 'other'" in r.json()["error"]
            return
        assert r.status_code == 200, r.text
        return
    if not staff_may:
        assert r.status_code == 403 and r.json()["detail"]["code"] == "forbidden"
    elif scope == "in":
        assert r.status_code == 200, r.text
    else:
        assert r.status_code == 404, r.text
        assert r.json()["detail"]["code"] == "lead_not_found"
        assert r.json()["detail"].get("deleted", []) == []
    if r.status_code != 200:
        assert t.snapshot() == before, "a refused request changed something"
    if scope == "out":
        assert _leaks(t, r.text.replace(lead, "")) == []  # the id the caller sent may be echoed, nothing else


def _get(c, t: Tenants, role: str, path: str, **params: Any):
    r = c.get(path, params=params, headers=t.world.headers(role))
    return r


def test_api_lists_search_recent_stats_and_directories_cover_only_the_scope(tenants):
    t, c = tenants
    staff, admin = "staff", "superadmin"
    for params in ({}, {"distributor": "other"}, {"search": "Gizlisoy0"}, {"search": "other.example"},
                   {"distributor": "msh,other"}, {"per_page": 500}):
        r = _get(c, t, staff, "/api/leads", **params)
        assert r.status_code == 200 and _leaks(t, r.text) == [], params
        assert {i["distributor"] for i in r.json()["items"]} <= {"msh"}
    assert _get(c, t, staff, "/api/leads", distributor="other").json()["total"] == 0
    r = _get(c, t, staff, "/api/leads/recent", limit=1000)
    assert r.status_code == 200 and _leaks(t, r.text) == [] and r.json()
    assert _get(c, t, staff, "/api/leads/recent", limit=1000, distributor="other").json() == []
    mine = _get(c, t, staff, "/api/stats").json()
    assert mine["total"] == _get(c, t, admin, "/api/stats", distributor="msh").json()["total"]
    r = _get(c, t, staff, "/api/stats", distributor="other")
    assert r.status_code == 404 and r.json()["detail"]["code"] == "distributor_not_found"
    assert [d["key"] for d in _get(c, t, staff, "/api/distributors").json()] == ["msh"]
    users = [u["email"] for u in _get(c, t, staff, "/api/users").json()]
    assert OTHER_STAFF not in users and "staff@example.com" in users
    # The superadmin sees every distributor, lead and user.
    others = _get(c, t, admin, "/api/stats", distributor="other").json()["total"]
    assert others > 0 and _get(c, t, admin, "/api/stats").json()["total"] == mine["total"] + others
    assert [d["key"] for d in _get(c, t, admin, "/api/distributors").json()] == ["msh", "other"]
    assert OTHER_STAFF in [u["email"] for u in _get(c, t, admin, "/api/users").json()]
    assert _get(c, t, admin, "/api/leads", search="Gizlisoy00").json()["total"] == 1


def test_api_bulk_refuses_ids_outside_the_scope_and_a_filter_covers_only_it(tenants):
    t, c = tenants
    h = t.world.headers("staff")
    before = t.snapshot()
    r = c.post("/api/leads/bulk", headers=h, json={"action": "status", "status": "rejected",
                                                  "ids": [t.fresh("in"), t.fresh("out")]})
    assert r.status_code == 404 and r.json()["detail"]["code"] == "lead_not_found"
    assert t.snapshot() == before and _leaks(t, json.dumps(r.json()["detail"]).replace(
        r.json()["detail"]["ids"][0], "")) == []
    r = c.post("/api/leads/bulk", headers=h, json={"action": "assign", "user": "staff@example.com",
                                                  "filter": {"distributor": "other"}, "dry_run": True})
    assert r.status_code == 200 and r.json()["count"] == 0
    r = c.post("/api/leads/bulk", headers=h, json={"action": "assign", "user": "staff@example.com",
                                                  "filter": {"search": "@"}, "dry_run": True})
    assert r.status_code == 200 and not set(r.json()["ids"]) & set(t.other_ids)
    # Assigning to a user who cannot see the lead: a staff caller cannot even see that user.
    r = c.post(f"/api/leads/{t.fresh('in')}/assign", headers=h, json={"user": OTHER_STAFF})
    assert r.status_code == 400 and r.json()["detail"]["code"] == "unknown_user"


def test_api_scopes_are_managed_by_superadmins(tenants):
    t, c = tenants
    r = c.post("/api/users", headers=t.world.headers("superadmin"),
               json={"name": "Scoped", "email": "scoped@example.com", "role": "staff", "distributors": ["other"]})
    assert r.status_code == 201 and r.json()["distributors"] == ["other"]
    path = f"/api/users/{r.json()['id']}/distributors"
    r = c.put(path, headers=t.world.headers("staff"), json={"distributors": ["msh", "other"]})
    assert r.status_code in (403, 404)
    r = c.put(path, headers=t.world.headers("superadmin"), json={"distributors": ["msh"]})
    assert r.status_code == 200 and r.json()["distributors"] == ["msh"]
    r = c.put(path, headers=t.world.headers("superadmin"), json={"distributors": ["nope"]})
    assert r.status_code == 400


@pytest.mark.parametrize("scope", ["in", "out"])
@pytest.mark.parametrize("form", ["status", "assign", "note", "interactions"])
def test_console_lead_pages_and_forms(tenants, scope, form):
    t, _ = tenants
    c = client(t.world.wh, t.world.settings())
    token = login(c, "staff@example.com", STAFF_PASSWORD)
    lead = t.fresh(scope, "new")  # a new lead allows every form's change, whichever leads earlier cases took
    page = c.get(f"/console/leads/{lead}")
    assert page.status_code == (200 if scope == "in" else 404)
    if scope == "out":
        assert _leaks(t, page.text.replace(lead, "")) == []
    before = t.snapshot()
    data = {"status": {"status": "contacted"}, "assign": {"user": "staff@example.com"}, "note": {"text": "hello"},
            "interactions": {"kind": "call", "outcome": "answered", "direction": "outbound"}}[form]
    r = c.post(f"/console/leads/{lead}/{form}", data={**data, "csrf_token": token})
    assert r.status_code == 303
    after = t.snapshot()
    assert (after != before) == (scope == "in")
    shown = c.get(r.headers["location"])
    if scope == "out":
        assert "not found" in shown.text and _leaks(t, shown.text.replace(lead, "")) == []


def test_console_lists_and_stats_cover_only_the_scope(tenants):
    t, _ = tenants
    c = client(t.world.wh, t.world.settings())
    login(c, "staff@example.com", STAFF_PASSWORD)
    for path in ("/console/leads", "/console/leads?distributor=other", "/console/leads?search=Gizlisoy0",
                 "/console/stats", f"/console/leads/{t.msh_ids[0]}"):
        r = c.get(path)
        assert r.status_code == 200, path
        assert _leaks(t, r.text) == [] and "Other Clinic" not in r.text and OTHER_STAFF not in r.text, path
    assert c.get("/console/users").status_code == 403
    assert c.get("/console/distributors").status_code == 403
    # The superadmin's console shows both distributors, and manages scopes.
    admin = client(t.world.wh, t.world.settings())
    token = login(admin, "admin@example.com", "admin-password-123")
    assert "Other Clinic" in admin.get("/console/stats").text
    assert admin.get(f"/console/leads/{t.other_ids[0]}").status_code == 200
    users = admin.get("/console/users").text
    assert OTHER_STAFF in users and "every distributor" in users
    other_staff = crm.get_user(t.world.wh, OTHER_STAFF)
    r = admin.post(f"/console/users/{other_staff['id']}/distributors",
                   data={"distributor": ["other", "msh"], "csrf_token": token})
    assert r.status_code == 303
    assert crm.get_user(t.world.wh, OTHER_STAFF)["distributors"] == ["msh", "other"]
    admin.post(f"/console/users/{other_staff['id']}/distributors", data={"distributor": ["other"], "csrf_token": token})
    assert crm.get_user(t.world.wh, OTHER_STAFF)["distributors"] == ["other"]
