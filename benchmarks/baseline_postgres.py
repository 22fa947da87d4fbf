"""PostgreSQL SQL-only baseline, own process: ``COPY`` the pages in, then flatten / validate / dedupe /
``INSERT … ON CONFLICT`` in SQL (the anchors' "PostgreSQL, SQL only" row). Same rules as the DuckDB baseline
(docs/lead-validation.md, "leads, not rejects"): only a record that cannot be a lead is quarantined — not an object
or ``field_data`` not a list of ``{"name": str, "values": list}`` (``bad_field_data``), no id (``missing_id``), an id
that is not a JSON string of digits (``bad_id``), a ``created_time`` that is not ISO-8601 with an offset or no such
instant (``bad_created_time``); every other record is a lead, stored with status ``rejected`` / ``no valid contact``
when no e-mail answer is an address (typing slips repaired) and no phone answer has 8 digits or more (the simple phone
rule of the DuckDB baseline: no E.164, no ``phonenumbers``).

    python -m benchmarks.baseline_postgres PAGES.jsonl POSTGRES_URL      # the URL's search_path: a fresh schema
"""

from __future__ import annotations

import json
import re
import sys
import time
import unicodedata

SCHEMA = """
CREATE TABLE leads (
    meta_lead_id TEXT PRIMARY KEY, distributor TEXT NOT NULL, form_id TEXT, ad_id TEXT, ad_name TEXT, adset_id TEXT,
    adset_name TEXT, campaign_id TEXT, campaign_name TEXT, created_time TIMESTAMPTZ NOT NULL, is_organic BOOLEAN,
    platform TEXT, full_name TEXT, first_name TEXT, last_name TEXT, email TEXT, phone TEXT, city TEXT, country TEXT,
    custom_fields JSONB, disclaimer_responses JSONB, email_raw TEXT, phone_raw TEXT, status TEXT NOT NULL,
    status_reason TEXT
);
CREATE TABLE rejected_leads (reject_key TEXT PRIMARY KEY, meta_lead_id TEXT, reason TEXT NOT NULL, payload JSONB);
CREATE UNLOGGED TABLE pages (page_no BIGSERIAL, doc JSONB);
"""

# What Python's str.strip() / str.split() take for whitespace, and every digit Python's \d takes (all of Unicode's
# Nd is below U+20000) with its ASCII digit: the parser's e-mail repairs and ISO expression use them.
_WS = "".join(c for c in map(chr, range(0x3001)) if c.isspace())
_ND = "".join(re.findall(r"\d", "".join(map(chr, range(0x20000)))))
_ND_ASCII = "".join(str(unicodedata.decimal(c)) for c in _ND)
# A character of an address: ASCII, neither "@" nor whitespace (Python's ASCII \s: space, \t \n \v \f \r).
_EMAIL_CHAR = r"[\x01-\x08\x0e-\x1f\x21-\x3f\x41-\x7f]"

# An e-mail answer → the address (trimmed, lower-cased; typing slips repaired: whitespace inside removed, a run of
# "@" made one, commas in the domain made dots), else NULL. pg_temp: the functions go with the session.
FUNCTIONS = f"""
CREATE FUNCTION pg_temp.email_ok(t text) RETURNS boolean LANGUAGE sql IMMUTABLE AS
$$ SELECT t ~ '^{_EMAIL_CHAR}+@{_EMAIL_CHAR}+\\.{_EMAIL_CHAR}+$' $$;
CREATE FUNCTION pg_temp.email_fix(r text) RETURNS text LANGUAGE sql IMMUTABLE AS
$$ SELECT CASE WHEN pg_temp.email_ok(x) THEN x END
   FROM (SELECT CASE WHEN strpos(r, '@') > 0
                     THEN left(r, strpos(r, '@') - 1) || replace(substr(r, strpos(r, '@')), ',', '.')
                     ELSE r END) AS s(x) $$;
CREATE FUNCTION pg_temp.email_norm(s text) RETURNS text LANGUAGE sql IMMUTABLE AS
$$ SELECT CASE WHEN t = '' THEN NULL WHEN pg_temp.email_ok(t) THEN t
               ELSE pg_temp.email_fix(regexp_replace(regexp_replace(t, '[{_WS}]+', '', 'g'), '@{{2,}}', '@', 'g')) END
   FROM (SELECT lower(btrim(s, '{_WS}'))) AS x(t) $$;
CREATE FUNCTION pg_temp.phone_ok(v text) RETURNS boolean LANGUAGE sql IMMUTABLE AS
$$ SELECT length(regexp_replace(v, '[^0-9]', '', 'g')) >= 8 $$;
"""


def _answer(*names: str) -> str:
    parts = [f"ans->'{n}'->>0" for n in names]
    return parts[0] if len(parts) == 1 else f"COALESCE({', '.join(parts)})"


_COLUMNS = "ARRAY['email', 'work_email', 'phone_number', 'work_phone_number', 'full_name', 'first_name', " \
           "'last_name', 'city', 'country']"

# created_time: ISO-8601 with an offset (hours 00-23, minutes and seconds 00-59, offset up to ±23:59), a date that
# exists, an instant within years 1-9999 once in UTC (PostgreSQL's own cast takes offsets up to 15:59 only, and
# rounds fractions the parser truncates, so the instant is computed here). Non-ASCII digits are read as digits.
_ISO = (r"^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]+)?"
        r"(Z|[+-]([01][0-9]|2[0-3]):?[0-5][0-9])$")

LOAD = f"""
CREATE TEMP TABLE staged AS
WITH raw AS (
    SELECT p.page_no * 1000 + e.i AS ord, e.l
    FROM pages p, jsonb_array_elements(p.doc->'data') WITH ORDINALITY AS e(l, i)
),
flat AS (
    SELECT ord, l, jsonb_typeof(l) = 'object' AS is_obj, jsonb_typeof(l->'id') AS id_type, l->>'id' AS id_text,
           CASE WHEN jsonb_typeof(l->'created_time') <> 'string' THEN NULL
                WHEN octet_length(l->>'created_time') = char_length(l->>'created_time') THEN l->>'created_time'
                ELSE translate(l->>'created_time', '{_ND}', '{_ND_ASCII}') END AS ct,
           coalesce(jsonb_typeof(l->'field_data') = 'array', false) AS fd_list, a.ans, coalesce(a.fd_ok, true) AS fd_ok,
           a.email1, a.phone1
    FROM raw
    LEFT JOIN LATERAL (
        SELECT jsonb_object_agg(f->>'name', f->'values') FILTER (WHERE jsonb_typeof(f->'name') = 'string') AS ans,
               bool_and(jsonb_typeof(f) = 'object' AND coalesce(jsonb_typeof(f->'name'), '') = 'string'
                        AND coalesce(jsonb_typeof(f->'values'), '') = 'array') AS fd_ok,
               -- the first value of the first e-mail (phone) answer: the parser's first candidate
               coalesce((array_agg(f) FILTER (WHERE f->>'name' = 'email'))[1],
                        (array_agg(f) FILTER (WHERE f->>'name' = 'work_email'))[1])->'values'->0 AS email1,
               coalesce((array_agg(f) FILTER (WHERE f->>'name' = 'phone_number'))[1],
                        (array_agg(f) FILTER (WHERE f->>'name' = 'work_phone_number'))[1])->'values'->0 AS phone1
        FROM jsonb_array_elements(CASE WHEN jsonb_typeof(l->'field_data') = 'array' THEN l->'field_data' END) f
    ) a ON true
),
checked AS (
    SELECT *,
           coalesce(id_type = 'string' AND id_text ~ '^[0-9]+$', false) AS digit_id,
           CASE WHEN ct IS NULL OR ct !~ '{_ISO}' THEN NULL
                WHEN substr(ct, 1, 4) = '0000'  -- a date that exists (the expression bounds the day to 01-31)
                     OR substr(ct, 9, 2)::int > CASE WHEN substr(ct, 6, 2) IN ('04', '06', '09', '11') THEN 30
                                                     WHEN substr(ct, 6, 2) <> '02' THEN 31
                                                     WHEN substr(ct, 1, 4)::int % 4 = 0
                                                          AND (substr(ct, 1, 4)::int % 100 <> 0
                                                               OR substr(ct, 1, 4)::int % 400 = 0) THEN 29
                                                     ELSE 28 END THEN NULL
                ELSE (substr(ct, 1, 19) || coalesce(left(substring(ct FROM '\\.[0-9]+'), 7), ''))::timestamp
                     - CASE WHEN right(ct, 1) = 'Z' THEN interval '0'
                            ELSE make_interval(mins => (substring(ct FROM '([+-])[0-9]{{2}}:?[0-9]{{2}}$') || '1')::int
                                                      * (substring(ct FROM '([0-9]{{2}}):?[0-9]{{2}}$')::int * 60
                                                         + right(ct, 2)::int)) END
           END AS ts_utc
    FROM flat
),
judged AS (
    SELECT *,
           CASE WHEN NOT is_obj THEN 'bad_field_data'
                WHEN id_type IS NULL OR id_type = 'null' OR (id_type = 'string' AND id_text = '') THEN 'missing_id'
                WHEN NOT digit_id THEN 'bad_id'
                WHEN ts_utc IS NULL OR ts_utc < '0001-01-01' OR ts_utc >= '10000-01-01' THEN 'bad_created_time'
                WHEN NOT fd_list OR NOT fd_ok THEN 'bad_field_data'
           END AS reason,
           CASE WHEN digit_id THEN id_text ELSE 'md5:' || md5(l::text) END AS key
    FROM checked
)
SELECT DISTINCT ON (key) ord, l, ans, id_type, id_text, ts_utc, email1, phone1, reason, key
FROM judged ORDER BY key, ord
"""


def _candidates(expr: str, *names: str) -> str:
    """The first non-NULL ``expr`` of a value ``v`` (a JSON string) of the answers among ``names``, in that order of
    preference and in answer order: the parser's candidates, for a lead whose ``field_data`` is well-formed."""
    order = "CASE f->>'name' " + " ".join(f"WHEN '{n}' THEN {i}" for i, n in enumerate(names)) + " END"
    return (f"(SELECT c FROM (SELECT {expr} AS c, {order} AS k, n, m "
            f"FROM jsonb_array_elements(l->'field_data') WITH ORDINALITY AS fe(f, n), "
            f"jsonb_array_elements(f->'values') WITH ORDINALITY AS ve(v, m) "
            f"WHERE f->>'name' IN ({', '.join(repr(n) for n in names)}) AND jsonb_typeof(v) = 'string') AS cs "
            f"WHERE c IS NOT NULL ORDER BY k, n, m LIMIT 1)")


_EMAIL1 = "lower(btrim(email1 #>> '{}'))"
_PHONE1 = "phone1 #>> '{}'"
_TYPED = f"CASE WHEN btrim(v #>> '{{}}', '{_WS}') <> '' THEN v #>> '{{}}' END"  # a value as typed, if not blank
_EMAIL_SLOW = _candidates("pg_temp.email_norm(v #>> '{}')", "email", "work_email")
_PHONE_SLOW = _candidates("CASE WHEN pg_temp.phone_ok(v #>> '{}') THEN v #>> '{}' END", "phone_number",
                          "work_phone_number")

STORE_LEADS = f"""
INSERT INTO leads
SELECT id_text, %s, l->>'form_id', l->>'ad_id', l->>'ad_name', l->>'adset_id', l->>'adset_name', l->>'campaign_id',
       l->>'campaign_name', ts_utc AT TIME ZONE 'UTC', (l->>'is_organic')::boolean, l->>'platform',
       COALESCE({_answer('full_name')}, NULLIF(concat_ws(' ', {_answer('first_name')}, {_answer('last_name')}), '')),
       {_answer('first_name')}, {_answer('last_name')}, email, phone, {_answer('city')}, {_answer('country')},
       COALESCE(ans, '{{}}') - {_COLUMNS}, COALESCE(l->'custom_disclaimer_responses', '[]'),
       CASE WHEN email IS NULL THEN {_candidates(_TYPED, 'email', 'work_email')} END,
       CASE WHEN phone IS NULL THEN {_candidates(_TYPED, 'phone_number', 'work_phone_number')} END,
       CASE WHEN email IS NULL AND phone IS NULL THEN 'rejected' ELSE 'new' END,
       CASE WHEN email IS NULL AND phone IS NULL THEN 'no valid contact' END
FROM (
    SELECT *,
           -- The common case: the first answer is an address (a number) as typed. Else every value of the e-mail
           -- (phone) questions in order, the first one that is (after repairs) an address (a number).
           CASE WHEN jsonb_typeof(email1) = 'string' AND pg_temp.email_ok({_EMAIL1}) THEN {_EMAIL1}
                ELSE {_EMAIL_SLOW} END AS email,
           btrim(CASE WHEN jsonb_typeof(phone1) = 'string' AND pg_temp.phone_ok({_PHONE1}) THEN {_PHONE1}
                      ELSE {_PHONE_SLOW} END) AS phone
    FROM staged WHERE reason IS NULL
    OFFSET 0  -- computed once per lead, not once per use above
) s
ON CONFLICT (meta_lead_id) DO UPDATE SET email = excluded.email, phone = excluded.phone
"""

# meta_lead_id of a reject: the id as sent (a bad one too, as Python's str() writes it, up to 200 characters), none
# for a missing one or a record that is not an object.
STORE_REJECTS = """
INSERT INTO rejected_leads
SELECT key,
       CASE WHEN reason = 'missing_id' OR jsonb_typeof(l) <> 'object' THEN NULL
            WHEN id_type IN ('string', 'number') THEN left(id_text, 200)
            WHEN id_type = 'boolean' THEN CASE WHEN id_text = 'true' THEN 'True' ELSE 'False' END
       END,
       reason, l
FROM staged WHERE reason IS NOT NULL
ON CONFLICT (reject_key) DO UPDATE SET reason = excluded.reason
"""


def run(pages_path: str, url: str, distributor: str = "bench") -> dict:
    import psycopg

    t0 = time.perf_counter()
    with psycopg.connect(url) as conn:
        conn.execute("SET TIME ZONE 'UTC'")
        conn.execute("SET work_mem = '512MB'")  # the dedupe sorts in memory rather than on disk
        conn.execute(SCHEMA)
        conn.execute(FUNCTIONS)
        with conn.cursor() as cur, cur.copy("COPY pages (doc) FROM STDIN") as copy, open(pages_path, "rb") as f:
            for line in f:
                copy.write_row((line.decode(),))
        conn.execute(LOAD)
        conn.execute(STORE_LEADS, [distributor])
        conn.execute(STORE_REJECTS)
        conn.commit()
        stored = conn.execute("SELECT count(*) FROM leads").fetchone()[0]
        rejected = conn.execute("SELECT count(*) FROM rejected_leads").fetchone()[0]
    return {"stored": stored, "rejected": rejected, "seconds_in_process": round(time.perf_counter() - t0, 3)}


if __name__ == "__main__":
    print(json.dumps(run(sys.argv[1], sys.argv[2])))
