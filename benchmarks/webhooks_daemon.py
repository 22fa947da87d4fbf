"""P4 through the production path: webhook → lead with ``dagster-daemon`` running, over the DuckDB default.

    python -m benchmarks.webhooks_daemon sensor|service [WEBHOOKS]     # prints one JSON object

Three processes besides this one, as a deployment runs them: ``dagster-daemon run`` (a fresh DAGSTER_HOME with the
project's ``deploy/dagster.local.yaml``, the code location of ``workspace.yaml``: every schedule and sensor of the
project ticks, as under ``dagster dev``), the receiver (``leads-pipeline serve``), and — in this process — the
simulator, whose emitter POSTs a signed webhook for each lead it announces at a steady rate. Latency: from the
announcement to the row in ``leads`` (polled every 0.25-0.5 s). The Dagster runs' timings (queued → started →
finished) and the syncs' own durations give P6's daemon-launched run overhead.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

from benchmarks.bench_webhooks import ROOT, VERIFY_TOKEN, _ensure_secret_key, _free_port
from leads_pipeline.lib.distributors import registry as distributors
from leads_pipeline.lib.graph import make_client
from leads_pipeline.lib.ingest import sync
from leads_pipeline.lib.warehouse import Warehouse
from leads_pipeline.settings import Settings
from leads_pipeline.simulator import Scenario, SimulatorServer


DAEMON_READY_SECONDS = 180


class Service:
    """A child process with its output kept in a file (read on failure)."""

    def __init__(self, name: str, cmd: list[str], env: dict, log_dir: Path):
        self.log = log_dir / f"{name}.log"
        self._out = open(self.log, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(cmd, env=env, cwd=str(ROOT), stdout=self._out, stderr=subprocess.STDOUT,
                                     start_new_session=True)

    def tail(self, n: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-n:] if self.log.exists() else ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            import signal

            try:
                os.killpg(self.proc.pid, signal.SIGTERM)  # the daemon's children (code server, runs) too
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self._out.close()


def _wait_http(url: str, proc: Service, seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.proc.poll() is not None:
            raise RuntimeError(f"{proc.log.stem} exited: {proc.tail()}")
        try:
            requests.get(url, timeout=2)
            return
        except requests.RequestException:
            time.sleep(0.2)
    raise RuntimeError(f"{proc.log.stem} did not answer: {proc.tail()}")


def daemon_latency(mode: str = "sensor", leads: int = 120, per_second: float = 2.0) -> dict:
    """Webhook → lead through the production path, over a DuckDB file (the default backend).

    ``mode="sensor"``: the receiver only stores; ``dagster-daemon run`` (the project's deploy/dagster.local.yaml in a
    fresh DAGSTER_HOME, the code location of workspace.yaml) ticks ``webhook_inbox_sensor``, which launches one run
    per distributor with pending rows. ``mode="service"``: the same daemon, and the receiver processes its inbox
    itself (``LEADS_WEBHOOK_PROCESS=service``); the sensor is the safety net. For each lead: from the moment the
    simulator announced it (its signed POST follows at once) to the moment its row is in ``leads``.
    """
    import dagster as dg

    tmp = Path(tempfile.mkdtemp(prefix=f"bench-daemon-{mode}-"))
    home = tmp / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text((ROOT / "leads_pipeline" / "deploy" / "dagster.local.yaml").read_text())
    url = f"duckdb:///{tmp / 'warehouse.duckdb'}"
    wh = Warehouse(url)
    wh.migrate()
    scenario = Scenario(seed=9, pages=1, forms_per_page=2, leads_per_form=5, extra_leads=leads + 20,
                        malformed_rate=0.0, invalid_contact_rate=0.0, arrival_rate=60.0)
    sim = SimulatorServer(scenario).start()
    manifest = sim.manifest()
    _ensure_secret_key()
    key = distributors.add(wh, "Bench daemon", manifest["user_token"],
                           page_ids=[p["id"] for p in manifest["pages"]]).key
    settings = Settings(graph_base_url=sim.base_url, app_secret=manifest["app_secret"])
    sync.sync_distributor(wh, key, trigger="bench", client_factory=lambda token: make_client(token, settings))
    env = {**os.environ, "DAGSTER_HOME": str(home), "LEADS_WAREHOUSE_URL": url, "LEADS_DATA_DIR": str(tmp),
           "LEADS_GRAPH_BASE_URL": sim.base_url, "LEADS_APP_SECRET": manifest["app_secret"],
           "LEADS_WEBHOOK_VERIFY_TOKEN": VERIFY_TOKEN, "DAGSTER_DISABLE_TELEMETRY": "1",
           "LEADS_WEBHOOK_PROCESS": "service" if mode == "service" else "sensor"}
    os.environ["DAGSTER_HOME"] = str(home)
    with dg.DagsterInstance.get() as instance:
        instance.add_dynamic_partitions("distributors", [key])
    port = _free_port()
    bin_dir = Path(sys.executable).parent
    services: list[Service] = []
    announced: dict[str, float] = {}
    visible: dict[str, float] = {}
    try:
        daemon = Service("daemon", [str(bin_dir / "dagster-daemon"), "run", "-w", str(ROOT / "workspace.yaml")],
                         env, tmp)
        services.append(daemon)
        receiver = Service("receiver", [str(bin_dir / "leads-pipeline"), "serve", "--port", str(port),
                                        "--log-level", "warning"], env, tmp)
        services.append(receiver)
        hook = f"http://127.0.0.1:{port}/webhooks/meta"
        _wait_http(hook, receiver)
        # Ready when the sensor has ticked once (the daemon loaded the code location).
        started = time.monotonic()
        ready = False
        while time.monotonic() - started < DAEMON_READY_SECONDS:
            if daemon.proc.poll() is not None:
                raise RuntimeError(f"dagster-daemon exited: {daemon.tail()}")
            with dg.DagsterInstance.get() as instance:
                ticks = _any_sensor_tick(instance)
            if ticks:
                ready = True
                break
            time.sleep(1)
        daemon_start_s = round(time.monotonic() - started, 1)
        if not ready:
            raise RuntimeError(f"the daemon's sensors never ticked: {daemon.tail()}")
        sim.start_webhooks(hook, duplicate_rate=0.0, seed=3)
        gap = 1.0 / per_second
        next_at = time.monotonic()
        t_start = time.monotonic()
        last_poll = 0.0
        for _ in range(leads):
            t = time.monotonic()
            for lead_id in sim.advance(leads=1):
                announced[lead_id] = t
            next_at += gap
            if time.monotonic() - last_poll > 0.5:
                _poll_visible(wh, announced, visible)
                last_poll = time.monotonic()
            time.sleep(max(0.0, next_at - time.monotonic()))
        sim.flush_webhooks(60)
        deadline = time.monotonic() + 120
        while len(visible) < len(announced) and time.monotonic() < deadline:
            _poll_visible(wh, announced, visible)
            time.sleep(0.25)
        steady_s = time.monotonic() - t_start
        with dg.DagsterInstance.get() as instance:  # let the runs in flight finish (their timings are P6's)
            flight = dg.RunsFilter(tags={"leads/trigger": "webhook"}, statuses=[
                dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING,
                dg.DagsterRunStatus.STARTED])
            deadline = time.monotonic() + 90
            while instance.get_runs_count(flight) and time.monotonic() < deadline:
                time.sleep(0.5)
        with dg.DagsterInstance.get() as instance:
            records = instance.get_run_records(dg.RunsFilter(tags={"leads/trigger": "webhook"}))
            runs = [{"status": r.dagster_run.status.value, "queued_to_start_s": _gap(r.create_timestamp, r.start_time),
                     "run_s": _gap(r.start_time, r.end_time)} for r in records]
    finally:
        for service in reversed(services):
            service.stop()
        sim.stop()
        os.environ.pop("DAGSTER_HOME", None)
    delays = sorted(visible[i] - announced[i] for i in announced if i in visible)
    with wh.transaction(read_only=True) as conn:
        syncs = conn.query("SELECT trigger, count(*) AS n, "
                           "median(epoch(finished_at) - epoch(started_at)) AS median_s "
                           "FROM sync_runs WHERE trigger = 'webhook' GROUP BY trigger")
    shutil.rmtree(tmp, ignore_errors=True)

    def pct(p: float) -> float | None:
        return round(delays[min(len(delays) - 1, int(len(delays) * p))], 2) if delays else None

    done = [r for r in runs if r["run_s"] is not None]
    return {
        "mode": mode, "backend": "duckdb", "leads_announced": len(announced), "leads_visible": len(delays),
        "missing": len(announced) - len(delays), "rate_per_s": per_second, "seconds": round(steady_s, 1),
        "daemon_ready_s": daemon_start_s,
        "latency_s_p50": pct(0.50), "latency_s_p95": pct(0.95),
        "latency_s_max": round(delays[-1], 2) if delays else None,
        "target_p95_s": 10.0, "met": bool(delays) and pct(0.95) <= 10.0 and len(delays) == len(announced),
        "dagster_runs": len(runs),
        "dagster_runs_by_status": {s: sum(1 for r in runs if r["status"] == s) for s in {r["status"] for r in runs}},
        "dagster_run_queued_to_start_s_median": _median([r["queued_to_start_s"] for r in runs]),
        "dagster_run_s_median": _median([r["run_s"] for r in done]),
        "webhook_sync_runs": int(syncs[0]["n"]) if syncs else 0,
        "webhook_sync_s_median": round(float(syncs[0]["median_s"]), 3) if syncs and syncs[0]["median_s"] else None,
    }


def _any_sensor_tick(instance) -> bool:
    from dagster._core.scheduler.instigation import InstigatorType

    states = instance.all_instigator_state(instigator_type=InstigatorType.SENSOR)
    for state in states:
        if instance.get_ticks(state.instigator_origin_id, state.selector_id, limit=1):
            return True
    return False


def _gap(a, b) -> float | None:
    if a is None or b is None:
        return None
    a = a.timestamp() if hasattr(a, "timestamp") else float(a)
    b = b.timestamp() if hasattr(b, "timestamp") else float(b)
    return round(b - a, 3)


def _median(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return round(statistics.median(values), 3) if values else None


def _poll_visible(wh: Warehouse, announced: dict[str, float], visible: dict[str, float]) -> None:
    waiting = [i for i in list(announced) if i not in visible]
    if not waiting:
        return
    try:
        with wh.transaction(read_only=True) as conn:
            marks = ",".join("?" for _ in waiting)
            seen = conn.query(f"SELECT meta_lead_id FROM leads WHERE meta_lead_id IN ({marks})", waiting)
    except Exception:  # noqa: BLE001 - the file busy: poll again
        return
    now = time.monotonic()
    for row in seen:
        visible.setdefault(row["meta_lead_id"], now)


if __name__ == "__main__":
    print(json.dumps(daemon_latency(sys.argv[1] if len(sys.argv) > 1 else "sensor",
                                    int(sys.argv[2]) if len(sys.argv) > 2 else 120)))
