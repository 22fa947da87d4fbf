"""The warehouse writes of a sync — landing, cursors, leads/rejected_leads, sync runs — on both backends."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from leads_pipeline.lib.ingest import store as ingest
from leads_pipeline.lib.warehouse.connection import Conn

FORM = "333333333333331"
DIST = "msh-med-tour"


def make_lead(i, **overrides):
    lead = {
        "id": str(900000000000000 + i),
        "created_time": f"2026-06-01T12:{i // 60 % 60:02d}:{i % 60:02d}+0000",
        "form_id": FORM,
        "platform": "fb",
        "field_data": [
            {"name": "full_name", "values": [f"Person {i}"]},
            {"name": "email", "values": [f" Person{i}@Example.com "]},
            {"name": "phone_number", "values": ["0532 123 45 67"]},
            {"name": "treatment_of_interest", "values": ["FUE", "PRP"]},
        ],
    }
    lead.update(overrides)
    return lead


MALFORMED = [
    {"created_time": "2026-06-01T12:00:00+0000", "field_data": []},                        # missing_id
    {"id": "lead_42", "created_time": "2026-06-01T12:00:00+0000", "field_data": []},       # bad_id
    make_lead(500, created_time="2026-06-01 12:00:00"),                                    # bad_created_time
    make_lead(501, field_data=None),                                                       # bad_field_data
    make_lead(502, field_data=[{"name": "email", "values": [""]}]),                        # no_contact
    make_lead(503, field_data=[{"name": "email", "values": ["nope@gmail"]}]),              # no_contact
]


def land(wh, leads, sync_id="s1", cursor=None, form_id=FORM):
    return ingest.land_raw_page(wh, sync_id=sync_id, distributor=DIST, page_id="111", form_id=form_id, leads=leads,
                                cursor=cursor)


def process(wh, **kwargs):
    return ingest.process_raw(wh, DIST, default_region="TR", **kwargs)


def q(wh, sql, params=None):
    with wh.transaction(read_only=True) as conn:
        return conn.query(sql, params)


def scalar(wh, sql, params=None):
    with wh.transaction(read_only=True) as conn:
        return conn.scalar(sql, params)


# ----------------------------------------------------------------------------------------------------------------------
# Landing and cursors
# ----------------------------------------------------------------------------------------------------------------------


def test_landing_the_same_page_twice_stores_it_once(warehouse):
    page = [make_lead(i) for i in range(5)] + MALFORMED[:2]
    assert land(warehouse, page) == 7
    assert land(warehouse, page, sync_id="s2") == 0
    assert land(warehouse, page[:3] + [make_lead(99)], sync_id="s3") == 1
    rows = q(warehouse, "SELECT raw_key, meta_lead_id, sync_id, payload, processed_at FROM raw_leads ORDER BY id")
    assert len(rows) == 8
    assert rows[0]["raw_key"] == rows[0]["meta_lead_id"] == "900000000000000"
    assert rows[0]["sync_id"] == "s1" and rows[-1]["sync_id"] == "s3"
    assert json.loads(rows[0]["payload"]) == page[0]  # kept as received
    no_id = [r for r in rows if r["meta_lead_id"] is None]
    assert len(no_id) == 2 and all(r["raw_key"].startswith("sha256:") for r in no_id)
    assert all(r["processed_at"] is None for r in rows)


def test_leads_landed_long_ago_are_still_deduplicated(warehouse, monkeypatch):
    land(warehouse, [make_lead(1), make_lead(2)])
    monkeypatch.setattr(ingest, "RECENT_ROWS", 0)  # as if many rows had been landed since
    assert land(warehouse, [make_lead(2), make_lead(3)], sync_id="s2", cursor=1780000000) == 1
    assert scalar(warehouse, "SELECT count(*) FROM raw_leads") == 3
    assert ingest.get_cursor(warehouse, DIST, FORM) == 1780000000


def test_duplicate_lead_within_one_page_is_landed_once(warehouse):
    assert land(warehouse, [make_lead(1), make_lead(1), make_lead(2)]) == 2


def test_cursor_moves_only_with_the_flagged_page_and_never_back(warehouse):
    assert ingest.get_cursor(warehouse, DIST, FORM) is None
    land(warehouse, [make_lead(1)])  # first page of a pagination: no cursor
    land(warehouse, [make_lead(2)])
    assert ingest.get_cursor(warehouse, DIST, FORM) is None
    land(warehouse, [make_lead(3)], cursor=1780000300)  # the last page carries it
    assert ingest.get_cursor(warehouse, DIST, FORM) == 1780000300
    land(warehouse, [make_lead(3)], cursor=1780000100)  # an older cursor (lookback re-read): no step back
    assert ingest.get_cursor(warehouse, DIST, FORM) == 1780000300
    land(warehouse, [], cursor=1780000900)  # an empty last page still moves it
    assert ingest.get_cursor(warehouse, DIST, FORM) == 1780000900
    assert ingest.get_cursor(warehouse, DIST, "other-form") is None
    assert ingest.get_cursor(warehouse, "other-distributor", FORM) is None


def test_cursor_and_page_commit_together(warehouse, monkeypatch):
    original = Conn.execute

    def failing(self, sql, params=None):
        if "sync_cursors" in sql:
            raise RuntimeError("crash while writing the cursor")
        return original(self, sql, params)

    monkeypatch.setattr(Conn, "execute", failing)
    with pytest.raises(RuntimeError):
        land(warehouse, [make_lead(1), make_lead(2)], cursor=1780000000)
    monkeypatch.setattr(Conn, "execute", original)
    assert scalar(warehouse, "SELECT count(*) FROM raw_leads") == 0  # nothing half-done
    assert ingest.get_cursor(warehouse, DIST, FORM) is None
    assert land(warehouse, [make_lead(1), make_lead(2)], cursor=1780000000) == 2  # the re-run lands everything
    assert ingest.get_cursor(warehouse, DIST, FORM) == 1780000000


def test_cursor_needs_a_form(warehouse):
    with pytest.raises(ValueError, match="form_id"):
        land(warehouse, [make_lead(1)], cursor=1, form_id=None)


# ----------------------------------------------------------------------------------------------------------------------
# Processing
# ----------------------------------------------------------------------------------------------------------------------


def test_process_stores_parsed_leads_and_rejects(warehouse):
    land(warehouse, [make_lead(i) for i in range(3)] + MALFORMED)
    result = process(warehouse)
    assert (result.stored, result.rejected, result.skipped_deleted, result.processed) == (3, 6, 0, 9)
    row = q(warehouse, "SELECT * FROM leads WHERE meta_lead_id = ?", ["900000000000001"])[0]
    assert row["distributor"] == DIST and row["page_id"] == "111" and row["form_id"] == FORM
    assert row["email"] == "person1@example.com" and row["phone"] == "+905321234567"
    assert row["full_name"] == "Person 1" and row["platform"] == "fb"
    assert row["created_time"] == datetime(2026, 6, 1, 12, 0, 1, tzinfo=timezone.utc)
    assert json.loads(row["custom_fields"]) == {"treatment_of_interest": ["FUE", "PRP"]}
    assert json.loads(row["disclaimer_responses"]) == []
    assert row["status"] == "new" and row["assigned_to"] is None
    assert row["first_seen_at"] is not None and row["updated_at"] is not None
    reasons = sorted(r["reason"] for r in q(warehouse, "SELECT reason FROM rejected_leads"))
    assert reasons == sorted(["missing_id", "bad_id", "bad_created_time", "bad_field_data", "no_contact",
                              "no_contact"])
    assert scalar(warehouse, "SELECT count(*) FROM raw_leads WHERE processed_at IS NULL") == 0


def test_process_twice_stores_nothing_new(warehouse):
    land(warehouse, [make_lead(i) for i in range(4)] + MALFORMED[:1])
    assert process(warehouse).stored == 4
    again = process(warehouse)
    assert (again.stored, again.rejected, again.processed) == (0, 0, 0)
    land(warehouse, [make_lead(i) for i in range(4)], sync_id="s2")  # a re-sync of the same leads
    assert process(warehouse).processed == 0
    assert scalar(warehouse, "SELECT count(*) FROM leads") == 4


def test_staff_fields_survive_a_resync(warehouse):
    land(warehouse, [make_lead(1)])
    process(warehouse)
    with warehouse.transaction() as conn:
        conn.execute("UPDATE leads SET status = 'contacted', assigned_to = 'ayse', email = 'fixed@example.com' "
                     "WHERE meta_lead_id = ?", ["900000000000001"])
        conn.execute("DELETE FROM raw_leads")  # force the lead to be landed and parsed again
    changed = make_lead(1, field_data=[{"name": "email", "values": ["other@example.com"]}])
    assert land(warehouse, [changed], sync_id="s2") == 1
    assert process(warehouse).stored == 0
    row = q(warehouse, "SELECT status, assigned_to, email FROM leads")[0]
    assert (row["status"], row["assigned_to"], row["email"]) == ("contacted", "ayse", "fixed@example.com")


def test_tombstoned_leads_never_come_back(warehouse):
    with warehouse.transaction() as conn:
        conn.execute("INSERT INTO lead_tombstones (meta_lead_id, distributor, deleted_at, deleted_by, reason) "
                     "VALUES (?, ?, CURRENT_TIMESTAMP, 'ayse', 'GDPR request')", ["900000000000002", DIST])
    # The deleted lead's payload is personal data: it is not even landed in raw_leads.
    assert land(warehouse, [make_lead(1), make_lead(2), make_lead(3)]) == 2
    result = process(warehouse)
    assert (result.stored, result.skipped_deleted, result.processed) == (2, 0, 2)
    assert land(warehouse, [make_lead(2)], sync_id="s2") == 0
    assert q(warehouse, "SELECT raw_key FROM raw_leads WHERE raw_key = '900000000000002'") == []
    ids = [r["meta_lead_id"] for r in q(warehouse, "SELECT meta_lead_id FROM leads ORDER BY meta_lead_id")]
    assert ids == ["900000000000001", "900000000000003"]


def test_one_reject_row_per_malformed_lead_after_repeated_syncs(warehouse):
    land(warehouse, MALFORMED)
    process(warehouse)
    first = {r["reject_key"]: r for r in q(warehouse, "SELECT * FROM rejected_leads")}
    assert len(first) == len(MALFORMED)
    for n in range(2, 4):
        land(warehouse, MALFORMED, sync_id=f"s{n}")
        process(warehouse)
        with warehouse.transaction() as conn:  # the raw table rebuilt: the payloads are parsed again
            conn.execute("DELETE FROM raw_leads")
        land(warehouse, list(reversed(MALFORMED)), sync_id=f"r{n}")
        assert process(warehouse).rejected == len(MALFORMED)
    rows = {r["reject_key"]: r for r in q(warehouse, "SELECT * FROM rejected_leads")}
    assert rows.keys() == first.keys()
    for key, row in rows.items():
        assert row["first_seen_at"] == first[key]["first_seen_at"]
        assert row["last_seen_at"] >= first[key]["last_seen_at"]
        assert row["sync_id"] == "r3"
    by_reason = {r["reason"]: r for r in rows.values()}
    assert by_reason["bad_created_time"]["meta_lead_id"] == "900000000000500"
    assert by_reason["bad_created_time"]["form_id"] == FORM and by_reason["bad_created_time"]["page_id"] == "111"
    assert "ISO-8601" in by_reason["bad_created_time"]["detail"]
    assert json.loads(by_reason["bad_id"]["payload"])["id"] == "lead_42"
    assert by_reason["bad_id"]["meta_lead_id"] == "lead_42"  # the id as Meta sent it, for look-ups
    assert by_reason["missing_id"]["meta_lead_id"] is None


def test_batches_cover_every_row_in_id_order(warehouse):
    land(warehouse, [make_lead(i) for i in range(7)] + MALFORMED[:2])
    result = process(warehouse, batch_size=2)
    assert (result.stored, result.rejected, result.processed) == (7, 2, 9)
    assert scalar(warehouse, "SELECT count(*) FROM raw_leads WHERE processed_at IS NULL") == 0


def test_sync_id_restricts_the_work(warehouse):
    land(warehouse, [make_lead(1)], sync_id="old")
    land(warehouse, [make_lead(2)], sync_id="new")
    assert process(warehouse, sync_id="new").stored == 1
    assert [r["meta_lead_id"] for r in q(warehouse, "SELECT meta_lead_id FROM leads")] == ["900000000000002"]
    assert process(warehouse).stored == 1  # the leftovers of the other sync, on a call without sync_id
    assert scalar(warehouse, "SELECT count(*) FROM leads") == 2


def test_distributors_are_processed_separately(warehouse):
    land(warehouse, [make_lead(1)])
    ingest.land_raw_page(warehouse, sync_id="x", distributor="other", page_id=None, form_id=None,
                         leads=[make_lead(2)])
    assert process(warehouse).processed == 1
    assert scalar(warehouse, "SELECT count(*) FROM raw_leads WHERE processed_at IS NULL") == 1


def test_crash_during_processing_leaves_rows_for_the_next_call(warehouse, monkeypatch):
    land(warehouse, [make_lead(i) for i in range(3)] + MALFORMED[:1])
    original = Conn.execute

    def crash(self, sql, params=None):
        if sql.startswith("UPDATE raw_leads"):
            raise RuntimeError("killed")
        return original(self, sql, params)

    monkeypatch.setattr(Conn, "execute", crash)
    with pytest.raises(RuntimeError):
        process(warehouse)
    monkeypatch.setattr(Conn, "execute", original)
    assert scalar(warehouse, "SELECT count(*) FROM leads") == 0
    assert scalar(warehouse, "SELECT count(*) FROM rejected_leads") == 0
    result = process(warehouse)
    assert (result.stored, result.rejected, result.processed) == (3, 1, 4)
    assert process(warehouse).processed == 0


def test_text_a_backend_refuses_is_stored_cleaned(warehouse):
    odd = make_lead(7, field_data=[{"name": "full_name", "values": ["Ay\x00şe"]},
                                   {"name": "email", "values": ["a@example.com"]},
                                   {"name": "note", "values": ["half \ud83d surrogate", "nul \x00 char"]}])
    assert land(warehouse, [odd]) == 1
    result = process(warehouse)
    assert result.stored == 1
    row = q(warehouse, "SELECT full_name, custom_fields FROM leads")[0]
    assert row["full_name"].startswith("Ay") and row["full_name"].endswith("şe")
    assert len(json.loads(row["custom_fields"])["note"]) == 2


# ----------------------------------------------------------------------------------------------------------------------
# Sync runs
# ----------------------------------------------------------------------------------------------------------------------


def test_sync_ids_are_unique_and_time_ordered():
    ids = [ingest.new_sync_id() for _ in range(50)]
    assert len(set(ids)) == 50
    assert ids == sorted(ids, key=lambda s: s.split("-")[0])


def test_start_and_finish_sync(warehouse):
    sync_id = ingest.start_sync(warehouse, DIST, "cli")
    run = q(warehouse, "SELECT * FROM sync_runs")[0]
    assert run["sync_id"] == sync_id and run["trigger"] == "cli"
    assert run["finished_at"] is None and run["success"] is None
    ingest.finish_sync(warehouse, sync_id, {"success": True, "fetched": 10, "stored": 8, "rejected": 2,
                                            "errors": [], "message": "8 new of 10 fetched leads stored",
                                            "graph_requests": 4})
    run = q(warehouse, "SELECT * FROM sync_runs")[0]
    assert run["success"] is True and run["finished_at"] is not None
    assert (run["fetched"], run["stored"], run["rejected"], run["graph_requests"]) == (10, 8, 2, 4)
    assert json.loads(run["errors"]) == [] and run["message"].startswith("8 new")


def test_finish_open_syncs_closes_every_open_run(warehouse):
    from leads_pipeline.lib.ingest.sync import ExtractResult

    stale = ingest.start_sync(warehouse, DIST, "dagster")  # died in its extract
    current = ingest.start_sync(warehouse, DIST, "dagster")
    ingest.record_extract(warehouse, current, ExtractResult(fetched=5, graph_requests=3, errors=[]))
    other = ingest.start_sync(warehouse, "other", "dagster")
    results = ingest.finish_open_syncs(warehouse, DIST, ingest.ProcessResult(stored=4, rejected=1, processed=5))
    assert [r.sync_id for r in results] == [stale, current]
    assert results[0].success is False and "superseded" in results[0].message
    assert results[1].success is True and (results[1].fetched, results[1].stored, results[1].rejected) == (5, 4, 1)
    runs = {r["sync_id"]: r for r in q(warehouse, "SELECT * FROM sync_runs")}
    assert runs[current]["stored"] == 4 and runs[current]["success"] is True
    assert runs[stale]["success"] is False and runs[stale]["finished_at"] is not None
    assert runs[other]["finished_at"] is None


def test_finish_open_syncs_reports_a_fatal_extract(warehouse):
    from leads_pipeline.lib.ingest.sync import ExtractResult

    sync_id = ingest.start_sync(warehouse, DIST, "dagster")
    ingest.record_extract(warehouse, sync_id, ExtractResult(errors=["token expired"], fatal="token expired"))
    [result] = ingest.finish_open_syncs(warehouse, DIST, None)
    assert result.success is False and "token expired" in result.message
    assert q(warehouse, "SELECT success FROM sync_runs")[0]["success"] is False


def test_count_rows(warehouse):
    land(warehouse, [make_lead(1), make_lead(2)])
    ingest.land_raw_page(warehouse, sync_id="x", distributor="other", page_id=None, form_id=None,
                         leads=[make_lead(3)])
    assert ingest.count_rows(warehouse, "raw_leads") == 3
    assert ingest.count_rows(warehouse, "raw_leads", DIST) == 2
    with pytest.raises(ValueError):
        ingest.count_rows(warehouse, "raw_leads; DROP TABLE leads")
