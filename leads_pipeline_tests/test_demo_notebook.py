"""What a new user runs: `leads-pipeline demo` from scratch, then the analysts' notebooks over its data.

The notebooks run as an analyst runs them (nbclient, the project's ipykernel, `leads_pipeline.analysts` for the
data) while the pipeline keeps working: a `leads-pipeline sync` and a marts refresh (with the readers' snapshot it
publishes) run over and over in other processes the whole time. On DuckDB that is the case that used to fail: a
reader holding the file broke syncs and marts runs. On PostgreSQL the same demo (its distributors, the simulator's
sandbox world, a smaller number of leads, the demo's staff work) is seeded into a schema of its own.

Each notebook's figures are read back from the kernel and must be plausible (hours to first contact in hours, not
months); its charts are kept as PNG files in ``test-artifacts/notebooks-<backend>/`` with the executed notebooks.
The demo run is the session's shared one (``demo_dir`` in demo_fixtures.py; test_docs_commands.py uses it too).
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import json
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbclient
import nbformat
import pytest

from leads_pipeline_tests.conftest import POSTGRES_URL
from leads_pipeline_tests.demo_fixtures import CLI, demo_env

# One demo per session: under pytest-xdist (`-n 2 --dist loadgroup`) every test of it runs on one worker.
pytestmark = pytest.mark.xdist_group("demo")
REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "test-artifacts"
NOTEBOOKS = ("funnel_analysis", "lead_quality")
CHARTS = {"funnel_analysis": 4, "lead_quality": 3}  # stages, cohorts, campaigns, days | speed, grades, reasons

# A marts run as the pipeline's marts job does it: rebuild every mart, then publish the readers' snapshot.
MARTS_RUN = (
    "from leads_pipeline.lib.marts.analytics import refresh_all\n"
    "from leads_pipeline.lib.warehouse import connect, snapshot\n"
    "wh = connect(); refresh_all(wh); snapshot.publish(wh)\n"
)

META_LATENCY = 0.2  # seconds per Graph API request while the notebooks run
MARTS_PAUSE = 1.0  # seconds between two marts runs

# Appended to each notebook before it runs (and removed before it is kept): its figures, as JSON, for the asserts.
PROBE = {
    "funnel_analysis": """import json, sys
print(json.dumps({"python": sys.executable, "summary": {k: float(v) for k, v in summary.items()},
                  "distributors": funnel["distributor"].tolist(),
                  "days": [d.date().isoformat() for d in daily["day"]],
                  "campaigns": campaigns["campaign"].tolist()}))""",
    "lead_quality": """import json, sys
print(json.dumps({"python": sys.executable, "summary": {k: float(v) for k, v in summary.items()},
                  "distributors": speed["distributor"].tolist(),
                  "grades": dict(zip(by_grade["grade"], by_grade["leads"].astype(int).tolist())),
                  "reasons": reasons["reason"].tolist()}))""",
}


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


# ------------------------------------------------------------------------------------------- the two worlds


@dataclass
class World:
    """Where the notebooks read: the environment of the analyst's shell (and of the pipeline's processes), its
    working directory, the distributors to sync from ``simulator``, and the smallest number of leads it holds."""

    backend: str
    env: dict[str, str]
    cwd: Path
    keys: list[str]
    min_leads: int
    simulator: Any


def _sandbox(**changes: Any):
    """The demo's simulated Meta world (same seed, so the same tokens the demo stored), new leads arriving."""
    from leads_pipeline.commands.demo import sandbox_scenario
    from leads_pipeline.simulator import SimulatorServer

    return SimulatorServer(sandbox_scenario().replace(**changes), realtime=True).start()


@pytest.fixture
def duckdb_world(demo_copy) -> Iterator[World]:
    """A copy of the session's demo (DuckDB file, `.env`, Dagster home) with its simulator running again."""
    work = demo_copy("demo")
    keys = [run.removeprefix("sync ") for run in json.loads((work / "demo.json").read_text())["runs"]
            if run.startswith("sync ")]
    server = _sandbox()
    try:
        env = {**demo_env(work), "LEADS_GRAPH_BASE_URL": server.base_url}
        yield World("duckdb", env, work, keys, 5000, server.simulator)
    finally:
        server.stop()


@pytest.fixture(scope="module")
def postgres_world(postgres_available, tmp_path_factory) -> Iterator[World]:
    """The demo seeded into a fresh PostgreSQL schema: its three distributors synced from the sandbox world (120
    leads per form instead of 900), the demo's staff work, the marts. The simulator keeps running for the syncs."""
    import psycopg
    import requests

    from leads_pipeline.commands import demo
    from leads_pipeline.lib.ingest.sync import sync_distributor
    from leads_pipeline.lib.marts.analytics import refresh_all
    from leads_pipeline.lib.security import generate_key
    from leads_pipeline.lib.warehouse import Warehouse
    from leads_pipeline.settings import get_settings

    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    url = f"{POSTGRES_URL}{'&' if '?' in POSTGRES_URL else '?'}options=-csearch_path%3D{schema}"
    work = tmp_path_factory.mktemp("pg-demo")
    server = None
    try:
        server = _sandbox(leads_per_form=120)
        env = {**demo_env(work), "LEADS_WAREHOUSE_URL": url, "LEADS_GRAPH_BASE_URL": server.base_url,
               "LEADS_SECRET_KEY": generate_key()}
        with pytest.MonkeyPatch.context() as mp:
            for name, value in env.items():
                if name.startswith("LEADS_"):
                    mp.setenv(name, value)
            get_settings.cache_clear()
            wh = Warehouse(url)
            wh.migrate()
            manifest = requests.get(f"{server.base_url}/__simulator/manifest", timeout=10).json()
            keys = demo._register_distributors(wh, manifest)
            for key in keys:
                result = sync_distributor(wh, key)
                assert result.success, result.message
            demo._staff_activity(wh)
            refresh_all(wh)
        get_settings.cache_clear()
        yield World("postgres", env, work, keys, 600, server.simulator)
    finally:
        if server is not None:
            server.stop()
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


# ------------------------------------------------------------------------------------ the pipeline at work


@dataclass
class Step:
    kind: str  # "sync" or "marts"
    started: float
    ended: float
    code: int
    stdout: str
    stderr: str


@contextlib.contextmanager
def pipeline_running(world: World) -> Iterator[list[Step]]:
    """A sync and a marts run going on in other processes from before the body starts to after it ends: one loop
    of `leads-pipeline sync KEY` (the distributors in turn; Meta answering in a fraction of a second, as it does),
    one of marts runs (a pause between two, so that they do not starve the notebooks of the test's 2 cores). Yields
    the finished steps."""
    world.simulator.set_faults({"slow_rate": 1.0, "slow_seconds": META_LATENCY})
    steps: list[Step] = []
    stop = threading.Event()
    started = {"sync": threading.Event(), "marts": threading.Event()}

    def loop(kind: str) -> None:
        n = 0
        while not stop.is_set():
            cmd = ([CLI, "sync", world.keys[n % len(world.keys)]] if kind == "sync"
                   else [sys.executable, "-c", MARTS_RUN])
            n += 1
            t0 = time.monotonic()
            started[kind].set()
            try:
                run = subprocess.run(cmd, cwd=world.cwd, env=world.env, capture_output=True, text=True, timeout=120)
                steps.append(Step(kind, t0, time.monotonic(), run.returncode, run.stdout, run.stderr[-2000:]))
            except subprocess.TimeoutExpired:
                steps.append(Step(kind, t0, time.monotonic(), -1, "", f"{kind} still running after 120 s"))
            if kind == "marts":
                stop.wait(MARTS_PAUSE)

    threads = [threading.Thread(target=loop, args=(kind,), daemon=True) for kind in started]
    for t in threads:
        t.start()
    for event in started.values():
        event.wait(10)
    try:
        yield steps
    finally:
        stop.set()
        for t in threads:
            t.join(150)
        world.simulator.set_faults(None)


# -------------------------------------------------------------------------------------------- the notebooks


def _run_notebook(name: str, world: World, artifacts: Path) -> tuple[dict, list[Path]]:
    """Execute notebooks/<name>.ipynb in a kernel of the project's Python with the world's environment; keep the
    executed notebook and its charts in ``artifacts``; return the probe's figures and the PNG files."""
    nb = nbformat.read(REPO / "notebooks" / f"{name}.ipynb", as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(PROBE[name]))
    client = nbclient.NotebookClient(nb, timeout=120, kernel_name="python3")
    client.execute(env=world.env, cwd=str(world.cwd))
    probe = nb.cells.pop()
    figures = json.loads(next(o["text"] for o in probe.outputs if o.get("name") == "stdout"))
    nbformat.write(nb, artifacts / f"{name}.ipynb")
    pngs = []
    images = [o["data"]["image/png"] for c in nb.cells if c.cell_type == "code" for o in c.outputs
              if "image/png" in o.get("data", {})]
    for i, data in enumerate(images, 1):
        path = artifacts / f"{name}-{i}.png"
        path.write_bytes(base64.b64decode(data))
        pngs.append(path)
    return figures, pngs


def _assert_a_chart(path: Path) -> None:
    """A real chart: a decodable PNG of a readable size with more than a few colours (not a blank canvas)."""
    import matplotlib.image
    import numpy as np

    pixels = matplotlib.image.imread(path)
    height, width = pixels.shape[:2]
    assert width >= 500 and height >= 250, f"{path.name}: {width}×{height}"
    colours = np.unique(pixels.reshape(-1, pixels.shape[-1]), axis=0)
    assert len(colours) > 50, f"{path.name}: {len(colours)} colours, an empty chart?"


def _assert_plausible(name: str, figures: dict, world: World) -> None:
    s = figures["summary"]
    assert Path(figures["python"]).resolve() == Path(sys.executable).resolve(), "not the project's ipykernel"
    assert s["leads"] >= world.min_leads
    # Hours, not months: the demo's staff work follows each lead's own time.
    assert 0.1 <= s["median hours to first contact"] <= 200, s
    assert s["median hours to first contact"] <= s["p90 hours to first contact"] <= 24 * 30, s
    assert 0 < s["conversion rate (converted ÷ leads)"] < 1, s
    if name == "funnel_analysis":
        assert set(figures["distributors"]) == set(world.keys)
        assert 0 < s["contact rate"] < 1 and s["conversion rate (converted ÷ leads)"] < s["contact rate"], s
        days = [dt.date.fromisoformat(d) for d in figures["days"]]
        # One point per UTC day, empty days included, over the demo's weeks (not a half-year slope to "today").
        assert days == [days[0] + dt.timedelta(n) for n in range(len(days))], "lead_daily skips days"
        assert 20 <= len(days) <= 70 and s["weekly cohorts"] >= 4, (len(days), s["weekly cohorts"])
        assert "(organic)" in figures["campaigns"] and len(figures["campaigns"]) >= 3
    else:
        assert figures["distributors"] == sorted(world.keys) + ["all distributors"]
        assert 0 <= s["contacted within 1 h"] <= s["contacted within 24 h"] <= 1, s
        assert s["contacted within 24 h"] > 0, s
        grades = figures["grades"]
        assert set(grades) <= {"A", "B", "C", "D"} and len(grades) >= 3, grades
        assert sum(grades.values()) == s["leads"], "every lead has a grade"
        assert 0 < s["invalid or rejected"] < 0.5, s
        assert any(r.startswith("quarantined: ") for r in figures["reasons"]), figures["reasons"]
        assert s["records received"] > s["leads"]


@pytest.mark.slow
@pytest.mark.parametrize("backend", [
    "duckdb",
    # Not on the demo's worker (it seeds its own world): a group of its own, so that xdist may run it elsewhere.
    pytest.param("postgres", marks=[pytest.mark.postgres, pytest.mark.xdist_group("notebooks-postgres")]),
])
def test_notebooks_run_while_a_sync_and_a_marts_run_are_in_flight(backend, request):
    world: World = request.getfixturevalue(f"{backend}_world")
    artifacts = ARTIFACTS / f"notebooks-{backend}"
    shutil.rmtree(artifacts, ignore_errors=True)
    artifacts.mkdir(parents=True)

    with pipeline_running(world) as steps, ThreadPoolExecutor(len(NOTEBOOKS)) as pool:
        began = time.monotonic()  # both notebooks at once, as two analysts would (and in half the time)
        results = dict(zip(NOTEBOOKS, pool.map(lambda name: _run_notebook(name, world, artifacts), NOTEBOOKS)))
        ended = time.monotonic()

    # The pipeline was at work during the notebooks, and nothing it did failed or hung.
    for kind in ("sync", "marts"):
        overlapping = [s for s in steps if s.kind == kind and s.started < ended and s.ended > began]
        assert overlapping, f"no {kind} ran while the notebooks did"
    failed = [s for s in steps if s.code != 0]
    assert not failed, f"{failed[0].kind} failed beside the notebooks: {failed[0].stdout[-500:]}{failed[0].stderr}"
    assert not [s.stderr for s in steps if "Traceback" in s.stderr], "a pipeline step printed a traceback"
    syncs = [json.loads(s.stdout) for s in steps if s.kind == "sync"]
    assert all(out["success"] for out in syncs), syncs

    for name, (figures, pngs) in results.items():
        _assert_plausible(name, figures, world)
        assert len(pngs) == CHARTS[name], f"{name}: {len(pngs)} charts"
        for path in pngs:
            _assert_a_chart(path)
