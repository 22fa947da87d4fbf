"""Meta error envelopes become the right exception with a message a user can act on, and are not retried."""

from __future__ import annotations

import pickle
from datetime import UTC, datetime

import pytest

from leads_pipeline.lib.graph import (
    REQUIRED_PERMISSIONS,
    GraphError,
    MissingPermissionError,
    ObjectNotFoundError,
    ThrottledError,
    TokenExpiredError,
    TokenInvalidError,
    TransientGraphError,
    error_from_envelope,
)
from leads_pipeline_tests.graph_fixtures import Reply, error, graph, make_client, sample, sleeps  # noqa: F401

LEADS = "/v25.0/333333333333331/leads"


def _fail(graph, make_client, reply, **client_kw):
    graph.script("GET", LEADS, reply)
    client = make_client(**client_kw)
    with pytest.raises(GraphError) as info:
        next(client.iter_lead_pages("333333333333331"))
    return info.value


@pytest.mark.parametrize(
    ("reply", "cls", "phrases"),
    [
        (error(190, 467, "Error validating access token: The session is invalid."), TokenInvalidError,
         ["invalid", "generate a new long-lived page token"]),
        (error(190, 460, "Error validating access token: The session has been invalidated because the user changed "
                         "their password."), TokenInvalidError, ["password changed", "generate a new token"]),
        (error(190, 492, "User associated with the Page access token does not have an appropriate role on the Page."),
         TokenInvalidError, ["no role on the page"]),
        (error(190, 458, "Error validating access token: The user has not authorized application 1."),
         TokenInvalidError, ["no longer installed"]),
        (error(190, 493, "The access token is invalid since the user hasn't engaged the app in longer than 90 days."),
         TokenInvalidError, ["more than 90 days"]),
        (error(190, None, "(#190) Application Secret required for this endpoint"), TokenInvalidError,
         ["requires appsecret_proof", "app secret"]),
        (error(102, None, "Session key invalid or no longer valid"), TokenInvalidError, ["generate a new token"]),
        (error(10, None, "(#10) Application does not have permission for this action"), MissingPermissionError,
         list(REQUIRED_PERMISSIONS)),
        (error(200, None, "(#200) Requires leads_retrieval permission"), MissingPermissionError,
         ["lacks the leads_retrieval permission"]),
        (error(294, None, "(#294) Managing advertisements requires the extended permission ads_management"),
         MissingPermissionError, ["lacks the ads_management permission"]),
        (error(100, None, "(#100) Invalid parameter"), GraphError, ["invalid parameter"]),
        (error(368, None, "Temporarily blocked for policies violations"), GraphError, ["blocked"]),
    ],
    ids=["190/467", "190/460", "190/492", "190/458", "190/493", "190-proof", "102", "10", "200", "294", "100",
         "368"],
)
def test_auth_and_permission_errors_map_to_actionable_exceptions_and_are_not_retried(
        graph, make_client, sleeps, reply, cls, phrases):
    err = _fail(graph, make_client, reply)
    assert type(err) is cls
    text = str(err).lower()
    for phrase in phrases:
        assert phrase.lower() in text
    assert err.code == reply.body["error"]["code"]
    assert err.http_status == 400
    assert err.fbtrace_id == "AbCdEfGh123"
    assert graph.count == 1 and sleeps.calls == []  # never retried


def test_expired_token_says_when_it_expired(graph, make_client, sleeps):
    err = _fail(graph, make_client, Reply(body=sample("error_190_463_expired_token__reported"), status=400))
    assert isinstance(err, TokenExpiredError)
    assert err.expired_at == datetime(2016, 12, 25, 12, 45, 57, tzinfo=UTC)  # 04:45:57 PST
    assert "expired on 2016-12-25 12:45 UTC" in str(err)
    assert "25-Dec-16 04:45:57 PST" in str(err)
    assert "create a new long-lived page token" in str(err).lower()
    assert graph.count == 1 and sleeps.calls == []


def test_expired_token_in_unix_time_form():
    err = error_from_envelope({"error": {"code": 190, "error_subcode": 463, "message": "Error validating access "
                               "token: Session has expired at unix time 1394622000. The current unix time is "
                               "1394641735."}}, http_status=400, path="/v25.0/me")
    assert isinstance(err, TokenExpiredError)
    assert err.expired_at == datetime(2014, 3, 12, 11, 0, tzinfo=UTC)
    assert "2014-03-12 11:00 UTC" in err.user_message


def test_permission_error_without_a_name_lists_what_a_sync_needs(graph, make_client):
    err = _fail(graph, make_client, error(10, None, "(#10) Application does not have permission for this action"))
    assert err.permissions == REQUIRED_PERMISSIONS


def test_object_not_found_names_the_id_from_the_request_path(graph, make_client, sleeps):
    graph.script("GET", "/v25.0/444444444444", Reply(body=sample("error_100_33_object_missing__observed"), status=400))
    client = make_client()
    with pytest.raises(ObjectNotFoundError) as info:
        client.get_lead("444444444444")
    assert info.value.object_id == "444444444444"
    assert "cannot find object 444444444444" in str(info.value)
    assert graph.count == 1 and sleeps.calls == []


def test_error_envelope_on_http_200_is_still_an_error(graph, make_client):
    err = _fail(graph, make_client, error(200, None, "(#200) Requires leads_retrieval permission", status=200))
    assert isinstance(err, MissingPermissionError) and err.http_status == 200


def test_auth_code_wins_over_http_500(graph, make_client, sleeps):
    err = _fail(graph, make_client, error(190, 467, "Invalid OAuth access token.", status=500))
    assert isinstance(err, TokenInvalidError)
    assert graph.count == 1 and sleeps.calls == []


@pytest.mark.parametrize("code", [4, 17, 32, 341, 613, 80000, 80001, 80002, 80004, 80005, 80006, 80014])
def test_throttle_codes_raise_throttled_error(graph, make_client, code):
    err = _fail(graph, make_client, error(code, None, f"(#{code}) limit reached"), max_retries=0)
    assert isinstance(err, ThrottledError) and err.code == code
    assert "throttled" in str(err)


def test_throttle_sample_names_the_limit(graph, make_client):
    err = _fail(graph, make_client, Reply(body=sample("error_32_page_request_limit__meta_rate_limit_doc"),
                                          status=400), max_retries=0)
    assert isinstance(err, ThrottledError)
    assert "code 32 Pages rate limit" in str(err)


@pytest.mark.parametrize(
    "reply",
    [error(1, None, "An unknown error occurred"), error(2, None, "Service temporarily unavailable"),
     error(100, None, "Please retry", is_transient=True), Reply(body="<html>Bad gateway</html>", status=502)],
    ids=["code1", "code2", "is_transient", "http502"],
)
def test_transient_errors_raise_transient_after_retries(graph, make_client, reply):
    err = _fail(graph, make_client, reply, max_retries=0)
    assert isinstance(err, TransientGraphError)
    assert err.attempts == 1


def test_non_graph_404_is_not_retried_and_hints_at_base_url(graph, make_client, sleeps):
    err = _fail(graph, make_client, Reply(body="<html>Not Found</html>", status=404))
    assert type(err) is GraphError and "is 127.0.0.1" in str(err) and "Graph API endpoint" in str(err)
    assert graph.count == 1 and sleeps.calls == []


def test_errors_survive_pickling_for_multiprocess_executors():
    err = error_from_envelope(sample("error_190_463_expired_token__reported"), http_status=400, path="/v25.0/1")
    copy = pickle.loads(pickle.dumps(err))
    assert type(copy) is TokenExpiredError and str(copy) == str(err) and copy.subcode == 463
