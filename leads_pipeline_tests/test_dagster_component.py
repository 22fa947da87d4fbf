"""The ``LeadPipeline`` component in a scratch ``dg`` project, as a data engineer would add it to theirs.

One project per module (in tmp): a minimal pyproject with ``[tool.dg]``, ``dg scaffold defs
leads_pipeline.components.LeadPipeline my_leads`` for the defs.yaml, then its attributes pointed at a tmp DuckDB file
and the built-in simulator — through environment variables with the project's *own* names (not LEADS_*), which is
what the component's ``*_env`` fields are for. ``dg`` runs from our venv (``VIRTUAL_ENV``), without network.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
import yaml

from leads_pipeline.lib.distributors import registry as distributors
from leads_pipeline.lib.security import generate_key
from leads_pipeline.lib.warehouse import connect
from leads_pipeline.settings import get_settings
from leads_pipeline.simulator import Scenario, SimulatorServer

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
PYPROJECT = """\
[project]
name = "scratch_leads"
version = "0.0.1"
requires-python = ">=3.11"

[tool.dg]
directory_type = "project"

[tool.dg.project]
root_module = "scratch_leads"
code_location_name = "scratch_leads"
"""
DEFINITIONS = """\
from pathlib import Path

import dagster as dg


@dg.definitions
def defs():
    return dg.load_from_defs_folder(path_within_project=Path(__file__).parent)
"""


def _dg(project: Path, env: dict, *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "dg"), *args], cwd=project, env=env, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    """(project dir, env for dg, distributor key, simulator manifest page, warehouse URL)."""
    root = tmp_path_factory.mktemp("dg_scratch")
    project = root / "scratch"
    (project / "scratch_leads" / "defs").mkdir(parents=True)
    (project / "pyproject.toml").write_text(PYPROJECT)
    (project / "scratch_leads" / "__init__.py").write_text("")
    (project / "scratch_leads" / "defs" / "__init__.py").write_text("")
    (project / "scratch_leads" / "definitions.py").write_text(DEFINITIONS)
    home = root / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    url = f"duckdb:///{root / 'scratch.duckdb'}"
    key_material = generate_key()
    sim = SimulatorServer(Scenario(seed=5, pages=1, forms_per_page=2, leads_per_form=25, extra_leads=None)).start()
    try:
        page = sim.manifest()["pages"][0]
        with pytest.MonkeyPatch.context() as mp:  # the distributor's token encrypted with the project's key
            mp.setenv("LEADS_SECRET_KEY", key_material)
            mp.setenv("LEADS_DATA_DIR", str(root / "data"))
            get_settings.cache_clear()
            wh = connect(url)
            wh.migrate()
            key = distributors.add(wh, "Scratch Clinic", page["access_token"], page_ids=[page["id"]],
                                   region=page["default_region"]).key
        get_settings.cache_clear()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("LEADS_", "DAGSTER_HOME"))}
        env.update({
            "VIRTUAL_ENV": str(BIN.parent), "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}",
            "PYTHONPATH": str(project), "DAGSTER_HOME": str(home), "DAGSTER_DISABLE_TELEMETRY": "1",
            "LEADS_ENV_FILE": "", "LEADS_DATA_DIR": str(root / "data"), "GX_ANALYTICS_ENABLED": "False",
            # The project's own names, referenced from defs.yaml:
            "SCRATCH_WAREHOUSE": url, "SCRATCH_GRAPH_URL": sim.base_url, "SCRATCH_CIPHER": key_material,
            "SCRATCH_APP_SECRET": sim.manifest()["app_secret"],
        })
        scaffold = _dg(project, env, "scaffold", "defs", "leads_pipeline.components.LeadPipeline", "my_leads")
        assert scaffold.returncode == 0, scaffold.stdout + scaffold.stderr
        defs_yaml = project / "scratch_leads" / "defs" / "my_leads" / "defs.yaml"
        doc = yaml.safe_load(defs_yaml.read_text())
        assert doc["type"] == "leads_pipeline.components.LeadPipeline"
        assert doc["attributes"]["graph"]["app_secret_env"] == "LEADS_APP_SECRET"  # the scaffold names every field
        doc["attributes"].update({
            "warehouse_url_env": "SCRATCH_WAREHOUSE",
            "graph": {"base_url": "{{ env.SCRATCH_GRAPH_URL }}", "api_version": "v25.0",
                      "app_secret_env": "SCRATCH_APP_SECRET", "token_cipher_key_env": "SCRATCH_CIPHER"},
            "sync_minutes": 10, "owners": ["team:scratch"],
        })
        defs_yaml.write_text(yaml.safe_dump(doc, sort_keys=False))
        yield project, env, key, page, url, home
    finally:
        sim.stop()


def test_dg_lists_the_component_and_checks_the_scratch_projects_defs(scratch):
    project, env, *_ = scratch
    listed = _dg(project, env, "list", "components", "--json")
    assert listed.returncode == 0, listed.stderr
    assert "leads_pipeline.components.LeadPipeline" in {c["key"] for c in json.loads(listed.stdout)["items"]}
    checked = _dg(project, env, "check", "defs")
    assert checked.returncode == 0, checked.stdout[-3000:] + checked.stderr[-3000:]
    assert "All definitions loaded successfully" in checked.stdout + checked.stderr
    defs = _dg(project, env, "list", "defs", "--json")
    assert defs.returncode == 0, defs.stderr[-3000:]
    shown = json.loads(defs.stdout)
    assets = {a["asset_key"]: a for a in shown["assets"]}
    assert {"webhook_inbox", "raw_leads", "leads", "rejected_leads", "lead_stats", "conversion_funnel"} <= set(assets)
    assert all(a.get("owners") == [{"team": "scratch"}] for a in assets.values()), "owners from defs.yaml"
    assert {"leads:meta_lead_id_unique", "raw_leads:sync_health"} <= {c["key"] for c in shown["asset_checks"]}
    assert {"sync_job", "marts_job", "webhook_leads_job"} <= {j["name"] for j in shown["jobs"]}
    assert "sync_due_sensor" in {s["name"] for s in shown["sensors"]}


def test_one_partition_materialises_on_duckdb_and_the_simulator(scratch):
    project, env, key, page, url, home = scratch
    with dg.DagsterInstance.from_config(str(home)) as instance:
        instance.add_dynamic_partitions("distributors", [key])
    launched = _dg(project, env, "launch", "--assets", "raw_leads,leads,rejected_leads", "--partition", key,
                   timeout=300)
    assert launched.returncode == 0, launched.stdout[-3000:] + launched.stderr[-3000:]
    wh = connect(url)
    with wh.transaction(read_only=True) as conn:
        stored = {r["meta_lead_id"] for r in conn.query("SELECT meta_lead_id FROM leads WHERE distributor = ?",
                                                        [key])}
        quarantined = int(conn.scalar("SELECT count(*) FROM rejected_leads WHERE distributor = ?", [key]))
    expected = {i for f in page["forms"] for i in f["valid_lead_ids"]}
    assert expected <= stored and len(stored) + quarantined >= sum(
        len(f["valid_lead_ids"]) + len(f["malformed_lead_ids"]) for f in page["forms"])
    with dg.DagsterInstance.from_config(str(home)) as instance:
        event = instance.get_latest_materialization_event(dg.AssetKey("leads"))
        assert event is not None and event.dagster_event.partition == key
        assert event.asset_materialization.metadata["stored"].value == len(stored)
