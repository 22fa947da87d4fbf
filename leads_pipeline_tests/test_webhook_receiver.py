"""The receiver (``leads_pipeline.web.webhooks``) over real HTTP: uvicorn on 127.0.0.1, ``requests`` as Meta."""

from __future__ import annotations

import http.client as httpclient
import json
import logging

import pytest

from leads_pipeline.lib.security import sign
from leads_pipeline_tests.test_webhook_support import (  # noqa: F401 - fixtures
    APP_SECRET,
    SAMPLE_DASHBOARD,
    SAMPLE_DOC_NUMERIC,
    SAMPLE_POSTMAN,
    VERIFY_TOKEN,
    configure,
    http,
    inbox_rows,
    leadgen_body,
    live_receiver,
    receiver_app,
    signed_headers,
    table_rows,
)


@pytest.fixture
def configured(monkeypatch):
    configure(monkeypatch, app_secret=APP_SECRET, webhook_verify_token=VERIFY_TOKEN)


@pytest.fixture
def server(warehouse, live_receiver, configured):
    return live_receiver(warehouse)


# ----------------------------------------------------------------------------------------------------------------------
# Handshake
# ----------------------------------------------------------------------------------------------------------------------


def test_handshake_echoes_the_challenge_as_text(server, http) -> None:
    resp = http.get(server.webhook_url, params={"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN,
                                                "hub.challenge": "1158201444"})
    assert resp.status_code == 200
    assert resp.text == "1158201444"
    assert resp.headers["content-type"].startswith("text/plain")


@pytest.mark.parametrize(
    "params",
    [
        {"hub.mode": "subscribe", "hub.verify_token": "wrong", "hub.challenge": "1"},
        {"hub.mode": "subscribe", "hub.challenge": "1"},
        {"hub.mode": "unsubscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "1"},
        {"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN},
        {},
    ],
)
def test_handshake_refuses_anything_else(server, http, params, warehouse) -> None:
    resp = http.get(server.webhook_url, params=params)
    assert resp.status_code == 403
    assert resp.json()["error"]
    assert "1" != resp.text
    assert sum(table_rows(warehouse).values()) == 0


def test_handshake_without_a_configured_token_says_what_to_set(warehouse, live_receiver, http, monkeypatch) -> None:
    configure(monkeypatch, app_secret=APP_SECRET, webhook_verify_token=None)
    server = live_receiver(warehouse)
    resp = http.get(server.webhook_url, params={"hub.mode": "subscribe", "hub.verify_token": "x",
                                                "hub.challenge": "1"})
    assert resp.status_code == 503
    assert "LEADS_WEBHOOK_VERIFY_TOKEN" in resp.json()["error"]


# ----------------------------------------------------------------------------------------------------------------------
# Deliveries
# ----------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("sample, ids", [
    (SAMPLE_POSTMAN, {"233370042045345"}),
    (SAMPLE_DOC_NUMERIC, {"123123123123", "123123123124"}),
    (SAMPLE_DASHBOARD, {"444444444444"}),
])
def test_signed_meta_samples_are_stored(server, http, warehouse, sample, ids) -> None:
    resp = http.post(server.webhook_url, data=sample, headers=signed_headers(sample))
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"received": len(ids), "new": len(ids), "duplicates": 0, "unrouted": len(ids)}
    rows = inbox_rows(warehouse)
    assert set(rows) == ids
    assert {r["status"] for r in rows.values()} == {"unrouted"}  # no distributor owns these pages
    assert all(r["deliveries"] == 1 and r["received_at"] is not None for r in rows.values())


def test_duplicate_delivery_is_stored_once_with_two_deliveries(server, http, warehouse) -> None:
    for _ in range(2):
        resp = http.post(server.webhook_url, data=SAMPLE_POSTMAN, headers=signed_headers(SAMPLE_POSTMAN))
        assert resp.status_code == 200
    assert resp.json()["duplicates"] == 1 and resp.json()["new"] == 0
    rows = inbox_rows(warehouse)
    assert len(rows) == 1 and rows["233370042045345"]["deliveries"] == 2


def test_delivery_without_leadgen_changes_is_acknowledged_and_stores_nothing(server, http, warehouse) -> None:
    body = json.dumps({"object": "page", "entry": [{"id": "1", "time": 1, "changes": [
        {"field": "feed", "value": {"item": "post"}}]}]}).encode()
    resp = http.post(server.webhook_url, data=body, headers=signed_headers(body))
    assert resp.status_code == 200 and resp.json()["received"] == 0
    assert sum(table_rows(warehouse).values()) == 0


def _tampered() -> tuple[bytes, dict]:
    headers = signed_headers(SAMPLE_POSTMAN)
    return SAMPLE_POSTMAN.replace(b"233370042045345", b"233370042045346"), headers


@pytest.mark.parametrize(
    "case",
    ["tampered", "unsigned", "wrong_secret", "sha1_only", "garbage_header", "empty_header"],
)
def test_bad_signatures_are_refused_without_a_trace(server, http, warehouse, case) -> None:
    body = SAMPLE_POSTMAN
    if case == "tampered":
        body, headers = _tampered()
    elif case == "unsigned":
        headers = {"Content-Type": "application/json"}
    elif case == "wrong_secret":
        headers = signed_headers(body, secret="not-the-app-secret")
    elif case == "sha1_only":
        headers = {"X-Hub-Signature": "sha1=" + "0" * 40}
    elif case == "garbage_header":
        headers = {"X-Hub-Signature-256": "sha256=zz-not-hex"}
    else:
        headers = {"X-Hub-Signature-256": ""}
    resp = http.post(server.webhook_url, data=body, headers=headers)
    assert resp.status_code == 403
    assert "X-Hub-Signature-256" in resp.json()["error"]
    assert sum(table_rows(warehouse).values()) == 0


@pytest.mark.parametrize("body", [
    b"{definitely not json",
    b'{"object":"page"}',
    b'{"object":"page","entry":[{"changes":[{"field":"leadgen","value":{"leadgen_id":"x1"}}]}]}',
    # one good change and one malformed: the whole delivery is refused, nothing half-stored
    b'{"object":"page","entry":[{"id":"1","changes":[{"field":"leadgen","value":{"leadgen_id":"11","page_id":"1"}},'
    b'{"field":"leadgen","value":{"page_id":"1"}}]}]}',
])
def test_signed_but_malformed_is_400_without_a_trace(server, http, warehouse, body) -> None:
    resp = http.post(server.webhook_url, data=body, headers=signed_headers(body))
    assert resp.status_code == 400
    assert resp.json()["error"].startswith("Not a Meta webhook delivery")
    assert sum(table_rows(warehouse).values()) == 0


_DEEP_VALUE = b"[" * 2000 + b"]" * 2000


@pytest.mark.parametrize("body", [
    b"[" * 100_000 + b"]" * 100_000,  # Python's JSON parser gives up (RecursionError): was a 500
    b'{"object":"page","entry":' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    # a plausible delivery with one value nested deep (parses, but nothing should walk or re-serialise it)
    b'{"object":"page","entry":[{"id":"1","changes":[{"field":"leadgen","value":{"leadgen_id":"11","page_id":"1",'
    b'"extra":' + _DEEP_VALUE + b"}}]}]}",
], ids=["nested-lists", "nested-entry", "nested-value"])
def test_signed_but_deeply_nested_json_is_400_not_500(server, http, warehouse, body) -> None:
    """A validly signed body (the app secret leaked, or Meta's own bug) must still get a 4xx: a 500 tells Meta to
    retry the same body for 36 hours."""
    resp = http.post(server.webhook_url, data=body, headers=signed_headers(body))
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"].startswith("Not a Meta webhook delivery")
    assert "deeper than" in resp.json()["error"]
    assert sum(table_rows(warehouse).values()) == 0
    # the receiver still answers a good delivery afterwards
    ok = http.post(server.webhook_url, data=SAMPLE_POSTMAN, headers=signed_headers(SAMPLE_POSTMAN))
    assert ok.status_code == 200


def test_oversized_body_is_413_before_and_while_reading(warehouse, live_receiver, configured, http) -> None:
    server = live_receiver(warehouse, max_body_bytes=4096)
    values = [{"leadgen_id": str(10**12 + i), "page_id": "1", "form_id": "2"} for i in range(200)]
    big = leadgen_body(values)
    assert len(big) > 4096
    resp = http.post(server.webhook_url, data=big, headers=signed_headers(big))
    assert resp.status_code == 413

    # No Content-Length (chunked): refused once the streamed body passes the limit
    def chunks():
        for i in range(0, len(big), 1000):
            yield big[i:i + 1000]

    resp = http.post(server.webhook_url, data=chunks(), headers=signed_headers(big))
    assert resp.status_code == 413
    # A Content-Length that lies upward is refused before the body is read
    conn = httpclient.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.putrequest("POST", "/webhooks/meta")
    conn.putheader("Content-Length", str(10 * 1024 * 1024))
    conn.putheader("X-Hub-Signature-256", sign(b"x", APP_SECRET))
    conn.endheaders()
    assert conn.getresponse().status == 413
    conn.close()
    assert sum(table_rows(warehouse).values()) == 0


def test_default_limit_is_one_mebibyte(server, http, warehouse) -> None:
    body = b" " * (1024 * 1024 + 1)
    resp = http.post(server.webhook_url, data=body, headers=signed_headers(body))
    assert resp.status_code == 413


def test_without_app_secret_deliveries_are_503(warehouse, live_receiver, http, monkeypatch) -> None:
    configure(monkeypatch, app_secret=None, webhook_verify_token=VERIFY_TOKEN)
    server = live_receiver(warehouse)
    resp = http.post(server.webhook_url, data=SAMPLE_POSTMAN, headers=signed_headers(SAMPLE_POSTMAN))
    assert resp.status_code == 503
    assert "LEADS_APP_SECRET" in resp.json()["error"]
    assert sum(table_rows(warehouse).values()) == 0


def test_store_failure_is_503_so_meta_retries(server, http, warehouse) -> None:
    with warehouse.transaction() as conn:
        conn.execute("DROP TABLE webhook_inbox")
    resp = http.post(server.webhook_url, data=SAMPLE_POSTMAN, headers=signed_headers(SAMPLE_POSTMAN))
    assert resp.status_code == 503
    assert "Meta retries" in resp.json()["error"]


def test_settings_warehouse_is_the_default(duckdb_url, live_receiver, http, monkeypatch) -> None:
    configure(monkeypatch, app_secret=APP_SECRET, warehouse_url=duckdb_url)
    server = live_receiver()  # no warehouse given: LEADS_WAREHOUSE_URL, migrated on first use
    resp = http.post(server.webhook_url, data=SAMPLE_POSTMAN, headers=signed_headers(SAMPLE_POSTMAN))
    assert resp.status_code == 200
    from leads_pipeline.lib.warehouse import Warehouse

    assert set(inbox_rows(Warehouse(duckdb_url))) == {"233370042045345"}


def test_logs_hold_counts_never_bodies_or_secrets(server, http, caplog, monkeypatch) -> None:
    from leads_pipeline.web import webhooks

    # The "no distributor owns form X" warning comes at most once a minute per form and process: start afresh, so the
    # test sees the same logs whatever this worker ran before (it used to pass or fail on that).
    monkeypatch.setattr(webhooks, "_unrouted_warned", {})
    caplog.set_level(logging.DEBUG, logger="leads_pipeline")
    http.post(server.webhook_url, data=SAMPLE_POSTMAN, headers=signed_headers(SAMPLE_POSTMAN))
    body, headers = _tampered()
    http.post(server.webhook_url, data=body, headers=headers)
    http.post(server.webhook_url, data=b"{oops", headers=signed_headers(b"{oops"))
    http.get(server.webhook_url, params={"hub.mode": "subscribe", "hub.verify_token": "guess", "hub.challenge": "7"})
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "stored: 1 change(s), 1 new" in text
    # The form is named (the operator routes it: `distributors update --form-id`); the lead, secrets and guesses never.
    assert "no distributor owns (form 172036835026334)" in text
    for secret in (APP_SECRET, VERIFY_TOKEN, "233370042045345", headers["X-Hub-Signature-256"], "guess"):
        assert secret not in text


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_routes_work_in_process_too(warehouse, configured) -> None:
    """TestClient (no network) for the same app: the routes are plain Starlette routes."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from starlette.testclient import TestClient
    with TestClient(receiver_app(warehouse)) as client:
        ok = client.get("/webhooks/meta", params={"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN,
                                                  "hub.challenge": "abc"})
        assert ok.status_code == 200 and ok.text == "abc"
        resp = client.post("/webhooks/meta", content=SAMPLE_DOC_NUMERIC, headers=signed_headers(SAMPLE_DOC_NUMERIC))
        assert resp.status_code == 200 and resp.json()["new"] == 2
        assert client.put("/webhooks/meta").status_code == 405
    from leads_pipeline.web.webhooks import close_writers

    close_writers()
