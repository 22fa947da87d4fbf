"""Throughput of the Graph API simulator: page through every lead with plain ``requests`` (pages of 100).

    python benchmarks/bench_simulator.py        # prints {"leads": ..., "seconds": ..., "leads_per_s": ..., ...}
"""

from __future__ import annotations

import json
import time

import requests

from leads_pipeline.simulator import Scenario, SimulatorServer

FIELDS = "id,created_time,ad_id,ad_name,adset_id,adset_name,campaign_id,campaign_name,form_id,is_organic,platform," \
         "field_data,custom_disclaimer_responses"


def run(leads: int = 20000) -> dict:
    """Start a simulator holding ``leads`` leads (2 pages × 2 forms), read them all, report leads per second."""
    forms = 4
    per_form = max(1, leads // forms)
    scenario = Scenario(seed=1, pages=2, forms_per_page=2, leads_per_form=per_form, extra_leads=0)
    t_gen = time.perf_counter()
    with SimulatorServer(scenario) as server:
        generation_s = time.perf_counter() - t_gen
        manifest = server.manifest()
        version = manifest["api_version"]
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {manifest['user_token']}"
        n = requests_made = 0
        start = time.perf_counter()
        for page in manifest["pages"]:
            for form in page["forms"]:
                url: str | None = f"{server.base_url}/{version}/{form['id']}/leads"
                params: dict | None = {"fields": FIELDS, "limit": 100}
                while url:
                    resp = session.get(url, params=params, timeout=30)
                    resp.raise_for_status()
                    body = resp.json()
                    requests_made += 1
                    n += len(body["data"])
                    url, params = body.get("paging", {}).get("next"), None
        seconds = time.perf_counter() - start
        session.close()
    return {"leads": n, "seconds": round(seconds, 3), "leads_per_s": round(n / seconds, 1) if seconds else None,
            "requests": requests_made, "generation_seconds": round(generation_s, 3)}


if __name__ == "__main__":
    print(json.dumps(run()))
