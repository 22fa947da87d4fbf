"""CRM linking: import contacts from a CSV export, then match leads to them by email, then phone.

``import_contacts`` reads a CSV (``name,email,phone,external_id`` or common variants of those headers; comma,
semicolon, tab or pipe separated; UTF-8 with or without BOM), normalises email and phone exactly as leads are
normalised, and upserts the rows into ``contacts`` in two set-based statements. A bad row is reported with its line
number and the rest are imported. Re-importing the same export updates contacts instead of duplicating them: a row
is the same contact as an existing one of the same ``source`` with the same ``external_id``; failing that (or when
the row has none) with the same email, when neither side carries a different ``external_id``; a row with neither
``external_id`` nor email is matched by phone.

``match_leads`` rebuilds ``lead_contact_matches`` (every lead–contact pair sharing the normalised email or phone) and
sets ``leads.contact_id`` to the best match: an email match before a phone match, the smallest ``contact_id`` among
equals. A ``contact_id`` that staff set by hand (not one of the lead's matches) is never overwritten; one that an
earlier match set and that no longer matches is cleared.
"""

from __future__ import annotations

import csv
import io
import re
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from leads_pipeline.lib.normalise import normalise_email, normalise_phone  # the same normalisation as leads
from leads_pipeline.lib.warehouse import Warehouse


class ContactsImportError(ValueError):
    """The file as a whole cannot be imported (unreadable, or no email/phone column); says what to fix."""


# Canonical column → accepted header spellings (compared after lower-casing and turning non-alphanumerics into "_").
HEADER_ALIASES: dict[str, tuple[str, ...]] = {
    "name": ("name", "full_name", "fullname", "contact_name", "customer_name", "client_name", "display_name",
             "ad_soyad", "adsoyad", "isim", "ad_soyadi"),
    "first_name": ("first_name", "firstname", "given_name", "forename", "ad"),
    "last_name": ("last_name", "lastname", "surname", "family_name", "soyad", "soyadi"),
    "email": ("email", "e_mail", "email_address", "e_mail_address", "mail", "work_email", "eposta", "e_posta"),
    "phone": ("phone", "phone_number", "phonenumber", "phone_no", "mobile", "mobile_phone", "mobile_number", "cell",
              "cell_phone", "cellphone", "tel", "telephone", "telefon", "gsm", "work_phone_number"),
    "external_id": ("external_id", "externalid", "ext_id", "id", "contact_id", "crm_id", "record_id", "customer_id"),
}


@dataclass
class ImportResult:
    """What an import did. ``errors`` are rows not imported, ``warnings`` rows imported with a field dropped."""

    source: str
    rows: int = 0
    inserted: int = 0
    updated: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[dict[str, Any]] = field(default_factory=list)

    @property
    def imported(self) -> int:
        return self.inserted + self.updated

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "imported": self.imported}


def _header_key(h: str | None) -> str:
    return re.sub(r"[^0-9a-zçğıöşü]+", "_", (h or "").strip().lower()).strip("_")


def _map_headers(headers: list[str]) -> dict[str, int]:
    keys = [_header_key(h) for h in headers]
    found: dict[str, int] = {}
    for canonical, aliases in HEADER_ALIASES.items():
        for alias in aliases:  # the first alias present wins, so "email" beats "work_email"
            if alias in keys:
                found[canonical] = keys.index(alias)
                break
    return found


def _read_text(path: Path) -> str:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ContactsImportError(f"Cannot read {path}: {exc.strerror or exc}") from exc
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return raw.decode("cp1254")  # Turkish Windows exports; every byte decodes


def _delimiter(text: str) -> str:
    """The separator of the header row: the most frequent of comma, semicolon (Excel in many locales), tab, pipe."""
    header = text.split("\n", 1)[0]
    counts = {d: header.count(d) for d in (",", ";", "\t", "|")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


def _parse_rows(text: str, result: ImportResult, region: str | None) -> list[dict[str, Any]]:
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=_delimiter(text))
    headers = next(reader, None)
    if not headers:
        raise ContactsImportError("The file is empty: expected a header row such as name,email,phone,external_id.")
    cols = _map_headers(headers)
    if "email" not in cols and "phone" not in cols:
        raise ContactsImportError(
            f"No email or phone column among the headers {headers!r}: name one 'email' or 'phone' "
            "(e.g. name,email,phone,external_id)."
        )
    by_key: dict[tuple[str, str], dict[str, Any]] = {}
    for values in reader:
        line = reader.line_num
        if not any(v.strip() for v in values):
            continue
        result.rows += 1
        if len(values) > len(headers) and any(v.strip() for v in values[len(headers):]):
            result.errors.append({"line": line, "reason": f"{len(values)} fields but the header has {len(headers)}"})
            continue

        def get(col: str) -> str:
            i = cols.get(col)
            return values[i].strip() if i is not None and i < len(values) else ""

        raw_email, raw_phone = get("email"), get("phone")
        email = normalise_email(raw_email) if raw_email else None
        phone = normalise_phone(raw_phone, region) if raw_phone else None
        if email is None and phone is None:
            if raw_email or raw_phone:
                bad = " and ".join(n for n, raw in (("email", raw_email), ("phone", raw_phone)) if raw)
                reason = f"invalid {bad}, and no other usable email or phone"
            else:
                reason = "no email or phone"
            result.errors.append({"line": line, "reason": reason})
            continue
        for name, raw, value in (("email", raw_email, email), ("phone", raw_phone, phone)):
            if raw and value is None:
                result.warnings.append({"line": line, "reason": f"invalid {name} ignored"})
        name = get("name") or " ".join(p for p in (get("first_name"), get("last_name")) if p) or None
        external_id = get("external_id") or None
        key = ("x", external_id) if external_id else ("e", email) if email else ("p", phone)
        if key in by_key:
            result.warnings.append({"line": by_key[key]["line"], "reason": f"superseded by line {line}"})
        by_key[key] = {"line": line, "external_id": external_id, "name": name, "email": email, "phone": phone}
    return sorted(by_key.values(), key=lambda r: r["line"])


_STAGE_COLUMNS = {"line": "BIGINT", "external_id": "TEXT", "name": "TEXT", "email": "TEXT", "phone": "TEXT"}

_MATCH_EXISTING_SQL = """
SELECT s.line,
       (SELECT min(c.contact_id) FROM contacts c
         WHERE c.source = ? AND s.external_id IS NOT NULL AND c.external_id = s.external_id) AS by_external_id,
       (SELECT min(c.contact_id) FROM contacts c
         WHERE c.source = ? AND s.email IS NOT NULL AND c.email = s.email
           AND (c.external_id IS NULL OR s.external_id IS NULL OR c.external_id = s.external_id)) AS by_email,
       (SELECT min(c.contact_id) FROM contacts c
         WHERE c.source = ? AND s.external_id IS NULL AND s.email IS NULL AND c.phone = s.phone) AS by_phone
FROM contacts_stage s"""


def import_contacts(
    wh: Warehouse, csv_path: str | Path, source: str, *, default_region: str | None = "TR"
) -> ImportResult:
    """Import (upsert) the contacts of a CSV file; ``default_region`` reads phone numbers typed without a country
    code. Raises ``ContactsImportError`` only when the file as a whole is unusable."""
    source = (source or "").strip()
    if not source:
        raise ContactsImportError("A source name is required (e.g. --source hubspot).")
    result = ImportResult(source=source)
    rows = _parse_rows(_read_text(Path(csv_path)), result, default_region)
    if not rows:
        return result
    with wh.transaction() as conn:
        conn.stage("contacts_stage", _STAGE_COLUMNS, [[r[c] for c in _STAGE_COLUMNS] for r in rows])
        found = {m["line"]: m["by_external_id"] or m["by_email"] or m["by_phone"]
                 for m in conn.query(_MATCH_EXISTING_SQL, [source, source, source])}
        final: dict[str, dict[str, Any]] = {}  # contact_id → row (a later line wins)
        for r in rows:
            existing = found.get(r["line"])
            cid = existing or f"c_{uuid.uuid4().hex}"
            if cid in final:
                result.warnings.append({"line": final[cid]["line"], "reason": f"superseded by line {r['line']}"})
            final[cid] = {**r, "contact_id": cid, "is_new": existing is None}
        cols = {"contact_id": "TEXT", **_STAGE_COLUMNS, "is_new": "BOOLEAN"}
        conn.stage("contacts_upsert", cols, [[r[c] for c in cols] for r in final.values()])
        conn.execute(
            """UPDATE contacts SET
                   external_id = COALESCE(u.external_id, contacts.external_id),
                   name = COALESCE(u.name, contacts.name),
                   email = COALESCE(u.email, contacts.email),
                   phone = COALESCE(u.phone, contacts.phone),
                   updated_at = CURRENT_TIMESTAMP
               FROM contacts_upsert u
               WHERE contacts.contact_id = u.contact_id AND NOT u.is_new"""
        )
        conn.execute(
            """INSERT INTO contacts (contact_id, external_id, name, email, phone, source, imported_at, updated_at)
               SELECT contact_id, external_id, name, email, phone, ?, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP
               FROM contacts_upsert WHERE is_new""",
            [source],
        )
    result.inserted = sum(1 for r in final.values() if r["is_new"])
    result.updated = len(final) - result.inserted
    result.errors.sort(key=lambda e: e["line"])
    result.warnings.sort(key=lambda e: e["line"])
    return result


def _temp_table_as(backend: str, name: str, select_sql: str) -> list[str]:
    """A temporary table filled from a query, dropped at the end of the transaction (PostgreSQL) or with the
    connection, which the warehouse closes after each DuckDB transaction."""
    suffix = " ON COMMIT DROP" if backend == "postgres" else ""
    return [f"DROP TABLE IF EXISTS {name}", f"CREATE TEMP TABLE {name}{suffix} AS {select_sql}"]


_NEW_MATCHES_SQL = """
SELECT u.meta_lead_id, u.contact_id, min(u.match_on) AS match_on, min(o.matched_at) AS matched_at
FROM (
    SELECT l.meta_lead_id, c.contact_id, 'email' AS match_on
    FROM leads l JOIN contacts c ON c.email = l.email
    WHERE l.email IS NOT NULL
    UNION ALL
    SELECT l.meta_lead_id, c.contact_id, 'phone' AS match_on
    FROM leads l JOIN contacts c ON c.phone = l.phone
    WHERE l.phone IS NOT NULL
) u
LEFT JOIN lead_contact_matches o ON o.meta_lead_id = u.meta_lead_id AND o.contact_id = u.contact_id
GROUP BY u.meta_lead_id, u.contact_id"""


def match_leads(wh: Warehouse) -> int:
    """Rebuild ``lead_contact_matches`` and set ``leads.contact_id`` from it; returns the number of matches."""
    with wh.transaction() as conn:
        for stmt in _temp_table_as(conn.backend, "new_matches", _NEW_MATCHES_SQL):
            conn.execute(stmt)
        # A contact_id an earlier match set, which no longer matches, is cleared (hand-set ones are kept).
        conn.execute(
            """UPDATE leads SET contact_id = NULL
               WHERE contact_id IS NOT NULL
                 AND EXISTS (SELECT 1 FROM lead_contact_matches o
                             WHERE o.meta_lead_id = leads.meta_lead_id AND o.contact_id = leads.contact_id)
                 AND NOT EXISTS (SELECT 1 FROM new_matches n
                                 WHERE n.meta_lead_id = leads.meta_lead_id AND n.contact_id = leads.contact_id)"""
        )
        conn.execute("DELETE FROM lead_contact_matches")
        conn.execute(
            """INSERT INTO lead_contact_matches (meta_lead_id, contact_id, match_on, matched_at)
               SELECT meta_lead_id, contact_id, match_on, COALESCE(matched_at, CURRENT_TIMESTAMP) FROM new_matches"""
        )
        conn.execute(
            """UPDATE leads SET contact_id = b.best
               FROM (SELECT meta_lead_id,
                            COALESCE(min(contact_id) FILTER (WHERE match_on = 'email'),
                                     min(contact_id) FILTER (WHERE match_on = 'phone')) AS best
                     FROM new_matches GROUP BY meta_lead_id) b
               WHERE leads.meta_lead_id = b.meta_lead_id
                 AND leads.contact_id IS DISTINCT FROM b.best
                 AND (leads.contact_id IS NULL
                      OR EXISTS (SELECT 1 FROM new_matches n
                                 WHERE n.meta_lead_id = leads.meta_lead_id AND n.contact_id = leads.contact_id))"""
        )
        return int(conn.scalar("SELECT count(*) FROM new_matches"))
