"""Form ownership (``form_owners``): explicit and discovered claims, conflicts, releases, routing, the v006 backfill
and Meta's expired-lead warnings — on DuckDB and PostgreSQL."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from leads_pipeline.lib.distributors import forms as form_records
from leads_pipeline.lib.distributors import ownership
from leads_pipeline.lib.distributors import registry as distributors
from leads_pipeline.lib.distributors.ownership import FormClaimConflict
from leads_pipeline.lib.security import generate_key

TOKEN = "EAAGm0PX4ZCpsBAKZCZAZBmS7wUl9sPq4ZBdYzZC7Q8ZDZD"
PAGE, F1, F2, F3 = "100", "1001", "1002", "1003"


@pytest.fixture(autouse=True)
def secret_key(monkeypatch):
    from leads_pipeline.settings import get_settings

    monkeypatch.setenv("LEADS_SECRET_KEY", generate_key())
    get_settings.cache_clear()


@pytest.fixture
def cli_env(warehouse, monkeypatch):
    from leads_pipeline.settings import get_settings

    monkeypatch.setenv("LEADS_WAREHOUSE_URL", warehouse.url)
    get_settings.cache_clear()
    return warehouse


def form(form_id, page=PAGE, **extra):
    return {"id": form_id, "page_id": page, "name": f"Form {form_id}", "status": "ACTIVE", "locale": "en_US", **extra}


def discover(wh, key, found):
    with wh.transaction() as conn:
        return ownership.claim_discovered(conn, key, found)


def owned(wh, key):
    with wh.transaction(read_only=True) as conn:
        return ownership.owned_forms(conn, key)


def owners(wh):
    with wh.transaction(read_only=True) as conn:
        return {r["form_id"]: (r["distributor"], r["claim"])
                for r in conn.query("SELECT form_id, distributor, claim FROM form_owners")}


def route(wh, *pairs):
    with wh.transaction(read_only=True) as conn:
        return ownership.route(conn, pairs)


def two_on_one_page(wh):
    """A and B read one Page; A is configured with F1, B with F2; A's token shows both forms to its discovery."""
    distributors.add(wh, "A Clinic", TOKEN, key="a", page_ids=[PAGE], form_ids=[F1])
    distributors.add(wh, "B Clinic", TOKEN, key="b", page_ids=[PAGE], form_ids=[F2])
    assert discover(wh, "a", [form(F1), form(F2)]) == {F1}
    assert discover(wh, "b", [form(F1), form(F2)]) == {F2}


def test_two_distributors_on_one_page_each_own_their_form(warehouse):
    two_on_one_page(warehouse)
    assert owned(warehouse, "a") == {F1: PAGE}
    assert owned(warehouse, "b") == {F2: PAGE}
    assert owners(warehouse) == {F1: ("a", "explicit"), F2: ("b", "explicit")}
    with warehouse.transaction(read_only=True) as conn:  # both discoveries are recorded; seeing is not owning
        seen = conn.query("SELECT distributor, form_id FROM distributor_forms ORDER BY distributor, form_id")
    assert [(r["distributor"], r["form_id"]) for r in seen] == [("a", F1), ("a", F2), ("b", F1), ("b", F2)]


def test_route_sends_an_f2_lead_to_b_not_to_the_page_of_a(warehouse):
    """The case the Page-based routing got wrong: A is configured with the Page and discovered F2 first."""
    two_on_one_page(warehouse)
    routes = route(warehouse, (F2, PAGE), (F1, PAGE), (F2, None))
    assert routes == {(F2, PAGE): "b", (F1, PAGE): "a", (F2, None): "b"}


def test_route_by_page_only_without_form_id(warehouse):
    distributors.add(warehouse, "A Clinic", TOKEN, key="a", page_ids=["200"])
    distributors.add(warehouse, "B Clinic", TOKEN, key="b")
    distributors.add(warehouse, "C Clinic", TOKEN, key="c", page_ids=["300"], form_ids=[F3])
    distributors.add(warehouse, "D Clinic", TOKEN, key="d", page_ids=["300"])
    discover(warehouse, "b", [form(F1, page="400"), form(F2, page="400")])
    routes = route(warehouse, (None, "200"), (None, "400"), (None, "300"), (None, "999"), (None, None),
                   ("7772", "200"), ("7773", "300"), ("7779", "999"), ("", "200"))
    assert routes == {
        (None, "200"): "a",  # the distributor configured with the Page
        (None, "400"): "b",  # nobody configured with it: the one owner of its forms
        (None, "300"): None,  # two distributors configured with it: ambiguous
        (None, "999"): None,
        (None, None): None,
        ("7772", "200"): None,  # a form nobody owns waits for a claim: never guessed from the Page
        ("7773", "300"): None,
        ("7779", "999"): None,
        ("", "200"): "a",  # an empty form id is no form id
    }


def test_two_owners_of_one_pages_forms_make_page_routing_ambiguous(warehouse):
    two_on_one_page(warehouse)
    distributors.update(warehouse, "a", page_ids=[])
    distributors.update(warehouse, "b", page_ids=[])
    assert route(warehouse, (None, PAGE)) == {(None, PAGE): None}


def test_discovery_without_form_id_owns_only_forms_nobody_claims(warehouse):
    distributors.add(warehouse, "B Clinic", TOKEN, key="b", form_ids=[F2])
    distributors.add(warehouse, "C Clinic", TOKEN, key="c")
    assert discover(warehouse, "c", [form(F1), form(F2)]) == {F1}
    assert owned(warehouse, "c") == {F1: PAGE}
    assert owned(warehouse, "b") == {F2: PAGE}  # discovery noted the Page of B's form, and took nothing
    distributors.add(warehouse, "D Clinic", TOKEN, key="d")
    assert discover(warehouse, "d", [form(F1), form(F2), form(F3)]) == {F3}  # never another's discovered form
    assert owners(warehouse) == {F1: ("c", "discovered"), F2: ("b", "explicit"), F3: ("d", "discovered")}


def test_discovery_of_a_distributor_with_form_ids_or_other_pages_claims_nothing_more(warehouse):
    distributors.add(warehouse, "A Clinic", TOKEN, key="a", form_ids=[F1])
    distributors.add(warehouse, "E Clinic", TOKEN, key="e", page_ids=["555"])
    assert discover(warehouse, "a", [form(F1), form(F2)]) == {F1}
    assert discover(warehouse, "e", [form(F3)]) == set()  # F3 is on a Page E does not read
    assert owners(warehouse) == {F1: ("a", "explicit")}


def test_conflicting_explicit_claim_is_refused_naming_the_other(warehouse):
    distributors.add(warehouse, "B Clinic", TOKEN, key="b", form_ids=[F2])
    with pytest.raises(FormClaimConflict, match=rf"form {F2} is already claimed by distributor 'b' \(B Clinic\): "
                                                r"remove it there first") as err:
        distributors.add(warehouse, "A Clinic", TOKEN, key="a", form_ids=[F1, F2])
    assert (err.value.form_id, err.value.owner) == (F2, "b")
    assert isinstance(err.value, distributors.DistributorError)
    assert [d.key for d in distributors.list_all(warehouse)] == ["b"]  # nothing of A was kept
    assert owners(warehouse) == {F2: ("b", "explicit")}
    distributors.add(warehouse, "A Clinic", TOKEN, key="a", form_ids=[F1])
    with pytest.raises(FormClaimConflict, match="distributor 'b'"):
        distributors.update(warehouse, "a", form_ids=[F1, F2])
    assert distributors.get(warehouse, "a").form_ids == (F1,)
    assert owners(warehouse) == {F1: ("a", "explicit"), F2: ("b", "explicit")}


def test_cli_refuses_a_conflicting_claim_with_exit_1_and_the_owners_name(cli_env):
    from leads_pipeline.commands.distributors import distributors as group

    runner = CliRunner()
    ok = runner.invoke(group, ["add", "B Clinic", "--token", TOKEN, "--form-id", F2])
    assert ok.exit_code == 0, ok.output
    refused = runner.invoke(group, ["add", "A Clinic", "--token", TOKEN, "--form-id", F2])
    assert refused.exit_code == 1
    assert isinstance(refused.exception, SystemExit)  # a message, not a traceback
    assert f"form {F2} is already claimed by distributor 'b-clinic' (B Clinic)" in refused.output
    assert "Traceback" not in refused.output and TOKEN not in refused.output
    assert runner.invoke(group, ["add", "A Clinic", "--token", TOKEN]).exit_code == 0
    updated = runner.invoke(group, ["update", "a-clinic", "--form-id", F2])
    assert updated.exit_code == 1 and "distributor 'b-clinic'" in updated.output
    shown = runner.invoke(group, ["forms", "b-clinic"])
    assert shown.exit_code == 0, shown.output
    body = json.loads(shown.stdout)
    assert [(f["form_id"], f["claim"]) for f in body["forms"]] == [(F2, "explicit")] and body["warnings"] == []
    assert runner.invoke(group, ["forms", "nope"]).exit_code == 1


def test_explicit_claim_takes_over_a_discovered_form(warehouse):
    distributors.add(warehouse, "C Clinic", TOKEN, key="c")
    assert discover(warehouse, "c", [form(F1), form(F2)]) == {F1, F2}
    distributors.add(warehouse, "A Clinic", TOKEN, key="a", form_ids=[F1], actor="ayse")
    assert owned(warehouse, "a") == {F1: PAGE}  # the Page discovery recorded comes with the claim
    assert owned(warehouse, "c") == {F2: PAGE}
    assert discover(warehouse, "c", [form(F1), form(F2)]) == {F2}  # and C's next discovery does not take it back
    assert route(warehouse, (F1, PAGE)) == {(F1, PAGE): "a"}
    with warehouse.transaction(read_only=True) as conn:
        taken = conn.query("SELECT actor, entity_id, after FROM audit_log WHERE action = 'distributor.forms_taken_over'")
    assert [(t["actor"], t["entity_id"], json.loads(t["after"])) for t in taken] == [
        ("ayse", "c", {"forms": [F1], "claimed_by": "a"})]


def test_remove_releases_forms_to_a_discoverer_and_keeps_leads(warehouse):
    distributors.add(warehouse, "C Clinic", TOKEN, key="c")
    distributors.add(warehouse, "B Clinic", TOKEN, key="b", form_ids=[F2])
    distributors.add(warehouse, "E Clinic", TOKEN, key="e", form_ids=[F3])
    assert discover(warehouse, "c", [form(F1), form(F2)]) == {F1}
    with warehouse.transaction() as conn:
        conn.execute("INSERT INTO leads (meta_lead_id, distributor, form_id, created_time, first_seen_at, updated_at) "
                     "VALUES ('9', 'b', ?, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)", [F2])
    distributors.remove(warehouse, "b")
    assert owners(warehouse) == {F1: ("c", "discovered"), F2: ("c", "discovered"), F3: ("e", "explicit")}
    distributors.remove(warehouse, "e")  # nobody discovered F3: it is unowned, and its changes wait
    assert F3 not in owners(warehouse)
    assert route(warehouse, (F3, PAGE), (F2, PAGE)) == {(F3, PAGE): None, (F2, PAGE): "c"}
    with warehouse.transaction(read_only=True) as conn:
        assert conn.query("SELECT meta_lead_id, distributor FROM leads") == [{"meta_lead_id": "9", "distributor": "b"}]


def test_update_form_ids_releases_what_is_no_longer_claimed(warehouse):
    distributors.add(warehouse, "C Clinic", TOKEN, key="c")
    distributors.add(warehouse, "A Clinic", TOKEN, key="a", page_ids=[PAGE], form_ids=[F1, F2])
    discover(warehouse, "a", [form(F1), form(F2), form(F3)])
    discover(warehouse, "c", [form(F1), form(F3)])
    assert owners(warehouse) == {F1: ("a", "explicit"), F2: ("a", "explicit"), F3: ("c", "discovered")}
    distributors.update(warehouse, "a", form_ids=[F2])
    assert owners(warehouse) == {F1: ("c", "discovered"), F2: ("a", "explicit"), F3: ("c", "discovered")}
    # --clear-form-ids: A now discovers like C, and keeps F2 (seen on its Page, claimed by nobody else) as discovered
    distributors.update(warehouse, "a", form_ids=[])
    assert owners(warehouse)[F2] == ("a", "discovered")
    assert discover(warehouse, "a", [form(F1), form(F2), form(F3)]) == {F2}
    distributors.update(warehouse, "a", page_ids=["999"])  # it no longer reads the Page of F2
    assert F2 not in owners(warehouse) and owned(warehouse, "a") == {}


def test_update_of_other_settings_keeps_claims(warehouse):
    distributors.add(warehouse, "C Clinic", TOKEN, key="c")
    discover(warehouse, "c", [form(F1)])
    distributors.update(warehouse, "c", interval=30, name="C Clinics")
    distributors.update(warehouse, "c", form_ids=[])  # an empty list that was empty already
    assert owners(warehouse) == {F1: ("c", "discovered")}


def test_claims_reroute_changes_waiting_in_the_webhook_inbox(warehouse):
    with warehouse.transaction() as conn:
        conn.execute("INSERT INTO webhook_inbox (leadgen_id, page_id, form_id, received_at, status) "
                     "VALUES ('5001', ?, ?, CURRENT_TIMESTAMP, 'unrouted')", [PAGE, F2])
    distributors.add(warehouse, "B Clinic", TOKEN, key="b", form_ids=[F2])
    with warehouse.transaction(read_only=True) as conn:
        row = conn.query_one("SELECT status, distributor FROM webhook_inbox WHERE leadgen_id = '5001'")
    assert (row["status"], row["distributor"]) == ("pending", "b")


def test_claim_discovered_records_counts_and_warns_about_expired_leads(warehouse):
    distributors.add(warehouse, "C Clinic", TOKEN, key="c")
    distributors.add(warehouse, "B Clinic", TOKEN, key="b", form_ids=[F3])
    found = [form(F1, name="Spring campaign", leads_count=120, expired_leads_count=40),
             form(F2, name=None, leads_count="7", expired_leads_count=1),
             form(F3, leads_count=5, expired_leads_count=3),
             form("1004", leads_count=2, expired_leads_count=0)]
    assert discover(warehouse, "c", found) == {F1, F2, "1004"}
    discover(warehouse, "c", [form(F1, name="Spring campaign")])  # a discovery without counts forgets nothing
    with warehouse.transaction(read_only=True) as conn:
        rows = conn.query("SELECT form_id, leads_count, expired_leads_count FROM distributor_forms "
                          "WHERE distributor = 'c' ORDER BY form_id")
        warnings = form_records.form_limit_warnings(conn, "c")
        only_f2 = form_records.form_limit_warnings(conn, "c", [F2])
    assert [(r["form_id"], r["leads_count"], r["expired_leads_count"]) for r in rows] == [
        (F1, 120, 40), (F2, 7, 1), (F3, 5, 3), ("1004", 2, 0)]
    advice = "can no longer be read through the API; download them in Ads Manager and run " \
             "`leads-pipeline import FILE --distributor c`"
    assert warnings == [
        f"form {F1} (Spring campaign): 40 leads are older than Meta's 90-day limit and {advice}",
        f"form {F2}: 1 lead is older than Meta's 90-day limit and {advice}",
    ]  # F3 is B's form: C's warnings do not send its leads to C
    assert only_f2 == warnings[1:]


def test_record_forms_still_claims_for_callers_not_moved_yet(warehouse):
    distributors.add(warehouse, "C Clinic", TOKEN, key="c")
    assert distributors.record_forms(warehouse, "c", [form(F1), form(F1), {"id": ""}]) == 1
    assert owned(warehouse, "c") == {F1: PAGE}


# ----------------------------------------------------------------------------------------------------------------------
# Migration 6: the backfill of an existing warehouse
# ----------------------------------------------------------------------------------------------------------------------


def test_migration_backfills_owners_from_configuration_and_discovery(warehouse_url):
    from leads_pipeline.lib.warehouse import Warehouse
    from leads_pipeline.lib.warehouse.migrations import MIGRATIONS

    wh = Warehouse(warehouse_url)
    with wh.transaction() as conn:  # a warehouse as version 5 left it
        conn.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, "
                     "applied_at TIMESTAMPTZ NOT NULL DEFAULT CURRENT_TIMESTAMP)")
        for version, name, build in MIGRATIONS:
            if version <= 5:
                for stmt in build(wh.dialect):
                    conn.execute(stmt)
                conn.execute("INSERT INTO schema_migrations (version, name) VALUES (?, ?)", [version, name])
        for key, day, pages, form_ids in [
            ("a", 1, [PAGE], ["1"]),  # the oldest distributor configured with form 1
            ("b", 2, [], ["1", "2"]),  # also lists 1 (a wins it) and 2
            ("c", 3, [PAGE], []),  # discovers Page 100
            ("d", 4, [], []),  # discovers every Page its token sees
            ("e", 5, ["999"], []),  # reads Page 999 only
        ]:
            conn.execute(
                "INSERT INTO distributors (key, name, page_ids, form_ids, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, CAST(? AS TIMESTAMPTZ), CURRENT_TIMESTAMP)",
                [key, key.upper(), json.dumps(pages), json.dumps(form_ids), f"2025-01-0{day} 00:00:00+00"],
            )
        for dist, page, form_id in [("a", PAGE, "1"), ("a", PAGE, "3"), ("c", PAGE, "2"), ("c", PAGE, "3"),
                                    ("d", PAGE, "3"), ("d", PAGE, "4"), ("e", "200", "5"), ("d", "", "6")]:
            conn.execute("INSERT INTO distributor_forms (distributor, page_id, form_id) VALUES (?, ?, ?)",
                         [dist, page, form_id])
    assert 6 in wh.migrate()
    with wh.transaction(read_only=True) as conn:
        rows = conn.query("SELECT form_id, distributor, page_id, claim FROM form_owners ORDER BY form_id")
        columns = conn.query("SELECT expired_leads_count FROM distributor_forms")
    assert [(r["form_id"], r["distributor"], r["page_id"], r["claim"]) for r in rows] == [
        ("1", "a", PAGE, "explicit"),
        ("2", "b", PAGE, "explicit"),  # the Page c's discovery recorded
        ("3", "c", PAGE, "discovered"),  # not a's (it has --form-id); c is older than d
        ("4", "d", PAGE, "discovered"),
        ("6", "d", None, "discovered"),  # form 5: e no longer reads Page 200, so nobody owns it
    ]
    assert len(columns) == 8 and all(c["expired_leads_count"] is None for c in columns)
