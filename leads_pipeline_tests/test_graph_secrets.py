"""No access token, appsecret_proof or query string ever shows in an exception's str/repr or in a log record."""

from __future__ import annotations

import hashlib
import hmac
import logging
import socket

import pytest

from leads_pipeline.lib.graph import GraphClient, GraphError, TokenInvalidError, TransientGraphError, redact
from leads_pipeline_tests.graph_fixtures import (  # noqa: F401
    APP_SECRET,
    PLAIN_TOKEN,
    TOKEN,
    SleepRecorder,
    buc_headers,
    error,
    graph,
    make_client,
    ok,
    sleeps,
)

LEAD = "/v25.0/900000000000001"
LEADS = "/v25.0/333333333333331/leads"
OTHER_TOKEN = "EAAOtherPagesToken9876543210abcdefghijklmnop"


def _proof(token):
    return hmac.new(APP_SECRET.encode(), token.encode(), hashlib.sha256).hexdigest()


def _assert_clean(err, *secrets):
    for text in (str(err), repr(err), *map(str, err.args)):
        for secret in secrets:
            assert secret not in text


@pytest.mark.parametrize("token", [TOKEN, PLAIN_TOKEN], ids=["token-like", "plain"])
def test_token_echoed_by_meta_is_redacted_from_the_exception(graph, make_client, token):
    graph.script("GET", LEAD, error(190, 467, f"Invalid OAuth access token - Cannot parse access token: {token}; "
                                    f"also saw {OTHER_TOKEN} and https://x.test/v25.0/me?access_token={token}&a=1",
                                    error_user_msg=f"token {token} is bad", error_user_title=f"Bad {token}"))
    client = make_client(token=token, app_secret=APP_SECRET)
    with pytest.raises(TokenInvalidError) as info:
        client.get_lead("900000000000001")
    _assert_clean(info.value, token, OTHER_TOKEN, _proof(token), APP_SECRET, "access_token=" + token[:4])
    assert "Invalid OAuth access token" in str(info.value)  # the rest of Meta's message is kept
    assert "[REDACTED]" in info.value.message


def test_connection_failures_do_not_leak_the_proof_or_query(graph):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = GraphClient(TOKEN, base_url=f"http://127.0.0.1:{port}", app_secret=APP_SECRET, max_retries=0,
                         sleep=SleepRecorder())
    for call in (lambda: client.get_lead("900000000000001"), client.debug_token,
                 lambda: client.debug_token(OTHER_TOKEN)):
        with pytest.raises(TransientGraphError) as info:
            call()
        _assert_clean(info.value, TOKEN, OTHER_TOKEN, _proof(TOKEN), APP_SECRET, "fields=id")
        assert "ConnectionError" in str(info.value)


def test_no_token_or_proof_in_any_log_record(graph, make_client, caplog):
    caplog.set_level(logging.DEBUG)
    graph.script("GET", LEADS,
                 error(2, None, "Service temporarily unavailable"),
                 ok({"data": [{"id": "1"}], "paging": {"cursors": {"after": "c1"},
                                                       "next": graph.link(LEADS, access_token=TOKEN, after="c1")}}),
                 error(80005, None, "(#80005) too many calls", headers=buc_headers(1)),
                 ok({"data": [{"id": "2"}], "paging": {"cursors": {"after": "c2"}}}))
    graph.script("GET", LEAD, error(190, 467, f"Cannot parse access token: {TOKEN}"))
    client = make_client(app_secret=APP_SECRET)
    assert [lead["id"] for page in client.iter_lead_pages("333333333333331") for lead in page.leads] == ["1", "2"]
    with pytest.raises(TokenInvalidError):
        client.get_lead("900000000000001")

    ours = [r for r in caplog.records if r.name.startswith("leads_pipeline.lib.graph")]
    messages = [r.getMessage() for r in ours]
    assert f"GET {LEADS} -> 200 (attempt 2)" in messages  # method, path, status, attempt are logged
    assert any("throttled" in m for m in messages) and any("transient" in m for m in messages)
    for record in caplog.records:  # every logger, urllib3 included: the token is never in a URL
        assert TOKEN not in record.getMessage()
    for message in messages:
        assert _proof(TOKEN) not in message and "?" not in message and APP_SECRET not in message


def test_next_link_refusal_does_not_show_the_link(graph, make_client):
    graph.script("GET", LEADS, ok({"data": [], "paging": {
        "next": f"https://evil.example/v25.0/x/leads?access_token={TOKEN}&after=c"}}))
    with pytest.raises(GraphError) as info:
        list(make_client().iter_lead_pages("333333333333331"))
    _assert_clean(info.value, TOKEN, "after=c")
    assert "evil.example" in str(info.value)


def test_redact_patterns():
    text = redact(f"Bearer {PLAIN_TOKEN} then {OTHER_TOKEN} then 123456789012345|abcdefghijklmnopqrstuv then "
                  f"appsecret_proof={_proof(TOKEN)} at http://h/v25.0/1/leads?fields=id&after=x",
                  secrets=[PLAIN_TOKEN])
    for secret in (PLAIN_TOKEN, OTHER_TOKEN, "abcdefghijklmnopqrstuv", _proof(TOKEN), "fields=id"):
        assert secret not in text
    assert "http://h/v25.0/1/leads" in text  # the path survives, the query does not
