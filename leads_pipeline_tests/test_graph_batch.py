"""get_leads_batch: Graph batch POSTs of at most 50, null items retried, per-item errors kept per id."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from leads_pipeline.lib.graph import (
    LEAD_FIELDS,
    GraphError,
    ObjectNotFoundError,
    TokenInvalidError,
    TransientGraphError,
)
from leads_pipeline_tests.graph_fixtures import (  # noqa: F401
    TOKEN,
    Reply,
    error,
    graph,
    make_client,
    ok,
    sample,
    sleeps,
)

BATCH = "/v25.0/"


def _items(rec):
    return json.loads(rec.form["batch"][0])


def _lead_id(item):
    return item["relative_url"].split("?")[0]


def _lead(lead_id):
    return {"code": 200, "body": json.dumps({"id": lead_id, "created_time": "2026-06-01T12:00:00+0000"})}


def _echo(rec):
    return Reply(body=[_lead(_lead_id(i)) for i in _items(rec)])


def test_more_than_fifty_ids_are_chunked(graph, make_client):
    graph.handle("POST", BATCH, _echo)
    ids = [str(900000000000000 + n) for n in range(120)]
    result = make_client().get_leads_batch(ids)
    assert list(result) == ids and all(result[i]["id"] == i for i in ids)
    posts = graph.hits("POST", BATCH)
    assert [len(_items(p)) for p in posts] == [50, 50, 20]
    first = posts[0]
    assert first.form["include_headers"] == ["false"]
    assert first.headers["authorization"] == f"Bearer {TOKEN}"
    assert _items(first)[0] == {"method": "GET", "relative_url": f"{ids[0]}?fields={','.join(LEAD_FIELDS)}"}


def test_duplicate_ids_are_fetched_once(graph, make_client):
    graph.handle("POST", BATCH, _echo)
    result = make_client().get_leads_batch(["1", "2", "1"])
    assert list(result) == ["1", "2"]
    assert [_lead_id(i) for i in _items(graph.requests[0])] == ["1", "2"]


def test_null_items_are_retried_alone(graph, make_client, sleeps):
    seen = Counter()

    def flaky(rec):
        out = []
        for item in _items(rec):
            lead_id = _lead_id(item)
            seen[lead_id] += 1
            out.append(None if lead_id == "2" and seen[lead_id] == 1 else _lead(lead_id))
        return Reply(body=out)

    graph.handle("POST", BATCH, flaky)
    result = make_client().get_leads_batch(["1", "2", "3"])
    assert {k: v["id"] for k, v in result.items()} == {"1": "1", "2": "2", "3": "3"}
    second = graph.hits("POST", BATCH)[1]
    assert [_lead_id(i) for i in _items(second)] == ["2"]  # only the timed-out item is re-sent
    assert len(sleeps.calls) == 1


def test_items_that_keep_timing_out_become_transient_errors_not_a_crash(graph, make_client, sleeps):
    graph.handle("POST", BATCH, lambda rec: Reply(body=[None if _lead_id(i) == "2" else _lead(_lead_id(i))
                                                        for i in _items(rec)]))
    result = make_client(max_retries=2).get_leads_batch(["1", "2"])
    assert result["1"]["id"] == "1"
    assert isinstance(result["2"], TransientGraphError) and result["2"].attempts == 3
    assert len(graph.hits("POST", BATCH)) == 3  # bounded: 1 + max_retries rounds


def test_per_item_errors_are_returned_not_raised(graph, make_client):
    missing = sample("error_100_33_object_missing__observed")
    graph.script("POST", BATCH, ok([
        _lead("1"),
        {"code": 400, "body": json.dumps(missing)},
        {"code": 403, "headers": [{"name": "WWW-Authenticate", "value": "OAuth"}],
         "body": json.dumps({"error": {"message": "(#200) Requires leads_retrieval permission", "code": 200,
                                       "type": "OAuthException"}})},
    ]))
    result = make_client().get_leads_batch(["1", "444444444444", "3"])
    assert result["1"]["id"] == "1"
    assert isinstance(result["444444444444"], ObjectNotFoundError)
    assert result["444444444444"].object_id == "444444444444"
    assert isinstance(result["3"], GraphError) and result["3"].http_status == 403
    assert "leads_retrieval" in str(result["3"])


def test_meta_doc_batch_sample(graph, make_client, sleeps):
    graph.script("POST", BATCH, ok(sample("batch_response__meta_batch_doc")), ok([_lead("C")]))
    result = make_client().get_leads_batch(["PAGE-A-ID", "B", "C"])
    assert result["PAGE-A-ID"] == {"name": "Page A Name", "id": "PAGE-A-ID"}
    assert isinstance(result["B"], GraphError) and result["B"].http_status == 403
    assert result["C"]["id"] == "C"  # the null third item was re-sent
    assert graph.count == 2


def test_a_failing_batch_post_raises(graph, make_client):
    graph.script("POST", BATCH, error(190, 467, "Invalid OAuth access token."))
    with pytest.raises(TokenInvalidError):
        make_client().get_leads_batch(["1"])
