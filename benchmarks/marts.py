"""P3, own process: ``lead_stats`` + ``conversion_funnel`` refreshed by ``leads_pipeline.lib.marts.analytics`` over the
leads of a DuckDB warehouse plus synthetic interactions (status changes, calls/emails/SMS), against the same SQL
run bare on one open connection (no wrapper, no reopening). Median of several refreshes.

    python -m benchmarks.marts WAREHOUSE.duckdb INTERACTIONS [RUNS]
"""

from __future__ import annotations

import json
import statistics
import sys
import time

FILL = """
INSERT INTO lead_interactions (meta_lead_id, distributor, kind, actor, from_status, to_status, direction, outcome,
                               occurred_at, recorded_at)
SELECT meta_lead_id, distributor,
       CASE k % 4 WHEN 0 THEN 'status_change' WHEN 1 THEN 'call' WHEN 2 THEN 'email' ELSE 'sms' END,
       'bench',
       CASE WHEN k % 4 = 0 THEN CASE k % 3 WHEN 0 THEN 'new' WHEN 1 THEN 'assigned' ELSE 'contacted' END END,
       CASE WHEN k % 4 = 0 THEN CASE k % 3 WHEN 0 THEN 'assigned' WHEN 1 THEN 'contacted' ELSE 'converted' END END,
       CASE WHEN k % 4 <> 0 THEN CASE WHEN k % 5 = 0 THEN 'inbound' ELSE 'outbound' END END,
       NULL, created_time + INTERVAL (k * 7 + h % 600) MINUTE, CURRENT_TIMESTAMP
FROM (SELECT meta_lead_id, distributor, created_time, hash(meta_lead_id) AS h FROM leads) l,
     range(?) r(k)
WHERE k < ? OR h % ? = 0
"""

STATUSES = """
UPDATE leads SET status = CASE hash(meta_lead_id) % 10 WHEN 0 THEN 'converted' WHEN 1 THEN 'rejected'
                          WHEN 2 THEN 'contacted' WHEN 3 THEN 'assigned' ELSE status END
"""


def run(db_path: str, interactions: int, runs: int = 3) -> dict:
    import duckdb

    from leads_pipeline.lib.marts import analytics
    from leads_pipeline.lib.warehouse import Warehouse

    url = f"duckdb:///{db_path}"
    wh = Warehouse(url)
    with wh.transaction() as conn:
        leads = int(conn.scalar("SELECT count(*) FROM leads"))
        per_lead = max(1, interactions // max(leads, 1))
        extra = max(1, round(leads / max(interactions - per_lead * leads, 1)))
        conn.execute("DELETE FROM lead_interactions")
        conn.execute(FILL, [per_lead + 1, per_lead, extra])
        conn.execute(STATUSES)
        made = int(conn.scalar("SELECT count(*) FROM lead_interactions"))

    ours = []
    for _ in range(runs):
        t = time.perf_counter()
        analytics.refresh_lead_stats(wh)
        analytics.refresh_conversion_funnel(wh)
        ours.append(time.perf_counter() - t)
    con = duckdb.connect(db_path)
    con.execute("SET TimeZone = 'UTC'")
    bare = []
    for _ in range(runs):
        t = time.perf_counter()
        con.execute("BEGIN")
        con.execute("DELETE FROM lead_stats")
        con.execute(analytics.LEAD_STATS_SQL)
        con.execute("DELETE FROM conversion_funnel")
        con.execute(analytics.CONVERSION_FUNNEL_SQL)
        con.execute("COMMIT")
        bare.append(time.perf_counter() - t)
    funnel_rows = con.execute("SELECT count(*) FROM conversion_funnel").fetchone()[0]
    con.close()
    o, b = statistics.median(ours), statistics.median(bare)
    return {"leads": leads, "interactions": made, "funnel_rows": funnel_rows, "runs": runs,
            "ours_s": round(o, 3), "bare_sql_s": round(b, 3), "ratio_ours_to_bare": round(o / b, 2) if b else None}


if __name__ == "__main__":
    print(json.dumps(run(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]) if len(sys.argv) > 3 else 3)))
