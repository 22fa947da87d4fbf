"""``python -m benchmarks --quick --skip-dlt`` runs end to end and reports every part, with equal results across
approaches (the full run is ``make bench``; see docs/performance.md)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.timeout(180)
def test_quick_benchmark_report(tmp_path):
    out = tmp_path / "report.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEADS_") or k == "LEADS_TEST_POSTGRES_URL"}
    env["LEADS_BENCH_CACHE"] = str(tmp_path / "cache")
    proc = subprocess.run([sys.executable, "-m", "benchmarks", "--quick", "--skip-dlt", "--out", str(out)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=170)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())
    printed, end = json.JSONDecoder().raw_decode(proc.stdout)
    assert printed == report
    table = proc.stdout[end:]  # then every target as a row of the table, measured beside its target
    for name in report["targets"]:
        assert name in table, name
    for key in ("machine", "settings", "data", "p1_bulk", "p1_postgres", "p2_incremental", "p3_marts", "p5_graph",
                "p6_overhead", "p7_sync", "simulator", "webhooks", "equality", "targets", "all_equal"):
        assert key in report, key
    p1 = report["p1_bulk"]["2000"]
    for approach in ("ours", "sql_baseline"):
        assert p1[approach]["leads_per_s"] > 0 and p1[approach]["peak_rss_mb"] > 0
    assert report["equality"]["duckdb_2000"][0]["same_lead_ids"] is True
    assert report["equality"]["duckdb_2000"][0]["same_rejects"] is True
    kept = p1["sql_payload_kept"]["result"]  # the limit keeping every distinct lead's payload, within 1 GB
    assert kept["raw_kept"] == kept["stored"] + kept["rejected"] > 0
    assert report["equality"]["duckdb_2000"][1]["approaches"] == ["ours", "sql_payload_kept"]
    assert report["equality"]["duckdb_2000"][1]["same_lead_ids"] is True
    assert p1["sql_payload_kept_vs_sql"] > 0 and "sql_payload_kept_vs_sql" in report["targets"]
    assert report["all_equal"] is True
    assert report["p2_incremental"]["duckdb"]["ratio_large_to_small"] > 0
    assert report["p3_marts"]["ours_s"] > 0 and report["p3_marts"]["bare_sql_s"] > 0
    graph = report["p5_graph"]
    assert graph["efficiency"]["wasted_requests"] == 0 and graph["efficiency"]["all_synced"] is True
    assert graph["throttling"]["honoured"] is True
    assert set(report["targets"]) >= {"duckdb_vs_sql_at_largest", "duckdb_vs_dlt", "peak_rss_mb_at_1m",
                                      "postgres_vs_sql", "p2_ratio", "p3_ratio", "p4_sensor_p95_s", "p5_wasted_requests",
                                      "p6_run_overhead_s", "p6_help_s", "p6_stats_s", "p7_ratio"}
    p7 = report["p7_sync"]  # the same leads land, at a measured share of what the bare client gets
    assert p7["same_leads"] is True and p7["ratio"] > 0, p7
    cli = report["p6_overhead"]["cli"]
    assert cli["help"]["median_s"] > 0 and cli["stats"]["median_s"] > 0, cli
