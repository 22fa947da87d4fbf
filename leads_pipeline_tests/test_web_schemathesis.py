"""Schemathesis against the served ``/openapi.json``: ``leads-pipeline serve`` (real uvicorn on 127.0.0.1) over a
warehouse seeded with users, a distributor on the Graph API simulator and leads, called with a superadmin API key.

The document is the one FastAPI generates from the routes and their pydantic models (``web/api``). Positive and
negative data, the examples / coverage / fuzzing phases (see ``PHASES``), every response check: no 5xx, every status code, content type, header and body as documented, invalid input rejected, undocumented methods
answered 405 with ``Allow``, requests without the key refused. The number of examples is bounded so each backend
takes well under a minute; the run's JUnit report and output are kept in ``test-artifacts/schemathesis-<backend>/``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from leads_pipeline_tests.test_web_support import ARTIFACTS, seed_world, served, server_env

pytestmark = pytest.mark.slow

MAX_EXAMPLES = int(os.environ.get("LEADS_TEST_SCHEMATHESIS_EXAMPLES", "8"))
# DuckDB opens a connection per transaction (~20 ms each), so the coverage phase's ~1000 boundary and negative
# cases run on PostgreSQL — the stricter backend for odd input (NUL characters, encodings, big numbers) — and DuckDB
# gets the examples and fuzzing phases. Override with LEADS_TEST_SCHEMATHESIS_PHASES.
PHASES = {
    "postgres": os.environ.get("LEADS_TEST_SCHEMATHESIS_PHASES", "examples,coverage,fuzzing"),
    "duckdb": os.environ.get("LEADS_TEST_SCHEMATHESIS_PHASES", "examples,fuzzing"),
}
CHECKS = ("not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,"
          "response_schema_conformance,negative_data_rejection,missing_required_header,unsupported_method,"
          "ignored_auth")


def _schemathesis() -> str:
    exe = Path(sys.executable).with_name("schemathesis")
    return str(exe) if exe.exists() else (shutil.which("schemathesis") or "schemathesis")


@pytest.fixture
def live(monkeypatch, warehouse, simulator_factory):
    sim = simulator_factory(pages=1, forms_per_page=2, leads_per_form=20, extra_leads=5)
    page = sim.manifest()["pages"][0]
    world = seed_world(monkeypatch, warehouse, graph_base_url=sim.base_url, token=page["access_token"],
                       page_ids=(page["id"],), region=page["default_region"], leads=20)
    env = server_env(world, LEADS_GRAPH_BASE_URL=sim.base_url, LEADS_GRAPH_MAX_RETRIES="1")
    with served(env) as base:
        yield world, base


def _with_examples(doc: dict, world) -> dict:
    """Real ids as examples, so the examples phase reaches existing leads, the distributor and a user. Deleting
    operations get leads of their own, so the others still find theirs."""
    ids = world.lead_ids
    delete_ids = {("delete", "/api/leads/{id}"): ids[-1], ("post", "/api/leads/{id}/delete"): ids[-2]}
    for path, item in doc["paths"].items():
        for method, op in item.items():
            for param in op.get("parameters", []):
                if param["in"] != "path":
                    continue
                if param["name"] == "key":
                    param["example"] = world.distributor
                elif path.startswith("/api/users/"):
                    param["example"] = world.staff["id"]
                else:
                    param["example"] = delete_ids.get((method, path), ids[1])
    # Bodies naming distributors name the world's, so their examples reach the operation, not a 400.
    schemas = doc["components"]["schemas"]
    schemas["UserDistributors"]["example"] = {"distributors": [world.distributor]}
    schemas["UserCreate"]["example"] = {**schemas["UserCreate"]["example"], "distributors": [world.distributor]}
    return doc


def test_the_served_api_conforms_to_its_openapi_document(live, tmp_path, warehouse_url):
    world, base = live
    served_doc = requests.get(base + "/openapi.json", timeout=10).json()
    doc_path = tmp_path / "openapi.json"
    doc_path.write_text(json.dumps(_with_examples(served_doc, world)))
    backend = "postgres" if warehouse_url.startswith("postgres") else "duckdb"
    reports = ARTIFACTS / f"schemathesis-{backend}"
    reports.mkdir(parents=True, exist_ok=True)
    cmd = [
        _schemathesis(), "run", str(doc_path), "--url", base,
        "--header", f"Authorization: Bearer {world.admin_key}",
        "--checks", CHECKS,
        "--phases", PHASES[backend],
        "--mode", "all",
        "--max-examples", str(MAX_EXAMPLES),
        "--seed", "20260601",
        "--workers", "1",
        "--request-timeout", "30",
        "--max-failures", "20",
        "--suppress-health-check", "all",
        "--report", "junit", "--report-junit-path", str(reports / "junit.xml"),
        "--output-sanitize", "true",
    ]
    env = {**os.environ, "NO_COLOR": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path)
    output = proc.stdout + proc.stderr
    (reports / "output.txt").write_text(output)
    assert proc.returncode == 0, output[-12000:]
    assert "No issues found" in output or "passed" in output.lower(), output[-3000:]
    # The server is still healthy and the superadmin key still works.
    assert requests.get(base + "/api/me", headers={"Authorization": f"Bearer {world.admin_key}"},
                        timeout=10).status_code == 200
