"""CRM linking: contacts import (bad rows, header variants, re-import upserts) and lead matching, both backends."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from click.testing import CliRunner

from leads_pipeline.lib.crm.contacts import ContactsImportError, import_contacts, match_leads

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)

FIRST = (
    "Full Name;E-mail;Phone Number;CRM ID\n"  # semicolons, header variants
    "Ayşe Yılmaz;AYSE@Example.com ;0532 123 45 67;100\n"  # line 2
    "Bad Row;not-an-email;123;101\n"  # line 3: nothing usable
    "Can Demir;can@example.com;;102\n"  # line 4
    ";;;\n"  # line 5: blank, skipped
    "No Contact;;;103\n"  # line 6: no email or phone
    "Mehmet;mehmet@example.com;+90 532 999 88 77;\n"  # line 7: no external id
    "Phone Only;;+90 532 765 43 21;\n"  # line 8: phone only
    "Warn;bad@;05321112233;104\n"  # line 9: invalid email dropped, phone kept
)

SECOND = (
    "\ufeffname,email,mobile,external_id\n"  # BOM, commas, other variants
    "Ayşe Y. Yılmaz,ayse@example.com,,100\n"  # same external id → update (phone kept)
    "Mehmet Kaya,mehmet@example.com,,\n"  # no external id → update by email
    "New Person,new@example.com,,200\n"  # insert
    "Phone Only,,05327654321,\n"  # neither external id nor email → update by phone
    "Can Other,can@example.com,,999\n"  # same email but a different external id: another CRM record
)


def _contacts(wh):
    with wh.transaction() as conn:
        return conn.query("SELECT * FROM contacts ORDER BY contact_id")


def test_import_with_bad_rows_then_reimport(warehouse, tmp_path):
    f = tmp_path / "first.csv"
    f.write_text(FIRST, encoding="utf-8")
    r = import_contacts(warehouse, f, "hubspot")
    assert (r.rows, r.inserted, r.updated) == (7, 5, 0)
    assert [e["line"] for e in r.errors] == [3, 6]
    assert "invalid email and phone" in r.errors[0]["reason"] and r.errors[1]["reason"] == "no email or phone"
    assert r.warnings == [{"line": 9, "reason": "invalid email ignored"}]
    by_ext = {c["external_id"]: c for c in _contacts(warehouse)}
    assert by_ext["100"]["email"] == "ayse@example.com" and by_ext["100"]["phone"] == "+905321234567"
    assert by_ext["100"]["name"] == "Ayşe Yılmaz" and by_ext["100"]["source"] == "hubspot"
    assert by_ext["104"]["email"] is None and by_ext["104"]["phone"] == "+905321112233"

    f2 = tmp_path / "second.csv"
    f2.write_text(SECOND, encoding="utf-8")
    r2 = import_contacts(warehouse, f2, "hubspot")
    assert (r2.rows, r2.inserted, r2.updated, r2.errors) == (5, 2, 3, [])
    rows = _contacts(warehouse)
    assert len(rows) == 7
    by_ext = {c["external_id"]: c for c in rows if c["external_id"]}
    assert by_ext["100"]["name"] == "Ayşe Y. Yılmaz" and by_ext["100"]["phone"] == "+905321234567"
    by_email = {c["email"]: c for c in rows if c["email"] and c["external_id"] is None}
    assert by_email["mehmet@example.com"]["name"] == "Mehmet Kaya"
    assert by_email["mehmet@example.com"]["phone"] == "+905329998877"
    assert sorted(c["external_id"] for c in rows if c["email"] == "can@example.com") == ["102", "999"]

    # The same file again changes nothing but updated_at.
    r3 = import_contacts(warehouse, f2, "hubspot")
    assert (r3.inserted, r3.updated) == (0, 5)
    assert len(_contacts(warehouse)) == 7


def test_duplicate_rows_in_one_file(warehouse, tmp_path):
    f = tmp_path / "dup.csv"
    f.write_text("email,name\nx@example.com,First\nX@example.com,Second\n", encoding="utf-8")
    r = import_contacts(warehouse, f, "csv")
    assert (r.inserted, r.warnings) == (1, [{"line": 2, "reason": "superseded by line 3"}])
    assert [c["name"] for c in _contacts(warehouse)] == ["Second"]


def test_unusable_file(warehouse, tmp_path):
    f = tmp_path / "bad.csv"
    f.write_text("name,company\nAli,ACME\n", encoding="utf-8")
    with pytest.raises(ContactsImportError, match="No email or phone column"):
        import_contacts(warehouse, f, "csv")
    with pytest.raises(ContactsImportError, match="Cannot read"):
        import_contacts(warehouse, tmp_path / "missing.csv", "csv")


def _lead(conn, lead_id, email=None, phone=None, contact_id=None):
    conn.execute(
        "INSERT INTO leads (meta_lead_id, distributor, created_time, email, phone, contact_id, first_seen_at, "
        "updated_at) VALUES (?, 'd1', ?, ?, ?, ?, ?, ?)",
        [lead_id, T0, email, phone, contact_id, T0, T0],
    )


def test_match_leads_email_then_phone(warehouse, tmp_path):
    f = tmp_path / "c.csv"
    f.write_text(FIRST, encoding="utf-8")
    import_contacts(warehouse, f, "hubspot")
    f2 = tmp_path / "c2.csv"
    f2.write_text(SECOND, encoding="utf-8")
    import_contacts(warehouse, f2, "hubspot")
    ids = {(c["external_id"] or c["email"] or c["phone"]): c["contact_id"] for c in _contacts(warehouse)}
    ayse, can1, can2 = ids["100"], ids["102"], ids["999"]
    mehmet, phone_only = ids["mehmet@example.com"], ids["+905327654321"]
    with warehouse.transaction() as conn:
        _lead(conn, "LA", email="ayse@example.com")
        _lead(conn, "LB", email="other@x.com", phone="+905321234567")  # Ayşe's phone
        _lead(conn, "LC", email="can@example.com")  # two contacts share it
        _lead(conn, "LD", email="mehmet@example.com", phone="+905327654321")  # email → Mehmet, phone → Phone Only
        _lead(conn, "LE", email="nobody@x.com", contact_id="manual-1")  # set by staff: kept
        _lead(conn, "LF", email="nobody2@x.com")
    assert match_leads(warehouse) == 6

    def state():
        with warehouse.transaction() as conn:
            m = {(r["meta_lead_id"], r["contact_id"]): r["match_on"]
                 for r in conn.query("SELECT * FROM lead_contact_matches")}
            c = {r["meta_lead_id"]: r["contact_id"] for r in conn.query("SELECT meta_lead_id, contact_id FROM leads")}
        return m, c

    m, c = state()
    assert m == {("LA", ayse): "email", ("LB", ayse): "phone", ("LC", can1): "email", ("LC", can2): "email",
                 ("LD", mehmet): "email", ("LD", phone_only): "phone"}
    assert c == {"LA": ayse, "LB": ayse, "LC": min(can1, can2), "LD": mehmet, "LE": "manual-1", "LF": None}

    # Idempotent; then Mehmet's contact disappears: LD falls back to its phone match.
    assert match_leads(warehouse) == 6
    with warehouse.transaction() as conn:
        conn.execute("DELETE FROM contacts WHERE contact_id = ?", [mehmet])
        conn.execute("DELETE FROM contacts WHERE contact_id = ?", [ayse])
    assert match_leads(warehouse) == 3
    m, c = state()
    assert c == {"LA": None, "LB": None, "LC": min(can1, can2), "LD": phone_only, "LE": "manual-1", "LF": None}


def test_cli_import_and_match(warehouse, warehouse_url, tmp_path, monkeypatch):
    from leads_pipeline.commands.contacts import contacts
    from leads_pipeline.settings import get_settings

    monkeypatch.setenv("LEADS_WAREHOUSE_URL", warehouse_url)
    get_settings.cache_clear()
    f = tmp_path / "c.csv"
    f.write_text(FIRST, encoding="utf-8")
    with warehouse.transaction() as conn:
        _lead(conn, "LA", email="ayse@example.com")
    runner = CliRunner()
    out = runner.invoke(contacts, ["import", str(f), "--source", "crm"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert (data["inserted"], data["imported"], [e["line"] for e in data["errors"]]) == (5, 5, [3, 6])
    out = runner.invoke(contacts, ["match"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout) == {"matches": 1, "leads_matched": 1}
    bad = tmp_path / "bad.csv"
    bad.write_text("name\nAli\n", encoding="utf-8")
    out = runner.invoke(contacts, ["import", str(bad)])
    assert out.exit_code == 1 and "No email or phone column" in out.stderr
