"""The CLI starts fast because it imports what a command needs only when that command runs (issue #14, P6).

Not a timing test (timings belong to `make bench`): these check which libraries a fresh process has imported after
`leads-pipeline --help` and after `leads-pipeline stats`, and that the help the CLI prints without importing a
command is that command's own.
"""

from __future__ import annotations

import json
import subprocess
import sys

import click
import pytest

from leads_pipeline.cli import COMMANDS, main

HEAVY = ("dagster", "pandas", "duckdb", "pyarrow", "requests", "fastapi", "starlette", "uvicorn", "sqlalchemy",
         "phonenumbers", "cryptography", "orjson", "pydantic_settings")

_PROBE = """
import json, sys
from leads_pipeline.cli import main
try:
    main(sys.argv[1:], prog_name="leads-pipeline")
except SystemExit:
    pass
heavy = %r
print(json.dumps({"loaded": sorted(m for m in heavy if m in sys.modules),
                  "commands": sorted(m for m in sys.modules if m.startswith("leads_pipeline.commands."))}))
"""


def _probe(args: list[str], env: dict | None = None) -> dict:
    proc = subprocess.run([sys.executable, "-c", _PROBE % (HEAVY,), *args], capture_output=True, text=True,
                          timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_help_imports_no_command_and_no_heavy_library():
    seen = _probe(["--help"])
    assert seen["loaded"] == [], seen
    assert seen["commands"] == [], seen


def test_stats_imports_duckdb_but_not_dagster_pandas_the_web_stack_or_pydantic_settings(tmp_path, monkeypatch):
    """``stats`` needs duckdb and the warehouse's URL: not Dagster, pandas, pyarrow, requests, the web stack, phone
    parsing, encryption or pydantic-settings (``settings.resolved_warehouse_url`` reads the URL without it)."""
    import os

    from leads_pipeline_tests.conftest import premigrated

    url = premigrated(f"duckdb:///{tmp_path / 'w.duckdb'}")
    env = {**os.environ, "LEADS_WAREHOUSE_URL": url, "LEADS_DATA_DIR": str(tmp_path)}
    seen = _probe(["stats"], env)
    assert seen["loaded"] == ["duckdb"], seen
    assert seen["commands"] == ["leads_pipeline.commands.stats"], seen


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_the_help_listed_without_importing_is_the_commands_own(name):
    command = main.commands[name]
    assert isinstance(command, click.Command) and command.name == name
    limit = 10_000
    listed = click.Command(name, help=COMMANDS[name][2]).get_short_help_str(limit)
    assert listed == command.get_short_help_str(limit), (
        f"leads_pipeline/cli.py COMMANDS[{name!r}] differs from the command's docstring: update it")


def test_every_command_is_reachable_from_the_cli():
    """A command a module defines but ``cli.COMMANDS`` does not name (nor a group of it) would never run."""
    import pkgutil

    import leads_pipeline.commands as package

    reachable: set[int] = set()
    stack: list[click.Command] = list(main.commands.values())
    while stack:
        command = stack.pop()
        reachable.add(id(command))
        if isinstance(command, click.Group):
            stack.extend(command.commands.values())
    missing = []
    for info in pkgutil.iter_modules(package.__path__):
        module = __import__(f"leads_pipeline.commands.{info.name}", fromlist=["_"])
        for value in vars(module).values():
            if (isinstance(value, click.Command) and value.callback is not None
                    and value.callback.__module__ == module.__name__ and id(value) not in reachable):
                missing.append(f"{info.name}.{value.name}")
    assert not missing, f"commands not registered in leads_pipeline/cli.py COMMANDS: {missing}"


_SYNC_PROBE = """
import json, os, sys
import requests
from leads_pipeline.lib.distributors import registry
from leads_pipeline.lib.ingest import sync
from leads_pipeline.lib.warehouse import Warehouse
manifest = requests.get(os.environ["LEADS_GRAPH_BASE_URL"] + "/__simulator/manifest", timeout=30).json()
wh = Warehouse(os.environ["LEADS_WAREHOUSE_URL"])
wh.migrate()
page = manifest["pages"][0]
key = registry.add(wh, page["name"], page["access_token"], page_ids=[page["id"]], region=page["default_region"]).key
result = sync.sync_distributor(wh, key, trigger="test")
print(json.dumps({"stored": result.stored, "rejected": result.rejected, "success": result.success,
                  "pandas": "pandas" in sys.modules}))
"""


def test_a_sync_stores_its_leads_without_importing_pandas(tmp_path, simulator):
    """A sync process (the CLI's, a webhook service's, a Dagster run's) stages its rows in DuckDB without pandas:
    pyarrow imported it on its first conversion of Python rows, 0.3 s once per process (issue #14, P6/P7)."""
    import os

    from leads_pipeline.lib.security import generate_key

    env = {**os.environ, "LEADS_GRAPH_BASE_URL": simulator.base_url, "LEADS_SECRET_KEY": generate_key(),
           "LEADS_DATA_DIR": str(tmp_path), "LEADS_WAREHOUSE_URL": f"duckdb:///{tmp_path / 'w.duckdb'}"}
    proc = subprocess.run([sys.executable, "-c", _SYNC_PROBE], capture_output=True, text=True, timeout=180, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    assert seen["success"] and seen["stored"] > 50 and seen["rejected"] > 0, seen
    assert seen["pandas"] is False, seen


_STAGE_PROBE = """
import json, sys
from leads_pipeline.lib.warehouse import Warehouse
from leads_pipeline.lib.warehouse.staging import NUMPY_FIRST_BATCHES
wh = Warehouse(sys.argv[1])
seen = []
batches = [([["a", 1]] * 5, True)] * NUMPY_FIRST_BATCHES + [([["b", 2]] * 5, True)]
if sys.argv[2] == "large-first":
    batches = [([["c", 3]] * 5000, False)] + batches
for rows, copy in batches:
    with wh.transaction() as conn:
        conn.stage("batch", {"k": "TEXT", "n": "BIGINT"}, rows, copy=copy)
        assert conn.scalar("SELECT count(*) FROM batch") == len(rows)
    seen.append("pandas" in sys.modules)
print(json.dumps(seen))
"""


@pytest.mark.parametrize("order", ["small-batches", "large-first"])
def test_a_process_stages_its_first_small_batches_without_pandas_then_through_arrow(tmp_path, order):
    """The cost model of ``lib/warehouse/staging``: a process's first small batches are scanned as NumPy columns
    (no pandas import: a one-page sync stays light); after ``NUMPY_FIRST_BATCHES`` of them, or at the first large
    batch only read, rows go through Arrow (pyarrow imports pandas then, once), cheaper per batch from there on."""
    from leads_pipeline.lib.warehouse.staging import NUMPY_FIRST_BATCHES
    from leads_pipeline_tests.conftest import premigrated

    url = premigrated(f"duckdb:///{tmp_path / 'w.duckdb'}")
    proc = subprocess.run([sys.executable, "-c", _STAGE_PROBE, url, order], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    if order == "large-first":
        assert all(seen), seen
    else:
        assert seen == [False] * NUMPY_FIRST_BATCHES + [True], seen
