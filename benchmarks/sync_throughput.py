"""P7: how close a sync over HTTP comes to what the source can serve.

The simulator runs in its **own process** (as Meta is another machine: the sync must not share its GIL). In the same
run, side by side and alternating:

- **bare**: a client that only pages (plain ``requests``, one keep-alive session, ``paging.next``, 100 per page, the
  forms one after another) and decodes each page's JSON — what the source serves to a client that does nothing with
  the leads;
- **ours**: ``sync_distributor`` of every distributor of that world into a fresh DuckDB warehouse, in its own process
  (discovery, fetching, landing, parsing, storing — the whole sync), timed from the call to its return.

Target (issue #14): ours ≥ 0.5 × bare leads/s. Also checked: the same leads land (every valid lead of the manifest
is in ``leads``), and the requests per lead stay at the floor (P5); ``forms_read_at_once``: the most Graph requests
of the sync that overlapped (its readers: more start only while the landing waits for pages).

    python -m benchmarks.sync_throughput LEADS [ROUNDS]        # prints one JSON object
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

from benchmarks.measure import ROOT, machine_load

FIELDS = ("id,created_time,field_data,ad_id,ad_name,adset_id,adset_name,campaign_id,campaign_name,form_id,is_organic,"
          "platform,custom_disclaimer_responses,partner_name,retailer_item_id")

_SERVE = """
import json, sys, threading
from leads_pipeline.simulator import Scenario, SimulatorServer
leads = int(sys.argv[1])
per_form = max(1, leads // 4)
scenario = Scenario(seed=11, pages=2, forms_per_page=2, leads_per_form=per_form, extra_leads=0)
server = SimulatorServer(scenario).start()
print(json.dumps({"base_url": server.base_url}), flush=True)
sys.stdin.read()  # until the parent closes our stdin
server.stop()
"""


class Simulator:
    """The simulator in a child process; ``base_url``, ``manifest()``, ``stats()``, ``reset_stats()``."""

    def __init__(self, leads: int):
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.proc = subprocess.Popen([sys.executable, "-c", _SERVE, str(leads)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, cwd=str(ROOT), env=env)
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the simulator did not start")
        self.base_url = json.loads(line)["base_url"]

    def _control(self, method: str, action: str) -> dict:
        import requests

        return requests.request(method, f"{self.base_url}/__simulator/{action}", timeout=60).json()

    def manifest(self) -> dict:
        return self._control("GET", "manifest")

    def stats(self) -> dict:
        return self._control("GET", "stats")

    def reset_stats(self) -> None:
        self._control("POST", "stats/reset")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def bare(base_url: str, manifest: dict) -> dict:
    """Page through every form with plain requests (what a client that does nothing else gets)."""
    import requests

    version = manifest["api_version"]
    session = requests.Session()
    n = pages = received = 0
    start = time.perf_counter()
    for page in manifest["pages"]:
        session.headers["Authorization"] = f"Bearer {page['access_token']}"
        for form in page["forms"]:
            url: str | None = f"{base_url}/{version}/{form['id']}/leads"
            params: dict | None = {"fields": FIELDS, "limit": 100}
            while url:
                resp = session.get(url, params=params, timeout=60)
                resp.raise_for_status()
                received += len(resp.content)
                body = resp.json()
                pages += 1
                n += len(body["data"])
                url, params = body.get("paging", {}).get("next"), None
    seconds = time.perf_counter() - start
    session.close()
    return {"leads": n, "pages": pages, "seconds": round(seconds, 3), "leads_per_s": round(n / seconds, 1),
            "decoded_mb": round(received / 2**20, 1)}


def ours_child(base_url: str, out: str) -> None:
    """In a fresh process: register the world's distributors, sync them all, report (``python -m … sync``)."""
    import requests

    from leads_pipeline.lib.distributors import registry as distributors
    from leads_pipeline.lib.ingest import sync
    from leads_pipeline.lib.security import generate_key
    from leads_pipeline.lib.warehouse import Warehouse
    from leads_pipeline.settings import get_settings

    tmp = tempfile.mkdtemp(prefix="bench-p7-")
    os.environ.update({"LEADS_GRAPH_BASE_URL": base_url, "LEADS_SECRET_KEY": generate_key(), "LEADS_DATA_DIR": tmp})
    get_settings.cache_clear()
    manifest = requests.get(f"{base_url}/__simulator/manifest", timeout=60).json()
    wh = Warehouse(f"duckdb:///{Path(tmp) / 'p7.duckdb'}")
    wh.migrate()
    keys = [distributors.add(wh, p["name"], p["access_token"], page_ids=[p["id"]], region=p["default_region"]).key
            for p in manifest["pages"]]
    requests.post(f"{base_url}/__simulator/stats/reset", timeout=60)
    cpu0 = time.process_time()
    start = time.perf_counter()
    results = [sync.sync_distributor(wh, k, trigger="bench") for k in keys]
    seconds = time.perf_counter() - start
    cpu = time.process_time() - cpu0
    served = requests.get(f"{base_url}/__simulator/stats", timeout=60).json()
    valid = {i for p in manifest["pages"] for f in p["forms"] for i in f["valid_lead_ids"]}
    with wh.transaction(read_only=True) as conn:
        stored_ids = set(conn.query_columns("SELECT meta_lead_id FROM leads").get("meta_lead_id") or [])
    fetched = sum(r.fetched for r in results)
    import shutil

    shutil.rmtree(tmp, ignore_errors=True)
    Path(out).write_text(json.dumps({
        "fetched": fetched, "stored": sum(r.stored for r in results), "seconds": round(seconds, 3),
        "cpu_s": round(cpu, 3), "leads_per_s": round(fetched / seconds, 1) if seconds else None,
        "requests": served["requests"], "forms_read_at_once": served["peak_in_flight"],
        "all_synced": all(r.success for r in results),
        "valid_in_manifest": len(valid), "valid_landed": len(valid & stored_ids),
        "same_leads": valid <= stored_ids,
    }))


def ours(base_url: str) -> dict:
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        out = f.name
    try:
        proc = subprocess.run([sys.executable, "-m", "benchmarks.sync_throughput", "sync", base_url, out],
                              cwd=str(ROOT), capture_output=True, text=True, timeout=1800,
                              env={**os.environ, "DAGSTER_DISABLE_TELEMETRY": "1"})
        if proc.returncode != 0:
            return {"error": proc.stderr[-2000:]}
        return json.loads(Path(out).read_text())
    finally:
        Path(out).unlink(missing_ok=True)


def run(leads: int, rounds: int = 2) -> dict:
    sim = Simulator(leads)
    try:
        manifest = sim.manifest()
        bare(sim.base_url, manifest)  # warm: the simulator renders pages lazily the first time
        b_runs, o_runs, loads = [], [], []
        for _ in range(rounds):
            loads.append(machine_load())
            b_runs.append(bare(sim.base_url, manifest))
            o_runs.append(ours(sim.base_url))
    finally:
        sim.stop()
    ok = [o for o in o_runs if "error" not in o]
    b = statistics.median(r["leads_per_s"] for r in b_runs)
    o = statistics.median(r["leads_per_s"] for r in ok) if ok else None
    return {
        "leads": leads, "rounds": rounds, "load_before_rounds": loads,
        "bare_leads_per_s": b, "ours_leads_per_s": o,
        "ratio": round(o / b, 3) if o and b else None, "target": ">= 0.5",
        "bare": b_runs, "ours": o_runs,
        "same_leads": bool(ok) and all(r["same_leads"] for r in ok),
    }


if __name__ == "__main__":
    import logging

    logging.disable(logging.WARNING)
    if sys.argv[1] == "sync":
        ours_child(sys.argv[2], sys.argv[3])
    else:
        print(json.dumps(run(int(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 2)))
