"""The leadgen webhook emitter, against a local receiving HTTP server."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from leads_pipeline_tests.conftest_simulator import Graph


class Receiver:
    """Records every POST (raw body + headers); can fail the first N POSTs; answers the hub.challenge handshake."""

    def __init__(self, fail_first: int = 0, verify_token: str = "let-me-in"):
        self.posts: list[tuple[bytes, dict]] = []
        self.handshakes = 0
        self.fail_first = fail_first
        self.verify_token = verify_token
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):  # noqa: N802
                q = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
                ok = q.get("hub.mode") == ["subscribe"] and q.get("hub.verify_token") == [receiver.verify_token]
                receiver.handshakes += 1
                body = q["hub.challenge"][0].encode() if ok else b"forbidden"
                self.send_response(200 if ok else 403)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self):  # noqa: N802
                raw = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.posts.append((raw, {k.lower(): v for k, v in self.headers.items()}))
                status = 500 if len(receiver.posts) <= receiver.fail_first else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/webhooks/meta"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()

    def changes(self, ok_only: bool = True) -> list[dict]:
        out = []
        for i, (raw, _h) in enumerate(self.posts):
            if ok_only and i < self.fail_first:
                continue
            for entry in json.loads(raw)["entry"]:
                out += [c["value"] for c in entry["changes"]]
        return out


@pytest.fixture
def receiver():
    made: list[Receiver] = []

    def make(**kw) -> Receiver:
        r = Receiver(**kw)
        made.append(r)
        return r

    yield make
    for r in made:
        r.close()


def _check_signatures(posts, secret: str) -> None:
    for raw, headers in posts:
        expected = "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
        expected1 = "sha1=" + hmac.new(secret.encode(), raw, hashlib.sha1).hexdigest()
        sig_ok = hmac.compare_digest(headers["x-hub-signature-256"], expected)
        sig1_ok = hmac.compare_digest(headers["x-hub-signature"], expected1)
        assert sig_ok and sig1_ok, "signature mismatch"
        assert headers["content-type"] == "application/json"


def test_deliveries_are_signed_and_meta_shaped(simulator_factory, receiver):
    server = simulator_factory(seed=5, organic_rate=0.3, extra_leads=60)
    r = receiver()
    server.start_webhooks(r.url, batch_size=5)
    new_ids = server.advance(leads=23)
    assert server.flush_webhooks(10)
    manifest = server.manifest()
    _check_signatures(r.posts, manifest["app_secret"])
    forms = {f["id"]: p["id"] for p in manifest["pages"] for f in p["forms"]}
    changes = []
    for raw, _headers in r.posts:
        payload = json.loads(raw)
        assert payload["object"] == "page"
        n = 0
        for entry in payload["entry"]:
            assert isinstance(entry["id"], str) and isinstance(entry["time"], int)
            assert entry["time"] == manifest["now"]
            for change in entry["changes"]:
                n += 1
                assert change["field"] == "leadgen"
                v = change["value"]
                assert isinstance(v["leadgen_id"], str) and isinstance(v["created_time"], int)
                assert v["page_id"] == entry["id"] == forms[v["form_id"]]
                assert ("ad_id" in v) == ("adgroup_id" in v)
                if "ad_id" in v:
                    assert isinstance(v["ad_id"], str) and v["ad_id"] == v["adgroup_id"]
                changes.append(v)
        assert 1 <= n <= 5
    assert sorted(c["leadgen_id"] for c in changes) == sorted(new_ids)
    # Organic leads carry no ad ids.
    g = Graph(server.base_url, manifest["user_token"])
    for c in changes:
        lead = g.get(c["leadgen_id"], fields="id,is_organic,ad_id").json()
        assert lead["is_organic"] == ("ad_id" not in c)
    stats = server.stats()["webhooks"]
    assert stats["changes_delivered"] == len(new_ids) and stats["pending"] == 0


def test_retry_after_500(simulator_factory, receiver):
    server = simulator_factory(seed=6)
    r = receiver(fail_first=2)
    server.start_webhooks(r.url, batch_size=50, backoff_initial=0.02)
    new_ids = server.advance(leads=4)
    assert server.flush_webhooks(10)
    assert len(r.posts) == 3
    assert r.posts[0][0] == r.posts[1][0] == r.posts[2][0], "a retry re-sends the same signed body"
    assert sorted(c["leadgen_id"] for c in r.changes()) == sorted(new_ids)
    stats = server.stats()["webhooks"]
    assert stats["retries"] == 2 and stats["posts_failed"] == 2 and stats["posts_ok"] == 1


def test_duplicates(simulator_factory, receiver):
    server = simulator_factory(seed=7)
    r = receiver()
    server.start_webhooks(r.url, duplicate_rate=1.0)
    new_ids = server.advance(leads=6)
    assert server.flush_webhooks(10)
    ids = [c["leadgen_id"] for c in r.changes()]
    assert sorted(ids) == sorted(new_ids * 2)
    assert server.stats()["webhooks"]["duplicates_delivered"] == len(new_ids)


def test_unreachable_receiver_gives_up_after_the_window(simulator_factory):
    server = simulator_factory(seed=8)
    sock_port = _free_port()
    server.start_webhooks(f"http://127.0.0.1:{sock_port}/hook", retry_window_seconds=0.3, backoff_initial=0.05)
    new_ids = server.advance(leads=3)
    assert server.flush_webhooks(10)
    stats = server.stats()["webhooks"]
    assert stats["changes_dropped"] == len(new_ids) and stats["retries"] >= 1
    assert stats["last_error"] and "Connection" in stats["last_error"]


def test_leads_without_id_are_not_announced(simulator_factory, receiver):
    server = simulator_factory(seed=9, malformed_rate=0.5, malformed_kinds=["missing_id"])
    r = receiver()
    server.start_webhooks(r.url)
    before = sum(f["malformed_without_id"] for p in server.manifest()["pages"] for f in p["forms"])
    new_ids = server.advance(leads=20)
    assert server.flush_webhooks(10)
    after = sum(f["malformed_without_id"] for p in server.manifest()["pages"] for f in p["forms"])
    assert after > before and len(new_ids) == 20 - (after - before)
    assert sorted(c["leadgen_id"] for c in r.changes()) == sorted(new_ids)


def test_subscription_flow_through_the_graph_api(simulator_factory, receiver):
    server = simulator_factory(seed=10)
    manifest = server.manifest()
    r = receiver(verify_token="s3cret-verify")
    app_token = f"{manifest['app_id']}|{manifest['app_secret']}"
    base = f"{server.base_url}/v25.0"
    # Wrong verify token → Meta's callback verification error.
    failed = requests.post(f"{base}/{manifest['app_id']}/subscriptions", data={
        "object": "page", "callback_url": r.url, "fields": "leadgen", "verify_token": "wrong",
        "access_token": app_token}, timeout=10)
    assert failed.status_code == 400 and failed.json()["error"]["code"] == 2200
    # A user token cannot manage app subscriptions.
    assert requests.get(f"{base}/{manifest['app_id']}/subscriptions",
                        params={"access_token": manifest["user_token"]}, timeout=10).json()["error"]["code"] == 15
    ok = requests.post(f"{base}/{manifest['app_id']}/subscriptions", data={
        "object": "page", "callback_url": r.url, "fields": json.dumps(["leadgen"]), "verify_token": "s3cret-verify",
        "include_values": "true", "access_token": app_token}, timeout=10)
    assert ok.json() == {"success": True} and r.handshakes == 2
    listed = requests.get(f"{base}/{manifest['app_id']}/subscriptions", params={"access_token": app_token},
                          timeout=10).json()
    assert listed["data"][0]["callback_url"] == r.url and listed["data"][0]["fields"][0]["name"] == "leadgen"
    # Install the app on page 0 only.
    p0, p1 = manifest["pages"]
    g = Graph(server.base_url, p0["access_token"])
    assert g.get(f"{p0['id']}/subscribed_apps").json() == {"data": []}
    installed = requests.post(f"{base}/{p0['id']}/subscribed_apps", data={
        "subscribed_fields": "leadgen", "access_token": p0["access_token"]}, timeout=10)
    assert installed.json() == {"success": True}
    apps = g.get(f"{p0['id']}/subscribed_apps").json()["data"]
    assert apps[0]["id"] == manifest["app_id"] and apps[0]["subscribed_fields"] == ["leadgen"]
    assert requests.post(f"{base}/{p1['id']}/subscribed_apps", data={
        "subscribed_fields": "leadgen", "access_token": manifest["user_token"]}, timeout=10).json()[
        "error"]["code"] == 210
    new_ids = server.advance(leads=30)
    assert server.flush_webhooks(10)
    _check_signatures(r.posts, manifest["app_secret"])
    got = r.changes()
    assert got and all(c["page_id"] == p0["id"] for c in got)
    p0_forms = {f["id"] for f in p0["forms"]}
    user = Graph(server.base_url, manifest["user_token"])
    expected = [i for i in new_ids if user.get(i, fields="form_id").json()["form_id"] in p0_forms]
    assert sorted(c["leadgen_id"] for c in got) == sorted(expected)
    # Unsubscribe: no more deliveries.
    assert requests.delete(f"{base}/{manifest['app_id']}/subscriptions",
                           params={"object": "page", "access_token": app_token}, timeout=10).json()["success"]
    assert server.simulator.webhooks is None


def test_control_endpoint_configures_webhooks(simulator_factory, receiver):
    server = simulator_factory(seed=13)
    r = receiver()
    resp = requests.post(f"{server.base_url}/__simulator/webhooks", json={"url": r.url, "batch_size": 2}, timeout=10)
    assert resp.json() == {"ok": True}
    new_ids = requests.post(f"{server.base_url}/__simulator/advance", json={"leads": 5}, timeout=10).json()[
        "new_lead_ids"]
    assert server.flush_webhooks(10)
    assert sorted(c["leadgen_id"] for c in r.changes()) == sorted(new_ids)
    assert requests.get(f"{server.base_url}/__simulator/webhooks", timeout=10).json()["changes_delivered"] == len(
        new_ids)
    assert requests.delete(f"{server.base_url}/__simulator/webhooks", timeout=10).json() == {"ok": True}


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
