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
    assert [i["body"] for i in crm.get_lead(warehouse, keep, actor="cli")["timeline"]] == ["unrelated"]
    assert count(warehouse, "SELECT count(*) FROM leads") == 1

    # gone for good: every operation names it as deleted, and it cannot be deleted twice
    for op in (lambda: crm.get_lead(warehouse, lead, actor="cli"),
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
    assert crm.get_lead(warehouse, ids[2], actor="cli")["meta_lead_id"] == ids[2]


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


# ------------------------------------------------------------------------------------------ records without a good id
# A record whose id is bad (``bad_id``) or missing (``missing_id``) is quarantined in rejected_leads, and its payload —
# names, e-mail, phone, answers — is in raw_leads like any lead's. A privacy request must reach both: found by the
# person's data, erased by the id Meta sent or by the record's `sha256:` handle, and never landed again.

BAD_EMAIL, BAD_PHONE, BAD_NAME = "kemal.badid@example.net", "+905327778899", "Kemal Yanlis"
NOID_EMAIL, NOID_NAME = "no.id.person@example.com", "Idsiz Kisi"


def _record(lead_id: object, email: str, name: str, phone: str | None = None, **over) -> dict:
    fields = [{"name": "full_name", "values": [name]}, {"name": "email", "values": [email]}]
    if phone:
        fields.append({"name": "phone_number", "values": [phone]})
    rec = {"created_time": "2026-06-01T10:00:00+0000", "form_id": "f1", "field_data": fields, **over}
    if lead_id is not None:
        rec["id"] = lead_id
    return rec


def _land(wh, records: list[dict], sync_id: str = "s1"):
    from leads_pipeline.lib.ingest.land import land_page

    return land_page(wh, sync_id=sync_id, distributor="msh", default_region="TR", page_id="1001", form_id="f1",
                     leads=records)


def test_a_lead_with_a_bad_id_is_found_by_its_email_and_erased_with_its_raw_payload(warehouse):
    bad = _record("lead_42", BAD_EMAIL, BAD_NAME, "0532 777 88 99")
    good = _record("900000000000123", "keep.me@example.org", "Kalan Kisi")
    _land(warehouse, [bad, good])
    assert set(tables_mentioning(warehouse, BAD_EMAIL)) == {"raw_leads", "rejected_leads"}
    with warehouse.transaction() as conn:  # both rows carry the id Meta sent (the raw one was NULL)
        assert conn.query("SELECT meta_lead_id FROM raw_leads WHERE raw_key LIKE 'sha256:%'") == [
            {"meta_lead_id": "lead_42"}]

    for needle in (BAD_EMAIL.upper(), "+90 532 777 88 99", "kemal yanlis"):
        (hit,) = privacy.find(warehouse, needle, actor="cli")
        assert hit["handle"] == "lead_42" and hit["distributor"] == "msh"
        assert {"raw_leads.payload", "rejected_leads.payload"} <= set(hit["found_in"])

    result = crm.delete_lead(warehouse, "lead_42", "cli", f"erasure asked by {BAD_NAME} ({BAD_EMAIL})")
    assert result["distributor"] == "msh"
    for needle in (BAD_EMAIL, "777 88 99", BAD_NAME):
        assert tables_mentioning(warehouse, needle) == {}, needle
    assert privacy.find(warehouse, BAD_EMAIL, actor="cli") == []
    with warehouse.transaction() as conn:
        assert conn.scalar("SELECT reason FROM lead_tombstones WHERE meta_lead_id = 'lead_42'") == \
            "erasure asked by [redacted] ([redacted])"
        assert conn.scalar("SELECT count(*) FROM leads") == 1  # the good lead stays

    # Meta serves it again, unchanged or changed: the id it was sent with keeps it out.
    again = _land(warehouse, [bad, {**bad, "created_time": "2026-06-02T10:00:00+0000"}, good], sync_id="s2")
    assert again.landed == 0 and again.skipped_deleted == 2
    assert tables_mentioning(warehouse, BAD_EMAIL) == {}


def test_a_record_without_an_id_gets_a_handle_to_find_and_erase_it(warehouse):
    noid = _record(None, NOID_EMAIL, NOID_NAME)
    _land(warehouse, [noid, _record("900000000000124", "keep.too@example.org", "Kalan Iki")])
    assert set(tables_mentioning(warehouse, NOID_EMAIL)) == {"raw_leads", "rejected_leads"}
    (hit,) = privacy.find(warehouse, NOID_EMAIL, actor="cli")
    handle = hit["handle"]
    assert handle.startswith("sha256:") and hit["kinds"] == ["quarantined: missing_id", "raw payload"]

    crm.delete_lead(warehouse, handle, "cli", "privacy request by e-mail")
    assert tables_mentioning(warehouse, NOID_EMAIL) == {}
    assert tables_mentioning(warehouse, NOID_NAME) == {}
    with warehouse.transaction() as conn:
        assert conn.scalar("SELECT distributor FROM lead_tombstones WHERE meta_lead_id = ?", [handle]) == "msh"
    with pytest.raises(crm.LeadNotFound, match="deleted on a privacy request"):
        crm.delete_lead(warehouse, handle, "cli", "again")
    # The same record served again is not landed again, by a sync nor by an import.
    assert _land(warehouse, [noid], sync_id="s2").landed == 0
    from leads_pipeline.lib.ingest.bulk import prepare_batch, store_batch

    batch = prepare_batch([(noid, None)], distributor="msh", default_region="TR", sync_id="imp")
    assert store_batch(warehouse, batch, distributor="msh", sync_id="imp").skipped_deleted == 1
    assert tables_mentioning(warehouse, NOID_EMAIL) == {}


def test_imports_keep_the_bad_id_too_and_never_bring_an_erased_one_back(warehouse):
    from leads_pipeline.lib.ingest.bulk import prepare_batch, store_batch

    bad = _record("lead_77", BAD_EMAIL, BAD_NAME)
    batch = prepare_batch([(bad, None)], distributor="msh", default_region="TR", sync_id="imp1")
    store_batch(warehouse, batch, distributor="msh", sync_id="imp1")
    with warehouse.transaction() as conn:
        assert conn.scalar("SELECT meta_lead_id FROM raw_leads") == "lead_77"
        assert conn.scalar("SELECT meta_lead_id FROM rejected_leads") == "lead_77"
    crm.delete_lead(warehouse, "lead_77", "cli", "privacy request")
    assert tables_mentioning(warehouse, BAD_EMAIL) == {}
    changed = {**bad, "created_time": "2026-06-05T10:00:00+0000"}
    batch = prepare_batch([(bad, None), (changed, None)], distributor="msh", default_region="TR", sync_id="imp2")
    assert store_batch(warehouse, batch, distributor="msh", sync_id="imp2").skipped_deleted == 2
    assert tables_mentioning(warehouse, BAD_EMAIL) == {}


def test_migration_12_gives_raw_rows_landed_before_their_bad_id(warehouse):
    from leads_pipeline.lib.warehouse.migrations import v012_bad_ids_findable

    _land(warehouse, [_record("lead_42", BAD_EMAIL, BAD_NAME), _record(None, NOID_EMAIL, NOID_NAME)])
    with warehouse.transaction() as conn:  # as an older version landed them
        conn.execute("UPDATE raw_leads SET meta_lead_id = NULL")
        for stmt in v012_bad_ids_findable.statements(warehouse.dialect):
            conn.execute(stmt)
        assert sorted(conn.query("SELECT meta_lead_id FROM raw_leads"), key=str) == sorted(
            [{"meta_lead_id": "lead_42"}, {"meta_lead_id": None}], key=str)
    crm.delete_lead(warehouse, "lead_42", "cli", "privacy request")
    assert tables_mentioning(warehouse, BAD_EMAIL) == {}


@pytest.mark.parametrize("lead_id, kept", [(12.5, "12.5"), (True, "true"), ({"x": 1}, '{"x":1}'), (["1"], '["1"]'),
                                           (" 900000000000001", " 900000000000001")])
def test_a_bad_id_of_any_json_type_is_kept_as_sent(lead_id, kept):
    from leads_pipeline.lib.ingest.parse import parse_lead

    rejection = parse_lead(_record(lead_id, "a@b.org", "Ad Soyad"), distributor="msh", page_id=None,
                           default_region="TR")
    assert rejection.reason == "bad_id" and rejection.meta_lead_id == kept


def test_finding_a_person_is_for_those_who_may_delete_and_needs_a_real_needle(warehouse):
    add_user_sql(warehouse, "u1", "u1@example.com")
    with pytest.raises(crm.PermissionDenied):
        privacy.find(warehouse, BAD_EMAIL, actor="u1")
    with pytest.raises(crm.InvalidInput, match="at least"):
        privacy.find(warehouse, "ab", actor="cli")


@pytest.mark.parametrize("reason", [
    "request from ZEYNEP.SECRET@EXAMPLE.ORG",                  # other case
    "request from zeynep.secret @ example.org",                # spaces around @
    "call back on +90 555 111 22 33",                          # phone with spaces
    "call back on 0555-111-2233",                              # national, dashed
    "call back on (555) 111 22 33",
    "call back on 905551112233",
    "GİZLİ, Zeynep asked by phone",                             # Turkish capitals, names reordered
    "her sister (ayse.k@mail.example, 0532 123 45 67) called",  # someone else's contact data
])
def test_the_delete_reason_masks_contact_data_in_any_form(warehouse, reason):
    lead = insert_leads(warehouse, 1, email=EMAIL, phone=PHONE, full_name="Zeynep Gizli")[0]
    crm.delete_lead(warehouse, lead, "cli", f"{reason} on 2026-06-03, ticket #4521")
    with warehouse.transaction() as conn:
        kept = conn.scalar("SELECT reason FROM lead_tombstones WHERE meta_lead_id = ?", [lead])
        audit = json.loads(conn.scalar("SELECT after FROM audit_log WHERE action = 'lead.delete'"))["reason"]
    assert kept == audit and "[redacted]" in kept
    assert kept.endswith(" on 2026-06-03, ticket #4521")  # dates and short numbers stay
    for piece in ("zeynep", "gizli", "secret", "example.org", "555", "111", "2233", "ayse", "123 45 67"):
        assert piece not in kept.lower(), (piece, kept)


def test_the_privacy_commands_find_a_record_without_an_id_and_delete_takes_its_handle(warehouse, monkeypatch):
    from click.testing import CliRunner

    from leads_pipeline.cli import main
    from leads_pipeline.settings import get_settings

    _land(warehouse, [_record(None, NOID_EMAIL, NOID_NAME)])
    monkeypatch.setenv("LEADS_WAREHOUSE_URL", warehouse.url)
    get_settings.cache_clear()
    runner = CliRunner()
    out = runner.invoke(main, ["privacy", "find", NOID_EMAIL.upper()])
    assert out.exit_code == 0, out.output
    handle = out.output.split()[0]
    assert handle.startswith("sha256:") and "quarantined: missing_id" in out.output
    assert "leads-pipeline privacy compact" in out.output
    deleted = runner.invoke(main, ["lead", "delete", handle, "--reason", "privacy request", "--yes", "--json"])
    assert deleted.exit_code == 0, deleted.output
    assert json.loads(runner.invoke(main, ["privacy", "find", NOID_EMAIL, "--json"]).output) == []
    assert tables_mentioning(warehouse, NOID_EMAIL) == {}
    refused = runner.invoke(main, ["privacy", "find", "ab"])
    assert refused.exit_code == 1 and "at least 4 characters" in refused.output
