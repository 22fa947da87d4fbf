"""Every fault kind, observed on the wire."""

from __future__ import annotations

import json
import re
import socket
import time

import pytest
import requests

from leads_pipeline.simulator import FaultConfig
from leads_pipeline_tests.conftest_simulator import Graph


@pytest.fixture
def setup(simulator_factory):
    server = simulator_factory(seed=12, leads_per_form=80)
    manifest = server.manifest()
    g = Graph(server.base_url, manifest["user_token"])
    form = manifest["pages"][0]["forms"][0]["id"]
    return server, manifest, g, form


@pytest.mark.parametrize("kind,status,code", [("code_1", 500, 1), ("code_2", 500, 2), ("http_500", 500, None),
                                              ("http_503", 503, None)])
def test_transient_errors(setup, kind, status, code):
    server, manifest, g, form = setup
    server.set_faults(FaultConfig(transient_at=[2], transient_kinds=[kind]))
    assert g.get(f"{form}/leads").status_code == 200
    resp = g.get(f"{form}/leads")
    assert resp.status_code == status
    if code is None:
        assert resp.headers["Content-Type"].startswith("text/html") and resp.text.lstrip().startswith("<!DOCTYPE")
    else:
        err = resp.json()["error"]
        assert err["code"] == code and err["is_transient"] is True and err["fbtrace_id"]
    assert g.get(f"{form}/leads").status_code == 200
    assert server.stats()["faults_injected"] == {kind: 1}


@pytest.mark.parametrize("code", [4, 17, 32, 613, 80001, 80005])
def test_throttling_window_by_requests(setup, code):
    server, manifest, g, form = setup
    server.set_faults({"throttle_at": [2], "throttle_requests": 3, "throttle_code": code,
                       "throttle_regain_minutes": 7})
    statuses = []
    for _ in range(5):
        resp = g.get(f"{form}/leads", limit=2)
        statuses.append(resp.status_code)
        if resp.status_code == 400:
            err = resp.json()["error"]
            assert err["code"] == code and err["message"].startswith(f"(#{code})")
            buc = json.loads(resp.headers["x-business-use-case-usage"])
            entry = buc[manifest["pages"][0]["id"]][0]
            assert entry["type"] == "leadgen" and entry["estimated_time_to_regain_access"] == 7
            assert entry["call_count"] >= 100
            if code in (4, 17, 32, 613):
                assert json.loads(resp.headers["x-app-usage"])["call_count"] == 100
    assert statuses == [200, 400, 400, 400, 200]


def test_throttling_window_by_seconds_and_rate(setup):
    server, manifest, g, form = setup
    server.set_faults(FaultConfig(throttle_at=[1], throttle_seconds=0.6, throttle_code=80005))
    first = g.get(f"{form}/leads")
    assert first.json()["error"]["code"] == 80005
    assert json.loads(first.headers["x-business-use-case-usage"])[manifest["pages"][0]["id"]][0][
        "estimated_time_to_regain_access"] == 1  # minutes, rounded up
    assert g.get(f"{form}/leads").status_code == 400
    time.sleep(0.7)
    assert g.get(f"{form}/leads").status_code == 200
    # By rate, seeded: the same config gives the same pattern.
    patterns = []
    for _ in range(2):
        server.set_faults(FaultConfig(seed=3, throttle_rate=0.2, throttle_requests=2, transient_rate=0.1))
        patterns.append([g.get("me").status_code for _ in range(30)])
    assert patterns[0] == patterns[1] and 400 in patterns[0] and 200 in patterns[0]


def test_slow_responses(setup):
    server, manifest, g, form = setup
    server.set_faults(FaultConfig(slow_at=[1], slow_seconds=0.4))
    t0 = time.monotonic()
    assert g.get(f"{form}/leads").status_code == 200
    assert time.monotonic() - t0 >= 0.4
    with pytest.raises(requests.Timeout):
        server.set_faults(FaultConfig(slow_rate=1.0, slow_seconds=1.0))
        g.session.get(g.url("me"), headers={"Authorization": f"Bearer {manifest['user_token']}"}, timeout=0.3)


def test_connection_reset_mid_page(setup):
    server, manifest, g, form = setup
    server.set_faults(FaultConfig(reset_at=[1, 2]))
    with pytest.raises((requests.exceptions.ChunkedEncodingError, requests.ConnectionError)):
        g.get(f"{form}/leads", limit=50)
    # On a raw socket: status line and headers with the full Content-Length, part of the body, then an RST.
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    request = (f"GET /v25.0/{form}/leads?limit=50 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
               f"Authorization: Bearer {manifest['user_token']}\r\n\r\n")
    sock.sendall(request.encode())
    received = b""
    reset = False
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += chunk
    except ConnectionResetError:
        reset = True
    finally:
        sock.close()
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    length = int(re.search(rb"Content-Length: (\d+)", head).group(1))
    assert 0 < len(body) < length
    assert reset, "the connection ends with an RST, not a clean FIN"
    assert g.get(f"{form}/leads").status_code == 200
    assert server.stats()["faults_injected"]["reset"] == 2


def test_truncated_json(setup):
    server, manifest, g, form = setup
    server.set_faults(FaultConfig(truncated_at=[1]))
    resp = g.get(f"{form}/leads", limit=10)
    assert resp.status_code == 200 and int(resp.headers["Content-Length"]) == len(resp.content)
    with pytest.raises(ValueError):
        resp.json()
    assert g.get(f"{form}/leads", limit=10).json()["data"]


def test_empty_page_with_next(setup):
    server, manifest, g, form = setup
    server.set_faults(FaultConfig(empty_page_at=[1, 3]))
    first = g.get(f"{form}/leads", fields="id", limit=10).json()
    assert first["data"] == [] and "next" in first["paging"]
    real_first = g.get_url(first["paging"]["next"]).json()
    assert len(real_first["data"]) == 10
    second_empty = g.get_url(real_first["paging"]["next"]).json()
    assert second_empty["data"] == [] and "next" in second_empty["paging"]
    second = g.get_url(second_empty["paging"]["next"]).json()
    expected = g.get_url(real_first["paging"]["next"]).json()
    assert second["data"] == expected["data"] and len(second["data"]) == 10


def test_token_expiry_after_n_calls(setup):
    server, manifest, g, form = setup
    p0, p1 = manifest["pages"]
    server.set_faults(FaultConfig(token_expiry_after_calls=2, expire_tokens=[p0["access_token"]]))
    assert g.get(f"{form}/leads", token=p0["access_token"]).status_code == 200
    assert g.get(f"{form}/leads", token=p0["access_token"]).status_code == 200
    resp = g.get(f"{form}/leads", token=p0["access_token"])
    err = resp.json()["error"]
    assert resp.status_code == 400 and err["code"] == 190 and err["error_subcode"] == 463
    day = r"(Mon|Tues|Wednes|Thurs|Fri|Satur|Sun)day, \d\d-[A-Z][a-z]{2}-\d\d \d\d:\d\d:\d\d PDT"
    assert re.fullmatch(rf"Error validating access token: Session has expired on {day}\. The current time is "
                        rf"{day}\.", err["message"]), err["message"]
    assert "www-authenticate" in {k.lower() for k in resp.headers}
    # Other tokens still work.
    assert g.get(f"{p1['forms'][0]['id']}/leads", token=p1["access_token"]).status_code == 200
    server.set_faults(FaultConfig(token_expiry_after_calls=0))
    assert g.get("me").json()["error"]["error_subcode"] == 463


def test_batch_null_items(setup):
    server, manifest, g, form = setup
    server.set_faults(FaultConfig(batch_null_items=[2]))
    items = [{"method": "GET", "relative_url": "me"}] * 3
    out = requests.post(f"{server.base_url}/v25.0/", data={"access_token": manifest["user_token"],
                                                          "batch": json.dumps(items)}, timeout=10).json()
    assert out[0] is not None and out[1] is None and out[2] is not None


def test_faults_never_touch_control_routes_and_route_filter(setup):
    server, manifest, g, form = setup
    resp = requests.post(f"{server.base_url}/__simulator/faults",
                         json={"transient_rate": 1.0, "transient_kinds": ["http_503"]}, timeout=10)
    assert resp.status_code == 200 and resp.json()["faults"]["transient_rate"] == 1.0
    assert g.get("me").status_code == 503
    assert requests.get(f"{server.base_url}/__simulator/manifest", timeout=10).status_code == 200
    assert requests.get(f"{server.base_url}/__simulator/stats", timeout=10).status_code == 200
    server.set_faults(FaultConfig(routes=["leads"], transient_rate=1.0, transient_kinds=["code_2"]))
    assert g.get("me").status_code == 200
    assert g.get(f"{form}/leads").json()["error"]["code"] == 2
    assert requests.post(f"{server.base_url}/__simulator/faults", json={"nope": 1}, timeout=10).status_code == 400
    server.set_faults(None)
    assert g.get(f"{form}/leads").status_code == 200
