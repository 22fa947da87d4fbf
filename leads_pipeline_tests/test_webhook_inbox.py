"""The durable inbox (``leads_pipeline.lib.webhooks``): parsing Meta's deliveries, storing, routing by form, group
commit."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone

import pytest

from leads_pipeline.lib.distributors import registry as distributors
from leads_pipeline.lib.security import generate_key
from leads_pipeline.lib.webhooks import inbox
from leads_pipeline.lib.webhooks.delivery import Change, InvalidDelivery, parse_delivery
from leads_pipeline.lib.webhooks.writer import InboxWriter
from leads_pipeline_tests.test_webhook_support import (
    SAMPLE_DASHBOARD,
    SAMPLE_DOC_NUMERIC,
    SAMPLE_POSTMAN,
    configure,
    inbox_rows,
    leadgen_body,
)
from leads_pipeline_tests.conftest import premigrated


@pytest.fixture
def keyed(monkeypatch):
    configure(monkeypatch, secret_key=generate_key())


def _change(lead_id: str, page_id: str = "111", form_id: str | None = "900") -> Change:
    return Change(leadgen_id=lead_id, page_id=page_id, form_id=form_id, created_time=1780272000)


# ----------------------------------------------------------------------------------------------------------------------
# parse_delivery
# ----------------------------------------------------------------------------------------------------------------------


def test_parse_meta_samples() -> None:
    (postman,) = parse_delivery(SAMPLE_POSTMAN)
    assert postman.leadgen_id == "233370042045345"
    assert postman.page_id == "138124712925158" and postman.form_id == "172036835026334"
    assert postman.ad_id is None and postman.created_time == 1630087926

    first, second = parse_delivery(SAMPLE_DOC_NUMERIC)  # ids are JSON numbers in Meta's doc sample
    assert (first.leadgen_id, second.leadgen_id) == ("123123123123", "123123123124")
    assert first.page_id == "123123123" and first.ad_id == "12312312312" and first.adgroup_id == "12312312312"

    (dash,) = parse_delivery(SAMPLE_DASHBOARD)
    assert dash.leadgen_id == "444444444444" and dash.page_id == "444444444444"


def test_parse_ignores_other_fields_and_objects() -> None:
    body = {"object": "page", "entry": [{"id": "1", "time": 1, "changes": [
        {"field": "feed", "value": {"item": "status"}},
        {"field": "leadgen", "value": {"leadgen_id": "42", "page_id": "1"}},
    ]}, {"id": "1", "time": 1, "messaging": [{"x": 1}]}]}
    assert [c.leadgen_id for c in parse_delivery(json.dumps(body).encode())] == ["42"]
    other = {"object": "instagram", "entry": [{"id": "1", "changes": [{"field": "comments", "value": {}}]}]}
    assert parse_delivery(json.dumps(other).encode()) == []
    # page_id missing from the value: the entry id is the Page
    no_page = {"object": "page", "entry": [{"id": "77", "changes": [{"field": "leadgen",
                                                                      "value": {"leadgen_id": 5}}]}]}
    assert parse_delivery(json.dumps(no_page).encode())[0].page_id == "77"


@pytest.mark.parametrize(
    "body, where",
    [
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe\x00garbage", "not valid JSON"),
        (b"[]", "entry list"),
        (b'{"object":"page"}', "entry is missing"),
        (b'{"object":"page","entry":{}}', "entry is missing"),
        (b'{"object":"page","entry":[1]}', "entry[0] is not an object"),
        (b'{"object":"page","entry":[{"changes":{}}]}', "entry[0].changes is not a list"),
        (b'{"object":"page","entry":[{"changes":[{"field":"leadgen"}]}]}', "value is missing"),
        (b'{"object":"page","entry":[{"changes":[{"field":"leadgen","value":{"page_id":"1"}}]}]}',
         "leadgen_id is missing"),
        (b'{"object":"page","entry":[{"changes":[{"field":"leadgen","value":{"leadgen_id":"12a"}}]}]}',
         "leadgen_id is not a Meta id"),
        (b'{"object":"page","entry":[{"changes":[{"field":"leadgen","value":{"leadgen_id":1.5e14}}]}]}',
         "leadgen_id is not a Meta id"),
        (b'{"object":"page","entry":[{"changes":[{"field":"leadgen","value":{"leadgen_id":true}}]}]}',
         "leadgen_id is not a Meta id"),
        (b'{"object":"page","entry":[{"changes":[{"field":"leadgen","value":{"leadgen_id":"1",'
         b'"created_time":"yesterday"}}]}]}', "created_time is not a Unix time"),
    ],
)
def test_parse_rejects_malformed(body: bytes, where: str) -> None:
    with pytest.raises(InvalidDelivery) as err:
        parse_delivery(body)
    assert where in str(err.value)


# ----------------------------------------------------------------------------------------------------------------------
# store_changes
# ----------------------------------------------------------------------------------------------------------------------


def test_store_duplicates_once_with_delivery_count(warehouse) -> None:
    changes = parse_delivery(SAMPLE_DOC_NUMERIC)
    first = inbox.store_changes(warehouse, changes)
    assert (first.new, first.duplicates) == (2, 0)
    again = inbox.store_changes(warehouse, changes[:1])
    assert (again.new, again.duplicates) == (0, 1)
    rows = inbox_rows(warehouse)
    assert set(rows) == {"123123123123", "123123123124"}
    assert rows["123123123123"]["deliveries"] == 2 and rows["123123123124"]["deliveries"] == 1
    assert rows["123123123123"]["page_id"] == "123123123" and rows["123123123123"]["created_time"] == 1440120384
    stored = json.loads(rows["123123123123"]["change"])
    assert stored["field"] == "leadgen" and stored["value"]["leadgen_id"] == 123123123123  # kept as received
    # the same id twice in one delivery: one row, two deliveries
    twice = inbox.store_changes(warehouse, [_change("5"), _change("5")])
    assert (twice.new, twice.duplicates) == (1, 1)
    assert inbox_rows(warehouse)["5"]["deliveries"] == 2


def test_unrouted_kept_reported_and_routed_when_the_form_gets_an_owner(warehouse, keyed) -> None:
    result = inbox.store_changes(warehouse, [_change("1", page_id="555"), _change("2", page_id="555")])
    assert result.unrouted == 2 and result.unrouted_page_ids == ("555",) and result.unrouted_form_ids == ("900",)
    rows = inbox_rows(warehouse)
    assert {r["status"] for r in rows.values()} == {"unrouted"} and rows["1"]["distributor"] is None
    assert inbox.pending_by_distributor(warehouse) == {}
    assert inbox.summary(warehouse)["unrouted"] == [
        {"page_id": "555", "form_id": "900", "rows": 2, "last_received_at": rows["1"]["received_at"].isoformat()}]
    assert inbox.reroute_unrouted(warehouse) == 0

    before = inbox.overview(warehouse)
    assert before.unrouted == 2
    # A distributor with the Page but not the form does not get it: the form may be another's (issue 10).
    page_only = distributors.add(warehouse, "Page Only", "EAAtoken1234567890abcdefghik", page_ids=["555"])
    assert {r["status"] for r in inbox_rows(warehouse).values()} == {"unrouted"}
    d = distributors.add(warehouse, "Late Clinic", "EAAtoken1234567890abcdefghij", form_ids=["900"])
    assert inbox.overview(warehouse).routing_version != before.routing_version
    rows = inbox_rows(warehouse)  # the registry re-routes after the claim
    assert {(r["status"], r["distributor"]) for r in rows.values()} == {("pending", d.key)}
    assert inbox.pending_by_distributor(warehouse) == {d.key: 2}
    assert inbox.overview(warehouse).pending == {d.key: 2}
    assert page_only.key not in inbox.pending_by_distributor(warehouse)


def test_duplicate_of_an_unrouted_change_is_routed_when_its_owner_exists(warehouse, keyed) -> None:
    inbox.store_changes(warehouse, [_change("9", page_id="556")])
    d = distributors.add(warehouse, "Owner", "EAAtoken1234567890abcdefghij", form_ids=["900"])
    with warehouse.transaction() as conn:  # as if the registry's re-routing had not run (it may fail; see registry)
        conn.execute("UPDATE webhook_inbox SET status = 'unrouted', distributor = NULL")
    again = inbox.store_changes(warehouse, [_change("9", page_id="556")])
    assert (again.duplicates, again.unrouted) == (1, 0)
    row = inbox_rows(warehouse)["9"]
    assert (row["status"], row["distributor"], row["deliveries"]) == ("pending", d.key, 2)


def test_routing_by_form_owner_and_by_page_only_without_a_form_id(warehouse, keyed) -> None:
    a = distributors.add(warehouse, "By Page", "EAAtoken1234567890abcdefghij", page_ids=["100"])
    b = distributors.add(warehouse, "By Discovery", "EAAtoken1234567890abcdefghik")
    c = distributors.add(warehouse, "By Form", "EAAtoken1234567890abcdefghil", form_ids=["300"])
    distributors.record_forms(warehouse, b.key, [{"id": "250", "page_id": "200", "name": "f"}])
    inbox.store_changes(warehouse, [_change("1", "100", None), _change("2", "200", "250"),
                                    _change("3", "300", "300"), _change("4", "400", "401"),
                                    _change("5", "100", "999"), _change("6", "200", "251")])
    rows = inbox_rows(warehouse)
    assert rows["1"]["distributor"] == a.key  # no form id: the Page's distributor
    assert rows["2"]["distributor"] == b.key  # the form its discovery claimed
    assert rows["3"]["distributor"] == c.key  # the form it claims explicitly
    # a form nobody owns waits, even on a Page that a distributor has or whose other forms one owns
    assert {rows[i]["status"] for i in ("4", "5", "6")} == {"unrouted"}
    # a disabled distributor keeps its rows, but the sensor does not ask for runs for it
    distributors.update(warehouse, a.key, enabled=False)
    assert a.key in inbox.pending_by_distributor(warehouse)
    assert a.key not in inbox.overview(warehouse).pending


def test_tombstoned_ids_are_stored_as_deleted(warehouse, keyed) -> None:
    d = distributors.add(warehouse, "Clinic", "EAAtoken1234567890abcdefghij", form_ids=["900"])
    with warehouse.transaction() as conn:
        conn.execute("INSERT INTO lead_tombstones (meta_lead_id, distributor, deleted_at) VALUES (?, ?, ?)",
                     ["77", d.key, datetime.now(timezone.utc)])
    result = inbox.store_changes(warehouse, [_change("77"), _change("78")])
    assert result.deleted == 1
    rows = inbox_rows(warehouse)
    assert rows["77"]["status"] == "deleted" and rows["78"]["status"] == "pending"
    assert inbox.pending_by_distributor(warehouse) == {d.key: 1}


def test_summary_filters_by_status(warehouse) -> None:
    inbox.store_changes(warehouse, parse_delivery(SAMPLE_POSTMAN))
    assert inbox.summary(warehouse)["by_status"] == {"unrouted": 1}
    assert inbox.summary(warehouse, "pending")["total"] == 0
    with pytest.raises(ValueError):
        inbox.summary(warehouse, "nonsense")


def test_writer_group_commits_concurrent_deliveries(warehouse) -> None:
    writer = InboxWriter(warehouse)
    try:
        bodies = [leadgen_body([{"leadgen_id": str(1000 + i), "page_id": "1", "form_id": "2"}]) for i in range(200)]
        bodies += bodies[:50]  # Meta's retries: the same deliveries again
        with ThreadPoolExecutor(16) as pool:
            results = list(pool.map(lambda b: writer.store(parse_delivery(b), timeout=60), bodies))
        assert sum(r.new for r in results) == 200
        assert sum(r.duplicates for r in results) == 50
        assert writer.transactions < len(bodies)  # several deliveries per transaction
    finally:
        writer.close()
    rows = inbox_rows(warehouse)
    assert len(rows) == 200
    assert sum(r["deliveries"] for r in rows.values()) == 250


def test_writer_reports_a_failed_transaction_to_every_waiting_request(warehouse) -> None:
    with warehouse.transaction() as conn:
        conn.execute("DROP TABLE webhook_inbox")
    writer = InboxWriter(warehouse)
    try:
        fut = writer.submit([_change("1")])
        with pytest.raises(Exception):
            fut.result(timeout=30)
    finally:
        writer.close()


def test_pending_rows_of_a_removed_distributor_become_unrouted_then_find_a_new_owner(warehouse, keyed) -> None:
    old = distributors.add(warehouse, "Old Owner", "EAAtoken1234567890abcdefghij", form_ids=["900"])
    inbox.store_changes(warehouse, [_change("1", page_id="700")])
    assert inbox_rows(warehouse)["1"]["distributor"] == old.key
    distributors.remove(warehouse, old.key)
    assert inbox.reroute_unrouted(warehouse) == 0
    assert inbox_rows(warehouse)["1"]["status"] == "unrouted"
    new = distributors.add(warehouse, "New Owner", "EAAtoken1234567890abcdefghik", form_ids=["900"])
    row = inbox_rows(warehouse)["1"]
    assert (row["status"], row["distributor"]) == ("pending", new.key)


def test_duckdb_writer_bursts_share_one_open_and_let_other_writers_in(duckdb_url) -> None:
    """Under load the writer keeps the DuckDB file open across groups (each still its own committed transaction),
    and other writers of the same file (a Dagster run, the CLI) still get their turn."""
    import threading

    from leads_pipeline.lib.warehouse import Warehouse

    wh = Warehouse(premigrated(duckdb_url))
    wh.migrate()
    writer = InboxWriter(wh, burst_seconds=0.5)
    stop = threading.Event()
    stored: list[int] = []

    def hammer(worker: int) -> None:
        i = 0
        while not stop.is_set():
            writer.store([_change(f"{worker}{i:06d}")], timeout=120)
            i += 1
        stored.append(i)

    threads = [threading.Thread(target=hammer, args=(w,)) for w in range(1, 9)]
    for t in threads:
        t.start()
    try:
        for k in range(5):  # another writer, in between the bursts
            with wh.transaction() as conn:
                conn.execute("INSERT INTO lead_tombstones (meta_lead_id, deleted_at) VALUES (?, ?)",
                             [f"9{k}", datetime.now(timezone.utc)])
    finally:
        stop.set()
        for t in threads:
            t.join(120)
        writer.close()
    assert writer.sessions < writer.transactions
    assert len(inbox_rows(wh)) == sum(stored)
    with wh.transaction(read_only=True) as conn:
        assert conn.scalar("SELECT count(*) FROM lead_tombstones") == 5


def test_concurrent_writers_of_overlapping_deliveries_in_any_order_do_not_deadlock(warehouse) -> None:
    """PostgreSQL: each write locks its rows in ``leadgen_id`` order, so writers taking the same ids in opposite
    orders queue instead of deadlocking (issue 10); every delivery is counted once."""
    import random

    ids = [str(5000 + i) for i in range(120)]

    def write(seed: int) -> int:
        order = ids[:]
        random.Random(seed).shuffle(order)
        for start in range(0, len(order), 40):
            inbox.store_changes(warehouse, [_change(i) for i in order[start:start + 40]])
        return len(order)

    with ThreadPoolExecutor(6) as pool:
        written = sum(pool.map(write, range(12)))
    rows = inbox_rows(warehouse)
    assert len(rows) == len(ids) and sum(r["deliveries"] for r in rows.values()) == written
