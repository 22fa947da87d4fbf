"""iter_lead_pages: paging by ``paging.next`` only, the filter and fields on the wire, streaming, resuming."""

from __future__ import annotations

import inspect
import json

import pytest

from leads_pipeline.lib.graph.client import MAX_SAME_NEXT
from leads_pipeline.lib.graph import LEAD_FIELDS, GraphError, TokenInvalidError
from leads_pipeline_tests.graph_fixtures import (  # noqa: F401
    TOKEN,
    error,
    graph,
    make_client,
    ok,
    sample,
    sleeps,
)

FORM = "333333333333331"
LEADS = f"/v25.0/{FORM}/leads"


def _page(ids, next_url=None, after="cursorX"):
    body = {"data": [{"id": i, "created_time": "2026-06-01T12:00:00+0000", "field_data": []} for i in ids],
            "paging": {"cursors": {"before": "b", "after": after}}}
    if next_url:
        body["paging"]["next"] = next_url
    return body


def test_last_page_with_after_but_no_next_stops(graph, make_client):
    graph.script("GET", LEADS, ok(sample("leads_page__meta_retrieving_doc")))  # cursors.after, no next
    pages = list(make_client().iter_lead_pages(FORM))
    assert len(pages) == 1 and pages[0].next_url_present is False
    assert pages[0].leads[0]["field_data"][0] == {"name": "car_make", "values": ["Honda"]}
    assert graph.count == 1


def test_empty_page_with_next_keeps_going(graph, make_client):
    graph.script("GET", LEADS,
                 ok(_page(["1", "2"], graph.link(LEADS, after="c1"))),
                 ok(_page([], graph.link(LEADS, after="c2"))),
                 ok(_page(["3"])))
    pages = list(make_client().iter_lead_pages(FORM))
    assert [[lead["id"] for lead in p.leads] for p in pages] == [["1", "2"], [], ["3"]]
    assert [p.page_number for p in pages] == [1, 2, 3]
    assert [p.next_url_present for p in pages] == [True, True, False]
    assert [r.q("after") for r in graph.requests] == [None, "c1", "c2"]


def test_filter_fields_and_limit_on_the_wire(graph, make_client):
    graph.script("GET", LEADS, ok(_page(["1"])))
    list(make_client(page_limit=100).iter_lead_pages(FORM, since=1780000000))
    rec = graph.requests[0]
    assert rec.q("filtering") == '[{"field":"time_created","operator":"GREATER_THAN","value":1780000000}]'
    assert rec.q("fields") == ",".join(LEAD_FIELDS)
    assert rec.q("limit") == "100"


def test_custom_operator_limit_and_fields(graph, make_client):
    graph.script("GET", LEADS, ok(_page(["1"])))
    list(make_client().iter_lead_pages(FORM, since=5, operator="GREATER_THAN_OR_EQUAL", limit=7,
                                       fields=["id", "created_time"]))
    rec = graph.requests[0]
    assert json.loads(rec.q("filtering")) == [{"field": "time_created", "operator": "GREATER_THAN_OR_EQUAL",
                                               "value": 5}]
    assert rec.q("limit") == "7" and rec.q("fields") == "id,created_time"


def test_no_filter_without_since(graph, make_client):
    graph.script("GET", LEADS, ok(_page(["1"])))
    list(make_client().iter_lead_pages(FORM))
    assert "filtering" not in graph.requests[0].query


@pytest.mark.parametrize("since", ["2026-06-01T00:00:00+0000", 1.5, True])
def test_since_must_be_unix_seconds_meta_ignores_iso(graph, make_client, since):
    with pytest.raises(TypeError, match="Unix seconds"):
        make_client().iter_lead_pages(FORM, since=since)
    assert graph.count == 0


def test_access_token_in_next_is_stripped_but_params_kept(graph, make_client):
    first = sample("leads_page_full__constructed")
    # Meta's next link carries the token; point it at the fake server, keep everything else
    first["paging"]["next"] = first["paging"]["next"].replace("https://graph.facebook.com", graph.url).replace(
        "<TOKEN>", TOKEN)
    first["paging"]["previous"] = first["paging"]["previous"].replace("<TOKEN>", TOKEN)
    graph.script("GET", LEADS, ok(first), ok(_page(["900000000000003"])))
    pages = list(make_client().iter_lead_pages(FORM, since=1780000000))
    assert [lead["id"] for p in pages for lead in p.leads] == ["900000000000001", "900000000000002",
                                                               "900000000000003"]
    second = graph.requests[1]
    assert "access_token" not in second.query and TOKEN not in second.raw_target
    assert second.headers["authorization"] == f"Bearer {TOKEN}"
    assert second.q("after") == "QVFIUjJCZA" and second.q("limit") == "2"
    assert json.loads(second.q("filtering"))[0]["value"] == 1780000000
    # the paging block handed to the caller has no token either
    assert TOKEN not in json.dumps(pages[0].paging) and "access_token" not in json.dumps(pages[0].paging)
    assert pages[0].paging["cursors"]["after"] == "QVFIUjJCZA"


def test_pages_are_streamed_one_request_at_a_time(graph, make_client):
    graph.script("GET", LEADS,
                 ok(_page(["1"], graph.link(LEADS, after="c1"))),
                 ok(_page(["2"], graph.link(LEADS, after="c2"))),
                 ok(_page(["3"])))
    pages = make_client().iter_lead_pages(FORM)
    assert inspect.isgenerator(pages)
    assert graph.count == 0  # nothing is requested before the caller asks
    first = next(pages)
    assert first.leads[0]["id"] == "1" and graph.count == 1  # page 1 is usable before page 2 is requested
    second = next(pages)
    assert second.leads[0]["id"] == "2" and graph.count == 2
    assert [p.leads[0]["id"] for p in pages] == ["3"] and graph.count == 3


def test_failure_mid_pagination_propagates_after_delivering_complete_pages(graph, make_client):
    graph.script("GET", LEADS,
                 ok(_page(["1", "2"], graph.link(LEADS, after="c1"))),
                 error(190, 467, "Invalid OAuth access token."))
    client = make_client()
    pages = client.iter_lead_pages(FORM)
    assert [lead["id"] for lead in next(pages).leads] == ["1", "2"]
    with pytest.raises(TokenInvalidError):
        next(pages)
    assert client.last_page_number == 1


def test_a_next_link_repeating_itself_is_not_followed_forever(graph, make_client):
    loop = graph.link(LEADS, after="same")
    graph.script("GET", LEADS, *[ok(_page([], loop)) for _ in range(8)])
    with pytest.raises(GraphError, match="same paging.next"):
        list(make_client().iter_lead_pages(FORM))
    assert graph.count == MAX_SAME_NEXT + 1


def test_an_empty_page_pointing_back_to_itself_is_retried_and_then_served(graph, make_client):
    again = graph.link(LEADS, after="here")
    graph.script("GET", LEADS, ok(_page(["1"], again)), ok(_page([], again)), ok(_page(["2"], None)))
    assert [lead["id"] for page in make_client().iter_lead_pages(FORM) for lead in page.leads] == ["1", "2"]
