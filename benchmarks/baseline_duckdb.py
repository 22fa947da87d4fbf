"""The DuckDB SQL-only baseline of the anchors file, run in its own process (the practical limit of DuckDB itself).

``read_json(records=true)`` → ``unnest`` → pivot ``field_data`` (full_name, email, phone_number as columns, every
other answer as one JSON column) → validate → dedupe by lead key (the id when it is a string of digits, else a
payload hash), first occurrence wins → ``INSERT OR REPLACE`` into tables with a primary key.

Validation follows docs/lead-validation.md ("leads, not rejects"): only a record that cannot be a lead is
quarantined, with the first reason that applies — ``bad_field_data`` (not an object), ``missing_id``, ``bad_id`` (not
a JSON string of digits), ``bad_created_time`` (not ISO-8601 with an offset, or no such instant), ``bad_field_data``
(``field_data`` not a list, or an entry that is not ``{"name": str, "values": list}``). Every other record is a lead;
one without a usable contact is stored with status ``rejected`` / ``no valid contact``. The contact columns take, as
the parser does, the first answer of ``email`` then ``work_email`` that is an address (``local@domain.tld``, ASCII;
trimmed, lower-cased, typing slips repaired: whitespace inside, a run of ``@``, commas in the domain) and the first
answer of ``phone_number`` then ``work_phone_number`` that is a number — by a simple SQL rule, "at least 8 digits" (no
E.164, no ``phonenumbers``), which reaches the parser's verdicts on the benchmark data.

The read is typed (the fast path): ``id`` and the answers' ``name`` are read as JSON so that a number is not taken for
a string. A file with a record the typed read cannot take (a lead that is not an object, ``field_data`` or an entry
or ``values`` of another JSON type) is read again leniently (each lead as JSON, then ``json_transform``), with the
same verdicts.

Shape (the anchors' "DuckDB SQL only" row): one typed ``read_json(records = true)`` of the pages, ``unnest`` into a
temporary table, one pass that pivots ``field_data`` (each answer found by ``list_position`` in the list of answer
names — a ``list_filter`` lambda per question cost most of the time), validates and computes every output column
into a narrow staged table, the dedupe as a hash aggregate (``min(ord)`` per key), then one ``INSERT OR REPLACE …
SELECT`` per table. No Python touches a row. The same rows as before that rewrite (checked column by column at 100k).

    python -m benchmarks.baseline_duckdb PAGES.jsonl OUT.duckdb      # prints {"stored": …, "rejected": …, …}
    python -m benchmarks.baseline_duckdb PAGES.jsonl OUT.duckdb --keep-payload --memory-limit 700MB

``--keep-payload``: the same pipeline also keeps every distinct lead's raw JSON, as ``leads-pipeline import`` must
(``raw_leads``: distributor, key, payload ``JSON USING COMPRESSION zstd``, primary key — the payload text read a
second time as ``JSON[]``, since the typed read has no text), and ``--memory-limit`` bounds DuckDB's pool (700MB:
a peak RSS under P1's 1 GB). Not the limit P1 is measured against: what the limit itself costs under two of the
conditions our import works under (make bench prints it beside the limit).
"""

from __future__ import annotations

import json
import re
import time
import unicodedata

LEAD_FIELDS = (
    'id JSON, created_time VARCHAR, ad_id VARCHAR, ad_name VARCHAR, adset_id VARCHAR, adset_name VARCHAR, '
    'campaign_id VARCHAR, campaign_name VARCHAR, form_id VARCHAR, is_organic BOOLEAN, platform VARCHAR, '
    'field_data STRUCT("name" JSON, "values" VARCHAR[])[], custom_disclaimer_responses JSON'
)
LEAD_STRUCT = f"STRUCT({LEAD_FIELDS})"
# The same structure for json_transform (the lenient read): a value of another type becomes NULL there.
LEAD_STRUCTURE = json.dumps({
    "id": "JSON", "created_time": "VARCHAR", "ad_id": "VARCHAR", "ad_name": "VARCHAR", "adset_id": "VARCHAR",
    "adset_name": "VARCHAR", "campaign_id": "VARCHAR", "campaign_name": "VARCHAR", "form_id": "VARCHAR",
    "is_organic": "BOOLEAN", "platform": "VARCHAR", "field_data": [{"name": "JSON", "values": ["VARCHAR"]}],
    "custom_disclaimer_responses": "JSON",
})

SCHEMA = """
CREATE TABLE leads (
    meta_lead_id VARCHAR PRIMARY KEY, distributor VARCHAR NOT NULL, form_id VARCHAR, ad_id VARCHAR, ad_name VARCHAR,
    adset_id VARCHAR, adset_name VARCHAR, campaign_id VARCHAR, campaign_name VARCHAR,
    created_time TIMESTAMPTZ NOT NULL, is_organic BOOLEAN, platform VARCHAR, full_name VARCHAR, first_name VARCHAR,
    last_name VARCHAR, email VARCHAR, phone VARCHAR, city VARCHAR, country VARCHAR, custom_fields JSON,
    disclaimer_responses JSON, email_raw VARCHAR, phone_raw VARCHAR, status VARCHAR NOT NULL, status_reason VARCHAR
);
CREATE TABLE rejected_leads (
    reject_key VARCHAR PRIMARY KEY, meta_lead_id VARCHAR, reason VARCHAR NOT NULL, payload JSON
);
"""

_COLUMN_QUESTIONS = ("email", "work_email", "phone_number", "work_phone_number", "full_name", "first_name",
                     "last_name", "city", "country")


def _name(n: str) -> str:
    """An answer's name as the JSON-typed ``name`` holds it (DuckDB keeps JSON canonical: ``"email"``)."""
    return "'" + json.dumps(n) + "'"


def _at(name: str) -> str:
    """The first ``name`` answer of the lead (NULL when there is none): one look-up in the list of answer names
    (``list_position`` is a native function; a ``list_filter`` lambda per question cost most of the time)."""
    return f"l.field_data[list_position(names, {_name(name)})]"


def _answer(*names: str) -> str:
    """First value of the first answer among ``names`` (in that order of preference)."""
    parts = [f"{_at(n)}.\"values\"[1]" for n in names]
    return parts[0] if len(parts) == 1 else f"COALESCE({', '.join(parts)})"


def _first(name: str, other: str) -> str:
    """The first value of the first ``name`` answer, else of the first ``other`` one: the parser's first candidate."""
    return f"COALESCE({_at(name)}, {_at(other)}).\"values\"[1]"


def _values(*names: str) -> str:
    """Every value of the answers among ``names``, in that order of preference (a repeated question: all of its).
    Only evaluated for the rare lead whose first answer is not usable (CASE evaluates a branch for its rows only)."""
    parts = [f"flatten(list_transform(list_filter(l.field_data, lambda f: f.name = {_name(n)}), "
             f"lambda f: f.\"values\"))" for n in names]
    return parts[0] if len(parts) == 1 else f"list_concat({', '.join(parts)})"


def _whitespace() -> str:
    """What Python's ``str.strip()`` / ``str.split()`` take for whitespace (the parser's e-mail repairs)."""
    return "".join(c for c in map(chr, range(0x3001)) if c.isspace())


_WS = _whitespace()
# A character of an address: ASCII, neither "@" nor whitespace (Python's ASCII \s: space, \t \n \v \f \r).
_EMAIL_CHAR = r"[\x{00}-\x{08}\x{0e}-\x{1f}\x{21}-\x{3f}\x{41}-\x{7f}]"
# An e-mail answer → the address (trimmed, lower-cased; typing slips repaired: whitespace inside removed, a run of
# "@" made one, commas in the domain made dots), else NULL. ``email_ok``: ASCII, one "@", a dot in the domain.
MACROS = f"""
CREATE TEMP MACRO email_ok(t) AS regexp_full_match(t, '{_EMAIL_CHAR}+@{_EMAIL_CHAR}+\\.{_EMAIL_CHAR}+');
CREATE TEMP MACRO email_check(t) AS CASE WHEN email_ok(t) THEN t END;
CREATE TEMP MACRO email_fix(r) AS email_check(CASE WHEN strpos(r, '@') > 0
    THEN left(r, strpos(r, '@') - 1) || replace(substr(r, strpos(r, '@')), ',', '.') ELSE r END);
CREATE TEMP MACRO email_try(t) AS CASE WHEN t = '' THEN NULL WHEN email_ok(t) THEN t
    ELSE email_fix(regexp_replace(regexp_replace(t, '[{_WS}]+', '', 'g'), '@{{2,}}', '@', 'g')) END;
CREATE TEMP MACRO email_norm(s) AS email_try(lower(trim(s, '{_WS}')));
CREATE TEMP MACRO phone_ok(v) AS length(regexp_replace(v, '[^0-9]', '', 'g')) >= 8;
CREATE TEMP MACRO typed(v) AS trim(v, '{_WS}') <> '';
"""


def _unicode_digits() -> tuple[str, str]:
    """Every character Python's ``\\d`` matches and its ASCII digit: the parser's ISO expression takes them."""
    nd = "".join(re.findall(r"\d", "".join(map(chr, range(0x20000)))))  # all of Unicode's Nd is below U+20000
    return nd, "".join(str(unicodedata.decimal(c)) for c in nd)


# created_time: ISO-8601 with an offset (hours 00-23, minutes and seconds 00-59, offset up to ±23:59), a date that
# exists, an instant within years 1-9999 once in UTC. Non-ASCII digits (which Python's \d takes) are read as digits.
_ISO = (r"[0-9]{4}-[0-9]{2}-[0-9]{2}T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]+)?"
        r"(Z|[+-]([01][0-9]|2[0-3]):?[0-5][0-9])")


def _created_text() -> str:
    """``created_time`` with non-ASCII digits made ASCII (only a text that is not ASCII is translated)."""
    nd, ascii_digits = _unicode_digits()
    return (f"CASE WHEN strlen(l.created_time) = length(l.created_time) THEN l.created_time "
            f"ELSE translate(l.created_time, '{nd}', '{ascii_digits}') END")


# Materialising the unnested leads first is several times faster than one streaming statement: DuckDB otherwise
# re-evaluates the JSON read under every expression that touches the struct. Insertion order is kept, so ``rowid``
# is the order of the leads in the file ("first occurrence wins"). ``txt``: the text of a lead that is not an object.
UNNEST = f"""
CREATE TEMP TABLE raw AS
SELECT unnest(data) AS l, NULL::VARCHAR AS txt
FROM read_json(?, records = true, format = 'newline_delimited', columns = {{'data': '{LEAD_STRUCT}[]', 'paging': 'JSON'}})
"""

UNNEST_LENIENT = f"""
CREATE TEMP TABLE raw AS
SELECT CASE WHEN json_type(j) = 'OBJECT' THEN json_transform(j, '{LEAD_STRUCTURE}') END::{LEAD_STRUCT} AS l,
       CASE WHEN json_type(j) IS DISTINCT FROM 'OBJECT' THEN coalesce(CAST(j AS VARCHAR), 'null') END AS txt
FROM (SELECT unnest(data) AS j
      FROM read_json(?, records = true, format = 'newline_delimited', columns = {{'data': 'JSON[]', 'paging': 'JSON'}}))
"""

_OTHER_ANSWERS = ("list_filter(l.field_data, lambda f: f.name NOT IN ("
                  + ", ".join(_name(n) for n in _COLUMN_QUESTIONS) + "))")

# One pass over the leads: every output column computed from the struct (the struct itself is not carried on), then
# the dedupe on the narrow result. ``names``: the answers' names, looked up by ``list_position`` (see ``_at``).
LOAD = f"""
CREATE TEMP TABLE staged AS
WITH named AS (
    SELECT rowid AS ord, l, txt, list_transform(l.field_data, lambda f: f.name) AS names FROM raw
),
flat AS (
    SELECT ord, l, txt, names, json_type(l.id) AS id_type, l.id ->> '$' AS id_text, {_created_text()} AS ct,
           lower(trim({_first('email', 'work_email')})) AS email1,
           {_first('phone_number', 'work_phone_number')} AS phone1
    FROM named
),
checked AS (
    SELECT *,
           -- The common case: the first answer is an address (a number) as typed. Else every value of the e-mail
           -- (phone) questions in order, the first one that is (after repairs) an address (a number).
           CASE WHEN email_ok(email1) THEN email1
                ELSE list_filter(list_transform({_values('email', 'work_email')}, lambda v: email_norm(v)),
                                 lambda e: e IS NOT NULL)[1]
           END AS email,
           trim(CASE WHEN phone_ok(phone1) THEN phone1
                     ELSE list_filter({_values('phone_number', 'work_phone_number')}, lambda v: phone_ok(v))[1]
                END) AS phone,
           id_type = 'VARCHAR' AND regexp_full_match(id_text, '[0-9]+') AS digit_id,
           CASE WHEN regexp_full_match(ct, '{_ISO}') THEN TRY_CAST(ct AS TIMESTAMPTZ) END AS ts
    FROM flat
),
judged AS (
    SELECT *,
           CASE WHEN l IS NULL THEN 'bad_field_data'
                WHEN id_type IS NULL OR id_type = 'NULL' OR (id_type = 'VARCHAR' AND id_text = '') THEN 'missing_id'
                WHEN NOT digit_id THEN 'bad_id'
                WHEN ts IS NULL OR NOT ts BETWEEN TIMESTAMPTZ '0001-01-01 00:00:00+00'
                                             AND TIMESTAMPTZ '9999-12-31 23:59:59.999999+00' THEN 'bad_created_time'
                WHEN l.field_data IS NULL
                     OR NOT list_bool_and(list_transform(l.field_data, lambda f:  -- a JSON string starts with "
                            coalesce(starts_with(f.name, '"') AND f."values" IS NOT NULL, false))) THEN 'bad_field_data'
           END AS reason
    FROM checked
)
SELECT ord, reason,
       CASE WHEN digit_id THEN id_text
            ELSE 'md5:' || md5(coalesce(txt, CAST(to_json(l) AS VARCHAR), 'null')) END AS key,
       -- a reject: the id as sent (a bad one too, as Python's str() writes it, up to 200 characters), none for a
       -- missing one or a record that is not an object; its payload
       CASE WHEN reason IS NULL THEN id_text
            WHEN l IS NULL OR reason = 'missing_id' THEN NULL
            WHEN id_type = 'VARCHAR' THEN left(id_text, 200)
            WHEN id_type = 'BOOLEAN' THEN CASE WHEN id_text = 'true' THEN 'True' ELSE 'False' END
            WHEN id_type IN ('BIGINT', 'UBIGINT', 'HUGEINT', 'DOUBLE') THEN left(id_text, 200)
       END AS meta_lead_id,
       CASE WHEN reason IS NOT NULL THEN coalesce(txt, CAST(to_json(l) AS VARCHAR), 'null') END AS payload,
       l.form_id, l.ad_id, l.ad_name, l.adset_id, l.adset_name, l.campaign_id, l.campaign_name, ts AS created_time,
       l.is_organic, l.platform,
       COALESCE({_answer('full_name')}, NULLIF(concat_ws(' ', {_answer('first_name')}, {_answer('last_name')}), ''))
           AS full_name,
       {_answer('first_name')} AS first_name, {_answer('last_name')} AS last_name, email, phone,
       {_answer('city')} AS city, {_answer('country')} AS country,
       CASE WHEN reason IS NULL THEN
           '{{' || array_to_string(list_transform({_OTHER_ANSWERS},
                                                  lambda f: f.name || ':' || CAST(to_json(f."values") AS VARCHAR)), ',')
           || '}}' END AS custom_fields,
       COALESCE(l.custom_disclaimer_responses, '[]') AS disclaimer_responses,
       CASE WHEN reason IS NULL AND email IS NULL
            THEN list_filter({_values('email', 'work_email')}, lambda v: typed(v))[1] END AS email_raw,
       CASE WHEN reason IS NULL AND phone IS NULL
            THEN list_filter({_values('phone_number', 'work_phone_number')}, lambda v: typed(v))[1] END AS phone_raw
FROM judged
"""

# The first occurrence of each key (insertion order is kept, so ``ord`` is the order in the file): a hash
# aggregate over the narrow staged rows.
FIRSTS = "CREATE TEMP TABLE firsts AS SELECT min(ord) AS ord FROM staged GROUP BY key"

STORE_LEADS = """
INSERT OR REPLACE INTO leads
SELECT meta_lead_id, ?, form_id, ad_id, ad_name, adset_id, adset_name, campaign_id, campaign_name, created_time,
       is_organic, platform, full_name, first_name, last_name, email, phone, city, country, custom_fields,
       disclaimer_responses, email_raw, phone_raw,
       CASE WHEN email IS NULL AND phone IS NULL THEN 'rejected' ELSE 'new' END,
       CASE WHEN email IS NULL AND phone IS NULL THEN 'no valid contact' END
FROM staged SEMI JOIN firsts USING (ord) WHERE reason IS NULL
"""

STORE_REJECTS = """
INSERT OR REPLACE INTO rejected_leads
SELECT key, meta_lead_id, reason, payload FROM staged SEMI JOIN firsts USING (ord) WHERE reason IS NOT NULL
"""


RAW_SCHEMA = """
CREATE TABLE raw_leads (
    distributor VARCHAR NOT NULL, raw_key VARCHAR NOT NULL, payload JSON USING COMPRESSION zstd,
    PRIMARY KEY (distributor, raw_key)
)
"""
# The leads' JSON text, in the file's order (rowid = ``ord`` of ``raw``).
RAW_TEXT = """
CREATE TEMP TABLE raw_text AS
SELECT unnest(data) AS j
FROM read_json(?, records = true, format = 'newline_delimited', columns = {'data': 'JSON[]', 'paging': 'JSON'})
"""
STORE_RAW = """
INSERT INTO raw_leads
SELECT ?, key, t.j FROM staged SEMI JOIN firsts USING (ord) JOIN raw_text t ON t.rowid = staged.ord
"""


def run(pages_path: str, db_path: str, distributor: str = "bench", keep_payload: bool = False,
        memory_limit: str | None = None) -> dict:
    import duckdb

    t0 = time.perf_counter()
    con = duckdb.connect(db_path, config={"memory_limit": memory_limit} if memory_limit else {})
    con.execute("SET TimeZone = 'UTC'")
    con.execute(SCHEMA)
    if keep_payload:
        con.execute(RAW_SCHEMA)
    con.execute(MACROS)
    con.execute("BEGIN")
    lenient = False
    try:
        con.execute(UNNEST, [pages_path])
    except duckdb.InvalidInputException:  # a record the typed read cannot take: read every lead as JSON
        con.execute("ROLLBACK")
        con.execute("BEGIN")
        con.execute(UNNEST_LENIENT, [pages_path])
        lenient = True
    if keep_payload:
        con.execute(RAW_TEXT, [pages_path])
    con.execute(LOAD)
    con.execute(FIRSTS)
    con.execute(STORE_LEADS, [distributor])
    con.execute(STORE_REJECTS)
    if keep_payload:
        con.execute(STORE_RAW, [distributor])
    con.execute("COMMIT")
    stored = con.execute("SELECT count(*) FROM leads").fetchone()[0]
    rejected = con.execute("SELECT count(*) FROM rejected_leads").fetchone()[0]
    out = {"stored": stored, "rejected": rejected, "lenient_read": lenient}
    if keep_payload:
        out["raw_kept"] = con.execute("SELECT count(*) FROM raw_leads").fetchone()[0]
    con.close()
    return {**out, "seconds_in_process": round(time.perf_counter() - t0, 3)}


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(prog="python -m benchmarks.baseline_duckdb")
    parser.add_argument("pages")
    parser.add_argument("db")
    parser.add_argument("--keep-payload", action="store_true")
    parser.add_argument("--memory-limit")
    args = parser.parse_args()
    print(json.dumps(run(args.pages, args.db, keep_payload=args.keep_payload, memory_limit=args.memory_limit)))
