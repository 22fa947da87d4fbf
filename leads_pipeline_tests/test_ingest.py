"""The warehouse writes of a sync — landing, cursors, leads/rejected_leads, recovery, sync runs — on both backends.

Raw landing without storing (``land_raw_page``) followed by ``process_raw`` is the recovery path (rows a run landed
but did not store); ``land_page`` is what a sync does per page (land and store in one transaction)."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from leads_pipeline.lib.ingest import land as landing
from leads_pipeline.lib.ingest import runs, store
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
]
# Leads without a usable contact are leads (status 'rejected' with a reason, for staff to see), not rejects.
NO_CONTACT = [
    make_lead(502, field_data=[{"name": "email", "values": [""]}]),
    make_lead(503, field_data=[{"name": "email", "values": ["nope@gmail"]}]),
]


def land(wh, leads, sync_id="s1", cursor=None, form_id=FORM):
    return landing.land_raw_page(wh, sync_id=sync_id, distributor=DIST, page_id="111", form_id=form_id, leads=leads,
                                cursor=cursor)


def process(wh, **kwargs):
    return store.process_raw(wh, DIST, default_region="TR", **kwargs)


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
    # Without a usable id the key is the payload's hash; a bad id is kept as Meta sent it (a privacy request finds
    # the raw payload by it), a missing one is NULL.
    hashed = {r["meta_lead_id"] for r in rows if r["raw_key"].startswith("sha256:")}
    assert hashed == {None, "lead_42"}
    assert all(r["processed_at"] is None for r in rows)


def test_leads_landed_long_ago_are_still_deduplicated(warehouse, monkeypatch):
    land(warehouse, [make_lead(1), make_lead(2)])
    monkeypatch.setattr(landing, "RECENT_ROWS", 0)  # as if many rows had been landed since
    assert land(warehouse, [make_lead(2), make_lead(3)], sync_id="s2", cursor=1780000000) == 1
    assert scalar(warehouse, "SELECT count(*) FROM raw_leads") == 3
    assert landing.get_cursor(warehouse, DIST, FORM) == 1780000000


def test_duplicate_lead_within_one_page_is_landed_once(warehouse):
    assert land(warehouse, [make_lead(1), make_lead(1), make_lead(2)]) == 2


def test_cursor_moves_only_with_the_flagged_page_and_never_back(warehouse):
    assert landing.get_cursor(warehouse, DIST, FORM) is None
    land(warehouse, [make_lead(1)])  # first page of a pagination: no cursor
    land(warehouse, [make_lead(2)])
    assert landing.get_cursor(warehouse, DIST, FORM) is None
    land(warehouse, [make_lead(3)], cursor=1780000300)  # the last page carries it
    assert landing.get_cursor(warehouse, DIST, FORM) == 1780000300
    land(warehouse, [make_lead(3)], cursor=1780000100)  # an older cursor (lookback re-read): no step back
    assert landing.get_cursor(warehouse, DIST, FORM) == 1780000300
    land(warehouse, [], cursor=1780000900)  # an empty last page still moves it
    assert landing.get_cursor(warehouse, DIST, FORM) == 1780000900
    assert landing.get_cursor(warehouse, DIST, "other-form") is None
    assert landing.get_cursor(warehouse, "other-distributor", FORM) is None


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
    assert landing.get_cursor(warehouse, DIST, FORM) is None
    assert land(warehouse, [make_lead(1), make_lead(2)], cursor=1780000000) == 2  # the re-run lands everything
    assert landing.get_cursor(warehouse, DIST, FORM) == 1780000000


def test_cursor_needs_a_form(warehouse):
    with pytest.raises(ValueError, match="form_id"):
        land(warehouse, [make_lead(1)], cursor=1, form_id=None)


# ----------------------------------------------------------------------------------------------------------------------
# Processing
# ----------------------------------------------------------------------------------------------------------------------


def test_process_stores_parsed_leads_and_rejects(warehouse):
    land(warehouse, [make_lead(i) for i in range(3)] + MALFORMED + NO_CONTACT)
    result = process(warehouse)
    assert (result.stored, result.rejected, result.skipped_deleted, result.processed) == (5, 4, 0, 9)
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
    assert reasons == sorted(["missing_id", "bad_id", "bad_created_time", "bad_field_data"])
    unreachable = q(warehouse, "SELECT status, status_reason FROM leads WHERE meta_lead_id IN (?, ?)",
                    ["900000000000502", "900000000000503"])
    assert [r["status"] for r in unreachable] == ["rejected", "rejected"]
    assert all(r["status_reason"] for r in unreachable)
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


def test_the_processing_run_is_named_on_the_leads_it_stores(warehouse):
    land(warehouse, [make_lead(1)], sync_id="dead-run")
    land(warehouse, [make_lead(2)], sync_id="another-dead-run")
    assert process(warehouse, sync_id="recovering-run").stored == 2
    rows = q(warehouse, "SELECT sync_id, count(*) AS n FROM leads GROUP BY sync_id")
    assert [(r["sync_id"], r["n"]) for r in rows] == [("recovering-run", 2)]


def test_distributors_are_processed_separately(warehouse):
    land(warehouse, [make_lead(1)])
    landing.land_raw_page(warehouse, sync_id="x", distributor="other", page_id=None, form_id=None,
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
    ids = [runs.new_sync_id() for _ in range(50)]
    assert len(set(ids)) == 50
    assert ids == sorted(ids, key=lambda s: s.split("-")[0])


def test_a_run_creates_and_finishes_only_its_own_row(warehouse):
    mine = runs.start_run(warehouse, DIST, "dagster", run_id="dagster-run-1")
    other = runs.start_run(warehouse, DIST, "cli")
    row = q(warehouse, "SELECT * FROM sync_runs WHERE sync_id = ?", [mine])[0]
    assert (row["trigger"], row["run_id"], row["status"]) == ("dagster", "dagster-run-1", "running")
    assert row["finished_at"] is None and row["success"] is None
    runs.finish_run(warehouse, runs.SyncResult(
        success=True, fetched=10, stored=8, errors=[], message="8 new of 10 fetched leads stored", distributor=DIST,
        sync_id=mine, rejected=2, graph_requests=4, landed=10, held_elsewhere={"a": 1}))
    rows = {r["sync_id"]: r for r in q(warehouse, "SELECT * FROM sync_runs")}
    done = rows[mine]
    assert done["success"] is True and done["status"] == "success" and done["finished_at"] is not None
    assert (done["fetched"], done["landed"], done["stored"], done["rejected"], done["graph_requests"]) == (
        10, 10, 8, 2, 4)
    assert json.loads(done["errors"]) == [] and json.loads(done["held_elsewhere"]) == {"a": 1}
    assert rows[other]["status"] == "running" and rows[other]["finished_at"] is None  # never closed by another


def test_finish_run_takes_the_importers_dict(warehouse):
    sync_id = runs.start_run(warehouse, DIST, "import")
    runs.finish_run(warehouse, {"sync_id": sync_id, "success": False, "fetched": 3, "stored": 1, "errors": ["x"],
                                "message": "m"})
    row = q(warehouse, "SELECT status, stored, errors FROM sync_runs")[0]
    assert row["status"] == "failed" and row["stored"] == 1 and json.loads(row["errors"]) == ["x"]


def test_count_rows(warehouse):
    land(warehouse, [make_lead(1), make_lead(2)])
    landing.land_raw_page(warehouse, sync_id="x", distributor="other", page_id=None, form_id=None,
                         leads=[make_lead(3)])
    assert runs.count_rows(warehouse, "raw_leads") == 3
    assert runs.count_rows(warehouse, "raw_leads", DIST) == 2
    with pytest.raises(ValueError):
        runs.count_rows(warehouse, "raw_leads; DROP TABLE leads")
