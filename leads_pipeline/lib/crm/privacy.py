"""Where a lead's personal data lives, and erasing it (a privacy / deletion request).

``PERSONAL_DATA_TABLES`` lists every ``(table, id_column)`` pair holding rows about one lead, keyed by its Meta lead
id. Whoever adds a per-lead table (a mart, an outbox, a match table…) adds it to the list *in this file* — not by
appending from their own module at import time, since a delete run from the CLI or the HTTP service may never import
that module; ``erase_lead`` then removes the lead's rows from it too. A listed table that does not exist (yet) is
skipped; a listed column that does not exist is an error, so a typo never silently leaves personal data behind.

Deleting is done by ``leads_pipeline.lib.crm.delete_lead`` / ``bulk(…, "delete")``, which erase and write the
``lead_tombstones`` row in the same transaction; ingest skips tombstoned ids, so the lead never comes back.

Not erased here: aggregate marts (``lead_stats``, ``conversion_funnel``, ``lead_daily``: counts only, no person),
``audit_log`` (it never holds a lead's personal data: statuses, user ids, reasons only), ``contacts`` (records
imported from the distributor's own CRM, a separate source; the lead's *link* to them, ``lead_contact_matches``, is
erased), and copies outside the warehouse (Dagster's event log only ever holds masked previews, see
``leads_pipeline/defs/metadata.py``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from leads_pipeline.lib.warehouse import Conn

# (table, column holding the Meta lead id). A table may appear more than once with different columns.
PERSONAL_DATA_TABLES: list[tuple[str, str]] = [
    ("leads", "meta_lead_id"),
    ("raw_leads", "meta_lead_id"),
    ("raw_leads", "raw_key"),  # the Meta lead id, or the `sha256:…` handle of a record without a usable id
    ("rejected_leads", "meta_lead_id"),  # a bad id (`bad_id`) too: kept as Meta sent it
    ("rejected_leads", "reject_key"),  # `sha256:…` of a record without a usable id: its handle (see `find_records`)
    ("webhook_inbox", "leadgen_id"),
    ("lead_interactions", "meta_lead_id"),
    ("lead_scores", "meta_lead_id"),
    ("person_links", "meta_lead_id"),
    ("lead_contact_matches", "meta_lead_id"),
    ("notification_outbox", "meta_lead_id"),
    ("conversion_events", "meta_lead_id"),  # the Conversions API outbox: a deleted lead's stages are never sent
]

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class PrivacyConfigError(RuntimeError):
    """``PERSONAL_DATA_TABLES`` names a column that does not exist, or a name that is not an identifier."""


def present_tables(conn: Conn) -> list[tuple[str, str]]:
    """The pairs of ``PERSONAL_DATA_TABLES`` whose table exists in this warehouse (duplicates removed)."""
    pairs = list(dict.fromkeys(PERSONAL_DATA_TABLES))
    for table, column in pairs:
        if not (_IDENT.match(table) and _IDENT.match(column)):
            raise PrivacyConfigError(f"PERSONAL_DATA_TABLES: {table!r}.{column!r} is not a plain identifier")
    rows = conn.query(
        "SELECT table_name, column_name FROM information_schema.columns "
        "WHERE table_schema = current_schema() AND table_catalog = current_database()"
    )
    columns: dict[str, set[str]] = {}
    for r in rows:
        columns.setdefault(str(r["table_name"]).lower(), set()).add(str(r["column_name"]).lower())
    present = []
    for table, column in pairs:
        cols = columns.get(table.lower())
        if cols is None:
            continue  # not created yet
        if column.lower() not in cols:
            raise PrivacyConfigError(
                f"PERSONAL_DATA_TABLES names {table}.{column}, but {table} has no column {column}: fix the list in "
                "leads_pipeline/lib/crm/privacy.py (nothing was erased)."
            )
        present.append((table, column))
    return present


def erase_lead(conn: Conn, lead_id: str) -> dict[str, int]:
    """Delete every row about ``lead_id`` from the personal-data tables, inside the caller's transaction.

    Returns rows deleted per table (-1 where the backend does not report a count).
    """
    counts: dict[str, int] = {}
    for table, column in present_tables(conn):
        n = conn.execute(f"DELETE FROM {table} WHERE {column} = ?", [str(lead_id)])
        counts[table] = counts.get(table, 0) + max(n, 0)
    return counts


def erase_leads(conn: Conn, lead_ids: Iterable[str]) -> dict[str, int]:
    """``erase_lead`` for many ids, set-based: the ids are staged once, then one DELETE per table."""
    ids = list(dict.fromkeys(str(i) for i in lead_ids))
    if not ids:
        return {}
    if len(ids) == 1:
        return erase_lead(conn, ids[0])
    conn.stage("privacy_erase_ids", {"meta_lead_id": "TEXT"}, [(i,) for i in ids])
    counts: dict[str, int] = {}
    for table, column in present_tables(conn):
        n = conn.execute(f"DELETE FROM {table} WHERE {column} IN (SELECT meta_lead_id FROM privacy_erase_ids)")
        counts[table] = counts.get(table, 0) + max(n, 0)
    return counts


# ----------------------------------------------------------------------------------------------------------------------
# Masking contact data typed into a text kept after the deletion (the tombstone's and the audit row's reason)
# ----------------------------------------------------------------------------------------------------------------------

MASK = "[redacted]"
_PERSON_COLUMNS = ("full_name", "first_name", "last_name", "email", "phone", "email_raw", "phone_raw")
_EMAIL_ANY = re.compile(r"[\w.+%'-]+(?:\s*\.\s*[\w+%'-]+)*\s*@\s*[\w-]+(?:\s*\.\s*[\w-]+)+", re.UNICODE)
# A run of digits and the separators people type in phone numbers; what it is, is decided on its digits.
_DIGIT_RUN = re.compile(r"\+?\d[\d\s().\-/]*\d")
_DATE = re.compile(r"\d{4}[-./]\d{1,2}[-./]\d{1,2}|\d{1,2}[-./]\d{1,2}[-./]\d{2,4}")


def _phone_like(run: str, own: tuple[str, ...]) -> bool:
    """Whether a run of digits and separators is a phone number: the lead's own (its last 7+ digits, however it is
    written: spaced, national, with a country code) or any with 8–15 digits that is not a date (an E.164 number has
    at most 15 digits, so a longer run — a Meta id — stays)."""
    digits = re.sub(r"\D", "", run)
    if len(digits) < 7:
        return False
    for phone in own:
        tail = phone[-9:]
        if len(tail) >= 7 and (digits.endswith(tail) or tail.endswith(digits)):
            return True
    if _DATE.fullmatch(run.strip("() ")):
        return False
    return 8 <= len(digits) <= 15 and not (len(digits) == 15 and digits == run)


def _names(person: Mapping[str, Any]) -> list[str]:
    """The person's names: whole values (2+ characters) and each word of them (3+), longest first."""
    out: set[str] = set()
    for col in ("full_name", "first_name", "last_name"):
        value = " ".join(str(person.get(col) or "").split())
        if len(value) >= 2:
            out.add(value)
            out.update(w for w in value.split() if len(w) >= 3)
    return sorted(out, key=lambda v: (-len(v), v))


def mask_personal(text: str, person: Mapping[str, Any]) -> str:
    """``text`` with contact data masked as ``[redacted]``: any e-mail address (any case, spaces around ``@`` and
    dots), any phone number (spaced, dashed, national or international; the person's own however written), and the
    person's names (any case, any spacing, each word of a full name on its own).

    Why every address and number, not only the person's: the reason is kept for good (tombstone, audit log), and a
    privacy request's reason naming a relative's phone or the person's other address is as personal. Dates stay.
    """
    out = _EMAIL_ANY.sub(MASK, text)
    own = tuple(d for d in (re.sub(r"\D", "", str(person.get(c) or "")) for c in ("phone", "phone_raw")) if d)
    out = _DIGIT_RUN.sub(lambda m: MASK if _phone_like(m.group(0), own) else m.group(0), out)
    for col in ("email", "email_raw"):  # the person's own address as typed, even when it is not a valid one
        value = "".join(str(person.get(col) or "").split())
        if len(value) >= 5:
            pattern = r"\s*".join(re.escape(ch) for ch in value)
            out = re.sub(pattern, MASK, out, flags=re.IGNORECASE)
    for name in _names(person):
        pattern = r"\s+".join(re.escape(w) for w in name.split())
        out = re.sub(rf"(?<!\w){pattern}(?!\w)", MASK, out, flags=re.IGNORECASE)
    return out


def person_of_payload(payload: Any) -> dict[str, Any]:
    """The names and contacts a raw lead payload (JSON text or decoded) holds, in the columns ``mask_personal``
    reads: for a record that is not a ``leads`` row (malformed, or not parsed yet)."""
    try:
        lead = json.loads(payload) if isinstance(payload, (str, bytes)) else payload
    except ValueError:
        return {}
    out: dict[str, Any] = {}
    fields = lead.get("field_data") if isinstance(lead, dict) else None
    if not isinstance(fields, list):
        return out
    keys = {"full_name": "full_name", "first_name": "first_name", "last_name": "last_name", "email": "email",
            "work_email": "email_raw", "phone_number": "phone", "work_phone_number": "phone_raw"}
    for entry in fields:
        if isinstance(entry, dict) and entry.get("name") in keys and isinstance(entry.get("values"), list):
            texts = [v for v in entry["values"] if isinstance(v, str) and v.strip()]
            if texts:
                out.setdefault(keys[entry["name"]], texts[0])
    return out


# ----------------------------------------------------------------------------------------------------------------------
# Finding a person's records (a privacy request names a person, not a lead id)
# ----------------------------------------------------------------------------------------------------------------------

#: Where a person's data is searched: (table, handle expression, columns searched, what the row is). The handle is
#: what ``crm.delete_lead`` / ``leads-pipeline lead delete`` take: the Meta lead id; for a quarantined or unparsed
#: record the id as Meta sent it, or — with no id at all — its ``sha256:`` key.
_SEARCHED = (
    ("leads", "meta_lead_id", ("full_name", "first_name", "last_name", "email", "phone", "email_raw", "phone_raw",
                               "custom_fields"), "'lead'"),
    ("rejected_leads", "COALESCE(meta_lead_id, reject_key)", ("payload",), "'quarantined: ' || reason"),
    ("raw_leads", "COALESCE(meta_lead_id, raw_key)", ("payload",), "'raw payload'"),
    ("lead_interactions", "meta_lead_id", ("body",), "'note or message'"),
    ("notification_outbox", "meta_lead_id", ("body",), "'notification e-mail'"),
)
_PHONE_NEEDLE = re.compile(r"\+?[\d\s().\-/]{7,}")
MIN_NEEDLE = 4


def find_records(conn: Conn, text: str, *, limit: int = 200) -> list[dict[str, Any]]:
    """Every stored record holding ``text`` (an e-mail, a phone number in any spacing, a name; case ignored), as
    ``{"handle", "distributor", "found_in": ["table.column", …], "kinds": […]}`` — one per handle, so that each can
    be erased with ``crm.delete_lead(handle)``. Records without a usable id (``missing_id``, ``bad_id``) are found by
    their payload: that is how a privacy request reaches them.

    A phone number is matched on its last nine digits, whatever separators either side uses. Read-only; the caller
    authorizes (``find``).
    """
    needle = " ".join(str(text or "").split()).lower()
    if len(needle) < MIN_NEEDLE:
        raise ValueError(f"Search for at least {MIN_NEEDLE} characters (an e-mail, a phone number or a name).")
    digits = re.sub(r"\D", "", needle)
    phone = bool(_PHONE_NEEDLE.fullmatch(needle)) and len(digits) >= 7
    present = {t for t, _ in present_tables(conn)}
    found: dict[str, dict[str, Any]] = {}
    for table, handle, columns, kind in _SEARCHED:
        if table not in present:
            continue
        if phone:  # separators people type dropped; JSON's quotes, commas and colons kept, so values never join
            tests = [f"strpos(regexp_replace(CAST({c} AS TEXT), '[-() ./]', '', 'g'), ?) > 0" for c in columns]
            params = [digits[-9:]] * len(columns)
        else:
            tests = [f"strpos(lower(CAST({c} AS TEXT)), ?) > 0" for c in columns]
            params = [needle] * len(columns)
        hits = ", ".join(f"CASE WHEN {t} THEN '{c}' END AS hit_{i}" for i, (t, c) in enumerate(zip(tests, columns)))
        rows = conn.query(
            f"SELECT * FROM (SELECT {handle} AS handle, distributor, {kind} AS kind, {hits} FROM {table}) s "
            f"WHERE {' OR '.join(f'hit_{i} IS NOT NULL' for i in range(len(columns)))} LIMIT {int(limit)}",
            params,
        )
        for r in rows:
            entry = found.setdefault(str(r["handle"]), {"handle": str(r["handle"]), "distributor": r["distributor"],
                                                        "found_in": [], "kinds": []})
            for i in range(len(columns)):
                if r[f"hit_{i}"] and f"{table}.{r[f'hit_{i}']}" not in entry["found_in"]:
                    entry["found_in"].append(f"{table}.{r[f'hit_{i}']}")
            if r["kind"] not in entry["kinds"]:
                entry["kinds"].append(r["kind"])
    return sorted(found.values(), key=lambda e: (str(e["distributor"]), e["handle"]))[:limit]


def find(wh: Any, text: str, *, actor: Any) -> list[dict[str, Any]]:
    """:func:`find_records` for a caller allowed to delete leads (a superadmin): finding a person across every
    distributor is the first half of a privacy request, and shows where their data is."""
    from .errors import InvalidInput
    from .rules import authorize
    from .users import resolve_actor

    with wh.transaction(read_only=True) as conn:
        principal = resolve_actor(conn, actor)
        authorize(principal, "lead.delete")
        try:
            found = find_records(conn, text)
        except ValueError as exc:
            raise InvalidInput(str(exc)) from None
    return [r for r in found if principal.sees(r["distributor"])]
