"""PostgreSQL SQL-only baseline, own process: ``COPY`` the pages in, then flatten / validate / dedupe /
``INSERT … ON CONFLICT`` in SQL (the anchors' "PostgreSQL, SQL only" row). Same rules as the DuckDB baseline.

    python -m benchmarks.baseline_postgres PAGES.jsonl POSTGRES_URL      # the URL's search_path: a fresh schema
"""

from __future__ import annotations

import json
import sys
import time

SCHEMA = """
CREATE TABLE leads (
    meta_lead_id TEXT PRIMARY KEY, distributor TEXT NOT NULL, form_id TEXT, ad_id TEXT, ad_name TEXT, adset_id TEXT,
    adset_name TEXT, campaign_id TEXT, campaign_name TEXT, created_time TIMESTAMPTZ NOT NULL, is_organic BOOLEAN,
    platform TEXT, full_name TEXT, first_name TEXT, last_name TEXT, email TEXT, phone TEXT, city TEXT, country TEXT,
    custom_fields JSONB, disclaimer_responses JSONB
);
CREATE TABLE rejected_leads (reject_key TEXT PRIMARY KEY, meta_lead_id TEXT, reason TEXT NOT NULL, payload JSONB);
CREATE UNLOGGED TABLE pages (page_no BIGSERIAL, doc JSONB);
"""


def _answer(*names: str) -> str:
    parts = [f"ans->'{n}'->>0" for n in names]
    return parts[0] if len(parts) == 1 else f"COALESCE({', '.join(parts)})"


_COLUMNS = "ARRAY['email', 'work_email', 'phone_number', 'work_phone_number', 'full_name', 'first_name', " \
           "'last_name', 'city', 'country']"

LOAD = f"""
CREATE TEMP TABLE staged AS
WITH raw AS (
    SELECT p.page_no * 1000 + e.i AS ord, e.l
    FROM pages p, jsonb_array_elements(p.doc->'data') WITH ORDINALITY AS e(l, i)
),
flat AS (
    SELECT ord, l, l->>'id' AS id, l->>'created_time' AS created_time,
           CASE WHEN jsonb_typeof(l->'field_data') = 'array' THEN
               (SELECT jsonb_object_agg(f->>'name', f->'values') FROM jsonb_array_elements(l->'field_data') f) END AS ans
    FROM raw
),
checked AS (
    SELECT *,
           CASE WHEN lower(btrim({_answer('email', 'work_email')})) ~ '^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$'
                     AND {_answer('email', 'work_email')} !~ '[^\\x01-\\x7F]'
                THEN lower(btrim({_answer('email', 'work_email')})) END AS email,
           CASE WHEN length(regexp_replace({_answer('phone_number', 'work_phone_number')}, '[^0-9]', '', 'g')) >= 8
                THEN btrim({_answer('phone_number', 'work_phone_number')}) END AS phone,
           coalesce(l->>'id', '') ~ '^[0-9]+$' AND jsonb_typeof(l->'id') = 'string' AS digit_id
    FROM flat
),
judged AS (
    SELECT *,
           CASE WHEN id IS NULL OR id = '' THEN 'missing_id'
                WHEN NOT digit_id THEN 'bad_id'
                WHEN created_time IS NULL OR created_time !~
                     '^\\d{{4}}-\\d{{2}}-\\d{{2}}T\\d{{2}}:\\d{{2}}:\\d{{2}}(\\.\\d+)?(Z|[+-]\\d{{2}}:?\\d{{2}})$'
                     THEN 'bad_created_time'
                WHEN jsonb_typeof(l->'field_data') IS DISTINCT FROM 'array' THEN 'bad_field_data'
                WHEN email IS NULL AND phone IS NULL THEN 'no_contact'
           END AS reason,
           CASE WHEN digit_id THEN id ELSE 'md5:' || md5(l::text) END AS key
    FROM checked
)
SELECT DISTINCT ON (key) * FROM judged ORDER BY key, ord
"""

STORE_LEADS = f"""
INSERT INTO leads
SELECT id, %s, l->>'form_id', l->>'ad_id', l->>'ad_name', l->>'adset_id', l->>'adset_name', l->>'campaign_id',
       l->>'campaign_name', CAST(created_time AS TIMESTAMPTZ), (l->>'is_organic')::boolean, l->>'platform',
       COALESCE({_answer('full_name')}, NULLIF(concat_ws(' ', {_answer('first_name')}, {_answer('last_name')}), '')),
       {_answer('first_name')}, {_answer('last_name')}, email, phone, {_answer('city')}, {_answer('country')},
       COALESCE(ans, '{{}}') - {_COLUMNS}, COALESCE(l->'custom_disclaimer_responses', '[]')
FROM staged WHERE reason IS NULL
ON CONFLICT (meta_lead_id) DO UPDATE SET email = excluded.email, phone = excluded.phone
"""

STORE_REJECTS = """
INSERT INTO rejected_leads
SELECT key, CASE WHEN reason <> 'missing_id' THEN id END, reason, l FROM staged WHERE reason IS NOT NULL
ON CONFLICT (reject_key) DO UPDATE SET reason = excluded.reason
"""


def run(pages_path: str, url: str, distributor: str = "bench") -> dict:
    import psycopg

    t0 = time.perf_counter()
    with psycopg.connect(url) as conn:
        conn.execute("SET TIME ZONE 'UTC'")
        conn.execute("SET work_mem = '512MB'")  # the dedupe sorts in memory rather than on disk
        conn.execute(SCHEMA)
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
