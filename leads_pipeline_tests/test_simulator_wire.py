"""Wire compatibility with Meta's Graph API: routes, paging, filtering, fields, tokens, batch, headers."""

from __future__ import annotations

import hashlib
import hmac
import json
import urllib.parse
from datetime import datetime

import pytest
import requests

from leads_pipeline.simulator import Scenario
from leads_pipeline_tests.conftest_simulator import Graph, all_manifest_leads


@pytest.fixture
def world(simulator_factory):
    server = simulator_factory(seed=4, pages=2, forms_per_page=2, leads_per_form=130, extra_leads=60,
                               malformed_rate=0.05)
    manifest = server.manifest()
    return server, manifest, Graph(server.base_url, manifest["user_token"])


def _ts(created_time: str) -> int | None:
    try:
        return int(datetime.strptime(created_time, "%Y-%m-%dT%H:%M:%S%z").timestamp())
    except (TypeError, ValueError):
        return None


def _error(resp: requests.Response) -> dict:
    assert resp.status_code >= 400
    body = resp.json()
    assert set(body) == {"error"}
    err = body["error"]
    assert {"message", "type", "code", "fbtrace_id"} <= set(err)
    return err


# ----------------------------------------------------------------------------------------------------- paging --


def test_paging_every_lead_once_newest_first(world):
    server, manifest, g = world
    form = manifest["pages"][0]["forms"][0]
    ids, without = all_manifest_leads(form)
    resp = g.get(f"{form['id']}/leads", fields="id,created_time", limit=9)
    pages = []
    while True:
        body = resp.json()
        pages.append(body)
        if "next" not in body["paging"]:
            break
        resp = g.get_url(body["paging"]["next"])
    leads = [lead for p in pages for lead in p["data"]]
    served_ids = [lead["id"] for lead in leads if lead.get("id")]
    assert len(served_ids) == len(set(served_ids)) and set(served_ids) == ids
    assert len(leads) - len(served_ids) == without
    times = [_ts(lead.get("created_time")) for lead in leads]
    times = [t for t in times if t is not None]
    assert times == sorted(times, reverse=True), "newest first"
    assert len(pages) == -(-len(leads) // 9)
    assert "previous" not in pages[0]["paging"]
    for p in pages[1:]:
        assert "previous" in p["paging"]
    for p in pages:
        assert set(p["paging"]["cursors"]) == {"before", "after"}
    assert "next" not in pages[-1]["paging"] and pages[-1]["paging"]["cursors"]["after"]


def test_next_and_previous_urls_are_absolute_and_keep_params(world):
    server, manifest, g = world
    form = manifest["pages"][0]["forms"][1]["id"]
    token = manifest["user_token"]
    filtering = json.dumps([{"field": "time_created", "operator": "GREATER_THAN", "value": 1}])
    params = {"access_token": token, "fields": "id,field_data", "limit": "5", "filtering": filtering}
    first = requests.get(g.url(f"{form}/leads"), params=params, timeout=10).json()
    nxt = urllib.parse.urlsplit(first["paging"]["next"])
    assert f"{nxt.scheme}://{nxt.netloc}" == server.base_url
    assert nxt.path == f"/v25.0/{form}/leads"
    q = urllib.parse.parse_qs(nxt.query)
    token_kept = q.get("access_token") == [token]
    assert token_kept
    assert q["fields"] == ["id,field_data"] and q["limit"] == ["5"] and json.loads(q["filtering"][0])[0]["value"] == 1
    assert q["after"] == [first["paging"]["cursors"]["after"]]
    second = requests.get(first["paging"]["next"], timeout=10).json()
    prev = second["paging"]["previous"]
    assert urllib.parse.parse_qs(urllib.parse.urlsplit(prev).query)["before"] == [
        second["paging"]["cursors"]["before"]]
    back = requests.get(prev, timeout=10).json()
    assert [x.get("id") for x in back["data"]] == [x.get("id") for x in first["data"]]
    # Token from the Authorization header: never copied into the URLs.
    via_header = g.get(f"{form}/leads", fields="id", limit=5).json()
    assert "access_token" not in urllib.parse.parse_qs(urllib.parse.urlsplit(via_header["paging"]["next"]).query)
    # The Host header decides the URL host.
    with_host = requests.get(g.url(f"{form}/leads"), headers={"Authorization": f"Bearer {token}",
                                                                "Host": "graph.example.test"}, timeout=10).json()
    assert with_host["paging"]["next"].startswith("http://graph.example.test/v25.0/")


def test_limit_default_and_cap(world):
    server, manifest, g = world
    form = manifest["pages"][1]["forms"][0]["id"]
    assert len(g.get(f"{form}/leads").json()["data"]) == 25
    capped = g.get(f"{form}/leads", limit=1000).json()
    assert len(capped["data"]) == 100 and "next" in capped["paging"]
    assert _error(g.get(f"{form}/leads", limit="many"))["code"] == 100


def test_paging_is_stable_when_leads_arrive(world):
    server, manifest, g = world
    form = manifest["pages"][0]["forms"][0]
    ids, _without = all_manifest_leads(form)
    resp = g.get(f"{form['id']}/leads", fields="id", limit=20).json()
    got = [x.get("id") for x in resp["data"]]
    server.advance(leads=60)  # some land in this form, at the top
    while "next" in resp["paging"]:
        resp = g.get_url(resp["paging"]["next"]).json()
        got += [x.get("id") for x in resp["data"]]
    got_ids = [i for i in got if i]
    assert len(got_ids) == len(set(got_ids)) and set(got_ids) == ids


def test_before_and_after_pages_and_a_stale_cursor(world):
    server, manifest, g = world
    form = manifest["pages"][0]["forms"][0]["id"]
    assert _error(g.get(f"{form}/leads", after="not-a-cursor"))["code"] == 100
    empty = g.get(f"{form}/leads", after="UVZGSTA").json()  # position 0: nothing is older
    assert empty["data"] == [] and "next" not in empty.get("paging", {})


# -------------------------------------------------------------------------------------------------- filtering --


def test_filtering_operators(world):
    server, manifest, g = world
    form = manifest["pages"][0]["forms"][0]["id"]
    leads = g.all_leads(form, fields="id,created_time", limit=100)
    times = sorted({t for t in (_ts(x.get("created_time")) for x in leads) if t is not None})
    pivot = times[len(times) // 2]
    total = len(leads)

    def count(*conds, **extra):
        return len(g.all_leads(form, fields="id,created_time", limit=50, filtering=json.dumps(list(conds)), **extra))

    gt = count({"field": "time_created", "operator": "GREATER_THAN", "value": pivot})
    gte = count({"field": "time_created", "operator": "GREATER_THAN_OR_EQUAL", "value": pivot})
    lt = count({"field": "time_created", "operator": "LESS_THAN", "value": pivot})
    assert gt < gte and gt + lt < total and gte + lt == total
    assert gt == sum(1 for x in leads if (_ts(x.get("created_time")) or 0) > pivot) or gt > 0
    window = count({"field": "time_created", "operator": "GREATER_THAN", "value": times[3]},
                   {"field": "time_created", "operator": "LESS_THAN", "value": times[-3]})
    assert 0 < window < total
    for lead in g.all_leads(form, fields="id,created_time", filtering=json.dumps(
            [{"field": "time_created", "operator": "GREATER_THAN", "value": pivot}])):
        t = _ts(lead.get("created_time"))
        assert t is None or t > pivot
    # A string of digits works; an ISO date is silently ignored (Meta returns everything).
    assert count({"field": "time_created", "operator": "GREATER_THAN", "value": str(pivot)}) == gt
    assert count({"field": "time_created", "operator": "GREATER_THAN", "value": "2026-05-20T00:00:00"}) == total
    # since / until are accepted and ignored.
    assert len(g.all_leads(form, fields="id", limit=100, since=pivot, until=pivot)) == total
    # summary
    summary = g.get(f"{form}/leads", summary="true", filtering=json.dumps(
        [{"field": "time_created", "operator": "GREATER_THAN", "value": pivot}])).json()["summary"]
    assert summary == {"total_count": gt}


def test_filtering_errors(world):
    server, manifest, g = world
    form = manifest["pages"][0]["forms"][0]["id"]
    for bad in ([{"field": "time_created", "operator": "LESS_THAN_OR_EQUAL", "value": 1}],
                [{"field": "created_time", "operator": "GREATER_THAN", "value": 1}], "not json"):
        raw = bad if isinstance(bad, str) else json.dumps(bad)
        err = _error(g.get(f"{form}/leads", filtering=raw))
        assert err["code"] == 100


# ----------------------------------------------------------------------------------------------------- fields --


def test_fields(world):
    server, manifest, g = world
    page = manifest["pages"][0]
    form = page["forms"][0]["id"]
    default = g.get(f"{form}/leads", limit=3).json()["data"]
    assert all(set(x) <= {"id", "created_time", "field_data"} for x in default)
    chosen = g.get(f"{form}/leads", fields="id,form_id,platform,is_organic", limit=5).json()["data"]
    assert all(set(x) <= {"id", "form_id", "platform", "is_organic"} and x["form_id"] == form for x in chosen)
    err = _error(g.get(f"{form}/leads", fields="id,favourite_colour"))
    assert err["code"] == 100 and "favourite_colour" in err["message"]
    # Single lead node.
    lead_id = page["forms"][0]["valid_lead_ids"][0]
    one = g.get(lead_id, fields="id,created_time,form_id,field_data,custom_disclaimer_responses").json()
    assert one["id"] == lead_id and one["form_id"] == form
    assert set(g.get(lead_id).json()) <= {"id", "created_time", "field_data"}
    # Form node with field expansion of its leads edge.
    node = g.get(form, fields="id,name,status,leads_count,organic_leads_count,questions,page,"
                              "leads.limit(4){id,created_time}").json()
    f = page["forms"][0]
    assert node["leads_count"] == len(f["valid_lead_ids"]) + len(f["malformed"])
    assert node["page"]["id"] == page["id"] and node["status"] == "ACTIVE" and node["questions"]
    assert len(node["leads"]["data"]) == 4 and all(set(x) <= {"id", "created_time"} for x in node["leads"]["data"])
    nested_next = node["leads"]["paging"]["next"]
    assert f"/v25.0/{form}/leads?" in nested_next and "limit=4" in nested_next
    assert len(g.get_url(nested_next).json()["data"]) == 4
    # Page node with its forms expanded.
    pnode = g.get(page["id"], fields="name,leadgen_forms{id,name,leads_count}").json()
    assert {x["id"] for x in pnode["leadgen_forms"]["data"]} == {x["id"] for x in page["forms"]}


def test_forms_accounts_me_and_ad_leads(world):
    server, manifest, g = world
    accounts = g.get("me/accounts").json()
    assert [a["id"] for a in accounts["data"]] == [p["id"] for p in manifest["pages"]]
    tokens_match = [a["access_token"] for a in accounts["data"]] == [p["access_token"] for p in manifest["pages"]]
    assert tokens_match
    assert g.get("me").json()["id"] == manifest["user_id"]
    page = manifest["pages"][1]
    forms = g.get(f"{page['id']}/leadgen_forms", fields="id,name,status,leads_count,created_time").json()
    assert {f["id"] for f in forms["data"]} == {f["id"] for f in page["forms"]}
    paged = g.get(f"{page['id']}/leadgen_forms", limit=1).json()
    assert len(paged["data"]) == 1 and "next" in paged["paging"]
    assert len(g.get_url(paged["paging"]["next"]).json()["data"]) == 1
    # Ad leads: a subset of the form's leads, only paid ones.
    lead = g.get(page["forms"][0]["valid_lead_ids"][0], fields="id,ad_id,is_organic").json()
    ad_id = lead.get("ad_id") or next(
        x["ad_id"] for x in g.all_leads(page["forms"][0]["id"], fields="ad_id", limit=100) if "ad_id" in x)
    ad_leads = g.all_leads(ad_id, fields="id,ad_id,is_organic", limit=100)
    assert ad_leads and all(x["ad_id"] == ad_id and x["is_organic"] is False for x in ad_leads)
    assert g.get(ad_id, fields="id,name").json()["id"] == ad_id


def test_future_leads_are_invisible(world):
    server, manifest, g = world
    world_obj = server.simulator.world
    future = next(lead for lead in world_obj._timeline if lead.id)
    err = _error(g.get(future.id))
    assert err["code"] == 100 and err["error_subcode"] == 33
    server.advance(seconds=future.ct - world_obj.now)
    assert g.get(future.id).json()["id"] == future.id


# ----------------------------------------------------------------------------------------------------- tokens --


def test_token_sources(world):
    server, manifest, g = world
    token = manifest["user_token"]
    url = g.url("me/accounts")
    assert requests.get(url, params={"access_token": token}, timeout=10).status_code == 200
    assert requests.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=10).status_code == 200
    assert requests.get(url, headers={"Authorization": f"OAuth {token}"}, timeout=10).status_code == 200
    body_token = requests.get(url, data={"access_token": token}, timeout=10)
    assert body_token.status_code == 200
    # POST with the token in the form body (a batch).
    batch = requests.post(f"{server.base_url}/v25.0/", data={
        "access_token": token, "batch": json.dumps([{"method": "GET", "relative_url": "me"}])}, timeout=10)
    assert batch.status_code == 200 and json.loads(batch.json()[0]["body"])["id"] == manifest["user_id"]


def test_wrong_and_missing_token(world):
    server, manifest, g = world
    resp = g.get("me/accounts", token="EAAGnotarealtoken")
    err = _error(resp)
    assert resp.status_code == 400
    assert err["code"] == 190 and err["error_subcode"] == 467 and err["type"] == "OAuthException"
    assert "www-authenticate" in {k.lower() for k in resp.headers}
    missing = requests.get(g.url("me/accounts"), timeout=10)
    assert _error(missing)["code"] == 104


def test_page_tokens_see_only_their_page(world):
    server, manifest, g = world
    p0, p1 = manifest["pages"]
    own = g.get(f"{p0['forms'][0]['id']}/leads", token=p0["access_token"], fields="id")
    assert own.status_code == 200
    foreign = g.get(f"{p1['forms'][0]['id']}/leads", token=p0["access_token"])
    err = _error(foreign)
    assert err["code"] == 100 and err["error_subcode"] == 33
    assert _error(g.get(p1["forms"][0]["valid_lead_ids"][0], token=p0["access_token"]))["code"] == 100
    assert _error(g.get("me/accounts", token=p0["access_token"]))["code"] == 100
    assert g.get("me", token=p0["access_token"]).json()["id"] == p0["id"]
    forms = g.get(f"{p0['id']}/leadgen_forms", token=p0["access_token"]).json()["data"]
    assert {f["id"] for f in forms} == {f["id"] for f in p0["forms"]}


def test_appsecret_proof(simulator_factory):
    server = simulator_factory(require_appsecret_proof=True, leads_per_form=5)
    manifest = server.manifest()
    token, secret = manifest["user_token"], manifest["app_secret"]
    url = f"{server.base_url}/v25.0/me/accounts"
    missing = requests.get(url, params={"access_token": token}, timeout=10)
    err = _error(missing)
    assert err["code"] == 190 and "appsecret_proof" in err["message"]
    bad = requests.get(url, params={"access_token": token, "appsecret_proof": "00" * 32}, timeout=10)
    assert _error(bad)["message"] == "Invalid appsecret_proof provided in the API argument"
    proof = hmac.new(secret.encode(), token.encode(), hashlib.sha256).hexdigest()
    good = requests.get(url, params={"access_token": token, "appsecret_proof": proof}, timeout=10)
    assert good.status_code == 200
    # The proof in the query survives into paging.next.
    nxt = requests.get(url, params={"access_token": token, "appsecret_proof": proof, "limit": 1}, timeout=10).json()
    assert requests.get(nxt["paging"]["next"], timeout=10).status_code == 200


def test_debug_token_and_long_lived_exchange(world):
    server, manifest, g = world
    app_token = f"{manifest['app_id']}|{manifest['app_secret']}"
    info = requests.get(g.url("debug_token"), params={"input_token": manifest["pages"][0]["access_token"],
                                                      "access_token": app_token}, timeout=10).json()["data"]
    assert info["is_valid"] is True and info["type"] == "PAGE" and "leads_retrieval" in info["scopes"]
    assert info["app_id"] == manifest["app_id"] and info["profile_id"] == manifest["pages"][0]["id"]
    bad = requests.get(g.url("debug_token"), params={"input_token": "nope", "access_token": app_token},
                       timeout=10).json()["data"]
    assert bad["is_valid"] is False
    exchanged = requests.get(g.url("oauth/access_token"), params={
        "grant_type": "fb_exchange_token", "client_id": manifest["app_id"], "client_secret": manifest["app_secret"],
        "fb_exchange_token": manifest["user_token"]}, timeout=10).json()
    assert exchanged["token_type"] == "bearer" and exchanged["expires_in"] > 5_000_000
    assert g.get("me/accounts", token=exchanged["access_token"]).status_code == 200
    wrong = requests.get(g.url("oauth/access_token"), params={
        "grant_type": "fb_exchange_token", "client_id": manifest["app_id"], "client_secret": "x",
        "fb_exchange_token": manifest["user_token"]}, timeout=10)
    assert _error(wrong)["code"] == 1


def test_versions(simulator_factory):
    server = simulator_factory(leads_per_form=3, accepted_versions=["v24.0", "v25.0"])
    token = server.manifest()["user_token"]
    h = {"Authorization": f"Bearer {token}"}
    assert requests.get(f"{server.base_url}/v24.0/me", headers=h, timeout=10).headers["facebook-api-version"] == "v24.0"
    assert requests.get(f"{server.base_url}/me", headers=h, timeout=10).status_code == 200
    assert _error(requests.get(f"{server.base_url}/v12.0/me", headers=h, timeout=10))["code"] == 2635
    unversioned_off = simulator_factory(leads_per_form=3, allow_unversioned=False)
    t2 = unversioned_off.manifest()["user_token"]
    assert requests.get(f"{unversioned_off.base_url}/me", headers={"Authorization": f"Bearer {t2}"},
                        timeout=10).status_code == 400


def test_unknown_objects_and_edges(world):
    server, manifest, g = world
    err = _error(g.get("123456789012345"))
    assert err["code"] == 100 and err["error_subcode"] == 33 and err["type"] == "GraphMethodException"
    assert "123456789012345" in err["message"]
    assert _error(g.get(f"{manifest['pages'][0]['id']}/nonsense"))["code"] == 2500


# ------------------------------------------------------------------------------------------------------ batch --


def test_batch(world):
    server, manifest, g = world
    token = manifest["user_token"]
    form = manifest["pages"][0]["forms"][0]
    lead_ids = form["valid_lead_ids"][:3]
    items = [{"method": "GET", "relative_url": f"{i}?fields=id,field_data"} for i in lead_ids]
    items.append({"method": "GET", "relative_url": f"v25.0/{form['id']}/leads?fields=id&limit=2"})
    items.append({"method": "GET", "relative_url": "999999999999999"})
    resp = requests.post(f"{server.base_url}/v25.0/", params={"access_token": token},
                         data={"batch": json.dumps(items)}, timeout=10)
    assert resp.status_code == 200
    out = resp.json()
    assert len(out) == 5
    for item, lead_id in zip(out[:3], lead_ids):
        assert item["code"] == 200 and isinstance(item["body"], str)
        assert {h["name"] for h in item["headers"]} >= {"Content-Type"}
        assert json.loads(item["body"])["id"] == lead_id
    assert len(json.loads(out[3]["body"])["data"]) == 2
    assert out[4]["code"] == 400 and json.loads(out[4]["body"])["error"]["code"] == 100
    # include_headers=false
    plain = requests.post(f"{server.base_url}/v25.0/", data={"access_token": token, "include_headers": "false",
                                                            "batch": json.dumps(items[:1])}, timeout=10).json()
    assert set(plain[0]) == {"code", "body"}
    # 50 is the limit.
    fifty = [{"method": "GET", "relative_url": "me"}] * 50
    assert len(requests.post(f"{server.base_url}/v25.0/", data={"access_token": token,
                                                               "batch": json.dumps(fifty)}, timeout=10).json()) == 50
    too_many = requests.post(f"{server.base_url}/v25.0/", data={"access_token": token,
                                                               "batch": json.dumps(fifty + fifty[:1])}, timeout=10)
    assert _error(too_many)["code"] == 100
    # The top-level token is required.
    no_token = requests.post(f"{server.base_url}/v25.0/", data={"batch": json.dumps(items[:1])}, timeout=10)
    assert _error(no_token)["code"] == 104
    stats = server.stats()
    assert stats["by_route"]["batch"] >= 4 and stats["batch_items"] >= 56


# ---------------------------------------------------------------------------------------------------- headers --


def test_headers_on_every_response(world):
    server, manifest, g = world
    page = manifest["pages"][1]
    for resp in (g.get(f"{page['forms'][0]['id']}/leads"), g.get("me/accounts", token="bad"),
                 g.get(page["forms"][1]["valid_lead_ids"][0])):
        h = resp.headers
        assert h["x-fb-trace-id"] and h["facebook-api-version"] == "v25.0"
        app = json.loads(h["x-app-usage"])
        assert set(app) == {"call_count", "total_cputime", "total_time"}
        buc = json.loads(h["x-business-use-case-usage"])
        (key, entries), = buc.items()
        assert entries[0]["type"] == "leadgen"
        assert {"call_count", "total_cputime", "total_time", "estimated_time_to_regain_access"} <= set(entries[0])
    buc = json.loads(g.get(f"{page['forms'][0]['id']}/leads").headers["x-business-use-case-usage"])
    assert list(buc) == [page["id"]]
    err = g.get("me/accounts", token="bad")
    assert err.json()["error"]["fbtrace_id"] == err.headers["x-fb-trace-id"]


def test_stats_and_control_endpoints(world):
    server, manifest, g = world
    server.reset_stats()
    g.get(f"{manifest['pages'][0]['forms'][0]['id']}/leads", limit=10)
    g.get("me/accounts", token="bad")
    stats = requests.get(f"{server.base_url}/__simulator/stats", timeout=10).json()
    assert stats["requests"] == 2 and stats["by_route"] == {"leads": 1, "accounts": 1}
    assert stats["by_status"] == {"200": 1, "400": 1} and stats["leads_served"] == 10
    assert requests.post(f"{server.base_url}/__simulator/stats/reset", timeout=10).json() == {"ok": True}
    assert server.stats()["requests"] == 0
    assert requests.get(f"{server.base_url}/__simulator/nope", timeout=10).status_code == 404
    assert requests.get(f"{server.base_url}/__simulator/scenario", timeout=10).json()["seed"] == 4


def test_server_stops_cleanly(simulator_factory):
    server = simulator_factory(leads_per_form=3)
    session = requests.Session()  # a kept-alive connection must not block the shutdown
    token = server.manifest()["user_token"]
    assert session.get(f"{server.base_url}/v25.0/me", headers={"Authorization": f"Bearer {token}"},
                       timeout=5).status_code == 200
    server.stop()
    with pytest.raises(requests.RequestException):
        requests.get(f"{server.base_url}/v25.0/me", timeout=2)
    assert isinstance(server.scenario, Scenario)
