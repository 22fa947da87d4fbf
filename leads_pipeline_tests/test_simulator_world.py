"""The simulated world: determinism, realistic data, ground truth (manifest) = what is served, the clock."""

from __future__ import annotations

import json
import re
from collections import Counter

import phonenumbers
import pytest
import requests

from leads_pipeline.simulator import Scenario, Simulator, SimulatorServer
from leads_pipeline.simulator.validation import NO_VALID_CONTACT, REASONS, classify_lead, lead_status
from leads_pipeline_tests.conftest_simulator import Graph, independent_reason

FULL = ("id,created_time,ad_id,ad_name,adset_id,adset_name,campaign_id,campaign_name,form_id,is_organic,platform,"
        "field_data,custom_disclaimer_responses")


def _pages_of(server: SimulatorServer, manifest: dict, limit: int = 17) -> list[str]:
    """The raw bodies of every leads page of every form, with the (ephemeral) host stripped."""
    g = Graph(server.base_url, manifest["user_token"])
    bodies = []
    for page in manifest["pages"]:
        for form in page["forms"]:
            resp = g.get(f"{form['id']}/leads", fields=FULL, limit=limit)
            while True:
                bodies.append(resp.text.replace(server.base_url, "<host>"))
                nxt = resp.json().get("paging", {}).get("next")
                if not nxt:
                    break
                resp = g.get_url(nxt)
    return bodies


def test_same_seed_same_world_different_seed_different(simulator_factory):
    a = simulator_factory(seed=5)
    b = simulator_factory(seed=5)
    c = simulator_factory(seed=6)
    ma, mb, mc = a.manifest(), b.manifest(), c.manifest()
    same_manifest = ma == mb
    assert same_manifest
    assert _pages_of(a, ma) == _pages_of(b, mb)
    first_form = [m["pages"][0]["forms"][0]["valid_lead_ids"] for m in (ma, mc)]
    different = ma != mc and first_form[0] != first_form[1]
    assert different
    # Advancing is deterministic too.
    assert a.advance(leads=7) == b.advance(leads=7)
    assert _pages_of(a, a.manifest()) == _pages_of(b, b.manifest())


def test_manifest_shape_and_endpoint(simulator):
    manifest = requests.get(f"{simulator.base_url}/__simulator/manifest", timeout=10).json()
    for key in ("app_id", "app_secret", "user_token", "api_version", "pages", "now"):
        assert key in manifest
    assert manifest["api_version"] == "v25.0"
    assert manifest["pages"][0]["default_region"] == "TR"
    ids = [manifest["app_id"]]
    for page in manifest["pages"]:
        assert set(page) >= {"id", "name", "access_token", "default_region", "forms"}
        ids.append(page["id"])
        for form in page["forms"]:
            assert set(form) >= {"id", "name", "locale", "valid_lead_ids", "no_contact_lead_ids",
                                 "malformed_lead_ids", "malformed_without_id", "malformed"}
            assert set(form["no_contact_lead_ids"]) <= set(form["valid_lead_ids"])
            ids.append(form["id"])
            ids += form["valid_lead_ids"] + form["malformed_lead_ids"]
            assert len(form["malformed"]) == len(form["malformed_lead_ids"]) + form["malformed_without_id"]
            assert {m["reason"] for m in form["malformed"]} <= set(REASONS)
            assert [m["id"] for m in form["malformed"] if m["id"] is not None] == form["malformed_lead_ids"]
    assert len(ids) == len(set(ids)), "ids are unique"
    for i in ids:
        if re.fullmatch(r"[0-9]+", i):
            assert 15 <= len(i) <= 17


def test_manifest_agrees_with_served_leads_and_the_validation_doc(simulator_factory):
    """valid ids = served leads docs/lead-validation.md calls leads (quarantine checked independently); of them,
    no_contact ids = the leads stored with status 'rejected'."""
    server = simulator_factory(seed=3, pages=3, forms_per_page=2, leads_per_form=150, malformed_rate=0.06)
    manifest = server.manifest()
    g = Graph(server.base_url, manifest["user_token"])
    seen_reasons: Counter = Counter()
    unreachable_total = 0
    for page in manifest["pages"]:
        for form in page["forms"]:
            served = g.all_leads(form["id"], fields=FULL, limit=100)
            valid, unreachable, malformed_ids, without = [], [], [], 0
            for lead in served:
                reason = independent_reason(lead, page["default_region"])
                assert reason == classify_lead(lead, page["default_region"], form["locale"])
                if reason is None:
                    valid.append(lead["id"])
                    status, why = lead_status(lead, page["default_region"], form["locale"])
                    if status == "rejected":
                        assert why == NO_VALID_CONTACT
                        unreachable.append(lead["id"])
                else:
                    seen_reasons[reason] += 1
                    if lead.get("id"):
                        malformed_ids.append(lead["id"])
                    else:
                        without += 1
            assert valid == form["valid_lead_ids"]
            assert unreachable == form["no_contact_lead_ids"]
            assert malformed_ids == form["malformed_lead_ids"]
            assert without == form["malformed_without_id"]
            unreachable_total += len(unreachable)
    assert set(seen_reasons) == set(REASONS), seen_reasons
    assert unreachable_total, "the generator still makes leads nobody can reach"


def test_realistic_data(simulator_factory):
    server = simulator_factory(seed=21, pages=3, forms_per_page=2, leads_per_form=250, organic_rate=0.15)
    manifest = server.manifest()
    g = Graph(server.base_url, manifest["user_token"])
    text = []
    phones_by_style: Counter = Counter()
    emails_with_case_or_space = 0
    platforms: Counter = Counter()
    organic = paid = multi = 0
    keys: set[str] = set()
    disclaimers = 0
    for page in manifest["pages"]:
        region = page["default_region"]
        for form in page["forms"]:
            for lead in g.all_leads(form["id"], fields=FULL, limit=100):
                if not isinstance(lead.get("field_data"), list):
                    continue
                platforms[lead.get("platform")] += 1
                if lead.get("is_organic"):
                    organic += 1
                    assert not {"ad_id", "adset_id", "campaign_id", "ad_name"} & set(lead)
                else:
                    paid += 1
                    assert {"ad_id", "ad_name", "adset_id", "adset_name", "campaign_id", "campaign_name"} <= set(lead)
                if "custom_disclaimer_responses" in lead:
                    disclaimers += 1
                    for resp in lead["custom_disclaimer_responses"]:
                        assert resp["is_checked"] in ("1", "")
                for entry in lead["field_data"]:
                    if not isinstance(entry, dict) or not isinstance(entry.get("values"), list):
                        continue
                    keys.add(entry["name"])
                    values = entry["values"]
                    assert all(isinstance(v, str) for v in values)
                    if len(values) > 1:
                        multi += 1
                    text += values
                    if entry["name"] in ("email", "work_email") and values and values[0]:
                        if values[0] != values[0].strip() or values[0] != values[0].lower():
                            emails_with_case_or_space += 1
                    if entry["name"] in ("phone_number", "work_phone_number") and values and values[0]:
                        v = values[0]
                        try:
                            num = phonenumbers.parse(v, region)
                        except phonenumbers.NumberParseException:
                            continue
                        if phonenumbers.is_valid_number(num):
                            style = ("+" if v.startswith("+") else "00" if v.startswith("00") else
                                     "(0" if v.startswith("(0") else "0" if v.startswith("0") else "bare")
                            phones_by_style[(region, style, " " in v)] += 1
    blob = " ".join(text)
    for ch in "çşğıöüİ":
        assert ch in blob, f"Turkish letter {ch} missing from the answers"
    assert re.search(r"\b(Müller|Schmidt|Smith|Ivanov|Al[- ]\w+)", blob)
    assert platforms["fb"] and platforms["ig"]
    assert organic and paid and multi and disclaimers
    assert emails_with_case_or_space > 10
    assert {"what_is_your_budget?", "treatment_of_interest", "travel_month"} <= keys
    tr_styles = {style for (region, style, _space) in phones_by_style if region == "TR"}
    assert {"+", "0", "(0", "bare", "00"} <= tr_styles, phones_by_style
    assert any(region != "TR" and style == "+" for (region, style, _s) in phones_by_style)


def test_same_person_on_two_forms_and_across_pages(simulator_factory):
    server = simulator_factory(seed=8, pages=3, forms_per_page=2, leads_per_form=120, same_person_rate=0.1,
                               malformed_rate=0.0)
    manifest = server.manifest()
    g = Graph(server.base_url, manifest["user_token"])
    where: dict[str, set[tuple[int, str]]] = {}
    for p_idx, page in enumerate(manifest["pages"]):
        for form in page["forms"]:
            for lead in g.all_leads(form["id"], fields="field_data", limit=100):
                for entry in lead["field_data"]:
                    if entry["name"] in ("email", "work_email") and entry["values"]:
                        where.setdefault(entry["values"][0].strip().lower(), set()).add((p_idx, form["id"]))
    multi_form = [k for k, v in where.items() if len({f for _p, f in v}) > 1]
    multi_page = [k for k, v in where.items() if len({p for p, _f in v}) > 1]
    assert multi_form and multi_page


def test_advance_makes_new_leads_visible_first(simulator):
    manifest = simulator.manifest()
    g = Graph(simulator.base_url, manifest["user_token"])
    before = {p["id"]: {f["id"]: f for f in p["forms"]} for p in manifest["pages"]}
    new_ids = simulator.advance(leads=12)
    after = simulator.manifest()
    without_id = sum(f["malformed_without_id"] for p in after["pages"] for f in p["forms"]) - sum(
        f["malformed_without_id"] for p in manifest["pages"] for f in p["forms"])
    assert len(new_ids) + without_id == 12  # leads without an id have no id to list
    assert after["now"] > manifest["now"]
    grown = 0
    for page in after["pages"]:
        for form in page["forms"]:
            old = before[page["id"]][form["id"]]
            fresh = [i for i in form["valid_lead_ids"] + form["malformed_lead_ids"]
                     if i not in old["valid_lead_ids"] and i not in old["malformed_lead_ids"]]
            assert set(fresh) <= set(new_ids)
            if fresh:
                grown += 1
                served = [lead.get("id") for lead in g.all_leads(form["id"], fields="id", limit=100)]
                assert set(served[: len(fresh)]) == set(fresh), "new leads come first (newest first)"
    assert grown
    assert set(new_ids) <= {i for p in after["pages"] for f in p["forms"]
                            for i in f["valid_lead_ids"] + f["malformed_lead_ids"]}
    # Control endpoint: by seconds.
    resp = requests.post(f"{simulator.base_url}/__simulator/advance", json={"seconds": 3600}, timeout=10)
    assert resp.status_code == 200
    assert resp.json()["now"] == after["now"] + 3600


def test_extra_leads_run_out_and_endless_timeline():
    sim = Simulator(Scenario(seed=2, pages=1, forms_per_page=1, leads_per_form=5, extra_leads=3, malformed_rate=0))
    assert len(sim.advance(leads=10)) == 3
    assert sim.advance(seconds=10 ** 6) == []
    endless = Simulator(Scenario(seed=2, pages=1, forms_per_page=1, leads_per_form=5, extra_leads=None,
                                 arrival_rate=30, malformed_rate=0))
    assert len(endless.advance(leads=500)) == 500
    got = endless.advance(seconds=1200)
    assert 480 <= len(got) <= 720  # about 30 per minute
    endless.close()


def test_scenario_json_roundtrip(tmp_path):
    sc = Scenario(seed=9, pages=2, regions=["TR", "DE"], leads_per_form=[3, 4], require_appsecret_proof=True)
    path = tmp_path / "scenario.json"
    path.write_text(json.dumps(sc.to_dict()))
    loaded = Scenario.from_json(path)
    assert loaded == sc
    assert Scenario.from_json(json.dumps({"seed": 4})).seed == 4
    with pytest.raises(ValueError):
        Scenario.from_dict({"sed": 1})
    with pytest.raises(ValueError):
        Scenario(malformed_rate=2)
    sim = Simulator(loaded)
    counts = [len(f["valid_lead_ids"]) + len(f["malformed"]) for p in sim.manifest()["pages"] for f in p["forms"]]
    assert counts == [3, 4, 3, 4]


def test_region_mix_and_first_page_tr():
    sim = Simulator(Scenario(seed=1, pages=4, leads_per_form=1))
    regions = [p["default_region"] for p in sim.manifest()["pages"]]
    assert regions[0] == "TR" and len(set(regions)) > 1


def test_state_roundtrip():
    sim = Simulator(Scenario(seed=4, pages=2, leads_per_form=20, extra_leads=30))
    sim.advance(leads=9)
    sim.world.pages[1].installed_fields = ["leadgen"]
    state = json.loads(json.dumps(sim.state()))
    leaked = sim.world.user_token in json.dumps(state) or sim.world.app_secret in json.dumps(state)
    assert not leaked
    again = Simulator.from_state(state)
    assert again.manifest() == sim.manifest()
    assert again.world.pages[1].installed_fields == ["leadgen"]


def test_ground_truth_agrees_with_the_pipeline_parser():
    """docs/lead-validation.md: the simulator's quarantine, statuses and contacts are exactly the parser's."""
    from leads_pipeline.lib.ingest import parse as parsing
    from leads_pipeline.simulator.validation import contacts

    sim = Simulator(Scenario(seed=17, pages=3, forms_per_page=2, leads_per_form=400, malformed_rate=0.08,
                             invalid_contact_rate=0.1))
    disagreements = []
    for form in sim.world.forms:
        hi = sim.world.visible_hi(form.sks)
        for lead in form.leads[:hi]:
            result = parsing.parse_lead(lead.obj, distributor="sim", page_id=form.page.id,
                                        default_region=form.page.region, form_locales={form.id: form.locale})
            if isinstance(result, parsing.Rejection):
                got = (result.reason, None, None, None)
            else:
                got = (None, result.status_reason, result.email, result.phone)
            expected = (lead.reason, None, None, None)
            if lead.reason is None:
                expected = (None, lead.status_reason, *contacts(lead.obj, form.page.region, form.locale))
            if got != expected:
                disagreements.append((lead.id, expected, got))
    assert not disagreements


# ------------------------------------------------------------------------------------------ a clock anchored to now


def test_a_world_anchored_to_now_has_its_history_up_to_now_and_the_same_leads():
    """``start_time=None`` (the sandbox, ``simulator serve``): the history is the weeks up to the moment the world is
    built, not a fixed date months away; the leads themselves (ids, answers) are those of the fixed clock."""
    import time

    fixed = Simulator(Scenario(seed=3, pages=1, leads_per_form=200, extra_leads=0, history_days=56))
    before = int(time.time())
    live = Simulator(Scenario(seed=3, pages=1, leads_per_form=200, extra_leads=0, history_days=56,
                                start_time=None))
    after = int(time.time())
    assert before <= live.world.start_time == live.world.now <= after
    cts = [lead.ct for form in live.world.forms for lead in form.leads]
    assert all(live.world.now - 56 * 86400 <= ct < live.world.now for ct in cts)
    assert live.world.now - max(cts) < 2 * 86400 and live.world.now - min(cts) > 50 * 86400
    shift = live.world.start_time - fixed.world.start_time
    pairs = [(a, b) for fa, fb in zip(fixed.world.forms, live.world.forms) for a, b in zip(fa.leads, fb.leads)]
    assert pairs and all(a.id == b.id and b.ct - a.ct == shift for a, b in pairs)
    assert [a.obj["field_data"][0] for a, _ in pairs] == [b.obj["field_data"][0] for _, b in pairs]
    # The state pins the moment the world was built: the same world again, not one anchored later.
    again = Simulator.from_state(json.loads(json.dumps(live.state())))
    assert again.world.start_time == live.world.start_time and again.manifest() == live.manifest()


def test_live_arrivals_of_an_anchored_world_are_dated_by_the_wall_clock():
    """Real-time mode (``make dev``'s sandbox): a lead that arrives is dated the moment it arrives."""
    import time

    sim = Simulator(Scenario(seed=2, pages=1, forms_per_page=1, leads_per_form=5, extra_leads=None,
                             arrival_rate=600.0, start_time=None))
    sim.world.advance(seconds=0)
    seen = sum(sim.world.form_counts(f)[0] for f in sim.world.forms)
    sim.start_realtime(tick=0.05)
    try:
        deadline = time.time() + 10
        while time.time() < deadline and sum(sim.world.form_counts(f)[0] for f in sim.world.forms) < seen + 3:
            time.sleep(0.05)
        wall = time.time()
        arrived = [lead for lead in sim.world.forms[0].leads[seen:] if lead.ct <= sim.world.now]
    finally:
        sim.stop_realtime()
    assert len(arrived) >= 3
    assert abs(sim.world.now - wall) <= 2
    assert all(wall - 15 <= lead.ct <= wall + 1 for lead in arrived), [(lead.ct, wall) for lead in arrived]


def test_serve_start_option():
    from click.testing import CliRunner

    from leads_pipeline.commands.simulator import _start_time, simulator

    assert _start_time("now") is None
    assert _start_time("1780272000") == 1780272000
    assert _start_time("2026-06-01T00:00:00Z") == _start_time("2026-06-01T00:00:00") == 1780272000
    bad = CliRunner().invoke(simulator, ["serve", "--port", "0", "--start", "yesterday"])
    assert bad.exit_code == 2 and "--start" in bad.output
