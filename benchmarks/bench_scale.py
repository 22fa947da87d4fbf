"""Per-run overhead of a Dagster sync, and what batching saves (P6).

    python -m benchmarks.bench_scale                     # prints a JSON report
    python -m benchmarks.bench_scale --sizes 1 10 50 --single 3

Each measurement is one fresh ``dagster`` CLI process, as a run launched by the daemon is (Python start-up, code
load, run storage, executor), against the Graph API simulator (not real-time: the leads are all there) and a fresh
PostgreSQL schema:

- ``single``: ``dagster asset materialize --select raw_leads,leads,rejected_leads --partition KEY`` — the
  ``sync_job`` path (its one ``sync_leads`` step writes the three tables, so all three are selected), the
  multiprocess executor (one process per step), ``--single`` times on distributors not synced before;
- ``batch_N``: ``dagster job execute -j sync_batch_job`` over N distributors not synced before, in-process.

The report gives each wall time and a least-squares fit of batch wall time = overhead + N × per-distributor cost,
and the distributors one 2-core machine can keep on a 5-minute cadence by either path (3 runs at once, as
``dagster.local.yaml`` allows; CPU-bound, so the estimate uses one core's worth per concurrent run at most).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
POSTGRES_URL = os.environ.get("LEADS_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


def run(sizes: list[int], single: int = 3) -> dict:
    import psycopg

    from leads_pipeline.defs.ingestion.batch import batch_run_config
    from leads_pipeline.lib.distributors import registry
    from leads_pipeline.lib.security import generate_key
    from leads_pipeline.simulator import Scenario, SimulatorServer
    from leads_pipeline.lib.warehouse import Warehouse
    from leads_pipeline.settings import get_settings

    need = single + sum(sizes)
    schema = f"bench_scale_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    sep = "&" if "?" in POSTGRES_URL else "?"
    wh_url = f"{POSTGRES_URL}{sep}options=-csearch_path%3D{schema}"
    tmp = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    home = tmp / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    sim = SimulatorServer(Scenario(seed=5, pages=need, forms_per_page=1, leads_per_form=20, extra_leads=0)).start()
    try:
        manifest = sim.manifest()
        env = {**os.environ, "DAGSTER_HOME": str(home), "DAGSTER_DISABLE_TELEMETRY": "1",
               "LEADS_WAREHOUSE_URL": wh_url, "LEADS_GRAPH_BASE_URL": sim.base_url,
               "LEADS_APP_SECRET": manifest["app_secret"], "LEADS_SECRET_KEY": generate_key(),
               "LEADS_DATA_DIR": str(tmp / "data")}
        os.environ.update({k: env[k] for k in ("LEADS_WAREHOUSE_URL", "LEADS_SECRET_KEY", "LEADS_DATA_DIR")})
        get_settings.cache_clear()
        wh = Warehouse(wh_url)
        wh.migrate()
        keys = [registry.add(wh, p["name"], p["access_token"], page_ids=[p["id"]], region=p["default_region"]).key
                for p in manifest["pages"]]
        import dagster as dg

        with dg.DagsterInstance.from_config(str(home)) as instance:
            instance.add_dynamic_partitions("distributors", keys)

        def timed(cmd: list[str]) -> float:
            start = time.perf_counter()
            out = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
            took = time.perf_counter() - start
            if out.returncode != 0:
                raise RuntimeError(f"{' '.join(cmd[:4])} failed:\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}")
            return took

        load_before = os.getloadavg()[0]
        results: dict = {"single": [], "batch": {}}
        it = iter(keys)
        for _ in range(single):
            key = next(it)
            results["single"].append(round(timed([str(BIN / "dagster"), "asset", "materialize", "-m",
                                                   "leads_pipeline.definitions", "--select",
                                                   "raw_leads,leads,rejected_leads", "--partition", key]), 2))
        for n in sizes:
            batch = [next(it) for _ in range(n)]
            cfg = tmp / f"batch_{n}.yaml"
            cfg.write_text(yaml.safe_dump(batch_run_config(batch, trigger="bench")))
            results["batch"][n] = round(timed([str(BIN / "dagster"), "job", "execute", "-m",
                                               "leads_pipeline.definitions", "-j", "sync_batch_job", "-c",
                                               str(cfg)]), 2)
        xs = list(results["batch"])
        ys = [results["batch"][n] for n in xs]
        if len(xs) >= 2:
            mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
            slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
            overhead = my - slope * mx
        else:
            slope, overhead = None, None
        single_mean = sum(results["single"]) / len(results["single"]) if results["single"] else None
        report = {
            "single_run_wall_s": results["single"],
            "batch_run_wall_s": results["batch"],
            "fit": {"batch_overhead_s": round(overhead, 2) if overhead is not None else None,
                    "per_distributor_s": round(slope, 3) if slope is not None else None},
            "load1_before": round(load_before, 2),
            "load1_after": round(os.getloadavg()[0], 2),
        }
        if single_mean and slope:
            # 300 s per cycle, at most 2 cores' worth of CPU-bound work (3 runs at once share them).
            report["capacity_per_5min_2cores"] = {
                "single_runs": int(2 * 300 / single_mean),
                "batches_of_50": int(2 * 300 / (overhead / 50 + slope)),
            }
        return report
    finally:
        sim.stop()
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 10, 50])
    parser.add_argument("--single", type=int, default=3)
    args = parser.parse_args(argv)
    print(json.dumps(run(args.sizes, args.single), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
