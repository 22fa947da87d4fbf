"""The peer: dlt (``dlt[duckdb]==1.31.0``) merging the same leads into DuckDB with default settings, own process.

What a user would likely write: a resource that reads the pages, flattens ``field_data`` (full_name, email,
phone_number as columns, other answers as one JSON column), validates with the same simple rules as the SQL baseline,
and yields valid leads (``primary_key="meta_lead_id"``, ``write_disposition="merge"``) and rejects (merged on
their key); then ``pipeline.run`` with the defaults (extract → normalize → load, parquet-less insert_values files).

    python -m benchmarks.baseline_dlt PAGES.jsonl OUT.duckdb
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import tempfile
import time

_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+", re.ASCII)
_DIGITS = re.compile(r"[0-9]+")
_ISO = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:?\d{2})")
_COLUMNS = ("email", "work_email", "phone_number", "work_phone_number", "full_name", "first_name", "last_name",
            "city", "country")


def _answer(fd: list, *names: str):
    for name in names:
        for f in fd:
            if f.get("name") == name and f.get("values"):
                return f["values"][0]
    return None


def _flatten(lead: dict, distributor: str):
    """(valid row, None) or (None, reject row) — the SQL baseline's rules, in Python."""
    lead_id = lead.get("id")
    fd = lead.get("field_data")
    email = phone = None
    if isinstance(fd, list):
        e = _answer(fd, "email", "work_email")
        if isinstance(e, str):
            t = e.strip().lower()
            email = t if t.isascii() and _EMAIL.fullmatch(t) else None
        p = _answer(fd, "phone_number", "work_phone_number")
        if isinstance(p, str) and len(re.sub(r"[^0-9]", "", p)) >= 8:
            phone = p.strip()
    if not lead_id:
        reason = "missing_id"
    elif not isinstance(lead_id, str) or not _DIGITS.fullmatch(lead_id):
        reason = "bad_id"
    elif not isinstance(lead.get("created_time"), str) or not _ISO.fullmatch(lead["created_time"]):
        reason = "bad_created_time"
    elif not isinstance(fd, list):
        reason = "bad_field_data"
    elif email is None and phone is None:
        reason = "no_contact"
    else:
        first, last = _answer(fd, "first_name"), _answer(fd, "last_name")
        return {
            "meta_lead_id": lead_id, "distributor": distributor, "form_id": lead.get("form_id"),
            "ad_id": lead.get("ad_id"), "ad_name": lead.get("ad_name"), "adset_id": lead.get("adset_id"),
            "adset_name": lead.get("adset_name"), "campaign_id": lead.get("campaign_id"),
            "campaign_name": lead.get("campaign_name"), "created_time": lead["created_time"],
            "is_organic": lead.get("is_organic"), "platform": lead.get("platform"),
            "full_name": _answer(fd, "full_name") or (" ".join(x for x in (first, last) if x) or None),
            "first_name": first, "last_name": last, "email": email, "phone": phone,
            "city": _answer(fd, "city"), "country": _answer(fd, "country"),
            "custom_fields": json.dumps({f["name"]: f["values"] for f in fd if f.get("name") not in _COLUMNS},
                                        ensure_ascii=False),
            "disclaimer_responses": json.dumps(lead.get("custom_disclaimer_responses") or [], ensure_ascii=False),
        }, None
    text = json.dumps(lead, sort_keys=True, ensure_ascii=False)
    key = lead_id if isinstance(lead_id, str) and _DIGITS.fullmatch(lead_id) else "md5:" + hashlib.md5(
        text.encode()).hexdigest()
    return None, {"reject_key": key, "meta_lead_id": None if reason == "missing_id" else str(lead_id),
                  "reason": reason, "payload": text}


def run(pages_path: str, db_path: str, distributor: str = "bench") -> dict:
    import dlt

    t0 = time.perf_counter()
    rejects: list[dict] = []

    @dlt.resource(name="leads", primary_key="meta_lead_id", write_disposition="merge")
    def leads():
        with open(pages_path, "rb") as f:
            for line in f:
                for lead in json.loads(line)["data"]:
                    row, reject = _flatten(lead, distributor)
                    if row is not None:
                        yield row
                    else:
                        rejects.append(reject)

    @dlt.resource(name="rejected_leads", primary_key="reject_key", write_disposition="merge")
    def rejected():
        yield from rejects

    pipeline = dlt.pipeline(pipeline_name=f"bench_{os.getpid()}", destination=dlt.destinations.duckdb(db_path),
                            dataset_name="leads_ds", pipelines_dir=tempfile.mkdtemp(prefix="dlt-bench-"))
    pipeline.run(leads())
    pipeline.run(rejected())
    import duckdb

    con = duckdb.connect(db_path, read_only=True)
    stored = con.execute("SELECT count(*) FROM leads_ds.leads").fetchone()[0]
    rejected_n = con.execute("SELECT count(*) FROM leads_ds.rejected_leads").fetchone()[0]
    con.close()
    return {"stored": stored, "rejected": rejected_n, "seconds_in_process": round(time.perf_counter() - t0, 3)}


if __name__ == "__main__":
    os.environ.setdefault("RUNTIME__LOG_LEVEL", "WARNING")
    os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
    print(json.dumps(run(sys.argv[1], sys.argv[2])))
