"""Conversions API for CRM: setting it up (library, CLI, HTTP API, console — the token write-only everywhere), key
rotation, Meta's hashing rules, and the Dagster asset and sensor that send the events."""

from __future__ import annotations

import json
import re

import dagster as dg
import pytest
import requests
from click.testing import CliRunner
from cryptography.fernet import Fernet

from leads_pipeline.cli import main
from leads_pipeline.lib import capi, crm
from leads_pipeline.lib.capi.events import hash_email, hash_phone
from leads_pipeline.lib.distributors import registry
from leads_pipeline.lib.ingest import sync
from leads_pipeline.lib.security import TokenCipher, generate_key
from leads_pipeline_tests.pipeline_fixtures import make_sandbox
from leads_pipeline_tests.test_web_support import ADMIN_PASSWORD, STAFF_PASSWORD, client, login, seed_world

CAPI_TOKEN = "EAAcapiOnlyToken0123456789abcdef"


@pytest.fixture
def world(monkeypatch, warehouse):
    return seed_world(monkeypatch, warehouse)


def _audit(wh, action: str) -> list[dict]:
    with wh.transaction(read_only=True) as conn:
        return conn.query("SELECT actor, before, after FROM audit_log WHERE action = ? ORDER BY id", [action])


# ------------------------------------------------------------------------------------------------- the library


def test_defaults_send_every_stage_and_nothing_hashed_until_a_dataset_is_set(world):
    s = capi.get(world.wh, "msh")
    assert not s.enabled and s.dataset_id is None and not s.hashed_contacts and not s.has_token
    assert s.stage_events == {"new": "Initial Lead", "assigned": "Assigned", "contacted": "Contacted",
                              "converted": "Converted", "rejected": "Rejected"}
    assert s.sent_stages == crm.STATUSES
    with pytest.raises(registry.DistributorNotFound):
        capi.get(world.wh, "nope")


@pytest.mark.parametrize("changes, words", [
    ({"dataset_id": "12ab"}, "digits"),
    ({"crm_name": "  "}, "CRM name"),
    ({"stage_events": {"won": "Won"}}, "Unknown stage"),
    ({"stage_events": {s: None for s in crm.STATUSES}}, "at least one"),
    ({"test_event_code": "TEST 1"}, "test event code"),
    ({"token": "two words"}, "spaces"),
    ({"hashed_contacts": "yes"}, "true or false"),
    ({"colour": "red"}, "Cannot change"),
])
def test_bad_settings_are_refused_with_what_to_do_and_change_nothing(world, changes, words):
    before = capi.get(world.wh, "msh")
    with pytest.raises(capi.CapiConfigError, match=words):
        capi.configure(world.wh, "msh", **changes)
    assert capi.get(world.wh, "msh") == before


def test_the_own_token_is_stored_encrypted_write_only_and_rotates_with_the_keys(world, monkeypatch):
    s = capi.configure(world.wh, "msh", dataset_id="123456789012345", token=CAPI_TOKEN, actor="tester")
    assert s.has_token and re.fullmatch(r"[0-9a-f]{12}", s.token_fingerprint)
    assert CAPI_TOKEN not in json.dumps(s.to_dict())
    with world.wh.transaction(read_only=True) as conn:
        stored = conn.scalar("SELECT token_encrypted FROM capi_settings WHERE distributor = 'msh'")
    assert CAPI_TOKEN not in stored
    assert Fernet(world.secret_key.encode()).decrypt(stored.encode()).decode() == CAPI_TOKEN
    assert capi.config.access_token(world.wh, "msh") == CAPI_TOKEN
    [row] = _audit(world.wh, "distributor.capi_update")
    assert row["actor"] == "tester" and CAPI_TOKEN not in str(row)

    new_key = generate_key()
    cipher = TokenCipher(f"{new_key},{world.secret_key}")
    assert registry.rotate_tokens(world.wh, cipher=cipher) == 2  # the distributor's token and the CAPI token
    with world.wh.transaction(read_only=True) as conn:
        rotated = conn.scalar("SELECT token_encrypted FROM capi_settings WHERE distributor = 'msh'")
    assert Fernet(new_key.encode()).decrypt(rotated.encode()).decode() == CAPI_TOKEN
    assert capi.config.access_token(world.wh, "msh", TokenCipher(new_key)) == CAPI_TOKEN

    capi.configure(world.wh, "msh", token=None)  # back to the distributor's token
    assert not capi.get(world.wh, "msh").has_token
    assert capi.config.access_token(world.wh, "msh", TokenCipher(new_key)) == "EAAplaceholdertoken1234567890"


def test_meta_hashing_rules_match_metas_examples():
    # Meta's customer-information examples (reference §2): john_smith@gmail.com and (650)555-1212 with code 1.
    assert hash_email("  John_Smith@Gmail.com ") == hash_email("john_smith@gmail.com")
    assert hash_email("john_smith@gmail.com").startswith("62a14e44") and hash_email("john_smith@gmail.com")[-7:] \
        == "aa0f62f"
    assert hash_phone("+1 (650) 555-1212") == hash_phone("16505551212")
    assert hash_phone("+16505551212").startswith("e323ec62") and hash_phone("+16505551212").endswith("07ab3176")
    assert hash_email(None) is None and hash_phone("") is None and hash_email("not an email") is None


# ------------------------------------------------------------------------------------------------- the CLI


@pytest.fixture
def cli(world, monkeypatch):
    runner = CliRunner()

    def invoke(*args: str, stdin: str | None = None):
        return runner.invoke(main, list(args), input=stdin)

    return invoke


def test_cli_update_sets_dataset_token_from_stdin_and_crm_name_and_never_prints_the_token(cli, world):
    r = cli("distributors", "update", "msh", "--capi-dataset-id", "123456789012345", "--capi-token-stdin",
            "--crm-name", "MSH CRM", "--capi-stage", "converted=Purchase", "--capi-stage", "rejected=",
            stdin=CAPI_TOKEN + "\n")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    conv = out["conversions_api"]
    assert conv["dataset_id"] == "123456789012345" and conv["crm_name"] == "MSH CRM" and conv["has_token"]
    assert conv["stage_events"]["converted"] == "Purchase" and conv["stage_events"]["rejected"] is None
    assert out["key"] == "msh" and CAPI_TOKEN not in r.output
    assert capi.config.access_token(world.wh, "msh") == CAPI_TOKEN

    bad = cli("distributors", "update", "msh", "--capi-dataset-id", "pixel-1")
    assert bad.exit_code == 1 and "digits" in bad.output
    both = cli("distributors", "update", "msh", "--token-stdin", "--capi-token-stdin", stdin="x\n")
    assert both.exit_code == 1 and "not with --token-stdin" in both.output
    off = cli("distributors", "update", "msh", "--capi-dataset-id", "")
    assert off.exit_code == 0 and json.loads(off.stdout)["conversions_api"]["enabled"] is False


def test_cli_send_prints_json_and_exits_by_outcome(cli, world):
    lead = world.lead_ids[1]
    not_set = cli("capi", "send", "msh")
    assert not_set.exit_code == 1 and json.loads(not_set.stdout)["status"] == "not_configured"
    assert "--capi-dataset-id" in not_set.output
    everything = cli("capi", "send")
    assert everything.exit_code == 0 and json.loads(everything.stdout)["distributors"] == []

    capi.configure(world.wh, "msh", dataset_id="123456789012345")
    crm.change_status(world.wh, lead, "contacted", "system")
    # seed_world's Graph API is unreachable: nothing can be sent, every event waits.
    failed = cli("capi", "send", "msh")
    out = json.loads(failed.stdout)
    assert failed.exit_code == 1 and out["status"] == "failed" and out["sent"] == 0
    assert {"sent", "failed", "expired", "pending", "oldest_pending_age_seconds"} <= set(out)
    assert out["pending"] == out["enqueued"] > 0 and out["errors"]
    status = json.loads(cli("capi", "status", "msh").stdout)
    assert status[0]["events"]["pending"] == out["pending"] and status[0]["settings"]["enabled"]


# ------------------------------------------------------------------------------------------------- the HTTP API


def test_api_meta_settings_carry_the_conversions_api_with_a_write_only_token(world):
    c = client(world.wh, world.settings())
    admin, staff = world.headers("superadmin"), world.headers("staff")
    body = {"conversions_api": {"dataset_id": "123456789012345", "access_token": CAPI_TOKEN, "crm_name": "MSH CRM",
                                "stage_events": {"converted": "Purchase"}, "hashed_contacts": True}}
    assert c.put("/api/distributors/msh/meta-settings", json=body, headers=staff).status_code == 403
    r = c.put("/api/distributors/msh/meta-settings", json=body, headers=admin)
    assert r.status_code == 200, r.text
    conv = r.json()["conversions_api"]
    assert conv["dataset_id"] == "123456789012345" and conv["has_token"] and conv["hashed_contacts"]
    assert conv["stage_events"]["converted"] == "Purchase" and conv["stage_events"]["new"] == "Initial Lead"
    assert conv["events"] == {"pending": 0, "sent": 0, "failed": 0, "expired": 0, "oldest_pending_age_seconds": None}
    got = c.get("/api/distributors/msh/meta-settings", headers=admin)
    assert got.json()["conversions_api"] == conv and got.json()["has_token"]
    assert CAPI_TOKEN not in r.text + got.text + c.get("/openapi.json").text
    assert capi.config.access_token(world.wh, "msh") == CAPI_TOKEN
    assert [a["actor"] for a in _audit(world.wh, "distributor.capi_update")] == [world.admin["id"]]

    # Only what is given changes; null clears.
    r = c.put("/api/distributors/msh/meta-settings", json={"conversions_api": {"test_event_code": "TEST123"},
                                                           "interval_minutes": 10}, headers=admin)
    assert r.status_code == 200 and r.json()["interval_minutes"] == 10
    assert r.json()["conversions_api"]["test_event_code"] == "TEST123" and r.json()["conversions_api"]["has_token"]
    r = c.put("/api/distributors/msh/meta-settings", json={"conversions_api": {"access_token": None,
                                                                               "dataset_id": None}}, headers=admin)
    assert r.json()["conversions_api"]["has_token"] is False and r.json()["conversions_api"]["enabled"] is False

    for bad, code in (({"dataset_id": "12ab"}, "validation_failed"), ({"stage_events": {"won": "x"}},
                                                                       "validation_failed"),
                      ({"crm_name": 5}, "validation_failed"), ({"colour": "red"}, "validation_failed"),
                      ({"stage_events": {s: None for s in crm.STATUSES}}, "invalid_input")):
        r = c.put("/api/distributors/msh/meta-settings", json={"conversions_api": bad}, headers=admin)
        assert r.status_code == 400 and r.json()["detail"]["code"] == code, (bad, r.text)


def test_api_creates_a_distributor_with_its_conversions_api(world):
    c = client(world.wh, world.settings())
    r = c.post("/api/distributors", headers=world.headers("superadmin"), json={
        "name": "Anatolia Dental", "access_token": "EAAanothertoken1234567890", "page_ids": ["2002"],
        "conversions_api": {"dataset_id": "998877665544332", "crm_name": "Dental CRM"}})
    assert r.status_code == 201, r.text
    assert r.json()["conversions_api"]["dataset_id"] == "998877665544332"
    assert capi.get(world.wh, r.json()["key"]).crm_name == "Dental CRM"


# ------------------------------------------------------------------------------------------------- the console


def test_console_distributor_page_sets_the_conversions_api_for_superadmins_only(world):
    c = client(world.wh, world.settings())
    csrf = login(c, "admin@example.com", ADMIN_PASSWORD)
    page = c.get("/console/distributors/msh")
    assert page.status_code == 200 and "Conversions API for CRM" in page.text and 'name="capi_dataset_id"' in page.text
    form = {"csrf_token": csrf, "section": "conversions_api", "capi_dataset_id": "123456789012345",
            "crm_name": "MSH CRM", "stage_new": "Lead In", "stage_assigned": "", "stage_contacted": "Contacted",
            "stage_converted": "Converted", "stage_rejected": "Rejected", "capi_access_token": CAPI_TOKEN,
            "test_event_code": ""}
    r = c.post("/console/distributors/msh", data=form)
    assert r.status_code == 303
    s = capi.get(world.wh, "msh")
    assert (s.dataset_id, s.crm_name, s.has_token, s.hashed_contacts) == ("123456789012345", "MSH CRM", True, False)
    assert s.stage_events["new"] == "Lead In" and s.stage_events["assigned"] is None
    shown = c.get("/console/distributors/msh").text
    assert "Conversions API settings saved" in shown and CAPI_TOKEN not in shown and s.token_fingerprint in shown
    assert registry.get(world.wh, "msh").name == "MSH Med Tour"  # the sync settings were left alone

    bad = c.post("/console/distributors/msh", data={**form, "capi_dataset_id": "abc", "capi_access_token": ""})
    assert bad.status_code == 303 and "digits" in c.get("/console/distributors/msh").text
    assert capi.get(world.wh, "msh").dataset_id == "123456789012345"

    staff = client(world.wh, world.settings())
    staff_csrf = login(staff, "staff@example.com", STAFF_PASSWORD)
    assert staff.get("/console/distributors/msh").status_code == 403
    assert staff.post("/console/distributors/msh", data={**form, "csrf_token": staff_csrf}).status_code == 403
    assert capi.get(world.wh, "msh").crm_name == "MSH CRM"


# ------------------------------------------------------------------------------------------------- Dagster


def test_the_asset_sends_one_partition_with_run_metadata_and_the_sensor_asks_for_due_ones(
        monkeypatch, simulator_factory, duckdb_url):
    from leads_pipeline.definitions import defs
    from leads_pipeline.defs.capi.sensors import meta_conversion_events_sensor
    from leads_pipeline.defs.resources import WarehouseResource

    sim = simulator_factory(seed=41, pages=2, forms_per_page=1, leads_per_form=10, extra_leads=0, malformed_rate=0.0)
    box = make_sandbox(monkeypatch, sim, duckdb_url)
    key, _other = box.keys
    for k in box.keys:
        assert sync.sync_distributor(box.wh, k).success
    page = sim.manifest()["pages"][0]
    capi.configure(box.wh, key, dataset_id=page["capi_dataset_id"])
    with box.wh.transaction(read_only=True) as conn:
        lead = conn.scalar("SELECT meta_lead_id FROM leads WHERE distributor = ? ORDER BY meta_lead_id", [key])
    crm.change_status(box.wh, lead, "contacted", "system")

    definitions = defs()
    graph = definitions.resolve_asset_graph()
    node = graph.get(dg.AssetKey("meta_conversion_events"))
    assert node.partitions_def.name == "distributors" and node.description
    assert {dg.AssetKey("leads"), dg.AssetKey("lead_interactions")} <= node.parent_keys
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("distributors", box.keys)
        ctx = dg.build_sensor_context(instance=instance, resources={"warehouse": WarehouseResource(url=duckdb_url)})
        requested = meta_conversion_events_sensor(ctx)
        assert [r.partition_key for r in requested] == [key]  # the other has no dataset

        job = definitions.resolve_job_def("meta_conversion_events_job")
        run = job.execute_in_process(partition_key=key, instance=instance)
        assert run.success
        [mat] = run.get_asset_materialization_events()
        meta = {k: v.value for k, v in mat.materialization.metadata.items()}
        assert mat.partition == key
        assert (meta["sent"], meta["rejected"], meta["expired"], meta["pending"]) == (11, 0, 0, 0)
        assert meta["oldest_pending_age_seconds"] is None and meta["status"] == "ok"
        assert meta["dataset_id"] == page["capi_dataset_id"]
        assert instance.get_run_by_id(run.run_id).tags["leads/capi_status"] == "ok"

        # A partition that cannot send fails without retries, with the same figures.
        capi.configure(box.wh, key, token="EAAthisTokenIsNotKnownToMeta0123456789")
        crm.change_status(box.wh, lead, "converted", "system")
        failed = job.execute_in_process(partition_key=key, instance=instance, raise_on_error=False)
        assert not failed.success
        failure = next(e for e in failed.all_events if e.event_type_value == "STEP_FAILURE")
        fmeta = {k: v.value for k, v in failure.step_failure_data.user_failure_data.metadata.items()}
        assert (fmeta["sent"], fmeta["pending"]) == (0, 1) and fmeta["oldest_pending_age_seconds"] >= 0
        assert "EAAthisTokenIsNotKnownToMeta" not in json.dumps(fmeta, default=str)

    events = requests.get(f"{sim.base_url}/__simulator/datasets/{page['capi_dataset_id']}/events", timeout=30).json()
    assert len(events["events"]) == 11
