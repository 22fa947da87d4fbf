"""The staff console, in-process: login/logout, CSRF on every form, roles, the lead pages' forms, flash messages,
distributor settings (superadmin), and sessions that end when the password changes or the user is deactivated.
"""

from __future__ import annotations

import json
import re

import pytest
from markupsafe import escape

from leads_pipeline.lib import crm
from leads_pipeline.lib.warehouse import Warehouse
from leads_pipeline.lib.crm import credentials
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
from leads_pipeline_tests.conftest import premigrated


@pytest.fixture
def world(monkeypatch, duckdb_url) -> World:
    wh = Warehouse(premigrated(duckdb_url))
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
    r = c.post(url + "/status", data={"csrf_token": token, "status": "converted", "note": "Booked for July",
                                      "from_status": "contacted"})
    assert r.status_code == 200 and "This is final" in r.text and w.lead(lead)["status"] == "contacted"
    page = post("/status", status="converted", note="Booked for July", from_status="contacted", confirm="yes")
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
    assert r.status_code == 200 and world.lead(lead) is not None  # not confirmed: the confirmation page
    assert 'id="confirm-form"' in r.text and "cannot be undone" in r.text and "privacy compact" in r.text
    assert re.search(r'name="confirm" value="yes"', r.text) and 'value="privacy request"' in r.text
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
    credentials.set_password(world.wh, "staff@example.com", "a-brand-new-password")
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


# ------------------------------------------------------------------------------------------- a console that guides


def _moves(page: str) -> list[tuple[str, bool]]:
    """The status form's choices: (value, checked) of each radio button."""
    form = re.search(r'<form[^>]*id="status-form".*?</form>', page, re.S)
    assert form, "no status form"
    assert '<select name="status"' not in form.group(0)  # a select always has a choice made
    return [(m.group(1), "checked" in m.group(0))
            for m in re.finditer(r'<input type="radio" name="status" value="(\w+)"[^>]*>', form.group(0))]


def _set_status(w: World, lead: str, status: str, assigned_to: str | None = None) -> None:
    with w.wh.transaction() as conn:
        conn.execute("UPDATE leads SET status = ?, assigned_to = ? WHERE meta_lead_id = ?", [status, assigned_to, lead])


def test_only_the_allowed_moves_are_offered_and_none_is_chosen(world):
    """Issue 15: the status box pre-selected "assigned" for a new lead (which then failed) and "converted" for a
    contacted one. Now: radio buttons, exactly the rules' moves, none checked; a final status offers none."""
    c = client(world.wh)
    login(c, "staff@example.com", STAFF_PASSWORD)
    new, contacted = world.lead_ids[1], world.lead_ids[0]
    assert _moves(c.get(f"/console/leads/{new}").text) == [("assigned", False), ("contacted", False),
                                                          ("rejected", False)]
    assert _moves(c.get(f"/console/leads/{contacted}").text) == [("converted", False), ("rejected", False)]
    _set_status(world, new, "rejected")
    assert _moves(c.get(f"/console/leads/{new}").text) == [("new", False), ("assigned", False),
                                                          ("contacted", False)]
    _set_status(world, contacted, "converted")
    page = c.get(f"/console/leads/{contacted}").text
    assert 'id="status-form"' not in page and "converted is final" in page
    for status in crm.STATUSES:  # every allowed move is offered, for every status
        allowed = crm.allowed_transitions(status)
        _set_status(world, new, status)
        page = c.get(f"/console/leads/{new}").text
        assert ([v for v, _ in _moves(page)] if allowed else []) == list(allowed)


def test_final_moves_ask_to_confirm_first(world):
    c = client(world.wh)
    token = login(c, "staff@example.com", STAFF_PASSWORD)
    lead = world.lead_ids[0]  # contacted
    url = f"/console/leads/{lead}"
    for status, words in (("converted", "This is final"), ("rejected", "can be reopened")):
        r = c.post(url + "/status", data={"csrf_token": token, "status": status, "note": "why not",
                                          "from_status": "contacted"})
        assert r.status_code == 200 and words in r.text and world.lead(lead)["status"] == "contacted"
        form = re.search(r'<form[^>]*id="confirm-form".*?</form>', r.text, re.S).group(0)
        hidden = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', form))
        assert hidden == {"csrf_token": hidden["csrf_token"], "status": status, "note": "why not",
                          "from_status": "contacted", "confirm": "yes"}
        assert f'href="{url}"' in r.text  # cancel goes back to the lead
    r = c.post(url + "/status", data={"csrf_token": token, "status": "converted", "from_status": "contacted",
                                      "confirm": "yes"})
    assert r.status_code == 303 and world.lead(lead)["status"] == "converted"
    # An impossible move is refused outright (no confirmation page for it), saying where the lead can go.
    other = world.lead_ids[1]
    r = c.post(f"/console/leads/{other}/status", data={"csrf_token": token, "status": "converted"})
    assert r.status_code == 303 and world.lead(other)["status"] == "new"
    shown = flashes(c.get(f"/console/leads/{other}").text)
    assert any("it can go to: assigned, contacted, rejected" in f for f in shown)


def test_a_page_left_open_does_not_move_a_lead_someone_else_moved(world):
    c = client(world.wh)
    token = login(c, "staff@example.com", STAFF_PASSWORD)
    lead = world.lead_ids[1]
    crm.change_status(world.wh, lead, "contacted", "cli")  # meanwhile, elsewhere
    r = c.post(f"/console/leads/{lead}/status", data={"csrf_token": token, "status": "rejected", "from_status": "new",
                                                      "confirm": "yes"})
    assert r.status_code == 303 and world.lead(lead)["status"] == "contacted"
    assert any("changed meanwhile: it is now contacted" in f for f in flashes(c.get(f"/console/leads/{lead}").text))


def test_assignment_where_the_status_changes(world_any):
    w = world_any
    c = client(w.wh)
    token = login(c, "staff@example.com", STAFF_PASSWORD)
    colleague = crm.add_user(w.wh, "Colleague", "colleague@example.com", "staff", distributors=["msh"])
    stranger = crm.add_user(w.wh, "Stranger", "stranger@example.com", "staff", distributors=[])
    lead = w.lead_ids[1]
    url = f"/console/leads/{lead}"
    page = c.get(url).text
    form = re.search(r'<form[^>]*id="status-form".*?</form>', page, re.S).group(0)
    assert 'name="user"' in form and "colleague@example.com" in form and "stranger@example.com" not in form

    def status(**data: str) -> list[str]:
        r = c.post(url + "/status", data={"csrf_token": token, **data})
        assert r.status_code == 303
        return flashes(c.get(url).text)

    # 'assigned' needs someone; no CLI command in the answer.
    shown = status(status="assigned", from_status="new")
    assert any("Choose who works the lead" in f for f in shown) and not any("leads-pipeline" in f for f in shown)
    assert w.lead(lead) == {"status": "new", "assigned_to": None}
    # Someone who cannot see the lead is refused before anything changes.
    status(status="assigned", user=stranger["id"], from_status="new")
    assert w.lead(lead) == {"status": "new", "assigned_to": None}
    # Assign with a note: one assignment (new → assigned) and the note.
    shown = status(status="assigned", user=colleague["id"], note="Speaks German", from_status="new")
    assert "Assigned to colleague@example.com (status assigned)." in shown and "Note added." in shown
    assert w.lead(lead) == {"status": "assigned", "assigned_to": colleague["id"]}
    # Another move with a new assignee: the status changes, then the lead is handed over.
    shown = status(status="contacted", user=w.staff["id"], from_status="assigned")
    assert "Status changed from assigned to contacted." in shown and "Assigned to staff@example.com." in shown
    assert w.lead(lead) == {"status": "contacted", "assigned_to": w.staff["id"]}
    # A rejected lead reopened straight to someone.
    crm.change_status(w.wh, lead, "rejected", "cli")
    with w.wh.transaction() as conn:
        conn.execute("UPDATE leads SET assigned_to = NULL WHERE meta_lead_id = ?", [lead])
    shown = status(status="assigned", user=colleague["id"], from_status="rejected")
    assert w.lead(lead) == {"status": "assigned", "assigned_to": colleague["id"]}
    assert "Status changed from rejected to assigned." in shown
    kinds = [i["kind"] for i in crm.get_lead(w.wh, lead, actor="cli")["timeline"]]
    assert kinds == ["assignment", "status_change", "note", "status_change", "assignment", "status_change",
                     "assignment", "reopen"]


def test_my_leads_and_unassigned(world):
    c = client(world.wh)
    login(c, "staff@example.com", STAFF_PASSWORD)
    ids = world.lead_ids
    crm.assign(world.wh, ids[1], world.staff["id"], "cli")
    crm.assign(world.wh, ids[2], world.staff["id"], "cli")
    crm.assign(world.wh, ids[4], world.admin["id"], "cli")
    page = c.get("/console/leads?view=mine").text
    assert "2 leads · page 1 of 1" in page and 'id="view-mine" class="active"' in page
    assert re.findall(r'class="lead-link" href="/console/leads/(\d+)"', page) == [ids[2], ids[1]]
    assert 'name="assigned_to"' not in page  # the view says whose leads they are
    page = c.get("/console/leads?view=unassigned").text
    assert "9 leads" in page and ids[1] not in page and ids[4] not in page
    page = c.get("/console/leads?view=mine&status=contacted").text
    assert "0 leads" in page and "No leads are assigned to you with these filters." in page
    page = c.get("/console/leads?view=mine&assigned_to=" + world.admin["id"]).text  # the view wins
    assert "2 leads" in page
    links = c.get("/console/leads?status=new").text
    assert 'href="/console/leads?status=new&amp;view=mine"' in links  # switching views keeps the filters
    assert 'href="/console/leads?view=mine"' in links  # the menu's "My leads"
    # Another user's "my leads" is hers, not the staff user's.
    other = client(world.wh)
    login(other, "admin@example.com", ADMIN_PASSWORD)
    assert re.findall(r'class="lead-link" href="/console/leads/(\d+)"',
                      other.get("/console/leads?view=mine").text) == [ids[4]]


QUESTIONS = [
    {"key": "full_name", "label": "Full name", "type": "FULL_NAME", "id": "1"},
    {"key": "treatment_of_interest", "label": "Which treatments are you interested in?", "type": "CUSTOM",
     "options": [{"key": "fue_hair_transplant", "value": "FUE Hair Transplant"},
                 {"key": "prp_therapy", "value": "PRP Therapy"}]},
    {"key": "what_is_your_budget?", "label": "What is your budget?", "type": "CUSTOM",
     "options": [{"key": "under_€2.000", "value": "Under €2.000"}]},
]


def _answers(page: str) -> list[tuple[str, str]]:
    section = re.search(r'<section class="card" id="answers">.*?</section>', page, re.S).group(0)
    return [(re.sub(r"<[^>]+>", "", dt).strip(), " | ".join(re.findall(r"<li>(.*?)</li>", dd))
             or re.sub(r"<[^>]+>", "", dd).strip())
            for dt, dd in re.findall(r"<dt[^>]*>(.*?)</dt>\s*<dd>(.*?)</dd>", section, re.S)]


def test_answers_under_the_form_questions_and_multi_select_as_lists(world_any):
    from leads_pipeline.lib.distributors import forms

    w = world_any
    c = client(w.wh)
    login(c, "staff@example.com", STAFF_PASSWORD)
    lead = w.lead_ids[1]
    with w.wh.transaction() as conn:
        conn.execute("UPDATE leads SET custom_fields = ? WHERE meta_lead_id = ?", [json.dumps({
            "what_is_your_budget?": ["under_€2.000"], "treatment_of_interest": ["FUE Hair Transplant", "PRP Therapy"],
            "_invalid_phone": ["0532 12"], "how_did_you_hear_about_us?": ["a friend"], "empty_one": [""]}), lead])
    # Before discovery has seen the form: the keys in words, the form as its id.
    page = c.get(f"/console/leads/{lead}").text
    assert _answers(page) == [("How did you hear about us?", "a friend"),
                              ("Treatment of interest", "FUE Hair Transplant | PRP Therapy"),
                              ("What is your budget?", "under_€2.000"),
                              ("Phone as typed (not valid)", "0532 12")]
    assert "_invalid_phone" not in re.sub(r'title="[^"]*"', "", page)
    # Discovery records the form's questions (as Meta's leadgen_forms lists them): the form's own words, its order,
    # and a choice's text for its key.
    with w.wh.transaction() as conn:
        forms.record(conn, "msh", [{"id": "f1", "page_id": "1001", "name": "Hair – Free Consultation",
                                    "questions": QUESTIONS}])
    page = c.get(f"/console/leads/{lead}").text
    assert _answers(page) == [("Which treatments are you interested in?", "FUE Hair Transplant | PRP Therapy"),
                              ("What is your budget?", "Under €2.000"),
                              ("How did you hear about us?", "a friend"),
                              ("Phone as typed (not valid)", "0532 12")]
    assert re.search(r'id="lead-form"><span title="form f1">Hair – Free Consultation</span>', page)
    # A later discovery that did not bring questions keeps the recorded ones.
    with w.wh.transaction() as conn:
        forms.record(conn, "msh", [{"id": "f1", "page_id": "1001", "name": "Hair – Free Consultation"}])
    assert forms.form_details(w.wh, "msh", ["f1"])["f1"]["questions"][1]["label"] == QUESTIONS[1]["label"]


def test_times_in_the_distributors_zone_with_utc_on_hover(world):
    c = client(world.wh)
    token = login(c, "staff@example.com", STAFF_PASSWORD)
    lead = world.lead_ids[1]  # created 2026-06-01 09:00 UTC + 901 h = 2026-07-08 22:00 UTC; msh is TR (UTC+3)
    page = c.get(f"/console/leads/{lead}").text
    assert ('<time datetime="2026-07-08T22:00:00+00:00" title="2026-07-08 22:00 UTC (Europe/Istanbul)">'
            '2026-07-09 01:00</time>') in page
    assert "Times in Europe/Istanbul" in page
    listing = c.get("/console/leads").text
    assert 'title="2026-07-08 22:00 UTC (Europe/Istanbul)">2026-07-09 01:00</time>' in listing
    assert "times in Europe/Istanbul" in listing
    # "When" of a logged call is Istanbul's wall time too.
    r = c.post(f"/console/leads/{lead}/interactions", data={
        "csrf_token": token, "kind": "call", "outcome": "answered", "direction": "outbound",
        "occurred_at": "2026-07-09T10:30"})
    assert r.status_code == 303
    call = next(i for i in crm.get_lead(world.wh, lead, actor="cli")["timeline"] if i["kind"] == "call")
    assert present_utc(call["occurred_at"]) == "2026-07-09T07:30:00+00:00"


def present_utc(value) -> str:
    from leads_pipeline.web import present

    return present.as_utc(value).isoformat()


def test_phone_email_and_whatsapp_are_links(world):
    c = client(world.wh)
    login(c, "staff@example.com", STAFF_PASSWORD)
    lead = world.lead_ids[1]
    phone = "+905321200901"
    page = c.get(f"/console/leads/{lead}").text
    assert f'<a href="tel:{phone}">{phone}</a>' in page and 'href="https://wa.me/905321200901"' in page
    assert '<a href="mailto:mehmet.1@example.com">mehmet.1@example.com</a>' in page
    listing = c.get("/console/leads").text
    assert f'href="tel:{phone}"' in listing and 'href="mailto:mehmet.1@example.com"' in listing


def test_each_contact_kind_offers_only_its_outcomes(world):
    """Issue 15: one outcome list mixed call, email and SMS outcomes, and a call's outcome on an email failed with
    "Outcome of a email". Each kind has its own form now."""
    c = client(world.wh)
    token = login(c, "staff@example.com", STAFF_PASSWORD)
    lead = world.lead_ids[1]
    page = c.get(f"/console/leads/{lead}").text
    for kind in crm.CONTACT_KINDS:
        form = re.search(rf'<form[^>]*id="log-{kind}-form".*?</form>', page, re.S).group(0)
        assert f'name="kind" value="{kind}"' in form
        offered = re.findall(r'<option value="(\w+)">', re.search(r'name="outcome".*?</select>', form, re.S).group(0))
        assert offered == list(crm.OUTCOMES[kind])
        assert re.search(r'<option value="" disabled selected>', form)  # no outcome chosen for you
    r = c.post(f"/console/leads/{lead}/interactions", data={"csrf_token": token, "kind": "email",
                                                             "direction": "outbound", "outcome": "sent"})
    assert r.status_code == 303
    assert "Email logged; status now contacted." in flashes(c.get(f"/console/leads/{lead}").text)
    r = c.post(f"/console/leads/{lead}/interactions", data={"csrf_token": token, "kind": "sms", "direction": "inbound"})
    shown = flashes(c.get(f"/console/leads/{lead}").text)
    assert any("Choose how an SMS went" in f for f in shown) and not any("a sms" in f or "a email" in f for f in shown)


def test_page_numbers(world, monkeypatch):
    from leads_pipeline.web import console

    monkeypatch.setattr(console, "PER_PAGE", 1)
    c = client(world.wh)
    login(c, "staff@example.com", STAFF_PASSWORD)

    def pager(url: str) -> list[str]:
        nav = re.search(r'<nav class="pager".*?</nav>', c.get(url).text, re.S).group(0)
        return [re.sub(r"<[^>]+>", "", m).strip() for m in re.findall(r"<(?:a|span)[^>]*>.*?</(?:a|span)>", nav)]

    assert pager("/console/leads") == ["1", "2", "3", "…", "12", "Next →"]
    assert pager("/console/leads?page=6") == ["← Previous", "1", "…", "4", "5", "6", "7", "8", "…", "12", "Next →"]
    page = c.get("/console/leads?page=6&status=new").text
    assert 'aria-current="page">6<' in page and 'href="/console/leads?status=new&amp;page=5"' in page
    monkeypatch.setattr(console, "PER_PAGE", 25)
    assert 'class="pager"' not in c.get("/console/leads").text  # one page: no pager


def test_overdue_leads_are_marked(world):
    """Leads past the distributor's speed-to-lead target (``lib/distributors/health``; default 60 minutes) and not
    contacted carry an "overdue" mark in the list and on the lead."""
    c = client(world.wh)
    login(c, "staff@example.com", STAFF_PASSWORD)
    listing = c.get("/console/leads").text
    overdue = re.findall(r'href="/console/leads/(\d+)">[^<]*</a>\s*<span class="badge overdue"', listing)
    assert sorted(overdue) == sorted(i for n, i in enumerate(world.lead_ids) if n % 3)  # the new ones, not contacted
    assert 'id="lead-overdue"' in c.get(f"/console/leads/{world.lead_ids[1]}").text
    assert 'id="lead-overdue"' not in c.get(f"/console/leads/{world.lead_ids[0]}").text  # contacted


def test_the_forms_of_another_distributors_lead_are_not_there(world):
    """The status, confirm and log paths read the lead as the caller: out of scope is not found, nothing changes."""
    from leads_pipeline_tests.crm_fixtures import add_distributor_sql, insert_rows, lead_row

    add_distributor_sql(world.wh, "other")
    row = lead_row(990, meta_lead_id="720000000000001", distributor="other", status="contacted")
    insert_rows(world.wh, [row])
    c = client(world.wh)
    token = login(c, "staff@example.com", STAFF_PASSWORD)
    url = f"/console/leads/{row['meta_lead_id']}"
    for path, data in (("/status", {"status": "converted"}), ("/status", {"status": "converted", "confirm": "yes"}),
                       ("/interactions", {"kind": "call", "outcome": "answered", "occurred_at": "2026-07-01T10:00"})):
        r = c.post(url + path, data={"csrf_token": token, **data})
        assert r.status_code == 303 and r.headers["location"] == url
        shown = c.get(url)
        assert shown.status_code == 404 and "not found" in shown.text and "Lead Person 990" not in shown.text
    assert world.lead(row["meta_lead_id"]) == {"status": "contacted", "assigned_to": None}


def test_presentation_rules():
    """The pure rules behind the pages: a region's zone, page numbers, waits, links, a datetime-local field."""
    import datetime as dt

    from leads_pipeline.web import present

    zone = present.zone_name
    assert zone(present.zone_for_region("TR")) == "Europe/Istanbul"
    assert zone(present.zone_for_region("de")) == "Europe/Berlin"
    assert zone(present.zone_for_region("US")) == "America/New_York"  # several zones: the main one
    assert zone(present.zone_for_region("NL")) == "Europe/Amsterdam"  # from zone.tab
    assert present.zone_for_region("") is present.UTC and present.zone_for_region("XX") is present.UTC
    assert present.page_numbers(1, 1) == [1]
    assert present.page_numbers(1, 12) == [1, 2, 3, None, 12]
    assert present.page_numbers(4, 12) == [1, 2, 3, 4, 5, 6, None, 12]
    assert present.page_numbers(12, 12) == [1, None, 10, 11, 12]
    assert [present.waited(m) for m in (0, 59, 60, 125, 1440, 3000)] == ["0 min", "59 min", "1 h", "2 h 5 min", "1 d",
                                                                          "2 d 2 h"]
    assert present.contact_links({"phone": "+90 532 120 0901", "email": "a+b@example.com"}) == {
        "tel": "tel:+905321200901", "whatsapp": "https://wa.me/905321200901", "mailto": "mailto:a+b@example.com"}
    assert present.contact_links({"phone": None, "email": None}) == {}
    istanbul = present.zone_for_region("TR")
    assert present.parse_local("2026-07-09T10:30", istanbul) == "2026-07-09T07:30:00+00:00"
    assert present.parse_local("", istanbul) is None and present.parse_local("soon", istanbul) == "soon"
    assert present.local_time(None) == "" and "UTC</time>" in present.local_time(dt.datetime(2026, 1, 1))
    assert "&lt;b&gt;" in present.local_time("<b>not a time</b>")  # escaped, never markup
    moves = present.moves("contacted", ("converted", "rejected"))
    assert [(m.status, m.confirm) for m in moves] == [("converted", True), ("rejected", True)]
    assert [m.label for m in present.moves("rejected", ("new", "assigned", "contacted"))] == [
        "Reopen as new", "Reopen and assign", "Reopen as contacted"]
    assert present.answers({"q": ["a", " ", "b"], "x": [None], "y": "one"}, None) == [
        present.Answer("q", "Q", ["a", "b"], False), present.Answer("y", "Y", ["one"], False)]


def test_a_synced_lead_shows_its_forms_questions(monkeypatch, simulator_factory, duckdb_url):
    """End to end over the Graph simulator: a sync's discovery keeps each form's questions (``leadgen_forms``
    ``questions``), and a synced lead's answers then show under the questions' own words, multi-select ones as
    lists, with the form's name."""
    from leads_pipeline.lib.ingest import sync
    from leads_pipeline_tests.pipeline_fixtures import make_sandbox

    box = make_sandbox(monkeypatch, simulator_factory(), duckdb_url)
    key = box.keys[0]
    assert sync.sync_distributor(box.wh, key).success
    with box.wh.transaction(read_only=True) as conn:
        rows = conn.query("SELECT l.meta_lead_id, l.form_id, CAST(l.custom_fields AS TEXT) AS answers, "
                          "CAST(f.questions AS TEXT) AS questions, f.form_name FROM leads l JOIN distributor_forms f "
                          "ON f.distributor = l.distributor AND f.form_id = l.form_id WHERE l.distributor = ? "
                          "ORDER BY l.meta_lead_id", [key])
    # A lead with a multi-select answer of several choices.
    row = next(r for r in rows if any(len(v) > 1 for v in json.loads(r["answers"]).values()))
    questions = json.loads(row["questions"])
    assert questions and all(q["key"] and q["label"] for q in questions)
    admin = crm.add_user(box.wh, "Admin", "admin@example.com", "superadmin")
    credentials.set_password(box.wh, admin["email"], ADMIN_PASSWORD)
    c = client(box.wh)
    login(c, admin["email"], ADMIN_PASSWORD)
    page = c.get(f"/console/leads/{row['meta_lead_id']}").text
    shown = dict(_answers(page))
    labels = {q["key"]: q["label"] for q in questions}
    answered = {k: v for k, v in json.loads(row["answers"]).items() if any(str(x).strip() for x in v)}
    assert answered and set(shown) == {labels.get(k, k) for k in answered}
    multi = [k for k, v in answered.items() if len(v) > 1]
    assert multi and all(shown[labels[k]] == " | ".join(str(escape(v)) for v in answered[k]) for k in multi)
    assert f'title="form {row["form_id"]}">{escape(row["form_name"])}</span>' in page
