"""What a new user runs: `leads-pipeline demo` from scratch, then the analysts' notebook over its data.

The demo run is the session's shared one (``demo_dir`` in demo_fixtures.py; test_docs_commands.py uses it too).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import nbclient
import nbformat
import pytest

# One demo per session: under pytest-xdist (`-n 2 --dist loadgroup`) every test of it runs on one worker.
pytestmark = pytest.mark.xdist_group("demo")
REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_demo_runs_every_asset_on_duckdb_and_the_simulator(demo_dir):
    out = json.loads((demo_dir / "demo.json").read_text())
    assert all(out["runs"].values()), out["runs"]
    assert {"sync msh-med-tour", "marts"} <= set(out["runs"]) and len(out["runs"]) >= 4
    stats = out["stats"]
    assert stats["total"] >= 5000
    assert stats["total"] == sum(stats[s] for s in ("new", "assigned", "contacted", "converted", "rejected"))
    assert stats["converted"] > 0 and stats["contacted"] > 0
    assert (demo_dir / "data" / "leads.duckdb").exists()
    assert (demo_dir / "data" / "dagster_home" / "dagster.yaml").exists()
    env_file = demo_dir / ".env"
    assert env_file.exists() and oct(env_file.stat().st_mode & 0o777) == "0o600"


@pytest.mark.slow
def test_funnel_notebook_executes_against_the_demo_data(demo_dir):
    notebooks = demo_dir / "notebooks"
    notebooks.mkdir(exist_ok=True)
    shutil.copy(REPO / "notebooks" / "funnel_analysis.ipynb", notebooks)
    (demo_dir / "pyproject.toml").touch()  # the notebook finds data/ beside pyproject.toml
    nb = nbformat.read(notebooks / "funnel_analysis.ipynb", as_version=4)
    env_before = dict(os.environ)
    try:
        os.environ.pop("LEADS_DATA_DIR", None)
        nbclient.NotebookClient(nb, timeout=180, kernel_name="python3",
                                resources={"metadata": {"path": str(notebooks)}}).execute()
    finally:
        os.environ.clear()
        os.environ.update(env_before)
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
    images = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if "image/png" in o.get("data", {})]
    tables = [o["data"]["text/plain"] for c in nb.cells if c.cell_type == "code" for o in c.outputs
              if "text/plain" in o.get("data", {})]
    assert any("msh-med-tour" in t for t in tables)
    assert len(images) >= 2, "the funnel and daily plots should render"
