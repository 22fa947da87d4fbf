"""P5, own process: Graph API efficiency and an end-to-end sync over HTTP from the simulator.

- **Requests per synced lead.** Every distributor of a simulated world is synced into a fresh DuckDB warehouse; the
  simulator counts the requests it served. The floor is discovery (``/me/accounts`` + ``/{page}/leadgen_forms``)
  plus ``ceil(leads / limit)`` lead pages per form; anything above it is waste.
- **Throttling honoured.** A throttle window opens on the 3rd Graph request (Meta's headers then say "regain access
  in 1 minute"; this benchmark's client clock runs 30x faster, so the minute is 2 s; the window lasts 1.5 s). A client
  that honours it sends exactly one request into the window — the one that was throttled — then waits it out.
- **End-to-end.** Leads/s of the whole sync: discovery, HTTP paging (limit 100), landing, parsing, storing.

    python -m benchmarks.graph LEADS
"""

from __future__ import annotations

import json
import math
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

CLOCK_SPEEDUP = 30.0


def _world(leads: int, **scenario):
    from leads_pipeline.simulator import Scenario

    pages, forms_per_page = scenario.pop("pages", 2), scenario.pop("forms_per_page", 2)
    per_form = max(1, leads // (pages * forms_per_page))
    return Scenario(seed=11, pages=pages, forms_per_page=forms_per_page, leads_per_form=per_form, extra_leads=0,
                    **scenario)


def _setup(sim, tmp: str):
    from leads_pipeline.lib.distributors import registry as distributors
    from leads_pipeline.lib.security import generate_key
    from leads_pipeline.lib.warehouse import Warehouse
    from leads_pipeline.settings import get_settings

    os.environ.update({"LEADS_GRAPH_BASE_URL": sim.base_url, "LEADS_SECRET_KEY": generate_key(),
                       "LEADS_DATA_DIR": tmp})
    get_settings.cache_clear()
    wh = Warehouse(f"duckdb:///{Path(tmp) / 'graph.duckdb'}")
    wh.migrate()
    keys = [distributors.add(wh, p["name"], p["access_token"], page_ids=[p["id"]], region=p["default_region"]).key
            for p in sim.manifest()["pages"]]
    return wh, keys


def efficiency(leads: int) -> dict:
    from leads_pipeline.lib.ingest import sync
    from leads_pipeline.simulator import SimulatorServer

    with SimulatorServer(_world(leads)) as sim, tempfile.TemporaryDirectory(prefix="bench-graph-") as tmp:
        wh, keys = _setup(sim, tmp)
        manifest = sim.manifest()
        sim.reset_stats()
        start = time.perf_counter()
        results = [sync.sync_distributor(wh, k, trigger="bench") for k in keys]
        seconds = time.perf_counter() - start
        stats = sim.stats()
        limit = 100
        forms = [f for p in manifest["pages"] for f in p["forms"]]
        per_form = [len(f["valid_lead_ids"]) + len(f["malformed_lead_ids"]) + f["malformed_without_id"] for f in forms]
        lead_pages_floor = sum(max(1, math.ceil(n / limit)) for n in per_form)
        by_route = stats["by_route"]
        lead_page_requests = sum(v for r, v in by_route.items() if r.endswith("/leads") or "leads" in r.split("/")[-1])
        fetched = sum(r.fetched for r in results)
        stored = sum(r.stored for r in results)
        discovery = stats["requests"] - lead_page_requests
        return {
            "leads_in_world": sum(per_form), "fetched": fetched, "stored": stored,
            "requests": stats["requests"], "lead_page_requests": lead_page_requests,
            "lead_page_requests_floor": lead_pages_floor, "discovery_requests": discovery,
            "discovery_floor": 2 * len(keys),  # /me/accounts + /{page}/leadgen_forms per distributor (one page each)
            "requests_per_synced_lead": round(stats["requests"] / fetched, 5) if fetched else None,
            "wasted_requests": stats["requests"] - lead_pages_floor - 2 * len(keys),
            "by_route": by_route,
            "sync_seconds": round(seconds, 3), "leads_per_s": round(fetched / seconds, 1) if seconds else None,
            "all_synced": all(r.success for r in results),
        }


def throttling() -> dict:
    from leads_pipeline.lib.ingest import sync
    from leads_pipeline.lib.graph import GraphClient
    from leads_pipeline.simulator import FaultConfig, SimulatorServer
    from leads_pipeline.settings import get_settings

    window = 0.75 * 60.0 / CLOCK_SPEEDUP  # Meta's "regain access in 1 minute" is an upper bound: the window ends first
    with SimulatorServer(_world(1500, pages=1, forms_per_page=1)) as sim, \
            tempfile.TemporaryDirectory(prefix="bench-throttle-") as tmp:
        wh, keys = _setup(sim, tmp)
        waits: list[float] = []
        stamps: list[float] = []

        def sleep(seconds: float) -> None:  # Meta's minutes, on this benchmark's faster clock
            waits.append(seconds)
            time.sleep(seconds / CLOCK_SPEEDUP)

        s = get_settings()

        def factory(token: str) -> GraphClient:
            client = GraphClient(token, base_url=s.graph_base_url, api_version=s.graph_api_version,
                                 page_limit=100, sleep=sleep)
            original = client._pool.request

            def request(*args, **kwargs):
                stamps.append(time.monotonic())
                return original(*args, **kwargs)

            client._pool.request = request
            return client

        sim.set_faults(FaultConfig(throttle_at=[3], throttle_seconds=window, throttle_regain_minutes=1))
        sim.reset_stats()
        result = sync.sync_distributor(wh, keys[0], trigger="bench", client_factory=factory)
        stats = sim.stats()
        throttled = sum(v for k, v in stats["faults_injected"].items() if k.startswith("throttle"))
        # Requests sent while the window was open: from the throttled one (the 3rd) for `window` seconds.
        opened = stamps[2] if len(stamps) > 2 else None
        during = sum(1 for t in stamps if opened is not None and opened <= t < opened + window)
        return {"window_s": window, "reported_wait_s": max(waits) if waits else 0.0,
                "throttled_responses": throttled, "requests_during_window": during,
                "honoured": result.success and throttled == 1 and during == 1,
                "sync_success": result.success, "stored": result.stored, "requests": stats["requests"]}


def run(leads: int) -> dict:
    return {"efficiency": efficiency(leads), "throttling": throttling()}


if __name__ == "__main__":
    import logging

    logging.disable(logging.WARNING)
    _ = threading  # the simulator serves from threads of this process
    print(json.dumps(run(int(sys.argv[1]))))
