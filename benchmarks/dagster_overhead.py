"""P6, own process: the fixed cost of one sync as a Dagster run, and the CLI's start-up.

**Run overhead.** A simulated world of one Page, one form, 60 leads (one Graph page). In the same process, side by
side: ``sync_distributor`` called directly on one fresh warehouse (the sync's own work), and ``sync_job`` of the
project's definitions run with ``execute_in_process`` (the in-process executor, the local instance of a fresh
DAGSTER_HOME with the project's dagster.yaml) on another. Overhead = run − sync. Loading the definitions is
reported apart (a long-lived process — the daemon's code server — pays it once). The run launched by the daemon
(a new process per run) is measured in P4's sensor mode (``benchmarks.webhooks_daemon``).

**CLI start-up.** ``leads-pipeline --help`` and ``leads-pipeline stats`` (on a migrated DuckDB warehouse), wall time
of the whole process, median of several; beside them ``python -c pass`` and a bare DuckDB process that opens the file
and counts leads by status (the floor for ``stats``).

    python -m benchmarks.dagster_overhead [RUNS] [--cli-only]
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _timed(cmd: list[str], env: dict, runs: int) -> dict:
    walls = []
    for _ in range(runs):
        t = time.perf_counter()
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=str(ROOT))
        walls.append(time.perf_counter() - t)
        if proc.returncode != 0:
            return {"error": (proc.stderr or proc.stdout)[-1000:]}
    return {"median_s": round(statistics.median(walls), 3), "min_s": round(min(walls), 3),
            "runs": [round(w, 3) for w in walls]}


def cli_startup(runs: int = 7) -> dict:
    from leads_pipeline.lib.warehouse import Warehouse

    with tempfile.TemporaryDirectory(prefix="bench-cli-") as tmp:
        db = Path(tmp) / "cli.duckdb"
        Warehouse(f"duckdb:///{db}").migrate()
        env = {**os.environ, "LEADS_WAREHOUSE_URL": f"duckdb:///{db}", "LEADS_DATA_DIR": tmp}
        script = str(Path(sys.executable).with_name("leads-pipeline"))
        bare = ("import duckdb; c = duckdb.connect(%r, read_only=True); "
                "c.execute('SELECT status, count(*) FROM leads GROUP BY 1').fetchall()" % str(db))
        out = {
            "python_pass": _timed([sys.executable, "-c", "pass"], env, runs),
            "help": _timed([script, "--help"], env, runs),
            "stats": _timed([script, "stats"], env, runs),
            "bare_duckdb_count": _timed([sys.executable, "-c", bare], env, runs),
        }
    out["target_s"] = 0.3
    out["help_met"] = out["help"].get("median_s", 99) <= 0.3
    out["stats_met"] = out["stats"].get("median_s", 99) <= 0.3
    return out


def run_overhead() -> dict:
    """In this process: one-page sync bare vs as a Dagster run (execute_in_process)."""
    import logging

    logging.disable(logging.WARNING)
    from leads_pipeline.lib.distributors import registry as distributors
    from leads_pipeline.lib.ingest import sync
    from leads_pipeline.lib.security import generate_key
    from leads_pipeline.lib.warehouse import Warehouse
    from leads_pipeline.settings import get_settings
    from leads_pipeline.simulator import Scenario, SimulatorServer

    tmp = Path(tempfile.mkdtemp(prefix="bench-p6-"))
    home = tmp / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text((ROOT / "leads_pipeline" / "deploy" / "dagster.local.yaml").read_text())
    scenario = Scenario(seed=5, pages=1, forms_per_page=1, leads_per_form=60, extra_leads=0)
    with SimulatorServer(scenario) as sim:
        manifest = sim.manifest()
        page = manifest["pages"][0]
        bare_url, run_url = f"duckdb:///{tmp / 'bare.duckdb'}", f"duckdb:///{tmp / 'run.duckdb'}"
        os.environ.update({"LEADS_GRAPH_BASE_URL": sim.base_url, "LEADS_SECRET_KEY": generate_key(),
                           "LEADS_DATA_DIR": str(tmp), "LEADS_WAREHOUSE_URL": run_url, "DAGSTER_HOME": str(home),
                           "LEADS_APP_SECRET": manifest["app_secret"], "DAGSTER_DISABLE_TELEMETRY": "1"})
        get_settings.cache_clear()
        keys = {}
        for url in (bare_url, run_url):
            wh = Warehouse(url)
            wh.migrate()
            keys[url] = distributors.add(wh, page["name"], page["access_token"], page_ids=[page["id"]],
                                         region=page["default_region"]).key
        t = time.perf_counter()
        bare = sync.sync_distributor(Warehouse(bare_url), keys[bare_url], trigger="bench")
        bare_s = time.perf_counter() - t

        t = time.perf_counter()
        import dagster as dg

        from leads_pipeline.definitions import defs

        definitions = defs()
        job = definitions.resolve_job_def("sync_job")
        load_s = time.perf_counter() - t
        with dg.DagsterInstance.get() as instance:
            instance.add_dynamic_partitions("distributors", [keys[run_url]])
            t = time.perf_counter()
            result = job.execute_in_process(partition_key=keys[run_url], instance=instance, raise_on_error=False,
                                            tags={"leads/trigger": "bench"})
            run_s = time.perf_counter() - t
        with Warehouse(run_url).transaction(read_only=True) as conn:
            stored = int(conn.scalar("SELECT count(*) FROM leads"))
    import shutil

    shutil.rmtree(tmp, ignore_errors=True)
    os.environ.pop("DAGSTER_HOME", None)
    return {"leads_in_page": bare.fetched, "bare_sync_s": round(bare_s, 3), "definitions_load_s": round(load_s, 3),
            "execute_in_process_s": round(run_s, 3), "run_success": result.success, "run_stored": stored,
            "bare_stored": bare.stored, "overhead_in_process_s": round(run_s - bare_s, 3), "target_s": 2.0,
            "met": result.success and run_s - bare_s <= 2.0}


if __name__ == "__main__":
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 7
    out = {"cli": cli_startup(runs)}
    out["run"] = {"skipped": "--cli-only"} if "--cli-only" in sys.argv else run_overhead()
    print(json.dumps(out))
