"""The peer: dlt (``dlt[duckdb]==1.31.0``) merging the same leads into DuckDB with default settings, own process.

What a user would likely write: a resource that reads the pages, keeps the first occurrence of each lead key,
flattens ``field_data`` (full_name, email, phone_number as columns, other answers as one JSON column), validates with
the same rules as the SQL baselines (docs/lead-validation.md, "leads, not rejects": only a record that cannot be a
lead is a reject — ``missing_id``, ``bad_id``, ``bad_created_time``, ``bad_field_data``; a lead nobody can reach is a
lead with status ``rejected``), and yields leads (``primary_key="meta_lead_id"``, ``write_disposition="merge"``) and
rejects (merged on their key); then ``pipeline.run`` with the defaults (extract → normalize → load, parquet-less
insert_values files).

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
from datetime import UTC, datetime, timedelta

_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+", re.ASCII)
_ATS = re.compile(r"@{2,}")
_DIGITS = re.compile(r"[0-9]+")
_NOT_DIGIT = re.compile(r"[^0-9]")
_ISO = re.compile(r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:?\d{2})")
_COLUMNS = ("email", "work_email", "phone_number", "work_phone_number", "full_name", "first_name", "last_name",
            "city", "country")


def _answer(fd: list, *names: str):
    for name in names:
        for f in fd:
            if f.get("name") == name and f.get("values"):
                return f["values"][0]
    return None


def _values(fd: list, *names: str):
    """Every value of the answers among ``names``, in that order of preference."""
    for name in names:
        for f in fd:
            if f["name"] == name:
                yield from f["values"]


def _created(value):
    """ISO-8601 with an offset (``2026-06-01T12:34:56+0000``, ``+00:00``, ``Z``, fractions) → aware UTC, else None."""
    if not isinstance(value, str):
        return None
    m = _ISO.fullmatch(value)
    if m is None:
        return None
    y, mo, d, hh, mi, ss, frac, off = m.groups()
    try:
        dt = datetime(int(y), int(mo), int(d), int(hh), int(mi), int(ss), int((frac or "0")[:6].ljust(6, "0")),
                      tzinfo=UTC)
        if off != "Z":
            oh, om = int(off[1:3]), int(off[-2:])
            if oh > 23 or om > 59:
                return None
            dt -= (1 if off[0] == "+" else -1) * timedelta(hours=oh, minutes=om)
    except (ValueError, OverflowError):
        return None
    return dt


def _email(value):
    """The address (trimmed, lower-cased; typing slips repaired) when the answer is one, else None."""
    if not isinstance(value, str):
        return None
    t = value.strip().lower()
    if t.isascii() and _EMAIL.fullmatch(t):
        return t
    if not t:
        return None
    t = _ATS.sub("@", "".join(t.split()))
    at = t.find("@")
    if at >= 0:
        t = t[:at] + t[at:].replace(",", ".")
    return t if t.isascii() and _EMAIL.fullmatch(t) else None


def _phone(value):
    return value.strip() if isinstance(value, str) and len(_NOT_DIGIT.sub("", value)) >= 8 else None


def _typed(value):
    return isinstance(value, str) and bool(value.strip())


def _reason(lead) -> str | None:
    """Why the record cannot be a lead (docs/lead-validation.md), or None."""
    if not isinstance(lead, dict):
        return "bad_field_data"
    lead_id = lead.get("id")
    if lead_id is None or lead_id == "":
        return "missing_id"
    if not isinstance(lead_id, str) or not _DIGITS.fullmatch(lead_id):
        return "bad_id"
    if _created(lead.get("created_time")) is None:
        return "bad_created_time"
    fd = lead.get("field_data")
    if not isinstance(fd, list) or not all(
            isinstance(f, dict) and isinstance(f.get("name"), str) and isinstance(f.get("values"), list) for f in fd):
        return "bad_field_data"
    return None


def _key(lead) -> str:
    """The lead key: the id when it is a string of digits, else a hash of the payload."""
    lead_id = lead.get("id") if isinstance(lead, dict) else None
    if isinstance(lead_id, str) and _DIGITS.fullmatch(lead_id):
        return lead_id
    return "md5:" + hashlib.md5(json.dumps(lead, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def _flatten(lead, key: str, distributor: str):
    """(lead row, None) or (None, reject row) — the SQL baselines' rules, in Python."""
    reason = _reason(lead)
    if reason is None:
        fd = lead["field_data"]
        email = next((e for e in map(_email, _values(fd, "email", "work_email")) if e), None)
        phone = next((p for p in map(_phone, _values(fd, "phone_number", "work_phone_number")) if p), None)
        first, last = _answer(fd, "first_name"), _answer(fd, "last_name")
        return {
            "meta_lead_id": lead["id"], "distributor": distributor, "form_id": lead.get("form_id"),
            "ad_id": lead.get("ad_id"), "ad_name": lead.get("ad_name"), "adset_id": lead.get("adset_id"),
            "adset_name": lead.get("adset_name"), "campaign_id": lead.get("campaign_id"),
            "campaign_name": lead.get("campaign_name"), "created_time": _created(lead["created_time"]),
            "is_organic": lead.get("is_organic"), "platform": lead.get("platform"),
            "full_name": _answer(fd, "full_name") or (" ".join(x for x in (first, last) if x) or None),
            "first_name": first, "last_name": last, "email": email, "phone": phone,
            "city": _answer(fd, "city"), "country": _answer(fd, "country"),
            "custom_fields": json.dumps({f["name"]: f["values"] for f in fd if f["name"] not in _COLUMNS},
                                        ensure_ascii=False),
            "disclaimer_responses": json.dumps(lead.get("custom_disclaimer_responses") or [], ensure_ascii=False),
            "email_raw": None if email else next((v for v in _values(fd, "email", "work_email") if _typed(v)), None),
            "phone_raw": None if phone else next((v for v in _values(fd, "phone_number", "work_phone_number")
                                                  if _typed(v)), None),
            "status": "new" if email or phone else "rejected",
            "status_reason": None if email or phone else "no valid contact",
        }, None
    lead_id = lead.get("id") if isinstance(lead, dict) else None
    if reason == "missing_id" or not isinstance(lead, dict):
        shown = None  # the id as sent (a bad one as Python writes it, up to 200 characters)
    else:
        shown = str(lead_id)[:200] if isinstance(lead_id, (str, int, float)) else None
    return None, {"reject_key": key, "meta_lead_id": shown, "reason": reason,
                  "payload": json.dumps(lead, sort_keys=True, ensure_ascii=False)}


def run(pages_path: str, db_path: str, distributor: str = "bench") -> dict:
    import dlt

    t0 = time.perf_counter()
    rejects: list[dict] = []

    @dlt.resource(name="leads", primary_key="meta_lead_id", write_disposition="merge")
    def leads():
        seen: set[str] = set()  # first occurrence of a lead key wins (a reject's too), as in the other approaches
        with open(pages_path, "rb") as f:
            for line in f:
                for lead in json.loads(line)["data"]:
                    key = _key(lead)
                    if key in seen:
                        continue
                    seen.add(key)
                    row, reject = _flatten(lead, key, distributor)
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
