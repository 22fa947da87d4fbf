"""Compatibility with Meta's own Python SDK (``facebook_business``) pointed at the simulator."""

from __future__ import annotations

import json

import pytest

from leads_pipeline.simulator import FaultConfig, Scenario

fb = pytest.importorskip("facebook_business")

from facebook_business.adobjects.ad import Ad  # noqa: E402
from facebook_business.adobjects.lead import Lead  # noqa: E402
from facebook_business.adobjects.leadgenform import LeadgenForm  # noqa: E402
from facebook_business.adobjects.page import Page  # noqa: E402
from facebook_business.adobjects.user import User  # noqa: E402
from facebook_business.api import FacebookAdsApi  # noqa: E402
from facebook_business.exceptions import FacebookRequestError  # noqa: E402
from facebook_business.session import FacebookSession  # noqa: E402

LEAD_FIELDS = ["id", "created_time", "ad_id", "form_id", "is_organic", "platform", "field_data",
               "custom_disclaimer_responses"]


@pytest.fixture
def sdk():
    """``connect(server, token=..., app_secret=...)`` → a FacebookAdsApi talking to the simulator."""
    saved_graph = FacebookSession.GRAPH
    saved_api = FacebookAdsApi.get_default_api()

    def connect(server, token: str, app_secret: str | None = None) -> FacebookAdsApi:
        FacebookSession.GRAPH = server.base_url
        return FacebookAdsApi.init(access_token=token, app_secret=app_secret, api_version="v25.0", crash_log=False)

    yield connect
    FacebookSession.GRAPH = saved_graph
    FacebookAdsApi.set_default_api(saved_api)


def _read_form(form_id: str, api, **kw) -> tuple[set[str], int, int]:
    """(ids, number of leads without id, total) read through the SDK's Cursor."""
    ids: list[str] = []
    without = total = 0
    for lead in LeadgenForm(form_id, api=api).get_leads(fields=LEAD_FIELDS, **kw):
        total += 1
        lead_id = lead.get("id")
        if lead_id:
            ids.append(lead_id)
        else:
            without += 1
    assert len(ids) == len(set(ids)), "a lead came twice"
    return set(ids), without, total


def test_sdk_lists_pages_forms_and_every_lead(simulator_factory, sdk):
    server = simulator_factory(seed=31, pages=2, forms_per_page=2, leads_per_form=70, malformed_rate=0.08)
    manifest = server.manifest()
    api = sdk(server, manifest["user_token"])
    accounts = list(User(fbid="me", api=api).get_accounts(fields=["id", "name", "access_token"]))
    assert [a["id"] for a in accounts] == [p["id"] for p in manifest["pages"]]
    tokens_match = [a["access_token"] for a in accounts] == [p["access_token"] for p in manifest["pages"]]
    assert tokens_match
    for page in manifest["pages"]:
        forms = list(Page(page["id"], api=api).get_lead_gen_forms(fields=["id", "name", "leads_count", "status"]))
        assert {f["id"] for f in forms} == {f["id"] for f in page["forms"]}
        for form in page["forms"]:
            expected_ids = set(form["valid_lead_ids"]) | set(form["malformed_lead_ids"])
            ids, without, total = _read_form(form["id"], api)  # default page size (25)
            assert ids == expected_ids and without == form["malformed_without_id"]
            everything = json.loads(json.dumps([{"field": "time_created", "operator": "GREATER_THAN", "value": 0}]))
            ids2, without2, _ = _read_form(form["id"], api, params={"filtering": everything, "limit": 30})
            assert ids2 == expected_ids and without2 == form["malformed_without_id"]
            cursor = LeadgenForm(form["id"], api=api).get_leads(fields=["id"])
            assert cursor.total() == total  # summary=true, added by the SDK


def test_sdk_filtering_matches_plain_http(simulator_factory, sdk):
    server = simulator_factory(seed=32, pages=1, forms_per_page=1, leads_per_form=120)
    manifest = server.manifest()
    form = manifest["pages"][0]["forms"][0]["id"]
    pivot = manifest["now"] - 14 * 86400
    api = sdk(server, manifest["user_token"])
    flt = [{"field": "time_created", "operator": "GREATER_THAN", "value": pivot}]
    ids, without, total = _read_form(form, api, params={"filtering": flt})
    from leads_pipeline_tests.conftest_simulator import Graph

    g = Graph(server.base_url, manifest["user_token"])
    direct = g.all_leads(form, fields="id", limit=100, filtering=json.dumps(flt))
    assert ids == {x["id"] for x in direct if x.get("id")} and 0 < total < 120 + 40
    window = flt + [{"field": "time_created", "operator": "LESS_THAN", "value": pivot + 7 * 86400}]
    ids_w, _, _ = _read_form(form, api, params={"filtering": window})
    assert ids_w < ids


def test_sdk_bad_token_and_errors(simulator_factory, sdk):
    server = simulator_factory(seed=33, leads_per_form=10)
    manifest = server.manifest()
    api = sdk(server, "EAAGthisisnotvalid")
    with pytest.raises(FacebookRequestError) as info:
        list(User(fbid="me", api=api).get_accounts())
    assert info.value.api_error_code() == 190 and info.value.api_error_subcode() == 467
    api = sdk(server, manifest["user_token"])
    form = manifest["pages"][0]["forms"][0]["id"]
    server.set_faults(FaultConfig(throttle_at=[1], throttle_code=80005))
    with pytest.raises(FacebookRequestError) as info:
        LeadgenForm(form, api=api).get_leads(fields=["id"])
    assert info.value.api_error_code() == 80005 and info.value.http_status() == 400
    buc = json.loads(info.value.http_headers()["x-business-use-case-usage"])
    assert buc[manifest["pages"][0]["id"]][0]["type"] == "leadgen"
    server.set_faults(FaultConfig(transient_at=[1], transient_kinds=["code_2"]))
    with pytest.raises(FacebookRequestError) as info:
        Lead(manifest["pages"][0]["forms"][0]["valid_lead_ids"][0], api=api).api_get(fields=["id"])
    assert info.value.api_transient_error() is True
    server.set_faults(None)
    with pytest.raises(FacebookRequestError) as info:
        Lead("123456789012345", api=api).api_get(fields=["id"])
    assert info.value.api_error_code() == 100 and info.value.api_error_subcode() == 33


def test_sdk_batch_and_single_leads(simulator_factory, sdk):
    server = simulator_factory(seed=34, leads_per_form=40)
    manifest = server.manifest()
    api = sdk(server, manifest["user_token"])
    lead_ids = [i for p in manifest["pages"] for f in p["forms"] for i in f["valid_lead_ids"]][:60]
    got: dict[str, dict] = {}
    batch = api.new_batch()
    for lead_id in lead_ids[:50]:
        Lead(lead_id, api=api).api_get(fields=["id", "created_time", "field_data"], batch=batch,
                                       success=lambda r: got.__setitem__(r.json()["id"], r.json()),
                                       failure=lambda r: pytest.fail("batch item failed"))
    assert batch.execute() is None
    assert set(got) == set(lead_ids[:50]) and all(g["field_data"] for g in got.values())
    # A null item comes back as a retry batch.
    server.set_faults(FaultConfig(batch_null_items=[1]))
    retry_batch = api.new_batch()
    for lead_id in lead_ids[50:53]:
        Lead(lead_id, api=api).api_get(fields=["id"], batch=retry_batch)
    retry = retry_batch.execute()
    assert retry is not None and len(retry) == 1
    server.set_faults(None)
    one = Lead(lead_ids[0], api=api).api_get(fields=LEAD_FIELDS)
    assert one["id"] == lead_ids[0] and one["created_time"].endswith("+0000")
    # Ad leads through the SDK.
    ad_id = next(x["ad_id"] for x in LeadgenForm(manifest["pages"][0]["forms"][0]["id"], api=api).get_leads(
        fields=["id", "ad_id"]) if x.get("ad_id"))
    assert all(x["ad_id"] == ad_id for x in Ad(ad_id, api=api).get_leads(fields=["id", "ad_id"]))


def test_sdk_with_appsecret_proof_and_page_token(simulator_factory, sdk):
    server = simulator_factory(seed=35, leads_per_form=30, require_appsecret_proof=True)
    manifest = server.manifest()
    page = manifest["pages"][0]
    api = sdk(server, page["access_token"], app_secret=manifest["app_secret"])
    ids, without, _ = _read_form(page["forms"][0]["id"], api, params={"limit": 7})
    assert ids == set(page["forms"][0]["valid_lead_ids"]) | set(page["forms"][0]["malformed_lead_ids"])
    with pytest.raises(FacebookRequestError) as info:
        _read_form(manifest["pages"][1]["forms"][0]["id"], api)
    assert info.value.api_error_code() == 100
    no_proof = sdk(server, page["access_token"])
    with pytest.raises(FacebookRequestError) as info:
        _read_form(page["forms"][0]["id"], no_proof)
    assert info.value.api_error_code() == 190 and "appsecret_proof" in info.value.api_error_message()


def test_sdk_reads_a_10k_lead_scenario_completely(simulator_factory, sdk):
    scenario = Scenario(seed=36, pages=3, forms_per_page=2, leads_per_form=1700, extra_leads=0, malformed_rate=0.01)
    server = simulator_factory(scenario)
    manifest = server.manifest()
    api = sdk(server, manifest["user_token"])
    total_expected = total_read = 0
    for page in manifest["pages"]:
        for form in page["forms"]:
            expected = set(form["valid_lead_ids"]) | set(form["malformed_lead_ids"])
            ids, without, total = _read_form(form["id"], api, params={"limit": 100})
            assert ids == expected and without == form["malformed_without_id"]
            total_expected += len(expected) + form["malformed_without_id"]
            total_read += total
    assert total_read == total_expected >= 10_000
    assert server.stats()["leads_served"] == total_read
