"""Real-time leads: the webhook receiver's throughput, and the time from a webhook to the lead's row.

    python benchmarks/bench_webhooks.py        # prints {"throughput": {...}, "latency": {...}}

(a) **Receiver throughput.** The receiver (``webhook_routes()`` in a Starlette app) runs under uvicorn in its own
    process, as in production; a pool of client threads, each with a keep-alive ``requests.Session``, POSTs signed
    one-lead deliveries as fast as it answers. Afterwards the inbox rows are counted: every acknowledged delivery
    must be there (none lost). Target: ≥ 500 POSTs/s on loopback.
(b) **Webhook → lead latency.** The simulator announces leads one by one at a steady rate; its webhook emitter POSTs
    them (signed) to the receiver; a loop standing in for the sensor runs ``process_inbox`` every second. For each
    lead: from the moment it was announced to the moment its row is in ``leads``. Target: p95 ≤ 10 s.

Both run on the default backend (a DuckDB file) and, when ``LEADS_TEST_POSTGRES_URL`` (default: the local server)
answers, on PostgreSQL too. Nothing here is a unit test: no assertions, just figures.
"""

from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

from leads_pipeline.lib.distributors import registry as distributors
from leads_pipeline.lib.graph import make_client
from leads_pipeline.lib.ingest import sync
from leads_pipeline.lib.security import generate_key, sign
from leads_pipeline.lib.warehouse import Warehouse
from leads_pipeline.lib.webhooks import process as inbox_process
from leads_pipeline.settings import Settings
from leads_pipeline.simulator import Scenario, SimulatorServer

APP_SECRET = "bench-app-secret-5f1c0e"
VERIFY_TOKEN = "bench-verify"
POSTGRES_URL = os.environ.get("LEADS_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
ROOT = Path(__file__).resolve().parents[1]

_SERVER = """
import logging, sys, uvicorn
from starlette.applications import Starlette
from leads_pipeline.web.webhooks import webhook_routes
logging.basicConfig(level=logging.WARNING)
uvicorn.run(Starlette(routes=webhook_routes()), host="127.0.0.1", port=int(sys.argv[1]), log_level="warning",
            access_log=False, backlog=2048, timeout_keep_alive=60)
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Receiver:
    """The receiver in a child process (uvicorn), configured through LEADS_* variables."""

    def __init__(self, warehouse_url: str, app_secret: str):
        self.port = _free_port()
        env = {**os.environ, "LEADS_WAREHOUSE_URL": warehouse_url, "LEADS_APP_SECRET": app_secret,
               "LEADS_WEBHOOK_VERIFY_TOKEN": VERIFY_TOKEN, "DAGSTER_DISABLE_TELEMETRY": "1"}
        self.proc = subprocess.Popen([sys.executable, "-c", _SERVER, str(self.port)], env=env, cwd=str(ROOT))
        self.url = f"http://127.0.0.1:{self.port}/webhooks/meta"
        deadline = time.monotonic() + 60
        while True:
            try:
                r = requests.get(self.url, params={"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN,
                                                   "hub.challenge": "1"}, timeout=2)
                if r.status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.stop()
                raise RuntimeError("the receiver did not start")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def _postgres_schema() -> tuple[str, str] | None:
    """A fresh schema on the test PostgreSQL server: (url, schema), or None when it does not answer."""
    try:
        import psycopg

        schema = f"bench_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(POSTGRES_URL, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f"CREATE SCHEMA {schema}")
    except Exception:  # noqa: BLE001 - no PostgreSQL: DuckDB only
        return None
    sep = "&" if "?" in POSTGRES_URL else "?"
    return f"{POSTGRES_URL}{sep}options=-csearch_path%3D{schema}", schema


def _drop_schema(schema: str) -> None:
    import psycopg

    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {schema} CASCADE")


def _inbox_count(wh: Warehouse) -> int:
    with wh.transaction(read_only=True) as conn:
        return int(conn.scalar("SELECT count(*) FROM webhook_inbox"))


# ----------------------------------------------------------------------------------------------------------------------
# (a) throughput
# ----------------------------------------------------------------------------------------------------------------------


def _ensure_secret_key() -> None:
    from leads_pipeline.settings import get_settings

    if not os.environ.get("LEADS_SECRET_KEY"):
        os.environ["LEADS_SECRET_KEY"] = generate_key()
        get_settings.cache_clear()


def throughput(warehouse_url: str, posts: int = 6000, clients: int = 64) -> dict:
    """``clients`` concurrent senders (Meta delivers from many machines at once); one change per POST (the worst
    case: Meta batches up to 1000)."""
    wh = Warehouse(warehouse_url)
    wh.migrate()
    _ensure_secret_key()
    distributors.add(wh, f"Bench {uuid.uuid4().hex[:6]}", "EAAbenchtoken00000000000000000", page_ids=["138124712925158"])
    bodies = []
    for i in range(posts):
        value = {"leadgen_id": str(7_000_000_000_000 + i), "page_id": "138124712925158",
                 "form_id": "172036835026334", "created_time": 1780272000 + i}
        body = json.dumps({"object": "page", "entry": [{"id": "138124712925158", "time": 1780272000 + i,
                                                        "changes": [{"field": "leadgen", "value": value}]}]},
                          separators=(",", ":")).encode()
        bodies.append((body, {"Content-Type": "application/json", "X-Hub-Signature-256": sign(body, APP_SECRET)}))
    receiver = Receiver(warehouse_url, APP_SECRET)
    try:
        shares = [bodies[i::clients] for i in range(clients)]
        warm = requests.Session()
        warm.post(receiver.url, data=b'{"object":"page","entry":[]}',
                  headers={"X-Hub-Signature-256": sign(b'{"object":"page","entry":[]}', APP_SECRET)}, timeout=30)
        warm.close()

        def client(share: list) -> tuple[int, int, list[float]]:
            ok = bad = 0
            waits: list[float] = []
            with requests.Session() as session:
                for body, headers in share:
                    t = time.perf_counter()
                    resp = session.post(receiver.url, data=body, headers=headers, timeout=60)
                    waits.append(time.perf_counter() - t)
                    if resp.status_code == 200:
                        ok += 1
                    else:
                        bad += 1
            return ok, bad, waits

        start = time.perf_counter()
        with ThreadPoolExecutor(clients) as pool:
            outcomes = list(pool.map(client, shares))
        seconds = time.perf_counter() - start
    finally:
        receiver.stop()
    ok = sum(o[0] for o in outcomes)
    waits = sorted(w for o in outcomes for w in o[2])
    stored = _inbox_count(wh)  # every acknowledged delivery must be a row (all ids are distinct)
    return {
        "backend": wh.backend,
        "posts": posts,
        "client_threads": clients,
        "acknowledged": ok,
        "refused": sum(o[1] for o in outcomes),
        "inbox_rows": stored,
        "lost": ok - stored,
        "seconds": round(seconds, 2),
        "posts_per_s": round(posts / seconds, 1),
        "response_ms_p50": round(waits[len(waits) // 2] * 1000, 1),
        "response_ms_p95": round(waits[int(len(waits) * 0.95)] * 1000, 1),
    }


# ----------------------------------------------------------------------------------------------------------------------
# (b) latency
# ----------------------------------------------------------------------------------------------------------------------


def latency(warehouse_url: str, leads: int = 150, per_second: float = 15.0, tick: float = 1.0) -> dict:
    wh = Warehouse(warehouse_url)
    wh.migrate()
    scenario = Scenario(seed=9, pages=2, forms_per_page=2, leads_per_form=5, extra_leads=leads + 20,
                        malformed_rate=0.0, invalid_contact_rate=0.0, arrival_rate=60.0)
    sim = SimulatorServer(scenario).start()
    manifest = sim.manifest()
    _ensure_secret_key()
    key = distributors.add(wh, f"Bench {uuid.uuid4().hex[:6]}", manifest["user_token"],
                           page_ids=[p["id"] for p in manifest["pages"]]).key
    settings = Settings(graph_base_url=sim.base_url, app_secret=manifest["app_secret"])
    factory = lambda token: make_client(token, settings)  # noqa: E731
    # As an operator does after `distributors add`: the first sync discovers the Pages' forms and claims them, so
    # webhooks (routed by form owner) have a distributor to go to.
    sync.sync_distributor(wh, key, trigger="bench", client_factory=factory)
    receiver = Receiver(warehouse_url, manifest["app_secret"])
    sim.start_webhooks(receiver.url, duplicate_rate=0.05, seed=3)
    announced: dict[str, float] = {}
    visible: dict[str, float] = {}
    stop = threading.Event()
    state = {"deadline": float("inf")}
    ticks: list[float] = []

    def sensor_loop() -> None:
        """Stands in for webhook_inbox_sensor + webhook_leads_job: process the inbox, then note which leads exist."""
        while True:
            t0 = time.monotonic()
            inbox_process.process_inbox(wh, key, factory)
            ticks.append(time.monotonic() - t0)
            waiting = [i for i in list(announced) if i not in visible]
            if waiting:
                with wh.transaction(read_only=True) as conn:
                    marks = ",".join("?" for _ in waiting)
                    seen = conn.query(f"SELECT meta_lead_id FROM leads WHERE meta_lead_id IN ({marks})", waiting)
                now = time.monotonic()
                for row in seen:
                    visible.setdefault(row["meta_lead_id"], now)
            if stop.is_set() and (len(visible) >= len(announced) or time.monotonic() > state["deadline"]):
                return
            time.sleep(max(0.0, tick - (time.monotonic() - t0)))

    loop = threading.Thread(target=sensor_loop, daemon=True)
    loop.start()
    try:
        gap = 1.0 / per_second
        next_at = time.monotonic()
        for _ in range(leads):
            t = time.monotonic()
            for lead_id in sim.advance(leads=1):  # the emitter has the change queued when this returns
                announced[lead_id] = t
            next_at += gap
            time.sleep(max(0.0, next_at - time.monotonic()))
        sim.flush_webhooks(60)
        state["deadline"] = time.monotonic() + 60
        stop.set()
        loop.join(90)
    finally:
        webhook_stats = sim.simulator.stats()["webhooks"] or {}
        receiver.stop()
        sim.stop()
    delays = sorted(visible[i] - announced[i] for i in announced if i in visible)

    def pct(p: float) -> float | None:
        return round(delays[min(len(delays) - 1, int(len(delays) * p))], 2) if delays else None

    with wh.transaction(read_only=True) as conn:
        statuses = {r["status"]: int(r["n"]) for r in conn.query(
            "SELECT status, count(*) AS n FROM webhook_inbox GROUP BY status")}
        dup = int(conn.scalar("SELECT count(*) FROM webhook_inbox WHERE deliveries > 1") or 0)
    return {
        "backend": wh.backend,
        "leads_announced": len(announced),
        "leads_visible": len(delays),
        "missing": len(announced) - len(delays),
        "rate_per_s": per_second,
        "sensor_tick_s": tick,
        "latency_s_p50": pct(0.50),
        "latency_s_p95": pct(0.95),
        "latency_s_max": round(delays[-1], 2) if delays else None,
        "latency_s_mean": round(statistics.fmean(delays), 2) if delays else None,
        "process_inbox_ms_p50": round(sorted(ticks)[len(ticks) // 2] * 1000, 1) if ticks else None,
        "inbox_statuses": statuses,
        "rows_delivered_more_than_once": dup,
        "webhook_posts": webhook_stats.get("posts"),
        "webhook_duplicates_delivered": webhook_stats.get("duplicates_delivered"),
    }


def run() -> dict:
    results: dict = {"throughput": [], "latency": []}
    with tempfile.TemporaryDirectory(prefix="bench-webhooks-") as tmp:
        urls = [(f"duckdb:///{Path(tmp) / 'throughput.duckdb'}", f"duckdb:///{Path(tmp) / 'latency.duckdb'}", None)]
        pg_a, pg_b = _postgres_schema(), _postgres_schema()
        if pg_a and pg_b:
            urls.append((pg_a[0], pg_b[0], (pg_a[1], pg_b[1])))
        try:
            for tp_url, lat_url, _schemas in urls:
                results["throughput"].append(throughput(tp_url))
                results["latency"].append(latency(lat_url))
        finally:
            for schema in ([pg_a[1]] if pg_a else []) + ([pg_b[1]] if pg_b else []):
                _drop_schema(schema)
    return results


if __name__ == "__main__":
    print(json.dumps(run()))
