"""pytest plugin: one `leads-pipeline demo` per test session, shared (registered through ``pytest_plugins``).

The demo takes about 20 seconds and builds the same warehouse every time (seeded simulator, seeded staff activity),
so the tests that need "the state a new user has after `make demo`" share one run instead of each paying for it:
the demo test and the funnel notebook read it; tests that change things work on a copy (``demo_copy``).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

CLI = str(Path(sys.executable).with_name("leads-pipeline"))


def demo_env(work: Path) -> dict[str, str]:
    """The environment of a reader's shell after `make demo` in ``work``: no LEADS_* of the test session (so the
    demo's ``.env`` in ``work`` is read, as it is for a reader), the data directory pinned to ``work/data`` (a
    checkout anchors it to its own ``data/``, which a test must never touch), and the venv's commands on PATH."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEADS_")}
    env["LEADS_DATA_DIR"] = str(work / "data")
    env["DAGSTER_DISABLE_TELEMETRY"] = "1"
    env["GX_ANALYTICS_ENABLED"] = "False"
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory) -> Path:
    """A fresh directory in which `leads-pipeline demo` has run once (its stdout in ``demo.json``). Read only."""
    work = tmp_path_factory.mktemp("demo")
    # Its own sandbox port: another session's demo on :8765 (reused when it answers) may stop in the middle of ours.
    env = {**demo_env(work), "LEADS_SANDBOX_PORT": str(_free_port())}
    run = subprocess.run([CLI, "demo"], cwd=work, env=env, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    (work / "demo.json").write_text(run.stdout)
    return work


@pytest.fixture
def demo_copy(demo_dir, tmp_path) -> Callable[[str], Path]:
    """``demo_copy(name)``: a private copy of the demo directory (its ``.env`` and ``data/``), free to change."""

    def copy(name: str = "demo") -> Path:
        target = tmp_path / name
        shutil.copytree(demo_dir, target, symlinks=True)
        return target

    return copy
