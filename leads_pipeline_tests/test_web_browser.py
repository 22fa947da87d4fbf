"""The console in a real browser: headless Chromium (Debian's, through Selenium and /usr/bin/chromedriver) against
``leads-pipeline serve`` on 127.0.0.1 with seeded data. Log in → lead list → filter → lead detail → change status →
add a note, asserting what the page shows after each step; screenshots go to ``test-artifacts/``.

Skipped when Chromium, chromedriver or Selenium is missing — except under ``CI=true``, where that is a failure.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from leads_pipeline.lib.distributors import registry
from leads_pipeline.lib.security import TokenCipher
from leads_pipeline_tests.crm_fixtures import insert_rows, lead_row
from leads_pipeline_tests.test_web_support import ARTIFACTS, STAFF_PASSWORD, seed_world, served, server_env

CHROMIUM = Path(os.environ.get("LEADS_TEST_CHROMIUM", "/usr/bin/chromium"))
CHROMEDRIVER = Path(os.environ.get("LEADS_TEST_CHROMEDRIVER", "/usr/bin/chromedriver"))

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _missing() -> str | None:
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is missing (apt-get install chromium chromium-driver)"
    if not CHROMEDRIVER.exists():
        return f"{CHROMEDRIVER} is missing (apt-get install chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install selenium)"
    return None


@pytest.fixture
def browser(tmp_path):
    reason = _missing()
    if reason:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"browser test cannot run under CI=true: {reason}")
        pytest.skip(reason)
    os.environ.setdefault("SE_AVOID_STATS", "true")  # Selenium Manager never phones home (and is not used here)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    profile = tmp_path / "chromium-profile"
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-default-apps", "--disable-extensions", "--disable-dev-shm-usage",
                 "--window-size=1280,1100", f"--user-data-dir={profile}"):
        options.add_argument(flag)
    service = Service(executable_path=str(CHROMEDRIVER), log_output=str(tmp_path / "chromedriver.log"))
    driver = webdriver.Chrome(service=service, options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def _click_and_load(driver, element) -> None:
    """Click something that loads a new page, and wait until the new page is there."""
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    old_page = driver.find_element(By.TAG_NAME, "html")
    element.click()

    def old_page_gone(_driver) -> bool:
        # Stale, or (Chrome under load) "node does not belong to the document": either way the page was replaced.
        try:
            old_page.is_enabled()
        except WebDriverException:
            return True
        return False

    WebDriverWait(driver, 20).until(old_page_gone)
    WebDriverWait(driver, 20).until(lambda d: d.execute_script("return document.readyState") == "complete")


def _screenshot(driver, name: str) -> Path:
    """A full-page screenshot in test-artifacts/ (the window grows to the page's height for it)."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1280, max(900, min(int(height) + 120, 4000)))
    driver.save_screenshot(str(path))
    driver.set_window_size(1280, 1100)
    return path


def _flashes(driver) -> list[str]:
    from selenium.webdriver.common.by import By

    return [e.text for e in driver.find_elements(By.CSS_SELECTOR, ".flash")]


OTHER_LEADS = ["Gizem Başkasının", "Hidden Otherclinic", "Yabancı Müşteri"]


def _other_distributor(world) -> list[str]:
    """A second distributor on the same warehouse, with leads the staff user of ``msh`` must never see."""
    registry.add(world.wh, "Other Clinic", "EAAothertoken1234567890", key="other", page_ids=["2002"],
                 cipher=TokenCipher(world.secret_key))
    rows = [lead_row(990 + i, meta_lead_id=f"{720000000000000 + i}", distributor="other", page_id="2002",
                     full_name=name, email=f"other{i}@other.example") for i, name in enumerate(OTHER_LEADS)]
    insert_rows(world.wh, rows)
    return [r["meta_lead_id"] for r in rows]


def _sees_nothing_of_other(driver, other_ids: list[str]) -> None:
    page = driver.page_source
    leaked = [n for n in OTHER_LEADS if n in page] + [i for i in other_ids if i in page]
    assert leaked == [] and "@other.example" not in page and "Other Clinic" not in page, leaked


def test_console_list_filter_detail_status_note(browser, monkeypatch, warehouse, warehouse_url):
    """A staff user of ``msh``, on a warehouse shared with another distributor: list → filter → detail → status →
    note, and nothing of the other distributor's leads on any page she sees."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    world = seed_world(monkeypatch, warehouse)
    other_ids = _other_distributor(world)
    backend = "postgres" if warehouse_url.startswith("postgres") else "duckdb"
    driver = browser
    with served(server_env(world)) as base:
        # Not logged in: the list sends us to the login form, which brings us back.
        driver.get(base + "/console/leads")
        assert driver.current_url.startswith(base + "/login?next=")
        driver.find_element(By.NAME, "email").send_keys("staff@example.com")
        driver.find_element(By.NAME, "password").send_keys(STAFF_PASSWORD)
        _click_and_load(driver, driver.find_element(By.CSS_SELECTOR, "form[action='/login'] button[type=submit]"))
        assert driver.current_url == base + "/console/leads"
        assert "Logged in as staff@example.com (staff)." in _flashes(driver)
        assert driver.find_element(By.ID, "result-count").text == "12 leads · page 1 of 1"
        assert len(driver.find_elements(By.CSS_SELECTOR, "a.lead-link")) == 12
        _sees_nothing_of_other(driver, other_ids)
        assert [o.get_attribute("value") for o in Select(driver.find_element(By.NAME, "distributor")).options
                if o.get_attribute("value")] == ["msh"]
        # Staff see no distributor settings and no user management.
        assert not driver.find_elements(By.LINK_TEXT, "Distributors")
        assert not driver.find_elements(By.LINK_TEXT, "Users")

        # Filter: status new.
        Select(driver.find_element(By.NAME, "status")).select_by_value("new")
        _click_and_load(driver, driver.find_element(By.CSS_SELECTOR, "form.filters button[type=submit]"))
        assert "status=new" in driver.current_url
        assert driver.find_element(By.ID, "result-count").text == "8 leads · page 1 of 1"
        badges = {b.text for b in driver.find_elements(By.CSS_SELECTOR, "table.leads .badge:not(.overdue)")}
        assert badges == {"new"}
        _screenshot(driver, f"console-list-{backend}.png")

        # Search narrows it further.
        search = driver.find_element(By.NAME, "search")
        search.clear()
        search.send_keys("Mehmet")
        _click_and_load(driver, driver.find_element(By.CSS_SELECTOR, "form.filters button[type=submit]"))
        links = driver.find_elements(By.CSS_SELECTOR, "a.lead-link")
        assert [a.text for a in links] == ["Mehmet Demir"]

        # Detail.
        _click_and_load(driver, links[0])
        lead_id = driver.current_url.rsplit("/", 1)[1]
        assert lead_id == world.lead_ids[1]
        assert driver.find_element(By.TAG_NAME, "h1").text.startswith("Mehmet Demir")
        assert driver.find_element(By.ID, "lead-status").text == "new"
        assert "Nothing yet" in driver.find_element(By.ID, "timeline").text
        assert not driver.find_elements(By.ID, "delete-form")  # staff cannot delete

        # Change status: new → contacted.
        driver.find_element(By.CSS_SELECTOR, "#status-form input[name=status][value=contacted]").click()
        driver.find_element(By.CSS_SELECTOR, "#status-form input[name=note]").send_keys("Called back at 10:00")
        _click_and_load(driver, driver.find_element(By.CSS_SELECTOR, "#status-form button[type=submit]"))
        assert "Status changed from new to contacted." in _flashes(driver)
        assert driver.find_element(By.ID, "lead-status").text == "contacted"
        timeline = driver.find_element(By.ID, "timeline").text
        assert "status change" in timeline and "new → contacted" in timeline and "Called back at 10:00" in timeline
        options = [o.get_attribute("value") for o in
                   driver.find_elements(By.CSS_SELECTOR, "#status-form input[name=status]")]
        assert options == ["converted", "rejected"]

        # Add a note.
        driver.find_element(By.CSS_SELECTOR, "#note-form textarea[name=text]").send_keys("Prefers WhatsApp, after 6pm")
        _click_and_load(driver, driver.find_element(By.CSS_SELECTOR, "#note-form button[type=submit]"))
        assert "Note added." in _flashes(driver)
        entries = driver.find_elements(By.CSS_SELECTOR, "#timeline li")
        assert "note" in entries[0].text and "Prefers WhatsApp, after 6pm" in entries[0].text
        assert "by staff@example.com" in entries[0].text
        assert _screenshot(driver, f"console-lead-{backend}.png").stat().st_size > 10_000

        # Reloading does not repeat the flash (post/redirect/get) and the page still shows the new state.
        driver.refresh()
        assert _flashes(driver) == []
        assert driver.find_element(By.ID, "lead-status").text == "contacted"
        _sees_nothing_of_other(driver, other_ids)

        # The other distributor's lead, typed into the address bar, does not exist for her; nor in search or stats.
        driver.get(f"{base}/console/leads/{other_ids[0]}")
        assert "not found" in driver.page_source
        _sees_nothing_of_other(driver, other_ids[1:])
        driver.get(f"{base}/console/leads?search=Otherclinic")
        assert driver.find_element(By.ID, "result-count").text.startswith("0 leads")
        driver.get(f"{base}/console/stats")
        _sees_nothing_of_other(driver, other_ids)

    assert world.lead(lead_id)["status"] == "contacted"
    assert [r["action"] for r in world.audit(actor=world.staff["id"])] == ["lead.status", "lead.note"]


def test_console_guides_a_scoped_staff_user(browser, monkeypatch, warehouse, warehouse_url):
    """Issue 15, in a real browser, as the staff user of ``msh`` (another distributor shares the warehouse): a new
    lead offers assign/contact/reject with none chosen; its answers stand under the form's questions (multi-select as
    a list), its times in Istanbul's time with UTC on hover, its phone and email as links; assigning happens in the
    status form; "My leads" lists only hers; each contact kind has its own outcomes; converting asks to confirm; the
    list has page numbers and marks overdue leads."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    from leads_pipeline.lib import crm
    from leads_pipeline.lib.distributors import forms

    world = seed_world(monkeypatch, warehouse, leads=30)
    other_ids = _other_distributor(world)
    backend = "postgres" if warehouse_url.startswith("postgres") else "duckdb"
    lead_id, admins = world.lead_ids[1], world.lead_ids[2]
    crm.assign(world.wh, admins, world.admin["id"], "cli")  # someone else's: never in her "my leads"
    with world.wh.transaction() as conn:
        conn.execute("UPDATE leads SET custom_fields = ? WHERE meta_lead_id = ?", [json.dumps({
            "treatment_of_interest": ["FUE Hair Transplant", "PRP Therapy"], "what_is_your_budget?": ["over_€5.000"]}),
            lead_id])
        forms.record(conn, "msh", [{"id": "f1", "page_id": "1001", "name": "Hair Transplant – Free Consultation",
                                    "questions": [
                                        {"key": "treatment_of_interest", "type": "CUSTOM",
                                         "label": "Which treatments are you interested in?"},
                                        {"key": "what_is_your_budget?", "label": "What is your budget?",
                                         "type": "CUSTOM", "options": [{"key": "over_€5.000", "value": "Over €5.000"}]},
                                    ]}])
    driver = browser
    with served(server_env(world)) as base:
        driver.get(base + "/login")
        driver.find_element(By.NAME, "email").send_keys("staff@example.com")
        driver.find_element(By.NAME, "password").send_keys(STAFF_PASSWORD)
        _click_and_load(driver, driver.find_element(By.CSS_SELECTOR, "form[action='/login'] button[type=submit]"))

        # The list: page numbers, overdue marks (new leads months past the 60-minute target), local times.
        assert driver.find_element(By.ID, "result-count").text == "30 leads · page 1 of 2"
        pager = driver.find_element(By.CSS_SELECTOR, "nav.pager")
        assert pager.find_element(By.CSS_SELECTOR, "[aria-current=page]").text == "1"
        assert driver.find_elements(By.CSS_SELECTOR, "table.leads .badge.overdue")
        assert "Europe/Istanbul" in driver.find_element(By.ID, "time-zone").text
        _click_and_load(driver, pager.find_element(By.LINK_TEXT, "2"))
        assert driver.find_element(By.ID, "result-count").text == "30 leads · page 2 of 2"
        assert len(driver.find_elements(By.CSS_SELECTOR, "a.lead-link")) == 5
        _sees_nothing_of_other(driver, other_ids)

        # A new lead: exactly assign / contact / reject, none chosen.
        driver.get(f"{base}/console/leads/{lead_id}")
        radios = driver.find_elements(By.CSS_SELECTOR, "#status-form input[type=radio][name=status]")
        assert [r.get_attribute("value") for r in radios] == ["assigned", "contacted", "rejected"]
        assert not any(r.is_selected() for r in radios)
        assert not driver.find_elements(By.CSS_SELECTOR, "#status-form select[name=status]")
        assert driver.find_element(By.ID, "lead-overdue").text.startswith("overdue")
        _screenshot(driver, f"console-new-lead-{backend}.png")

        # Answers under the form's questions; the multi-select one as a list.
        answers = driver.find_element(By.ID, "answers")
        labels = [e.text for e in answers.find_elements(By.TAG_NAME, "dt")]
        assert labels == ["Which treatments are you interested in?", "What is your budget?"]
        assert [li.text for li in answers.find_elements(By.CSS_SELECTOR, "ul.choices li")] == [
            "FUE Hair Transplant", "PRP Therapy"]
        assert "Over €5.000" in answers.text and "treatment_of_interest" not in answers.text
        assert driver.find_element(By.ID, "lead-form").text == "Hair Transplant – Free Consultation"

        # Local time with UTC on hover; contact links.
        created = driver.find_element(By.CSS_SELECTOR, "dl.facts time")
        assert created.get_attribute("title").endswith("UTC (Europe/Istanbul)")
        assert created.text != created.get_attribute("title")[:16]  # shown in Istanbul's time, not UTC's
        phone = driver.find_element(By.CSS_SELECTOR, "#lead-phone a[href^='tel:']")
        assert phone.get_attribute("href") == "tel:" + phone.text
        assert driver.find_element(By.CSS_SELECTOR, "#lead-phone a.wa").get_attribute("href").startswith(
            "https://wa.me/90")
        email = driver.find_element(By.CSS_SELECTOR, "#lead-email a")
        assert email.get_attribute("href") == "mailto:" + email.text

        # Assign in the status form: to herself.
        driver.find_element(By.CSS_SELECTOR, "#status-form input[value=assigned]").click()
        Select(driver.find_element(By.CSS_SELECTOR, "#status-form select[name=user]")).select_by_value(
            world.staff["id"])
        _click_and_load(driver, driver.find_element(By.CSS_SELECTOR, "#status-form button[type=submit]"))
        assert "Assigned to staff@example.com (status assigned)." in _flashes(driver)
        assert driver.find_element(By.ID, "lead-assignee").text == "Staff Person"

        # "My leads": only hers.
        _click_and_load(driver, driver.find_element(By.LINK_TEXT, "My leads"))
        assert driver.find_element(By.ID, "result-count").text == "1 lead · page 1 of 1"
        assert [a.get_attribute("href").rsplit("/", 1)[1]
                for a in driver.find_elements(By.CSS_SELECTOR, "a.lead-link")] == [lead_id]
        _click_and_load(driver, driver.find_element(By.ID, "view-unassigned"))
        assert driver.find_element(By.ID, "result-count").text.startswith("28 leads")

        # Each contact kind has its own outcomes; logging a call makes the lead contacted.
        driver.get(f"{base}/console/leads/{lead_id}")
        call_outcomes = Select(driver.find_element(By.CSS_SELECTOR, "#log-call-form select[name=outcome]"))
        assert [o.get_attribute("value") for o in call_outcomes.options][1:] == list(crm.OUTCOMES["call"])
        driver.find_element(By.CSS_SELECTOR, "#log-email summary").click()
        email_outcomes = Select(driver.find_element(By.CSS_SELECTOR, "#log-email-form select[name=outcome]"))
        assert [o.get_attribute("value") for o in email_outcomes.options][1:] == list(crm.OUTCOMES["email"])
        call_outcomes.select_by_value("answered")
        _click_and_load(driver, driver.find_element(By.CSS_SELECTOR, "#log-call-form button[type=submit]"))
        assert "Call logged; status now contacted." in _flashes(driver)

        # Converting asks to confirm; cancel changes nothing, confirming converts.
        radios = driver.find_elements(By.CSS_SELECTOR, "#status-form input[type=radio][name=status]")
        assert [r.get_attribute("value") for r in radios] == ["converted", "rejected"]
        assert not any(r.is_selected() for r in radios)
        driver.find_element(By.CSS_SELECTOR, "#status-form input[value=converted]").click()
        _click_and_load(driver, driver.find_element(By.CSS_SELECTOR, "#status-form button[type=submit]"))
        assert "This is final" in driver.find_element(By.ID, "confirm").text
        assert world.lead(lead_id)["status"] == "contacted"
        _screenshot(driver, f"console-confirm-{backend}.png")
        _click_and_load(driver, driver.find_element(By.ID, "confirm-cancel"))
        assert driver.find_element(By.ID, "lead-status").text == "contacted"
        driver.find_element(By.CSS_SELECTOR, "#status-form input[value=converted]").click()
        _click_and_load(driver, driver.find_element(By.CSS_SELECTOR, "#status-form button[type=submit]"))
        _click_and_load(driver, driver.find_element(By.CSS_SELECTOR, "#confirm-form button[type=submit]"))
        assert "Status changed from contacted to converted." in _flashes(driver)
        assert driver.find_element(By.ID, "lead-status").text == "converted"
        assert driver.find_element(By.ID, "status-final").text == "converted is final: no further moves."
        _screenshot(driver, f"console-guided-lead-{backend}.png")
        _sees_nothing_of_other(driver, other_ids)

    assert world.lead(lead_id) == {"status": "converted", "assigned_to": world.staff["id"]}
    assert [r["action"] for r in world.audit(actor=world.staff["id"])] == ["lead.assign", "lead.call", "lead.status"]
