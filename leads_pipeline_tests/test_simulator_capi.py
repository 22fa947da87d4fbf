"""The simulator's Conversions API for CRM (``POST /{version}/{dataset_id}/events``), over real HTTP.

Meta's rules as /work/shared/reference/meta-conversions-api-crm.md and the ``capi_crm_*`` samples state them: one bad
event rejects the whole request, in Meta's error shapes; accepted events are recorded per dataset and shown in the
manifest and the debug routes; faults come from the simulator's fault mechanism. Tokens go in the Authorization
header or the body (never in a URL a failure would print) unless a test is about the query string.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import requests

from leads_pipeline.simulator import Scenario, SimulatorServer

SAMPLES = Path("/work/shared/reference/meta-samples")
WEEK = 7 * 86400


@pytest.fixture
def capi(simulator_factory):
    server = simulator_factory(seed=21, pages=2, forms_per_page=2, leads_per_form=30, extra_leads=20)
    manifest = server.manifest()
    return Capi(server, manifest)


class Capi:
    """The simulator, its manifest, the first page's dataset, token and a few of its visible lead ids."""

    def __init__(self, server: SimulatorServer, manifest: dict):
        self.server = server
        self.manifest = manifest
        self.page = manifest["pages"][0]
        self.dataset = self.page["capi_dataset_id"]
        self.token = self.page["access_token"]
        self.leads = [i for f in self.page["forms"] for i in f["valid_lead_ids"]]
        self.session = requests.Session()

    def url(self, dataset: str | None = None) -> str:
        return f"{self.server.base_url}/v25.0/{dataset or self.dataset}/events"

    def post_json(self, data, *, token: str | None = None, dataset: str | None = None, **extra) -> requests.Response:
        return self.session.post(self.url(dataset), json={"data": data, **extra},
                                 headers={"Authorization": f"Bearer {token or self.token}"}, timeout=30)

    def post_form(self, data, *, token: str | None = None, dataset: str | None = None, **extra) -> requests.Response:
        body = {"data": data if isinstance(data, str) else json.dumps(data), "access_token": token or self.token,
                **extra}
        return self.session.post(self.url(dataset), data=body, timeout=30)

    def dataset_summary(self, dataset: str | None = None) -> dict:
        out = self.session.get(f"{self.server.base_url}/__simulator/manifest", timeout=30).json()
        return next(d for d in out["datasets"] if d["id"] == (dataset or self.dataset))


def event(lead_id: str | int, name: str = "new", *, at: int | None = None, **changes) -> dict:
    ev = {"event_name": name, "event_time": int(time.time()) - 60 if at is None else at,
          "action_source": "system_generated", "user_data": {"lead_id": int(lead_id)},
          "custom_data": {"event_source": "crm", "lead_event_source": "Leads Pipeline"},
          "event_id": f"{lead_id}:{name}"}
    ev.update(changes)
    return ev


def error_of(resp: requests.Response) -> dict:
    assert resp.status_code == 400, resp.text[:300]
    body = resp.json()
    assert set(body) == {"error"}
    err = body["error"]
    assert err["fbtrace_id"] and err["type"] and isinstance(err["code"], int)
    return err


# ----------------------------------------------------------------------------------------------------- success --


def test_accepted_batch_is_recorded_in_manifest_and_debug_route(capi):
    events = [event(capi.leads[0], "new"), event(capi.leads[0], "assigned"), event(capi.leads[1], "new")]
    resp = capi.post_form(events)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert set(body) == {"events_received", "messages", "fbtrace_id"}
    assert body["events_received"] == 3 and body["messages"] == []
    assert body["fbtrace_id"] == resp.headers["x-fb-trace-id"]

    ds = capi.dataset_summary()
    assert ds["page_id"] == capi.page["id"]
    assert ds["events_received"] == 3 and ds["by_event_name"] == {"new": 2, "assigned": 1}
    assert ds["lead_ids"] == 2 and ds["duplicates"] == 0 and ds["requests_accepted"] == 1
    assert [(e["event_name"], e["lead_id"], e["event_id"]) for e in ds["events"]] == [
        ("new", capi.leads[0], f"{capi.leads[0]}:new"), ("assigned", capi.leads[0], f"{capi.leads[0]}:assigned"),
        ("new", capi.leads[1], f"{capi.leads[1]}:new")]
    assert all(e["fbtrace_id"] == body["fbtrace_id"] and e["used"] and e["test_event_code"] is None
               for e in ds["events"])
    others = [d for d in capi.manifest["datasets"] if d["id"] != capi.dataset]
    assert len(others) == 1 and capi.dataset_summary(others[0]["id"])["events_received"] == 0

    debug = capi.session.get(f"{capi.server.base_url}/__simulator/datasets/{capi.dataset}/events", timeout=30).json()
    assert [e["event"] for e in debug["events"]] == events  # as received: the lead id an exact integer
    since = capi.session.get(f"{capi.server.base_url}/__simulator/datasets/{capi.dataset}/events",
                             params={"since": 2}, timeout=30).json()
    assert [e["seq"] for e in since["events"]] == [3]
    listing = capi.session.get(f"{capi.server.base_url}/__simulator/datasets", timeout=30).json()["datasets"]
    assert {d["id"] for d in listing} == {d["id"] for d in capi.manifest["datasets"]}
    assert all("events" not in d for d in listing)
    assert capi.server.stats()["by_route"]["dataset_events"] == 1


def test_json_body_token_in_query_and_test_event_code(capi):
    url = capi.url() + "?" + requests.compat.urlencode({"access_token": capi.manifest["user_token"]})
    resp = capi.session.post(url, json={"data": [event(capi.leads[2])], "test_event_code": "TEST123"}, timeout=30)
    assert resp.status_code == 200 and resp.json()["events_received"] == 1
    ds = capi.dataset_summary()
    assert ds["test_events_received"] == 1 and ds["events"][0]["test_event_code"] == "TEST123"


def test_meta_samples_accepted_once_times_and_lead_ids_are_real(capi):
    """The constructed three-stage sample (Meta's example hashes, test_event_code) and Meta's hashed doc sample."""
    now = int(time.time())
    stages = json.loads((SAMPLES / "capi_crm_request_stages_test__constructed.json").read_text())
    for k, ev in enumerate(stages["data"]):
        ev["user_data"]["lead_id"] = int(capi.leads[0])
        ev["event_time"] = now - 3600 + 60 * k
    resp = capi.post_json(stages["data"], test_event_code=stages["test_event_code"])
    assert resp.status_code == 200 and resp.json()["events_received"] == 3
    hashed = json.loads((SAMPLES / "capi_crm_request_hashed__meta_implementation_doc.json").read_text())
    hashed["data"][0]["user_data"]["lead_id"] = int(capi.leads[1])
    hashed["data"][0]["event_time"] = now
    assert capi.post_form(hashed["data"]).json()["events_received"] == 1
    ds = capi.dataset_summary()
    assert ds["events_received"] == 4 and ds["test_events_received"] == 3
    assert ds["events"][0]["user_data_keys"] == ["em", "lead_id", "ph"]
    assert [e["lead_event_source"] for e in ds["events"]] == ["In-house CRM"] * 3 + ["Your CRM"]


def test_lead_id_as_digit_string_and_off_spec_notes(capi):
    """A string lead id is taken (the Python SDK types it str); events Meta keeps but won't use get a note."""
    lead = capi.server.simulator.world.visible_lead(capi.leads[0])
    capi.server.simulator.wall_clock = lambda: lead.ct + 3600  # so that a time before the lead is within 7 days
    resp = capi.post_json([event(capi.leads[1], user_data={"lead_id": capi.leads[1]}, at=lead.ct),
                           event(capi.leads[2], action_source="website", at=lead.ct),
                           event(capi.leads[0], "early", at=lead.ct - 1)])
    assert resp.status_code == 200, resp.text
    assert resp.json()["messages"] == [
        "data[1]: action_source is website, not system_generated: not a Conversion Leads event",
        "data[2]: event_time is before the lead was created: Meta may discard the event"]
    ds = capi.dataset_summary()
    assert [e["used"] for e in ds["events"]] == [True, False, False]
    assert ds["events"][0]["lead_id"] == capi.leads[1]


# --------------------------------------------------------------------------------------------------- rejection --


def test_unknown_lead_rejects_the_whole_batch_naming_its_index(capi):
    world = capi.server.simulator.world
    shown = {i for p in capi.manifest["pages"] for f in p["forms"] for i in f["valid_lead_ids"]}
    future = next(lead for lead in world.leads_by_id.values() if lead.ct > world.now)  # not served yet
    assert future.id not in shown
    batch = [event(capi.leads[0]), event(capi.leads[1]), event(future.id)]
    err = error_of(capi.post_form(batch))
    assert (err["code"], err["error_subcode"], err["type"], err["is_transient"]) == (100, 2804036, "OAuthException",
                                                                                     False)
    assert err["message"] == "Invalid parameter" and err["error_user_title"] == "Invalid Lead ID"
    assert err["error_user_msg"].startswith("One or more of your lead IDs are invalid or deleted.")
    assert err["error_user_msg"].endswith("(data[2])")
    ds = capi.dataset_summary()
    assert ds["events_received"] == 0 and ds["requests_rejected"] == 1
    assert ds["rejections"][0]["index"] == 2 and ds["rejections"][0]["error_subcode"] == 2804036
    assert ds["rejections"][0]["fbtrace_id"] == err["fbtrace_id"]

    # Once Meta has the lead (the clock reaches its creation), the same batch goes through.
    while world.visible_lead(future.id) is None:
        capi.server.advance(leads=1)
    assert capi.post_form(batch).json()["events_received"] == 3


@pytest.mark.parametrize("lead_id", [123456789012345, 12345678901234, 123456789012345678, "12345678901234x",
                                     True, 1.5e15])
def test_malformed_or_unknown_lead_ids(capi, lead_id):
    err = error_of(capi.post_json([event(capi.leads[0]), event(capi.leads[0], user_data={"lead_id": lead_id})]))
    assert err["error_subcode"] == 2804036 and err["error_user_msg"].endswith("(data[1])")


def test_event_time_too_old_matches_metas_body(capi):
    """Meta's body kept in RudderStack's fixture, field for field (plus the simulator's index suffix)."""
    sample = json.loads((SAMPLES / "capi_crm_error_event_time_too_old__rudderstack_fixture.json").read_text())["error"]
    spec = json.loads((SAMPLES / "capi_crm_request__meta_payload_spec.json").read_text())  # its 2021 time
    spec["data"][0]["user_data"]["lead_id"] = int(capi.leads[0])
    err = error_of(capi.post_json(spec["data"]))
    for key in ("message", "type", "code", "error_subcode", "is_transient", "error_user_title"):
        assert err[key] == sample[key], key
    assert err["error_user_msg"] == sample["error_user_msg"] + " (data[0])"


def test_seven_day_limit_on_the_wall_clock(capi):
    now = 1_800_000_000
    capi.server.simulator.wall_clock = lambda: now + 0.4
    assert capi.post_json([event(capi.leads[0], at=now - WEEK)]).status_code == 200
    err = error_of(capi.post_json([event(capi.leads[1], at=now), event(capi.leads[1], "x", at=now - WEEK - 1)]))
    assert err["error_subcode"] == 2804003 and err["error_user_msg"].endswith("(data[1])")
    assert capi.post_json([event(capi.leads[2], at=now + 3600)]).status_code == 200
    err = error_of(capi.post_json([event(capi.leads[2], "late", at=now + 3601)]))
    assert err["error_user_title"] == "Event Timestamp In Future" and "error_subcode" not in err
    err = error_of(capi.post_json([event(capi.leads[2], "ms", at=now * 1000)]))
    assert "milliseconds" in err["error_user_msg"]
    assert capi.dataset_summary()["events_received"] == 2


def _without(ev: dict, *path: str) -> dict:
    ev = json.loads(json.dumps(ev))
    target = ev
    for key in path[:-1]:
        target = target[key]
    del target[path[-1]]
    return ev


@pytest.mark.parametrize("path", [("event_name",), ("event_time",), ("action_source",), ("user_data",),
                                  ("custom_data",), ("custom_data", "event_source"),
                                  ("custom_data", "lead_event_source")])
def test_missing_required_fields(capi, path):
    bad = _without(event(capi.leads[1]), *path)
    err = error_of(capi.post_form([event(capi.leads[0]), bad]))
    assert err["code"] == 100 and "error_subcode" not in err
    assert err["message"] == f"(#100) The parameter data[1][{']['.join(path)}] is required"
    assert err["error_user_msg"].endswith("(data[1])")
    assert capi.dataset_summary()["events_received"] == 0


@pytest.mark.parametrize("changes,field", [
    ({"event_name": ""}, "event_name"),
    ({"event_time": "1796000000"}, "event_time"),
    ({"event_time": 1796000000.5}, "event_time"),
    ({"action_source": "crm"}, "action_source"),
    ({"user_data": {}}, "user_data"),
    ({"user_data": "1234567890123456"}, "user_data"),
    ({"custom_data": {"event_source": "web", "lead_event_source": "X"}}, "custom_data][event_source"),
    ({"custom_data": {"event_source": "crm", "lead_event_source": " "}}, "custom_data][lead_event_source"),
    ({"event_id": 42}, "event_id"),
])
def test_malformed_fields(capi, changes, field):
    err = error_of(capi.post_json([event(capi.leads[0], **changes)]))
    assert err["code"] == 100 and f"data[0][{field}]" in err["message"], err["message"]
    assert err["error_user_msg"].endswith("(data[0])")


@pytest.mark.parametrize("user_data", [
    {"em": "john_smith@gmail.com"},
    {"ph": ["16505551212"]},
    {"em": ["62A14E44F765419D10FEA99367361A727C12365E2520F32218D505ED9AA0F62F"]},
    {"em": []},
])
def test_contact_data_only_hashed(capi, user_data):
    """No personal data in clear: an unhashed e-mail or phone is refused (so a sender leaking them fails its test)."""
    ud = {"lead_id": int(capi.leads[0]), **user_data}
    err = error_of(capi.post_json([event(capi.leads[0], user_data=ud)]))
    key = next(iter(user_data))
    assert f"data[0][user_data][{key}]" in err["message"]
    assert "john_smith" not in json.dumps(capi.dataset_summary())  # not even in the rejection log


@pytest.mark.parametrize("data,message", [
    (None, "(#100) The parameter data is required"),
    ("not json", "(#100) param data must be an array."),
    ('{"event_name": "x"}', "(#100) param data must be an array."),
    ("[]", "(#100) param data must be a non-empty array."),
])
def test_request_level_errors(capi, data, message):
    body = {"access_token": capi.token} if data is None else {"access_token": capi.token, "data": data}
    err = error_of(capi.session.post(capi.url(), data=body, timeout=30))
    assert err["code"] == 100 and err["message"] == message and "(data[" not in err["error_user_msg"]


def test_at_most_1000_events(capi):
    events = [event(capi.leads[k % len(capi.leads)], f"s{k}") for k in range(1001)]
    err = error_of(capi.post_json(events))
    assert "at most 1000" in err["message"]
    resp = capi.post_json(events[:1000])
    assert resp.status_code == 200 and resp.json()["events_received"] == 1000


def test_datasets_tokens_and_visibility(capi):
    other_page = capi.manifest["pages"][1]
    ok = [event(capi.leads[0])]
    # Another page's token cannot see this page's dataset; the user token can; unknown ids → 100/33.
    err = error_of(capi.post_json(ok, token=other_page["access_token"]))
    assert (err["code"], err["error_subcode"], err["type"]) == (100, 33, "GraphMethodException")
    assert capi.post_json(ok, token=capi.manifest["user_token"]).status_code == 200
    err = error_of(capi.post_json(ok, dataset="999999999999999"))
    assert (err["code"], err["error_subcode"]) == (100, 33) and "'999999999999999'" in err["message"]
    assert "Unsupported post request" in err["message"]
    # Tokens: none → 104, unknown → 190/467, the app token → 102.
    resp = capi.session.post(capi.url(), data={"data": json.dumps(ok)}, timeout=30)
    assert error_of(resp)["code"] == 104 and "WWW-Authenticate" in resp.headers
    err = error_of(capi.post_form(ok, token="EAAGnotatoken"))
    assert (err["code"], err["error_subcode"]) == (190, 467)
    app_token = f"{capi.manifest['app_id']}|{capi.manifest['app_secret']}"
    assert error_of(capi.post_form(ok, token=app_token))["code"] == 102
    # GET on the events edge is not the API; GET the dataset node is.
    resp = capi.session.get(capi.url(), headers={"Authorization": f"Bearer {capi.token}"}, timeout=30)
    assert error_of(resp)["error_subcode"] == 33
    node = capi.session.get(f"{capi.server.base_url}/v25.0/{capi.dataset}",
                            headers={"Authorization": f"Bearer {capi.token}"}, timeout=30).json()
    assert node == {"id": capi.dataset, "name": f"{capi.page['name']} CRM"}

    # A dataset made over the control route: without a page any token posts to it; with one, only that page's.
    free = capi.session.post(f"{capi.server.base_url}/__simulator/datasets", json={"name": "Shared"},
                             timeout=30).json()["id"]
    assert capi.post_json(ok, token=other_page["access_token"], dataset=free).status_code == 200
    owned = capi.session.post(f"{capi.server.base_url}/__simulator/datasets",
                              json={"name": "B", "page_id": other_page["id"]}, timeout=30).json()["id"]
    assert error_of(capi.post_json(ok, dataset=owned))["error_subcode"] == 33
    bad = capi.session.post(f"{capi.server.base_url}/__simulator/datasets", json={"page_id": "1"}, timeout=30)
    assert bad.status_code == 400
    assert capi.session.get(f"{capi.server.base_url}/__simulator/datasets/1/events", timeout=30).status_code == 404
    assert len(capi.server.manifest()["datasets"]) == 4


def test_deprecated_version_refused(simulator_factory):
    server = simulator_factory(seed=21, pages=1, forms_per_page=1, leads_per_form=5, accepted_versions=["v25.0"])
    m = server.manifest()
    page = m["pages"][0]
    resp = requests.post(f"{server.base_url}/v19.0/{page['capi_dataset_id']}/events",
                         data={"data": json.dumps([event(page["forms"][0]["valid_lead_ids"][0])]),
                               "access_token": page["access_token"]}, timeout=30)
    assert error_of(resp)["code"] == 2635


# ------------------------------------------------------------------------------------- duplicates and faults --


def test_duplicates_are_accepted_and_counted(capi):
    batch = [event(capi.leads[0], "new"), event(capi.leads[0], "assigned")]
    assert capi.post_json(batch).status_code == 200
    assert capi.post_json(batch[1:]).status_code == 200
    no_id = [_without(event(capi.leads[1]), "event_id")]
    assert capi.post_json(no_id).status_code == 200 and capi.post_json(no_id).status_code == 200
    ds = capi.dataset_summary()
    assert ds["events_received"] == 5 and ds["duplicates"] == 2
    assert [e["duplicate"] for e in ds["events"]] == [False, False, True, False, True]
    assert capi.session.delete(f"{capi.server.base_url}/__simulator/datasets/{capi.dataset}/events",
                               timeout=30).status_code == 200
    assert capi.dataset_summary()["events_received"] == 0


@pytest.mark.parametrize("kind,status", [("http_500", 500), ("http_503", 503), ("code_1", 500), ("code_2", 500)])
def test_transient_fault_on_the_next_upload_records_nothing(capi, kind, status):
    """The existing fault mechanism, numbered on the CAPI route only: other Graph calls in between don't shift it."""
    capi.server.set_faults({"routes": ["dataset_events"], "count_routes_only": True, "transient_at": [1],
                            "transient_kinds": [kind]})
    headers = {"Authorization": f"Bearer {capi.token}"}
    assert capi.session.get(f"{capi.server.base_url}/v25.0/me", headers=headers, timeout=30).status_code == 200
    resp = capi.post_json([event(capi.leads[0])])
    assert resp.status_code == status
    assert capi.dataset_summary()["events_received"] == 0
    assert capi.post_json([event(capi.leads[0])]).status_code == 200
    ds = capi.dataset_summary()
    assert ds["events_received"] == 1 and ds["duplicates"] == 0
    assert capi.server.stats()["faults_injected"] == {kind: 1}


def test_throttled_upload(capi):
    capi.server.set_faults({"routes": ["dataset_events"], "count_routes_only": True, "throttle_at": [1],
                            "throttle_requests": 2, "throttle_code": 17})
    codes = [capi.post_json([event(capi.leads[0])]) for _ in range(3)]
    assert [r.status_code for r in codes] == [400, 400, 200]
    assert error_of(codes[0])["code"] == 17
    assert capi.dataset_summary()["events_received"] == 1


def test_reset_after_recording_shows_a_resend_as_duplicate(capi):
    """Meta got the events but the answer was lost: the client cannot tell, and a resend is a duplicate."""
    capi.server.set_faults({"routes": ["dataset_events"], "count_routes_only": True, "reset_at": [1]})
    batch = [event(capi.leads[0]), event(capi.leads[1])]
    with pytest.raises(requests.exceptions.RequestException):
        capi.post_json(batch)
    assert capi.post_json(batch).status_code == 200
    ds = capi.dataset_summary()
    assert ds["events_received"] == 4 and ds["duplicates"] == 2


def test_count_routes_only_needs_routes(capi):
    resp = capi.session.post(f"{capi.server.base_url}/__simulator/faults", json={"count_routes_only": True},
                             timeout=30)
    assert resp.status_code == 400 and "routes" in resp.json()["error"]


def test_datasets_deterministic_and_other_ids_unchanged():
    """Datasets come from their own random stream: same seed → same ids, none shared with another object."""
    scenario = Scenario(seed=5, pages=2, forms_per_page=1, leads_per_form=10, extra_leads=5)
    with SimulatorServer(scenario) as a, SimulatorServer(scenario) as b:
        ma, mb = a.manifest(), b.manifest()
    assert [p["capi_dataset_id"] for p in ma["pages"]] == [p["capi_dataset_id"] for p in mb["pages"]]
    ids = {p["capi_dataset_id"] for p in ma["pages"]}
    assert len(ids) == 2 and all(len(i) == 15 for i in ids)
    every = {p["id"] for p in ma["pages"]} | {f["id"] for p in ma["pages"] for f in p["forms"]} | {
        i for p in ma["pages"] for f in p["forms"] for i in f["valid_lead_ids"]}
    assert not ids & every
