"""``leads-pipeline import``: Graph-API JSON lines (pages or one lead per line) and Meta's CSV export, through the
sync's own parse / validate / dedupe / store path, on both backends."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from leads_pipeline.lib.distributors import registry as distributors
from leads_pipeline.lib.ingest import importer
from leads_pipeline.lib.ingest.land import land_page
from leads_pipeline.lib.security import generate_key
from leads_pipeline_tests.test_ingest import MALFORMED, NO_CONTACT, make_lead

DIST = "msh-med-tour"
CLI = str(Path(sys.executable).with_name("leads-pipeline"))


@pytest.fixture
def wh(warehouse, monkeypatch):
    from leads_pipeline.settings import get_settings

    monkeypatch.setenv("LEADS_SECRET_KEY", generate_key())
    get_settings.cache_clear()  # opening the warehouse may have read the settings already
    distributors.add(warehouse, "MSH Med Tour", "token-123", key=DIST, region="TR")
    return warehouse


def rows(wh, sql, params=None):
    with wh.transaction(read_only=True) as conn:
        return conn.query(sql, params)


def scalar(wh, sql, params=None):
    with wh.transaction(read_only=True) as conn:
        return conn.scalar(sql, params)


def page(leads, after="QVFI", more=True):
    paging = {"cursors": {"before": "QVFIb", "after": after}}
    if more:
        paging["next"] = f"https://graph.facebook.com/v25.0/333/leads?after={after}"
    return {"data": leads, "paging": paging}


def write_jsonl(path: Path, objects) -> Path:
    path.write_text("".join(json.dumps(o, ensure_ascii=False) + "\n" for o in objects), encoding="utf-8")
    return path


def test_jsonl_pages_store_the_same_rows_as_a_sync(wh, tmp_path):
    leads = [make_lead(i) for i in range(6)]
    f = write_jsonl(tmp_path / "pages.jsonl", [page(leads[:3] + MALFORMED[:3]), page(leads[3:] + [leads[0]]),
                                               page(MALFORMED[3:] + NO_CONTACT, more=False)])
    result = importer.import_file(wh, f, DIST)
    assert result.success, result.errors
    assert (result.fetched, result.stored, result.rejected, result.already_known) == (13, 8, 4, 1)
    assert set(result.seed_dict()) == {"success", "fetched", "stored", "errors", "message"}

    # Exactly what a sync's landing of the same leads makes of them (the run that stored them aside).
    imported = rows(wh, "SELECT * FROM leads ORDER BY meta_lead_id")
    imported_rejects = rows(wh, "SELECT reject_key, meta_lead_id, reason, detail, form_id, page_id FROM rejected_leads "
                                "ORDER BY reject_key")
    with wh.transaction() as conn:
        for table in ("leads", "rejected_leads", "raw_leads"):
            conn.execute(f"DELETE FROM {table}")
    land_page(wh, sync_id="s", distributor=DIST, default_region="TR", page_id=None, form_id=None,
              leads=leads + MALFORMED + NO_CONTACT)
    synced = rows(wh, "SELECT * FROM leads ORDER BY meta_lead_id")
    skip = {"first_seen_at", "updated_at", "sync_id"}
    assert [{k: v for k, v in r.items() if k not in skip} for r in imported] == \
           [{k: v for k, v in r.items() if k not in skip} for r in synced]
    assert imported_rejects == rows(wh, "SELECT reject_key, meta_lead_id, reason, detail, form_id, page_id "
                                        "FROM rejected_leads ORDER BY reject_key")


def test_jsonl_one_lead_per_line_keeps_the_text_as_received(wh, tmp_path):
    f = tmp_path / "leads.ndjson"
    lines = [json.dumps(make_lead(i), indent=None) for i in range(4)] + ["", json.dumps(MALFORMED[0])]
    f.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = importer.import_file(wh, f, DIST)
    assert (result.fetched, result.stored, result.rejected) == (5, 4, 1)
    payload = scalar(wh, "SELECT payload FROM raw_leads WHERE raw_key = ?", ["900000000000002"])
    assert json.loads(payload) == make_lead(2)
    assert scalar(wh, "SELECT count(*) FROM raw_leads WHERE processed_at IS NULL") == 0
    run = rows(wh, "SELECT * FROM sync_runs")[0]
    assert run["trigger"] == "import" and run["success"] is True
    assert (run["fetched"], run["stored"], run["rejected"]) == (5, 4, 1)


def meta_export(path: Path, leads: list[dict], *, encoding="utf-8", delimiter=",") -> Path:
    """A file shaped like Meta's lead download: id prefixes, a form_name column, p: phone prefix, one column per
    question."""
    questions: list[str] = []
    for lead in leads:
        for f in lead.get("field_data") or []:
            if f["name"] not in questions:
                questions.append(f["name"])
    header = ["id", "created_time", "ad_id", "ad_name", "adset_id", "adset_name", "campaign_id", "campaign_name",
              "form_id", "form_name", "is_organic", "platform", *questions, "lead_status"]
    buf = io.StringIO()
    w = csv.writer(buf, delimiter=delimiter)
    w.writerow(header)
    for lead in leads:
        answers = {f["name"]: f["values"][0] for f in lead.get("field_data") or []}
        if answers.get("phone_number"):
            answers["phone_number"] = "p:" + answers["phone_number"]
        w.writerow([f"l:{lead['id']}" if lead.get("id") else "", lead.get("created_time", ""),
                    f"ag:{lead['ad_id']}" if lead.get("ad_id") else "", lead.get("ad_name", ""), "", "",
                    "", "", f"f:{lead['form_id']}", "Hair Transplant", str(lead.get("is_organic", False)).lower(),
                    lead.get("platform", ""), *[answers.get(q, "") for q in questions], "CREATED"])
    data = buf.getvalue()
    path.write_bytes(data.encode("utf-16") if encoding == "utf-16" else data.encode("utf-8"))
    return path


@pytest.mark.parametrize("encoding,delimiter", [("utf-8", ","), ("utf-16", "\t")])
def test_meta_csv_export(wh, tmp_path, encoding, delimiter):
    leads = [make_lead(i, field_data=[{"name": "full_name", "values": [f"Ayşe {i}"]},
                                      {"name": "email", "values": [f"ayse{i}@example.com"]},
                                      {"name": "phone_number", "values": ["+905321234567"]},
                                      {"name": "what_is_your_budget?", "values": ["€2.000-€3.500"]}])
             for i in range(3)]
    bad = make_lead(9, field_data=[{"name": "full_name", "values": ["No Contact"]},
                                   {"name": "email", "values": ["not-an-email"]}])
    f = meta_export(tmp_path / "export.csv", leads + [bad], encoding=encoding, delimiter=delimiter)
    result = importer.import_file(wh, f, DIST)
    assert result.success, result.errors
    assert (result.fetched, result.stored, result.rejected) == (4, 4, 0)  # no contact: a lead, status rejected
    row = rows(wh, "SELECT * FROM leads WHERE meta_lead_id = ?", ["900000000000001"])[0]
    assert row["form_id"] == "333333333333331" and row["full_name"] == "Ayşe 1"
    assert row["email"] == "ayse1@example.com" and row["phone"] == "+905321234567"
    assert json.loads(row["custom_fields"]) == {"what_is_your_budget?": ["€2.000-€3.500"]}
    unreachable = rows(wh, "SELECT status, status_reason FROM leads WHERE meta_lead_id = ?", ["900000000000009"])[0]
    assert unreachable["status"] == "rejected" and unreachable["status_reason"]


def test_reimport_stores_nothing_new_and_tombstones_stay_deleted(wh, tmp_path):
    f = write_jsonl(tmp_path / "p.jsonl", [page([make_lead(i) for i in range(5)] + MALFORMED[:2], more=False)])
    first = importer.import_file(wh, f, DIST)
    assert (first.stored, first.rejected) == (5, 2)
    again = importer.import_file(wh, f, DIST)
    assert (again.fetched, again.stored, again.rejected, again.already_known) == (7, 0, 0, 7)
    assert scalar(wh, "SELECT count(*) FROM leads") == 5
    assert scalar(wh, "SELECT count(*) FROM rejected_leads") == 2

    # A lead deleted on a privacy request never comes back, even when its raw row is gone too.
    with wh.transaction() as conn:
        conn.execute("DELETE FROM leads WHERE meta_lead_id = ?", ["900000000000003"])
        conn.execute("DELETE FROM raw_leads")
        conn.execute("INSERT INTO lead_tombstones (meta_lead_id, distributor, deleted_at) VALUES (?, ?, "
                     "CURRENT_TIMESTAMP)", ["900000000000003", DIST])
    third = importer.import_file(wh, f, DIST)
    assert (third.stored, third.skipped_deleted) == (0, 1)
    assert scalar(wh, "SELECT count(*) FROM leads WHERE meta_lead_id = ?", ["900000000000003"]) == 0
    assert scalar(wh, "SELECT count(*) FROM sync_runs WHERE trigger = 'import'") == 3


@pytest.mark.parametrize("workers,chunk_bytes", [(0, importer.CHUNK_BYTES), (2, 64)])
def test_unreadable_lines_are_reported_with_their_numbers(wh, tmp_path, workers, chunk_bytes):
    f = tmp_path / "mixed.jsonl"
    f.write_text("\n".join([
        json.dumps(page([make_lead(1)])),
        '{"data": [ this is not json',
        json.dumps(make_lead(2)),
        '"just a string"',                       # valid JSON, not a lead: rejected with a reason
        json.dumps({"data": "nope", "paging": {}}),
        json.dumps(page([make_lead(3)], more=False)),
    ]) + "\n", encoding="utf-8")
    result = importer.import_file(wh, f, DIST, workers=workers, chunk_bytes=chunk_bytes)
    assert not result.success
    assert (result.stored, result.rejected) == (3, 1)
    assert any(e.startswith("line 2: not valid JSON") for e in result.errors)
    assert any(e.startswith("line 5:") for e in result.errors)
    assert result.bad_lines == 2 and "2 unreadable line(s)" in result.message
    reject = rows(wh, "SELECT reason, detail FROM rejected_leads")[0]
    assert reject["reason"] == "bad_field_data" and "not a JSON object" in reject["detail"]
    assert rows(wh, "SELECT success FROM sync_runs")[0]["success"] is False


def test_unknown_distributor_and_missing_file_are_clear_errors(wh, tmp_path):
    f = write_jsonl(tmp_path / "p.jsonl", [page([make_lead(1)])])
    with pytest.raises(importer.ImportError_, match="distributors add"):
        importer.import_file(wh, f, "nobody")
    with pytest.raises(importer.ImportError_, match="no such file"):
        importer.import_file(wh, tmp_path / "missing.jsonl", DIST)


def test_parsing_in_worker_processes_gives_the_same_result(wh, tmp_path):
    pages = [page([make_lead(p * 10 + i) for i in range(10)] + [make_lead(p * 10)]) for p in range(8)]
    f = write_jsonl(tmp_path / "big.jsonl", pages + [page(MALFORMED, more=False)])
    result = importer.import_file(wh, f, DIST, workers=2, chunk_bytes=4096)  # many small batches, in order
    assert (result.fetched, result.stored, result.rejected) == (8 * 11 + len(MALFORMED), 80, len(MALFORMED))
    assert scalar(wh, "SELECT count(*) FROM raw_leads") == 80 + len(MALFORMED)


def test_cli_prints_the_seed_object(wh, tmp_path, monkeypatch):
    monkeypatch.setenv("LEADS_WAREHOUSE_URL", wh.url)
    f = write_jsonl(tmp_path / "p.jsonl", [page([make_lead(i) for i in range(3)], more=False)])
    out = subprocess.run([CLI, "import", str(f), "--distributor", DIST], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"success": True, "fetched": 3, "stored": 3, "errors": [],
                                      "message": "3 new of 3 leads read from p.jsonl stored"}
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{oops\n", encoding="utf-8")
    out = subprocess.run([CLI, "import", str(bad), "-d", DIST], capture_output=True, text=True, timeout=120)
    assert out.returncode == 1 and "line 1" in out.stdout


# ----------------------------------------------------------------------------------------------------------------------
# The SQL path of a DuckDB import (lib/ingest/bulk_sql.py) against the parser, on leads built to hit every branch
# ----------------------------------------------------------------------------------------------------------------------

_PHONES = ["+905321234567", "+447498058084", "+12087785202", "0532 123 45 67", "+90 (532) 123-45-67",
           "00905321234567", "5321234567", "07467941176", "7467941176", "030 12345678", "+4915112345678",
           "+15555555555", "+999123456789", "+9053212345678", "123", "", "   ", " +905321234568 ", "+33612345678",
           "06 12 34 56 78", "+7 912 345-67-89", "0044 7467 941176", "+90 532 123 4567 ext. 5", "+31612345678"]
_EMAILS = ["ayse.yilmaz@gmail.com", "  Ayse.Yilmaz@Gmail.com ", "ayse @gmail.com", "ayse@@gmail.com", "a@posteo,de",
           "şeyma@gmail.com", "not-an-email", "", "   ", "K@X.COM", "\tjoe@x.io\n", "ayse@gmail", "a@b.c"]
_COUNTRIES = ["United Kingdom", "DE", " türkiye ", "Narnia", "  ", "U.K.", "France"]
_TIMES = ["2026-05-28T20:26:41+0000", "2026-05-28T20:26:41+00:00", "2026-05-28T20:26:41Z",
          "2026-05-28T20:26:41.123456+0300", "2026-02-30T10:00:00+0000", "2026-05-28 20:26:41",
          "0000-01-01T00:00:00+0000", 1717000000, "2026-05-28T24:00:00+0000", None, "2026-05-28T20:26:41-0930"]
_ODD_VALUES = ["He said \"hi\"", "line\nbreak", "back\\slash", "emoji 😀", "tab\there", "ünïcödé", "/slash/",
               "a]}b", "]}", "x]},{y", "[1]", "{}"]  # brackets: an entry's end found inside a value


def _tricky_leads(seed: int, n: int) -> list:
    """Leads as Meta sends them, as people type into them, and as they arrive broken — each choice independent."""
    import random

    rng = random.Random(seed)
    leads: list = []
    for i in range(n):
        wild = rng.random() < 0.4  # else the first choice of most lists: Meta's own shapes

        def pick(options: list, wild: bool = wild) -> object:
            return rng.choice(options) if wild or rng.random() < 0.3 else options[0]

        answers: list = []
        if rng.random() < 0.9:
            answers.append({"name": pick(["email", "work_email"]), "values": [pick(_EMAILS)]})
        if rng.random() < 0.2:
            answers.append({"name": pick(["email", "work_email"]),
                            "values": [pick(_EMAILS) for _ in range(rng.randint(0, 2))]})
        if rng.random() < 0.9:
            answers.append({"name": pick(["phone_number", "work_phone_number"]), "values": [pick(_PHONES)]})
        if rng.random() < 0.15:
            answers.append({"name": "phone_number", "values": [pick(_PHONES), pick(_PHONES)]})
        if rng.random() < 0.4:
            answers.append({"name": "country", "values": [pick(_COUNTRIES)]})
        if rng.random() < 0.5:
            answers.append({"name": "full_name", "values": [pick(["Jane Doe", "  Ali ", "", " "])]})
        else:
            answers += [{"name": "first_name", "values": [pick(["Jane", " ", "Ayşe"])]},
                        {"name": "last_name", "values": [pick(["Doe", ""])]}]
        if rng.random() < 0.3:
            answers.append({"name": "city", "values": rng.sample(["Istanbul", "Ankara", " "], rng.randint(0, 2))})
        if rng.random() < 0.5:
            answers.append({"name": "treatment", "values": [rng.choice(_ODD_VALUES) if rng.random() < 0.2 else "DHI",
                                                            "Beard"][: rng.randint(0, 2)]})
        lead: dict = {"id": str(900_000_000_100_000 + i), "created_time": pick(_TIMES),
                      "form_id": pick(["333333333333331", "333333333333332"]), "field_data": answers}
        for key in ("ad_id", "ad_name", "campaign_name"):
            if rng.random() < 0.8:
                lead[key] = pick(["120200000000000000", "Hair – ad 1", 123, None])
        if rng.random() < 0.7:
            lead["is_organic"] = pick([False, True, "true", None])
        if rng.random() < 0.7:
            lead["platform"] = pick(["fb", "ig", 5])
        if rng.random() < 0.4:
            lead["custom_disclaimer_responses"] = pick([[{"checkbox_key": "optional_1", "is_checked": "1"}], [],
                                                        {"checkbox_key": "x"}, "x", [{"score": 1.5}], None])
        broken = rng.random()
        if broken < 0.03:
            lead["id"] = pick(["abc", 123, "", None, "12a", True, 1.5])
        elif broken < 0.05:
            lead["field_data"] = pick([None, "x", [{"name": "email", "values": "x"}], [{"name": 1, "values": []}],
                                       ["x"], [{"values": ["DHI"], "name": "treatment"}],
                                       [{"name": "treatment", "values": ["DHI"], "note": "x"}],
                                       [{"name": "treatment", "values": [1, True, None]}]])
        elif broken < 0.06:
            del lead["id"]
        elif broken < 0.07:
            lead["form_id"] = pick(["", 333, None])
        leads.append(lead)
    return leads + [leads[i] for i in range(0, n, 7)]  # duplicates: the first occurrence wins


@pytest.mark.parametrize("seed", [1, 2])
def test_the_sql_path_gives_the_parsers_leads_rejects_and_phones(duckdb_url, tmp_path, monkeypatch, seed):
    from leads_pipeline.lib.warehouse import Warehouse

    from leads_pipeline.settings import get_settings

    monkeypatch.setenv("LEADS_SECRET_KEY", generate_key())
    get_settings.cache_clear()
    leads = _tricky_leads(seed, 600)
    f = write_jsonl(tmp_path / "tricky.jsonl", [page(leads[i:i + 50]) for i in range(0, len(leads), 50)])
    wh = Warehouse(duckdb_url)
    wh.migrate()
    distributors.add(wh, "MSH Med Tour", "token-123", key=DIST, region="TR")
    skip = {"first_seen_at", "updated_at", "sync_id", "last_seen_at"}
    seen = {}
    for sql_path in (True, False):
        result = importer.import_file(wh, f, DIST, sql_path=sql_path)
        seen[sql_path] = (
            result.fetched, result.stored, result.rejected, result.already_known,
            [{k: v for k, v in r.items() if k not in skip} for r in rows(wh, "SELECT * FROM leads ORDER BY 1")],
            [{k: v for k, v in r.items() if k not in skip}
             for r in rows(wh, "SELECT * FROM rejected_leads ORDER BY reject_key")],
            [(r["raw_key"], r["meta_lead_id"], json.loads(r["payload"]), r["processed_at"] is None)
             for r in rows(wh, "SELECT * FROM raw_leads ORDER BY raw_key")],
        )
        if sql_path:
            assert result.parsed_in_sql >= 50  # the SQL path did take the common leads (the rest: the parser)
        with wh.transaction() as conn:
            for table in ("leads", "rejected_leads", "raw_leads"):
                conn.execute(f"DELETE FROM {table}")
    sql, python = seen[True], seen[False]
    assert sql[:4] == python[:4]
    assert len(sql[4]) > 300 and sum(1 for r in sql[4] if r["phone"]) > 150
    for a, b in zip(sql[4], python[4]):
        assert a == b
    assert sql[4] == python[4]
    assert sql[5] == python[5]
    assert sql[6] == python[6]


def test_pages_of_leads_another_distributor_holds_are_named_by_both_paths(wh, tmp_path):
    f = write_jsonl(tmp_path / "p.jsonl", [page([make_lead(i) for i in range(4)] + MALFORMED[:1], more=False)])
    assert importer.import_file(wh, f, DIST).stored == 4
    distributors.add(wh, "Other", "token-456", key="other", region="TR")
    for sql_path in (True, False):
        result = importer.import_file(wh, f, "other", sql_path=sql_path)
        assert (result.fetched, result.stored, result.rejected, result.held_elsewhere) == (5, 0, 1, {DIST: 4})
        assert f"4 leads already belong to distributor '{DIST}'" in result.message
        with wh.transaction() as conn:
            conn.execute("DELETE FROM raw_leads WHERE distributor = 'other'")
            conn.execute("DELETE FROM rejected_leads WHERE distributor = 'other'")


def test_other_writers_get_the_warehouse_between_the_chunks_of_a_large_import(duckdb_url, tmp_path, monkeypatch):
    """The SQL path does its work without the warehouse's lock and writes in short transactions: a writer (the
    webhook receiver, a sync) that asks for the warehouse meanwhile gets it after the chunk in progress — it sees
    part of the import landed — instead of waiting for the whole import."""
    import threading

    from leads_pipeline.lib.ingest import bulk_sql_write
    from leads_pipeline.lib.warehouse import Warehouse
    from leads_pipeline.settings import get_settings

    monkeypatch.setenv("LEADS_SECRET_KEY", generate_key())
    get_settings.cache_clear()
    monkeypatch.setattr(bulk_sql_write, "CHUNK_LEADS", 50)  # 40 chunks of a 2,000-lead file
    n = 2000
    f = write_jsonl(tmp_path / "big.jsonl", [page([make_lead(i) for i in range(s, s + 200)]) for s in range(0, n, 200)])
    wh = Warehouse(duckdb_url)
    wh.migrate()
    distributors.add(wh, "MSH Med Tour", "token-123", key=DIST, region="TR")
    done: dict = {}
    importing = threading.Thread(target=lambda: done.setdefault("result", importer.import_file(wh, f, DIST)))
    importing.start()
    landed_seen = []
    while importing.is_alive():
        with wh.transaction() as conn:  # another writer's short transaction, while the import runs
            conn.execute("CREATE TABLE IF NOT EXISTS other_writer (written_at TIMESTAMPTZ)")
            conn.execute("INSERT INTO other_writer VALUES (CURRENT_TIMESTAMP)")
            landed_seen.append(conn.scalar("SELECT count(*) FROM raw_leads"))
        importing.join(0.02)  # the import's thread gets its turn
    result = done["result"]
    assert (result.fetched, result.stored, result.parsed_in_sql) == (n, n, n)
    assert any(0 < landed < n for landed in landed_seen), landed_seen  # in between the chunks, not after the end
    assert scalar(wh, "SELECT count(*) FROM leads") == n


def test_the_parsers_leads_are_parsed_while_the_warehouse_is_written_and_its_failure_writes_nothing(
        duckdb_url, tmp_path, monkeypatch):
    """The leads SQL leaves to the parser are parsed in a thread while the chunks are written; every chunk waits
    for it before its commit, so a parser that fails leaves the warehouse as it was — even when the first chunks
    hold no lead of the parser's (the odd leads are at the end of the file)."""
    from leads_pipeline.lib.ingest import bulk_sql, bulk_sql_write
    from leads_pipeline.lib.warehouse import Warehouse
    from leads_pipeline.settings import get_settings

    monkeypatch.setenv("LEADS_SECRET_KEY", generate_key())
    get_settings.cache_clear()
    monkeypatch.setattr(bulk_sql_write, "CHUNK_LEADS", 100)
    wh = Warehouse(duckdb_url)
    wh.migrate()
    distributors.add(wh, "MSH Med Tour", "token-123", key=DIST, region="TR")
    f = write_jsonl(tmp_path / "p.jsonl", [page([make_lead(i) for i in range(s, s + 100)]) for s in range(0, 300, 100)]
                    + [page(MALFORMED + NO_CONTACT, more=False)])
    parse_rows, threads = bulk_sql.parse_rows, set()

    def failing(*args, **kwargs):
        import threading

        threads.add(threading.current_thread().name)
        raise RuntimeError("parser bug")

    monkeypatch.setattr(bulk_sql, "parse_rows", failing)
    with pytest.raises(RuntimeError, match="parser bug"):
        importer.import_file(wh, f, DIST)
    assert threads and all(name.startswith("import-parser") for name in threads)
    assert [scalar(wh, f"SELECT count(*) FROM {t}") for t in ("raw_leads", "leads", "rejected_leads")] == [0, 0, 0]

    def recording(*args, **kwargs):
        import threading

        threads.add(threading.current_thread().name)
        return parse_rows(*args, **kwargs)

    threads.clear()
    monkeypatch.setattr(bulk_sql, "parse_rows", recording)
    result = importer.import_file(wh, f, DIST)
    assert threads and all(name.startswith("import-parser") for name in threads)
    assert result.parsed_in_sql == 300 and result.stored + result.rejected == 300 + len(MALFORMED + NO_CONTACT)
    assert scalar(wh, "SELECT count(*) FROM raw_leads") == result.fetched
