"""Delete = privacy request: the lead's personal data is gone from every table; a tombstone remains."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from leads_pipeline.lib import crm
from leads_pipeline.lib.crm import privacy
from leads_pipeline_tests.crm_fixtures import T0, add_user_sql, count, insert_leads, snapshot

EMAIL = "zeynep.secret@example.org"
PHONE = "+905551112233"


def _tables(conn) -> dict[str, list[str]]:
    rows = conn.query("SELECT table_name, column_name FROM information_schema.columns "
                      "WHERE table_schema = current_schema() AND table_catalog = current_database()")
    out: dict[str, list[str]] = {}
    for r in rows:
        out.setdefault(r["table_name"], []).append(r["column_name"])
    return out


def tables_mentioning(wh, needle: str) -> dict[str, int]:
    """Every table (of the whole schema) with a row whose text, in any column, contains ``needle``."""
    found = {}
    with wh.transaction() as conn:
        for table, cols in _tables(conn).items():
            where = " OR ".join(f"strpos(lower(CAST(\"{c}\" AS TEXT)), ?) > 0" for c in cols)
            n = conn.scalar(f'SELECT count(*) FROM "{table}" WHERE {where}', [needle.lower()] * len(cols))
            if n:
                found[table] = int(n)
    return found


def _spread_personal_data(wh, lead_id: str, distributor: str = "msh") -> None:
    """Put the lead's personal data everywhere a real pipeline would: raw, rejects, inbox, marts, outbox."""
    payload = json.dumps({"id": lead_id, "field_data": [{"name": "email", "values": [EMAIL]},
                                                          {"name": "phone_number", "values": [PHONE]}]})
    now = T0
    with wh.transaction() as conn:
        conn.execute("INSERT INTO raw_leads (distributor, raw_key, sync_id, form_id, meta_lead_id, payload, fetched_at)"
                     " VALUES (?, ?, 's1', 'f1', ?, ?, ?)", [distributor, lead_id, lead_id, payload, now])
        conn.execute("INSERT INTO rejected_leads (distributor, reject_key, meta_lead_id, reason, detail, payload, "
                     "first_seen_at, last_seen_at) VALUES (?, ?, ?, 'no_contact', ?, ?, ?, ?)",
                     [distributor, f"r-{lead_id}", lead_id, f"earlier copy {EMAIL}", payload, now, now])
        conn.execute("INSERT INTO webhook_inbox (leadgen_id, page_id, form_id, distributor, received_at, change) "
                     "VALUES (?, '1001', 'f1', ?, ?, ?)", [lead_id, distributor, now,
                                                          json.dumps({"value": {"leadgen_id": lead_id,
                                                                                "note": EMAIL}})])
        conn.execute("INSERT INTO lead_scores (meta_lead_id, distributor, score, grade, reasons, scored_at) "
                     "VALUES (?, ?, 80, 'A', ?, ?)", [lead_id, distributor, json.dumps([f"email {EMAIL}"]), now])
        conn.execute("INSERT INTO person_links (person_id, meta_lead_id, distributor, match_on, linked_at) "
                     "VALUES (?, ?, ?, 'email', ?)", [f"p:{EMAIL}", lead_id, distributor, now])
        conn.execute("INSERT INTO lead_contact_matches (meta_lead_id, contact_id, match_on, matched_at) "
                     "VALUES (?, 'c1', ?, ?)", [lead_id, f"email:{EMAIL}", now])
        conn.execute("INSERT INTO notification_outbox (meta_lead_id, distributor, recipient, subject, body) "
                     "VALUES (?, ?, 'sales@msh.example', 'New lead', ?)", [lead_id, distributor, f"{EMAIL} {PHONE}"])


def test_delete_erases_the_email_from_every_table_and_leaves_a_tombstone(warehouse):
    add_user_sql(warehouse, "admin", "admin@example.com", "superadmin")
    add_user_sql(warehouse, "u1", "u1@example.com")
    lead, keep = insert_leads(warehouse, 2)
    with warehouse.transaction() as conn:
        conn.execute("UPDATE leads SET email = ?, phone = ?, full_name = 'Zeynep Gizli' WHERE meta_lead_id = ?",
                     [EMAIL, PHONE, lead])
    _spread_personal_data(warehouse, lead)
    crm.assign(warehouse, lead, "u1", "cli")
    crm.add_note(warehouse, lead, f"she asked us to write to {EMAIL}", "u1")
    crm.log_interaction(warehouse, lead, "email", "u1", "outbound", "sent", body=f"To: {EMAIL}")
    crm.add_note(warehouse, keep, "unrelated", "u1")
    assert set(tables_mentioning(warehouse, EMAIL)) >= {
        "leads", "raw_leads", "rejected_leads", "webhook_inbox", "lead_interactions", "lead_scores", "person_links",
        "lead_contact_matches", "notification_outbox"}

    result = crm.delete_lead(warehouse, lead, "admin@example.com",
                             f"privacy request from Zeynep Gizli ({EMAIL}, {PHONE}) by phone")

    assert tables_mentioning(warehouse, EMAIL) == {}
    assert tables_mentioning(warehouse, PHONE) == {}
    assert tables_mentioning(warehouse, "Zeynep Gizli") == {}
    # interactions: assignment, new→assigned, note, email, →contacted
    assert result["erased"]["leads"] == 1 and result["erased"]["lead_interactions"] == 5
    with warehouse.transaction() as conn:
        tomb = conn.query_one("SELECT * FROM lead_tombstones WHERE meta_lead_id = ?", [lead])
        audit = conn.query_one("SELECT * FROM audit_log WHERE action = 'lead.delete'")
        assert conn.scalar("SELECT count(*) FROM lead_interactions WHERE meta_lead_id = ?", [lead]) == 0
    assert tomb["distributor"] == "msh" and tomb["deleted_by"] == "admin"
    assert tomb["reason"] == "privacy request from [redacted] ([redacted], [redacted]) by phone"
    assert isinstance(tomb["deleted_at"], dt.datetime)
    assert audit["actor"] == "admin" and audit["entity_id"] == lead
    assert json.loads(audit["before"]) == {"distributor": "msh", "status": "contacted", "assigned_to": "u1"}
    assert json.loads(audit["after"])["reason"] == tomb["reason"]
    # the other lead is untouched
    assert [i["body"] for i in crm.get_lead(warehouse, keep)["timeline"]] == ["unrelated"]
    assert count(warehouse, "SELECT count(*) FROM leads") == 1

    # gone for good: every operation names it as deleted, and it cannot be deleted twice
    for op in (lambda: crm.get_lead(warehouse, lead),
               lambda: crm.change_status(warehouse, lead, "contacted", "cli"),
               lambda: crm.delete_lead(warehouse, lead, "cli", "again")):
        with pytest.raises(crm.LeadNotFound, match="deleted on a privacy request"):
            op()


def test_bulk_delete_erases_every_lead_set_based(warehouse):
    ids = insert_leads(warehouse, 3)
    for lead in ids:
        _spread_personal_data(warehouse, lead)
    result = crm.bulk(warehouse, "delete", ids=ids[:2], actor="cli", reason="spam wave")
    assert result.count == 2 and result.ids == ids[:2]
    with warehouse.transaction() as conn:
        tombs = conn.query("SELECT meta_lead_id, reason, deleted_by FROM lead_tombstones ORDER BY meta_lead_id")
        assert conn.scalar("SELECT count(*) FROM raw_leads") == 1
        assert conn.scalar("SELECT count(*) FROM notification_outbox") == 1
    assert tombs == [{"meta_lead_id": i, "reason": "spam wave", "deleted_by": "cli"} for i in ids[:2]]
    assert crm.get_lead(warehouse, ids[2])["meta_lead_id"] == ids[2]


def test_staff_cannot_delete(warehouse):
    add_user_sql(warehouse, "u1", "u1@example.com")
    lead = insert_leads(warehouse, 1)[0]
    before = snapshot(warehouse)
    with pytest.raises(crm.PermissionDenied, match="may not delete leads"):
        crm.delete_lead(warehouse, lead, "u1@example.com", "request")
    with pytest.raises(crm.PermissionDenied):
        crm.bulk(warehouse, "delete", ids=[lead], actor="u1", reason="request")
    assert snapshot(warehouse) == before


def test_delete_a_lead_only_present_as_raw_or_rejected(warehouse):
    """A malformed lead was quarantined, never parsed: its privacy request still erases it and tombstones it."""
    _spread_personal_data(warehouse, "777", distributor="other")
    crm.delete_lead(warehouse, "777", "cli", "privacy request")
    assert tables_mentioning(warehouse, EMAIL) == {}
    with warehouse.transaction() as conn:
        assert conn.query_one("SELECT distributor FROM lead_tombstones WHERE meta_lead_id = '777'") == {
            "distributor": "other"}


def test_privacy_list_is_extensible_and_skips_missing_tables(warehouse, monkeypatch):
    lead = insert_leads(warehouse, 1)[0]
    with warehouse.transaction() as conn:
        conn.execute("CREATE TABLE lead_embeddings (lead_ref TEXT, text_used TEXT)")
        conn.execute("INSERT INTO lead_embeddings VALUES (?, ?), ('other', 'x')", [lead, EMAIL])
    monkeypatch.setattr(privacy, "PERSONAL_DATA_TABLES", privacy.PERSONAL_DATA_TABLES + [
        ("lead_embeddings", "lead_ref"), ("mart_not_built_yet", "meta_lead_id")])
    crm.delete_lead(warehouse, lead, "cli", "request")
    with warehouse.transaction() as conn:
        assert conn.scalar("SELECT count(*) FROM lead_embeddings") == 1


def test_a_wrong_column_in_the_privacy_list_fails_loudly_and_erases_nothing(warehouse, monkeypatch):
    lead = insert_leads(warehouse, 1)[0]
    monkeypatch.setattr(privacy, "PERSONAL_DATA_TABLES", privacy.PERSONAL_DATA_TABLES + [("lead_scores", "lead")])
    before = snapshot(warehouse)
    with pytest.raises(privacy.PrivacyConfigError, match="lead_scores has no column lead"):
        crm.delete_lead(warehouse, lead, "cli", "request")
    assert snapshot(warehouse) == before


def test_erase_lead_returns_counts_per_table(warehouse):
    lead = insert_leads(warehouse, 1)[0]
    _spread_personal_data(warehouse, lead)
    with warehouse.transaction() as conn:
        counts = privacy.erase_lead(conn, lead)
    assert counts["leads"] == 1 and counts["raw_leads"] == 1 and counts["webhook_inbox"] == 1
    assert counts["notification_outbox"] == 1
