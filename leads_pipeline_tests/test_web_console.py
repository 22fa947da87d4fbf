"""The staff console, in-process: login/logout, CSRF on every form, roles, the lead pages' forms, flash messages,
distributor settings (superadmin), and sessions that end when the password changes or the user is deactivated.
"""

from __future__ import annotations

import re

import pytest

from leads_pipeline.lib import crm
from leads_pipeline.lib.warehouse import Warehouse
from leads_pipeline.web import auth
from leads_pipeline_tests.test_web_support import (
    ADMIN_PASSWORD,
    SECRET_TOKEN,
    STAFF_PASSWORD,
    World,
    client,
    csrf_from,
    login,
    seed_world,
)


@pytest.fixture
def world(monkeypatch, duckdb_url) -> World:
    wh = Warehouse(duckdb_url)
    wh.migrate()
    return seed_world(monkeypatch, wh)


@pytest.fixture
def world_any(monkeypatch, warehouse) -> World:
    return seed_world(monkeypatch, warehouse)


def flashes(page: str) -> list[str]:
    return [re.sub(r"<[^>]+>", "", m).strip() for m in re.findall(r'class="flash flash-\w+"[^>]*>(.*?)</div>', page,
                                                                     re.S)]


def test_pages_need_a_login_and_keep_where_you_were_going(world):
    c = client(world.wh)
    r = c.get("/console/leads?status=new")
    assert r.status_code == 303 and r.headers["location"] == "/login?next=%2Fconsole%2Fleads%3Fstatus%3Dnew"
    token = csrf_from(c.get("/login").text)
    r = c.post("/login", data={"email": "staff@example.com", "password": "wrong password", "csrf_token": token,
                               "next": "/console/leads?status=new"})
    assert r.status_code == 401 and "Wrong email or password" in r.text
    r = c.post("/login", data={"email": "STAFF@example.com", "password": STAFF_PASSWORD, "csrf_token": token,
                               "next": "/console/leads?status=new"})
    assert r.status_code == 303 and r.headers["location"] == "/console/leads?status=new"
    page = c.get("/console/leads?status=new").text
    assert "Logged in as staff@example.com (staff)." in flashes(page)
    assert "8 leads" in page


def test_login_never_redirects_off_site(world):
    c = client(world.wh)
    token = csrf_from(c.get("/login").text)
    for target in ("//evil.example/x", "https://evil.example/", "/\\evil.example"):
        r = c.post("/login", data={"email": "admin@example.com", "password": ADMIN_PASSWORD, "csrf_token": token,
                                   "next": target})
        assert r.headers["location"] == "/console/leads"
        token = csrf_from(c.get("/console/leads").text)


def test_login_without_or_with_a_wrong_csrf_token_is_refused(world):
    c = client(world.wh)
    c.get("/login")
    for token in (None, "forged-token-value-1234567890"):
        data = {"email": "admin@example.com", "password": ADMIN_PASSWORD}
        if token:
            data["csrf_token"] = token
        r = c.post("/login", data=data)
        assert r.status_code == 403 and "CSRF" in r.text
    assert c.get("/console/leads").status_code == 303  # still not logged in


def test_a_form_post_without_or_with_a_wrong_csrf_token_is_rejected(world):
    c = client(world.wh)
    token = login(c, "staff@example.com", STAFF_PASSWORD)
    lead = world.lead_ids[1]
    for data in ({"status": "contacted"}, {"status": "contacted", "csrf_token": ""},
                 {"status": "contacted", "csrf_token": token[:-2] + "xx"}):
        r = c.post(f"/console/leads/{lead}/status", data=data)
        assert r.status_code == 403 and "CSRF" in r.text
        assert world.lead(lead)["status"] == "new"
    r = c.post(f"/console/leads/{lead}/note", data={"text": "sneaky"})
    assert r.status_code == 403
    r = c.post("/logout", data={})
    assert r.status_code == 403  # even logging out needs the token
    assert world.audit(actor=world.staff["id"]) == []
    # A token from another session does not work either.
    other = client(world.wh)
    other_token = login(other, "admin@example.com", ADMIN_PASSWORD)
    assert c.post(f"/console/leads/{lead}/status",
                  data={"status": "contacted", "csrf_token": other_token}).status_code == 403
    # The right token does.
    r = c.post(f"/console/leads/{lead}/status", data={"status": "contacted", "csrf_token": token})
    assert r.status_code == 303 and world.lead(lead)["status"] == "contacted"


def test_working_a_lead_through_the_console(world_any):
    w = world_any
    c = client(w.wh)
    token = login(c, "staff@example.com", STAFF_PASSWORD)
    lead = w.lead_ids[1]
    url = f"/console/leads/{lead}"
    page = c.get(url).text
    assert "Mehmet Demir" in page and 'id="lead-status">new<' in page
    assert 'id="delete-form"' not in page  # staff cannot delete

    def post(path: str, **data: str) -> str:
        r = c.post(url + path, data={"csrf_token": token, **data})
        assert r.status_code == 303 and r.headers["location"] == url
        return c.get(url).text

    page = post("/status", status="converted")
    assert any("it can go to: assigned, contacted, rejected" in f for f in flashes(page))
    page = post("/assign", user=w.staff["id"])
    assert "Assigned to staff@example.com (status assigned)." in flashes(page)
    page = post("/interactions", kind="call", direction="outbound", outcome="no_answer", body="rang twice")
    assert "Call logged; status now contacted." in flashes(page) and "rang twice" in page
    page = post("/note", text="Prefers <b>WhatsApp</b>")
    assert "Note added." in flashes(page)
    assert "Prefers &lt;b&gt;WhatsApp&lt;/b&gt;" in page  # escaped, never markup
    page = post("/status", status="converted", note="Booked for July")
    assert "Status changed from contacted to converted." in flashes(page) and "converted is final" in page
    page = post("/note", text="")
    assert "The note is empty." in flashes(page)
    actions = [r["action"] for r in w.audit(actor=w.staff["id"])]
    assert actions == ["lead.assign", "lead.call", "lead.note", "lead.status"]


def test_the_lead_list_filters_searches_and_pages(world):
    c = client(world.wh)
    login(c, "admin@example.com", ADMIN_PASSWORD)
    page = c.get("/console/leads").text
    assert "12 leads · page 1 of 1" in page and page.count('class="lead-link"') == 12
    assert re.search(r"<dt>new</dt><dd>8</dd>", page)
    page = c.get("/console/leads?status=contacted").text
    assert "4 leads" in page and page.count('class="lead-link"') == 4
    page = c.get("/console/leads", params={"search": "müller"}).text
    assert "1 lead " in page and "Anna Müller" in page
    page = c.get("/console/leads?distributor=other").text
    assert "No leads match these filters." in page
    page = c.get("/console/leads?assigned_to=ghost").text
    assert "No user &#39;ghost&#39;" in page or "No user 'ghost'" in page


def test_pagination_links_keep_the_filters(world, monkeypatch):
    from leads_pipeline.web import console

    monkeypatch.setattr(console, "PER_PAGE", 3)
    c = client(world.wh)
    login(c, "admin@example.com", ADMIN_PASSWORD)
    page = c.get("/console/leads?status=new").text
    assert "8 leads · page 1 of 3" in page
    nxt = re.search(r'href="([^"]+)" rel="next"', page).group(1).replace("&amp;", "&")
    assert "status=new" in nxt and "page=2" in nxt
    page = c.get(nxt).text
    assert "page 2 of 3" in page and 'rel="prev"' in page


def test_staff_cannot_open_distributor_settings_and_superadmins_can(world):
    c = client(world.wh)
    token = login(c, "staff@example.com", STAFF_PASSWORD)
    assert "/console/distributors" not in c.get("/console/leads").text
    r = c.get("/console/distributors/msh")
    assert r.status_code == 403 and "may not change distributor settings" in r.text
    r = c.post("/console/distributors/msh/sync", data={"csrf_token": token})
    assert r.status_code == 403
    r = c.post(f"/console/leads/{world.lead_ids[1]}/delete", data={"csrf_token": token, "reason": "x",
                                                                   "confirm": "yes"})
    assert r.status_code == 403 and world.lead(world.lead_ids[1]) is not None


def test_distributor_settings_test_and_sync_in_the_console(world):
    c = client(world.wh)
    token = login(c, "admin@example.com", ADMIN_PASSWORD)
    page = c.get("/console/distributors/msh").text
    assert "MSH Med Tour" in page and 'name="access_token" value=""' in page
    r = c.post("/console/distributors/msh", data={
        "csrf_token": token, "name": "MSH Med Tour", "page_ids": "1001, 1002", "form_ids": "", "region": "tr",
        "interval_minutes": "15", "notify_email": "ops@example.com", "enabled": "on", "access_token": SECRET_TOKEN})
    assert r.status_code == 303
    page = c.get("/console/distributors/msh").text
    assert "Settings saved (new access token stored)." in flashes(page)
    assert SECRET_TOKEN not in page and 'value="1001, 1002"' in page and 'value="15"' in page
    r = c.post("/console/distributors/msh", data={"csrf_token": token, "name": "MSH Med Tour", "region": "XX",
                                                  "interval_minutes": "15"})
    assert any("Unknown phone region" in f for f in flashes(c.get("/console/distributors/msh").text))
    c.post("/console/distributors/msh/test", data={"csrf_token": token})
    assert any(f.startswith("Connection test: ") for f in flashes(c.get("/console/distributors/msh").text))
    c.post("/console/distributors/msh/sync", data={"csrf_token": token})
    assert any(f.startswith("Sync: Sync failed") for f in flashes(c.get("/console/distributors/msh").text))
    actions = [r["action"] for r in world.audit(actor=world.admin["id"])]
    assert actions == ["distributor.update", "distributor.test", "distributor.sync"]
    r = c.post("/console/distributors", data={"csrf_token": token, "name": "Second Clinic",
                                              "access_token": SECRET_TOKEN + "b", "region": "DE"})
    assert r.status_code == 303 and r.headers["location"] == "/console/distributors/second-clinic"
    assert SECRET_TOKEN not in c.get("/console/distributors").text


def test_superadmin_deletes_a_lead_after_confirming(world):
    c = client(world.wh)
    token = login(c, "admin@example.com", ADMIN_PASSWORD)
    lead = world.lead_ids[2]
    r = c.post(f"/console/leads/{lead}/delete", data={"csrf_token": token, "reason": "privacy request"})
    assert r.status_code == 303 and world.lead(lead) is not None  # not confirmed
    r = c.post(f"/console/leads/{lead}/delete", data={"csrf_token": token, "reason": "privacy request",
                                                      "confirm": "yes"})
    assert r.status_code == 303 and r.headers["location"] == "/console/leads"
    assert world.lead(lead) is None
    shown = flashes(c.get("/console/leads").text)
    assert any(f.startswith(f"Lead {lead} deleted; its personal data was erased.") for f in shown), shown
    r = c.get(f"/console/leads/{lead}")
    assert r.status_code == 404 and "deleted on a privacy request" in r.text
    assert [r["actor"] for r in world.audit(action="lead.delete")] == [world.admin["id"]]


def test_stats_page_shows_the_seed_counts(world):
    c = client(world.wh)
    login(c, "staff@example.com", STAFF_PASSWORD)
    page = c.get("/console/stats").text
    assert re.search(r"All your distributors</td>\s*<td>12</td><td>8</td><td>0</td><td>4</td>", page)


def test_logout_and_sessions_that_end(world):
    c = client(world.wh)
    token = login(c, "staff@example.com", STAFF_PASSWORD)
    assert c.post("/logout", data={"csrf_token": token}).status_code == 303
    assert c.get("/console/leads").status_code == 303
    # A new password ends older sessions; so does deactivation.
    login(c, "staff@example.com", STAFF_PASSWORD)
    auth.set_password(world.wh, "staff@example.com", "a-brand-new-password")
    assert c.get("/console/leads").status_code == 303
    login(c, "staff@example.com", "a-brand-new-password")
    crm.deactivate_user(world.wh, "staff@example.com")
    assert c.get("/console/leads").status_code == 303
    token = csrf_from(c.get("/login").text)
    r = c.post("/login", data={"email": "staff@example.com", "password": "a-brand-new-password", "csrf_token": token})
    assert r.status_code == 401


def test_failed_logins_are_throttled(world):
    c = client(world.wh)
    token = csrf_from(c.get("/login").text)
    for _ in range(10):
        c.post("/login", data={"email": "admin@example.com", "password": "guess", "csrf_token": token})
    r = c.post("/login", data={"email": "admin@example.com", "password": ADMIN_PASSWORD, "csrf_token": token})
    assert r.status_code == 429 and "Too many failed attempts" in r.text


def test_security_headers_and_cookie_flags(world):
    c = client(world.wh)
    r = c.get("/login")
    assert r.headers["x-frame-options"] == "DENY" and "default-src 'none'" in r.headers["content-security-policy"]
    assert r.headers["cache-control"] == "no-store"
    cookie = r.headers["set-cookie"]
    assert cookie.startswith("lp_session=") and "httponly" in cookie.lower() and "samesite=lax" in cookie.lower()
    assert "<script" not in r.text
    css = c.get("/static/console.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
