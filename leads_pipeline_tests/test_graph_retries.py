"""Retries of temporary failures (with bounded, jittered backoff) and waiting out Meta's throttling."""

from __future__ import annotations

import socket

import pytest

from leads_pipeline.lib.graph import GraphClient, ThrottledError, TransientGraphError
from leads_pipeline_tests.graph_fixtures import (  # noqa: F401
    TOKEN,
    Reply,
    SleepRecorder,
    buc_headers,
    error,
    graph,
    make_client,
    ok,
    sleeps,
)

LEAD = "/v25.0/900000000000001"
GOOD = {"id": "900000000000001", "created_time": "2026-06-01T12:34:56+0000", "field_data": []}


def test_transient_errors_are_retried_with_jittered_exponential_backoff(graph, make_client, sleeps):
    graph.script("GET", LEAD, error(2, None, "Service temporarily unavailable", status=500),
                 error(1, None, "An unknown error occurred"), ok(GOOD))
    client = make_client(backoff_base=0.5, backoff_max=30)
    assert client.get_lead("900000000000001")["id"] == "900000000000001"
    assert graph.count == 3 and client.request_count == 3
    assert len(sleeps.calls) == 2
    assert 0 <= sleeps.calls[0] <= 0.5 and 0 <= sleeps.calls[1] <= 1.0  # full jitter under base * 2**n
    assert sleeps.requests_seen == [1, 2]  # each wait happens before the next call
    stats = client.stats
    assert stats.retries == 2 and stats.backoff_seconds == pytest.approx(sum(sleeps.calls))


def test_backoff_never_exceeds_backoff_max(graph, make_client, sleeps):
    graph.script("GET", LEAD, *[error(2, None, "down") for _ in range(6)], ok(GOOD))
    make_client(backoff_base=10, backoff_max=0.25, max_retries=6).get_lead("900000000000001")
    assert len(sleeps.calls) == 6 and max(sleeps.calls) <= 0.25


def test_retries_exhausted_raise_transient_with_attempt_count(graph, make_client, sleeps):
    graph.script("GET", LEAD, *[Reply(body="Service Unavailable", status=503) for _ in range(3)], ok(GOOD))
    with pytest.raises(TransientGraphError) as info:
        make_client(max_retries=2).get_lead("900000000000001")
    assert graph.count == 3 and len(sleeps.calls) == 2
    assert info.value.attempts == 3 and info.value.http_status == 503
    assert "after 3 attempts" in str(info.value) and "re-run the sync" in str(info.value)


@pytest.mark.parametrize("action", ["partial", "reset"])
def test_connection_dropped_mid_body_is_retried(graph, make_client, sleeps, action):
    graph.script("GET", LEAD, Reply(body=GOOD, action=action), ok(GOOD))
    assert make_client().get_lead("900000000000001") == GOOD
    assert graph.count == 2 and len(sleeps.calls) == 1


def test_truncated_json_with_a_consistent_length_is_retried(graph, make_client, sleeps):
    graph.script("GET", LEAD, Reply(body='{"id": "900000000000001", "field_da'), ok(GOOD))
    assert make_client().get_lead("900000000000001") == GOOD
    assert graph.count == 2 and len(sleeps.calls) == 1


def test_read_timeout_is_retried(graph, make_client, sleeps):
    graph.script("GET", LEAD, Reply(body=GOOD, action="hang", delay=1.0), ok(GOOD))
    assert make_client(timeout=0.3).get_lead("900000000000001") == GOOD
    assert graph.count == 2 and len(sleeps.calls) == 1


def test_connection_refused_is_retried_then_transient(graph):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sleeps = SleepRecorder()
    client = GraphClient(TOKEN, base_url=f"http://127.0.0.1:{port}", max_retries=2, sleep=sleeps, timeout=2)
    with pytest.raises(TransientGraphError) as info:
        client.get_lead("1")
    assert client.request_count == 3 and len(sleeps.calls) == 2
    assert "ConnectionError" in str(info.value)


def test_throttle_waits_the_header_time_without_calling_meanwhile(graph, make_client, sleeps):
    graph.script("GET", LEAD,
                 error(80005, None, "(#80005) There have been too many leadgen api calls to this Page.",
                       headers=buc_headers(2)),
                 ok(GOOD))
    client = make_client(max_throttle_wait=300)
    assert client.get_lead("900000000000001") == GOOD
    assert sleeps.calls == [120.0]  # estimated_time_to_regain_access is in minutes
    assert sleeps.requests_seen == [1]  # no call while throttled
    assert graph.count == 2
    stats = client.stats
    assert stats.throttle_waits == 1 and stats.throttle_seconds == 120 and stats.seconds_waited == 120


def test_throttle_longer_than_the_ceiling_fails_at_once_with_a_clear_message(graph, make_client, sleeps):
    graph.script("GET", LEAD, error(80005, None, "(#80005) too many calls", headers=buc_headers(10)), ok(GOOD))
    with pytest.raises(ThrottledError) as info:
        make_client(max_throttle_wait=300).get_lead("900000000000001")
    err = info.value
    assert err.wait_seconds == 600 and err.code == 80005
    assert "Meta throttled this app/page (code 80005 LeadGen); access returns in ~10 minutes; try later or lower " \
           "the sync frequency" in str(err)
    assert graph.count == 1 and sleeps.calls == []  # no wasted calls, no pointless wait


def test_cumulative_throttle_waiting_is_capped(graph, make_client, sleeps):
    throttled = [error(80001, None, "(#80001) too many calls", headers=buc_headers(1, kind="pages"))
                 for _ in range(3)]
    graph.script("GET", LEAD, *throttled, ok(GOOD))
    with pytest.raises(ThrottledError) as info:
        make_client(max_throttle_wait=150).get_lead("900000000000001")
    assert sleeps.calls == [60.0, 60.0]
    assert graph.count == 3
    assert "already waited 120 s" in str(info.value)


def test_throttle_without_usage_headers_falls_back_to_backoff(graph, make_client, sleeps):
    graph.script("GET", LEAD, error(4, None, "(#4) Application request limit reached"), ok(GOOD))
    client = make_client(backoff_base=0.5)
    assert client.get_lead("900000000000001") == GOOD
    assert len(sleeps.calls) == 1 and 0 <= sleeps.calls[0] <= 0.5
    assert client.stats.throttle_waits == 1


def test_throttle_that_never_ends_stops_after_max_retries(graph, make_client, sleeps):
    graph.script("GET", LEAD, *[error(17, None, "(#17) User request limit reached") for _ in range(5)])
    with pytest.raises(ThrottledError):
        make_client(max_retries=2).get_lead("900000000000001")
    assert graph.count == 3 and len(sleeps.calls) == 2


def test_usage_of_the_last_response_is_exposed(graph, make_client):
    headers = {"X-App-Usage": '{"call_count":95,"total_time":20,"total_cputime":20}'}
    graph.script("GET", LEAD, ok(GOOD, headers=headers))
    client = make_client()
    client.get_lead("900000000000001")
    assert client.last_usage.max_percent == 95
