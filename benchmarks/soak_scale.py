"""Scale soak (P6): N distributors on a 5-minute cadence through a real ``dagster-daemon``, sampled every ~30 s.

    python -m benchmarks.soak_scale --distributors 200 --minutes 15          # prints a JSON report at the end
    python -m benchmarks.soak_scale --distributors 50 --minutes 3 --json-out /tmp/soak.json

What it builds (all on this machine, all temporary, removed at the end unless ``--keep``):

- the Graph API simulator in real-time mode: ``--distributors`` pages × 1 form, ``--leads-per-form`` leads of
  history, then leads arriving at ``--arrival-rate`` leads per minute (over all forms) for the whole soak;
- the warehouse on **PostgreSQL** (a fresh schema in the ``test`` database, dropped at the end): 3 runs write at once,
  which DuckDB's single-writer file lock would serialise (``--warehouse duckdb`` to try that anyway);
- a Dagster instance in a temporary ``DAGSTER_HOME`` whose ``dagster.yaml`` is ``leads_pipeline/deploy/
  dagster.local.yaml`` (queued runs, ``max_concurrent_runs: 3``, one run per distributor) with its storage on
  **PostgreSQL** via dagster-postgres (a fresh database, dropped at the end); ``--instance-storage sqlite`` keeps the
  default SQLite files instead;
- ``N`` distributors registered with ``interval 5``, and their dynamic partitions added up front: the soak measures the
  steady cadence, not onboarding (onboarding goes through one initial ``sync_job`` run each, from the sensor);
- ``dagster-daemon run -m leads_pipeline.definitions``: the schedules request ``sync_batch_job`` runs of up to
  ``--batch-size`` distributors (``LEADS_SYNC_BATCH_SIZE``) whenever more than a few are due.

Every ``--sample-seconds`` it records: runs queued / in progress / succeeded / failed, the backlog (distributors due
now: their interval has passed and no sync has finished since), the age of each distributor's last successful sync
(max, p95), CPU busy % and the load average. At the end it stops the daemon, then freezes the simulator's clock and
runs one in-process catch-up sync of every distributor, and compares the warehouse with the manifest (nothing lost,
nothing duplicated). The JSON report: runs launched, distributor-syncs done, backlog over time and whether it grew,
max / p95 staleness against the cadence, per-run overhead (run wall time minus the time spent syncing), leads stored
vs the manifest.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlsplit

import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
LOCAL_YAML = REPO / "leads_pipeline" / "deploy" / "dagster.local.yaml"
POSTGRES_URL = os.environ.get("LEADS_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


def _cpu_times() -> tuple[float, float]:
    with open("/proc/stat") as fh:
        parts = [float(x) for x in fh.readline().split()[1:]]
    idle = parts[3] + (parts[4] if len(parts) > 4 else 0.0)
    return sum(parts), idle


def _pct(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def _pg_admin(sql: str) -> None:
    import psycopg

    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(sql)


def _mean(values: list[float]) -> float | None:
    return round(statistics.mean(values), 1) if values else None


def _trend(series: list[float]) -> float:
    """Least-squares slope per sample (0 for fewer than 2 points)."""
    n = len(series)
    if n < 2:
        return 0.0
    mx, my = (n - 1) / 2, sum(series) / n
    den = sum((i - mx) ** 2 for i in range(n))
    return sum((i - mx) * (y - my) for i, y in enumerate(series)) / den


def run(distributors: int = 200, minutes: float = 15, *, interval: int = 5, batch_size: int = 50,
        parallelism: int = 1, sample_seconds: float = 30, leads_per_form: int = 20, arrival_rate: float = 60.0,
        warehouse: str = "postgres", instance_storage: str = "postgres", keep: bool = False,
        log=print) -> dict:
    os.environ["DAGSTER_DISABLE_TELEMETRY"] = "1"
    import dagster as dg

    from leads_pipeline.lib.distributors import registry
    from leads_pipeline.lib.ingest import sync
    from leads_pipeline.lib.security import generate_key
    from leads_pipeline.simulator import Scenario, SimulatorServer
    from leads_pipeline.lib.warehouse import Warehouse
    from leads_pipeline.settings import get_settings

    tag = uuid.uuid4().hex[:8]
    tmp = Path(tempfile.mkdtemp(prefix=f"soak-scale-{tag}-"))
    home = tmp / "dagster_home"
    home.mkdir()
    schema = f"soak_{tag}"
    dagster_db = f"dagster_soak_{tag}"
    daemon = None
    sim = None
    report: dict = {}
    try:
        # --- the instance ----------------------------------------------------------------------------------------
        config = yaml.safe_load(LOCAL_YAML.read_text())
        pg = urlsplit(POSTGRES_URL)
        if instance_storage == "postgres":
            _pg_admin(f'CREATE DATABASE "{dagster_db}"')
            config["storage"] = {"postgres": {"postgres_db": {
                "username": pg.username or "postgres", "password": pg.password or "",
                "hostname": pg.hostname or "127.0.0.1", "port": pg.port or 5432, "db_name": dagster_db,
                # psycopg2: SQLAlchemy 2.1 maps a bare postgresql:// to psycopg 3 (see dagster.postgres.yaml)
                "scheme": "postgresql+psycopg2"}}}
        (home / "dagster.yaml").write_text(yaml.safe_dump(config))

        # --- the warehouse and the simulator --------------------------------------------------------------------
        if warehouse == "postgres":
            _pg_admin(f"CREATE SCHEMA {schema}")
            sep = "&" if "?" in POSTGRES_URL else "?"
            wh_url = f"{POSTGRES_URL}{sep}options=-csearch_path%3D{schema}"
        else:
            wh_url = f"duckdb:///{tmp / 'warehouse.duckdb'}"
        scenario = Scenario(seed=61, pages=distributors, forms_per_page=1, leads_per_form=leads_per_form,
                            extra_leads=None, arrival_rate=arrival_rate, malformed_rate=0.01)
        sim = SimulatorServer(scenario, realtime=True).start()
        manifest = sim.manifest()
        env = {
            **os.environ,
            "DAGSTER_HOME": str(home),
            "DAGSTER_DISABLE_TELEMETRY": "1",
            "LEADS_WAREHOUSE_URL": wh_url,
            "LEADS_GRAPH_BASE_URL": sim.base_url,
            "LEADS_APP_SECRET": manifest["app_secret"],
            "LEADS_SECRET_KEY": generate_key(),
            "LEADS_DATA_DIR": str(tmp / "data"),
            "LEADS_SYNC_BATCH_SIZE": str(batch_size),
            "LEADS_SYNC_BATCH_PARALLELISM": str(parallelism),
        }
        for key in ("LEADS_WAREHOUSE_URL", "LEADS_GRAPH_BASE_URL", "LEADS_APP_SECRET", "LEADS_SECRET_KEY",
                    "LEADS_DATA_DIR"):
            os.environ[key] = env[key]
        get_settings.cache_clear()
        wh = Warehouse(wh_url)
        wh.migrate()
        keys = [registry.add(wh, page["name"], page["access_token"], page_ids=[page["id"]],
                             region=page["default_region"], interval=interval).key for page in manifest["pages"]]
        instance = dg.DagsterInstance.from_config(str(home))
        for i in range(0, len(keys), 100):  # batched adds (many keys in one call can hit storage limits)
            instance.add_dynamic_partitions("distributors", keys[i:i + 100])
        log(f"soak: {len(keys)} distributors, warehouse {warehouse}, instance storage {instance_storage}, "
            f"batch size {batch_size}, {minutes} min; DAGSTER_HOME={home}")

        # --- the daemon -----------------------------------------------------------------------------------------
        daemon_log = open(tmp / "daemon.log", "w")
        t0 = time.time()
        daemon = subprocess.Popen([str(BIN / "dagster-daemon"), "run", "-m", "leads_pipeline.definitions"],
                                  cwd=REPO, env=env, stdout=daemon_log, stderr=subprocess.STDOUT,
                                  start_new_session=True)

        samples = []
        cpu_prev = _cpu_times()
        end = t0 + minutes * 60
        next_sample = t0 + sample_seconds
        while True:
            time.sleep(max(0.0, min(next_sample, end) - time.time()))
            if daemon.poll() is not None:
                raise RuntimeError(f"dagster-daemon exited ({daemon.returncode}); see {tmp / 'daemon.log'}")
            now = datetime.now(timezone.utc)
            counts = {s.value.lower(): instance.get_runs_count(dg.RunsFilter(statuses=[s])) for s in (
                dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED,
                dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE)}
            due = registry.due_for_sync(wh, now)
            with wh.transaction(read_only=True) as conn:
                rows = conn.query("SELECT distributor, max(finished_at) AS last FROM sync_runs WHERE success "
                                  "GROUP BY distributor")
                syncs_ok = conn.scalar("SELECT count(*) FROM sync_runs WHERE success")
                syncs_failed = conn.scalar("SELECT count(*) FROM sync_runs WHERE success = false")
                stored = conn.scalar("SELECT count(*) FROM leads")
            last = {r["distributor"]: r["last"] for r in rows}
            elapsed = time.time() - t0
            ages = []
            for key in keys:
                ts = last.get(key)
                if ts is None:
                    ages.append(elapsed)  # never synced: stale since the soak started
                else:
                    if ts.tzinfo is None:
                        ts = ts.replace(tzinfo=timezone.utc)
                    ages.append((now - ts).total_seconds())
            cpu_now = _cpu_times()
            total, idle = cpu_now[0] - cpu_prev[0], cpu_now[1] - cpu_prev[1]
            cpu_prev = cpu_now
            sample = {
                "t_s": round(elapsed), "queued": counts["queued"],
                "in_progress": counts["starting"] + counts["started"], "succeeded": counts["success"],
                "failed": counts["failure"], "backlog_due": len(due), "never_synced": len(keys) - len(last),
                "staleness_max_s": round(max(ages)), "staleness_p95_s": round(_pct(ages, 0.95)),
                "syncs_ok": syncs_ok, "syncs_failed": syncs_failed, "leads_stored": stored,
                "cpu_busy_pct": round(100 * (1 - idle / total), 1) if total else None,
                "load1": round(os.getloadavg()[0], 2),
            }
            samples.append(sample)
            log(json.dumps(sample))
            if time.time() >= end:
                break
            next_sample += sample_seconds

        # --- at the end of the soak: what the manifest holds vs what was stored, before any catch-up ---------------
        manifest = sim.manifest()
        expected = {i for p in manifest["pages"] for f in p["forms"] for i in f["valid_lead_ids"]}
        with wh.transaction(read_only=True) as conn:
            stored_ids = {r["meta_lead_id"] for r in conn.query("SELECT meta_lead_id FROM leads")}
        at_end = {"manifest_valid": len(expected), "stored": len(stored_ids & expected),
                  "not_yet_synced": len(expected - stored_ids), "unexpected": len(stored_ids - expected)}

        # --- runs: launched, durations, overhead ------------------------------------------------------------------
        records = instance.get_run_records()
        runs = {}
        for rec in records:
            runs.setdefault(rec.dagster_run.job_name, []).append(rec)
        with wh.transaction(read_only=True) as conn:
            spans = conn.query(
                "SELECT trigger, count(*) AS n, min(started_at) AS first, max(finished_at) AS last "
                "FROM sync_runs WHERE trigger LIKE 'dagster batch %' GROUP BY trigger")
        span_by_run = {}
        for r in spans:
            first, last_ = r["first"], r["last"]
            if first is not None and last_ is not None:
                span_by_run[r["trigger"].split()[2]] = (int(r["n"]), (last_ - first).total_seconds())
        batch = []
        for rec in runs.get("sync_batch_job", []):
            if rec.start_time and rec.end_time:
                n, span = span_by_run.get(rec.dagster_run.run_id[:8], (0, 0.0))
                wall = rec.end_time - rec.start_time
                batch.append({"distributors": n, "wall_s": wall, "sync_s": span, "overhead_s": wall - span,
                              "queue_to_start_s": rec.start_time - rec.create_timestamp.timestamp()})

        def summary(values):
            return ({"mean": round(statistics.mean(values), 2), "p50": round(_pct(values, 0.5), 2),
                     "max": round(max(values), 2)} if values else None)

        # --- stop the daemon; freeze the clock; one catch-up sync; compare exactly -------------------------------
        _stop(daemon)
        daemon = None
        sim.simulator.stop_realtime()
        time.sleep(2)
        catch_t = time.time()
        catch = [sync.sync_distributor(wh, key, trigger="soak catch-up") for key in keys]
        catch_s = time.time() - catch_t
        manifest = sim.manifest()
        expected = {i for p in manifest["pages"] for f in p["forms"] for i in f["valid_lead_ids"]}
        with wh.transaction(read_only=True) as conn:
            stored_ids = [r["meta_lead_id"] for r in conn.query("SELECT meta_lead_id FROM leads")]

        warm = [s for s in samples if s["t_s"] >= interval * 60]  # after the first cycle
        third = max(1, len(warm) // 3)
        backlog = [s["backlog_due"] for s in warm]
        report = {
            "config": {"distributors": distributors, "minutes": minutes, "interval_min": interval,
                       "batch_size": batch_size, "parallelism": parallelism, "warehouse": warehouse,
                       "instance_storage": instance_storage, "arrival_rate_per_min": arrival_rate,
                       "leads_per_form": leads_per_form, "cpus": os.cpu_count()},
            "runs_launched": {job: len(recs) for job, recs in runs.items()},
            # failed while the soak ran (runs cut off by stopping the daemon at the end are not counted)
            "runs_failed": samples[-1]["failed"] if samples else 0,
            "distributor_syncs_ok": samples[-1]["syncs_ok"] if samples else 0,
            "distributor_syncs_failed": samples[-1]["syncs_failed"] if samples else 0,
            "batch_runs": {"count": len(batch),
                           "distributors_per_run": summary([b["distributors"] for b in batch]),
                           "wall_s": summary([b["wall_s"] for b in batch]),
                           "sync_s": summary([b["sync_s"] for b in batch]),
                           "overhead_s": summary([b["overhead_s"] for b in batch]),
                           "queue_to_start_s": summary([b["queue_to_start_s"] for b in batch]),
                           "sync_s_per_distributor": round(sum(b["sync_s"] for b in batch) /
                                                          max(1, sum(b["distributors"] for b in batch)), 3)},
            "backlog": {
                "series": [[s["t_s"], s["backlog_due"]] for s in samples],
                "after_first_cycle": {"first_third_mean": _mean(backlog[:third]),
                                      "last_third_mean": _mean(backlog[-third:]),
                                      "max": max(backlog) if backlog else None,
                                      "slope_per_sample": round(_trend(backlog), 2)},
                "growing": bool(backlog) and _trend(backlog) > 0.5
                and statistics.mean(backlog[-third:]) > 1.5 * max(1.0, statistics.mean(backlog[:third])),
            },
            "staleness_s": {
                "series_max": [[s["t_s"], s["staleness_max_s"]] for s in samples],
                "series_p95": [[s["t_s"], s["staleness_p95_s"]] for s in samples],
                "max_after_first_cycle": max((s["staleness_max_s"] for s in warm), default=None),
                "p95_after_first_cycle": max((s["staleness_p95_s"] for s in warm), default=None),
                "target_s": interval * 60,
            },
            "cpu": {"busy_pct_mean": round(statistics.mean([s["cpu_busy_pct"] for s in samples
                                                            if s["cpu_busy_pct"] is not None]), 1) if samples else None,
                    "busy_pct_max": max((s["cpu_busy_pct"] or 0 for s in samples), default=None),
                    "load1_max": max((s["load1"] for s in samples), default=None),
                    "load1_mean": round(statistics.mean([s["load1"] for s in samples]), 2) if samples else None},
            "leads": {"at_end_before_catch_up": at_end,
                      "after_catch_up": {"manifest_valid": len(expected), "stored": len(stored_ids),
                                         "exact": set(stored_ids) == expected and len(stored_ids) == len(expected),
                                         "catch_up_s": round(catch_s, 1),
                                         "catch_up_failures": sum(1 for c in catch if not c.success)}},
            "samples": samples,
        }
        return report
    finally:
        if daemon is not None:
            _stop(daemon)
        if sim is not None:
            sim.stop()
        if not keep:
            for sql in (f"DROP SCHEMA IF EXISTS {schema} CASCADE",
                        f'DROP DATABASE IF EXISTS "{dagster_db}" WITH (FORCE)'):
                try:
                    if warehouse == "postgres" or "DATABASE" in sql:
                        _pg_admin(sql)
                except Exception as exc:  # noqa: BLE001 - best-effort cleanup
                    log(f"cleanup: {exc}")
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            log(f"kept {tmp} (schema {schema}, database {dagster_db})")


def _stop(proc: subprocess.Popen) -> None:
    """Stop the daemon and everything it started (its code server and run workers share its session)."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
    time.sleep(2)
    try:  # run workers that outlived the daemon
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--distributors", type=int, default=200)
    parser.add_argument("--minutes", type=float, default=15)
    parser.add_argument("--interval", type=int, default=5, help="each distributor's sync interval (minutes)")
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--parallelism", type=int, default=1, help="distributors synced at once inside a batch run")
    parser.add_argument("--sample-seconds", type=float, default=30)
    parser.add_argument("--leads-per-form", type=int, default=20)
    parser.add_argument("--arrival-rate", type=float, default=60.0, help="new leads per minute over all forms")
    parser.add_argument("--warehouse", choices=["postgres", "duckdb"], default="postgres")
    parser.add_argument("--instance-storage", choices=["postgres", "sqlite"], default="postgres")
    parser.add_argument("--json-out", type=Path)
    parser.add_argument("--keep", action="store_true", help="keep the temp DAGSTER_HOME, schema and database")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # SIGTERM cleans up like Ctrl-C
    report = run(args.distributors, args.minutes, interval=args.interval, batch_size=args.batch_size,
                 parallelism=args.parallelism, sample_seconds=args.sample_seconds,
                 leads_per_form=args.leads_per_form, arrival_rate=args.arrival_rate, warehouse=args.warehouse,
                 instance_storage=args.instance_storage, keep=args.keep,
                 log=lambda m: print(m, file=sys.stderr, flush=True))
    text = json.dumps({k: v for k, v in report.items() if k != "samples"}, indent=2, default=str)
    if args.json_out:
        args.json_out.write_text(json.dumps(report, indent=2, default=str))
    print(text)
    return 1 if report.get("backlog", {}).get("growing") else 0


if __name__ == "__main__":
    raise SystemExit(main())
