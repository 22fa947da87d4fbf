"""The DuckDB SQL-only baseline of the anchors file, run in its own process (the practical limit of DuckDB itself).

``read_json(records=true)`` → ``unnest`` → pivot ``field_data`` (full_name, email, phone_number as columns, every
other answer as one JSON column) → validate (the five reasons of docs/lead-validation.md, with SQL rules that reach
the parser's verdicts on the benchmark data: email ``local@domain.tld``; phone "at least 8 digits" — no E.164, no
``phonenumbers``) → dedupe by lead id (payload hash for a lead without a usable id), first occurrence wins →
``INSERT OR REPLACE`` into tables with a primary key.

    python -m benchmarks.baseline_duckdb PAGES.jsonl OUT.duckdb      # prints {"stored": …, "rejected": …, …}
"""

from __future__ import annotations

import json
import sys
import time

LEAD_STRUCT = (
    'STRUCT(id VARCHAR, created_time VARCHAR, ad_id VARCHAR, ad_name VARCHAR, adset_id VARCHAR, adset_name VARCHAR, '
    'campaign_id VARCHAR, campaign_name VARCHAR, form_id VARCHAR, is_organic BOOLEAN, platform VARCHAR, '
    'field_data STRUCT("name" VARCHAR, "values" VARCHAR[])[], custom_disclaimer_responses JSON)'
)

SCHEMA = """
CREATE TABLE leads (
    meta_lead_id VARCHAR PRIMARY KEY, distributor VARCHAR NOT NULL, form_id VARCHAR, ad_id VARCHAR, ad_name VARCHAR,
    adset_id VARCHAR, adset_name VARCHAR, campaign_id VARCHAR, campaign_name VARCHAR,
    created_time TIMESTAMPTZ NOT NULL, is_organic BOOLEAN, platform VARCHAR, full_name VARCHAR, first_name VARCHAR,
    last_name VARCHAR, email VARCHAR, phone VARCHAR, city VARCHAR, country VARCHAR, custom_fields JSON,
    disclaimer_responses JSON
);
CREATE TABLE rejected_leads (
    reject_key VARCHAR PRIMARY KEY, meta_lead_id VARCHAR, reason VARCHAR NOT NULL, payload JSON
);
"""


def _answer(*names: str) -> str:
    """First value of the first answer among ``names`` (in that order of preference)."""
    parts = [f"list_filter(l.field_data, lambda f: f.name = '{n}')[1].\"values\"[1]" for n in names]
    return parts[0] if len(parts) == 1 else f"COALESCE({', '.join(parts)})"


# Materialising the unnested leads first is several times faster than one streaming statement: DuckDB otherwise
# re-evaluates the JSON read under every expression that touches the struct. Insertion order is kept, so ``rowid``
# is the order of the leads in the file ("first occurrence wins").
UNNEST = f"""
CREATE TEMP TABLE raw AS
SELECT unnest(data) AS l
FROM read_json(?, records = true, format = 'newline_delimited', columns = {{'data': '{LEAD_STRUCT}[]', 'paging': 'JSON'}})
"""

LOAD = f"""
CREATE TEMP TABLE staged AS
WITH flat AS (
    SELECT rowid AS ord, l.id, l.created_time, l.field_data, l,
           trim({_answer('email', 'work_email')}) AS email_raw,
           {_answer('phone_number', 'work_phone_number')} AS phone_raw
    FROM raw
),
checked AS (
    SELECT *,
           CASE WHEN regexp_full_match(lower(email_raw), '[^@\\s]+@[^@\\s]+\\.[^@\\s]+')
                     AND NOT regexp_matches(email_raw, '[^\\x00-\\x7F]') THEN lower(email_raw) END AS email,
           CASE WHEN length(regexp_replace(phone_raw, '[^0-9]', '', 'g')) >= 8 THEN trim(phone_raw) END AS phone,
           regexp_full_match(coalesce(id, ''), '[0-9]+') AS digit_id
    FROM flat
),
judged AS (
    SELECT *,
           CASE WHEN id IS NULL OR id = '' THEN 'missing_id'
                WHEN NOT digit_id THEN 'bad_id'
                WHEN created_time IS NULL OR NOT regexp_full_match(created_time,
                     '\\d{{4}}-\\d{{2}}-\\d{{2}}T\\d{{2}}:\\d{{2}}:\\d{{2}}(\\.\\d+)?(Z|[+-]\\d{{2}}:?\\d{{2}})') THEN 'bad_created_time'
                WHEN field_data IS NULL THEN 'bad_field_data'
                WHEN email IS NULL AND phone IS NULL THEN 'no_contact'
           END AS reason
    FROM checked
)
SELECT * FROM (
    SELECT *, id AS key FROM judged WHERE digit_id
    UNION ALL
    SELECT *, 'md5:' || md5(CAST(to_json(l) AS VARCHAR)) AS key FROM judged WHERE NOT digit_id
)
QUALIFY row_number() OVER (PARTITION BY key ORDER BY ord) = 1
"""

STORE_LEADS = f"""
INSERT OR REPLACE INTO leads
SELECT id, ?, l.form_id, l.ad_id, l.ad_name, l.adset_id, l.adset_name, l.campaign_id, l.campaign_name,
       CAST(created_time AS TIMESTAMPTZ), l.is_organic, l.platform,
       COALESCE({_answer('full_name')}, NULLIF(concat_ws(' ', {_answer('first_name')}, {_answer('last_name')}), '')),
       {_answer('first_name')}, {_answer('last_name')}, email, phone, {_answer('city')}, {_answer('country')},
       to_json(map_from_entries(list_transform(
           list_filter(field_data, lambda f: f.name NOT IN ('email', 'work_email', 'phone_number', 'work_phone_number',
                                                             'full_name', 'first_name', 'last_name', 'city', 'country')),
           lambda f: {{'k': f.name, 'v': f."values"}}))),
       COALESCE(l.custom_disclaimer_responses, '[]')
FROM staged WHERE reason IS NULL
"""

STORE_REJECTS = """
INSERT OR REPLACE INTO rejected_leads
SELECT key, CASE WHEN reason <> 'missing_id' THEN id END, reason, to_json(l) FROM staged WHERE reason IS NOT NULL
"""


def run(pages_path: str, db_path: str, distributor: str = "bench") -> dict:
    import duckdb

    t0 = time.perf_counter()
    con = duckdb.connect(db_path)
    con.execute("SET TimeZone = 'UTC'")
    con.execute(SCHEMA)
    con.execute("BEGIN")
    con.execute(UNNEST, [pages_path])
    con.execute(LOAD)
    con.execute(STORE_LEADS, [distributor])
    con.execute(STORE_REJECTS)
    con.execute("COMMIT")
    stored = con.execute("SELECT count(*) FROM leads").fetchone()[0]
    rejected = con.execute("SELECT count(*) FROM rejected_leads").fetchone()[0]
    con.close()
    return {"stored": stored, "rejected": rejected, "seconds_in_process": round(time.perf_counter() - t0, 3)}


if __name__ == "__main__":
    print(json.dumps(run(sys.argv[1], sys.argv[2])))
