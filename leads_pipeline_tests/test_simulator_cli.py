"""``leads-pipeline simulator serve``: starts, prints where to look (never a secret), stops on a signal."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time

import pytest
import requests
from click.testing import CliRunner

from leads_pipeline.commands.simulator import simulator

LAUNCH = "from leads_pipeline.commands.simulator import simulator; simulator(prog_name='simulator')"


def _serve(*args: str, signal_state: str = "") -> tuple[subprocess.Popen, str]:
    """``signal_state``: Python run before the command, as if the process had inherited that state (no preexec_fn:
    it is not safe in a parent with threads). -X faulthandler: a process that does not stop can be made to print where
    each of its threads is (SIGABRT)."""
    proc = subprocess.Popen([sys.executable, "-X", "faulthandler", "-c", f"{signal_state}\n{LAUNCH}", "serve",
                             "--port", "0", *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    first = proc.stdout.readline()
    match = re.search(r"http://127\.0\.0\.1:\d+", first)
    assert match, first
    return proc, match.group(0)


def _stop(proc: subprocess.Popen, sig: int = signal.SIGINT) -> str:
    """Send ``sig`` and return the output once the process has exited; a process still running after 20 s fails the
    test with the stack of each of its threads."""
    proc.send_signal(sig)
    try:
        out, _ = proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGABRT)
        out, _ = proc.communicate(timeout=10)
        raise AssertionError(f"the simulator did not stop within 20 s of signal {sig}:\n{out}") from None
    return out


def test_serve_prints_no_secret_and_stops(tmp_path):
    scenario = tmp_path / "scenario.json"
    scenario.write_text(json.dumps({"seed": 3, "pages": 1, "forms_per_page": 1, "leads_per_form": 10}))
    proc, base_url = _serve("--scenario", str(scenario), "--forms-per-page", "2", "--arrival-rate", "600")
    try:
        manifest = requests.get(f"{base_url}/__simulator/manifest", timeout=10).json()
        assert len(manifest["pages"]) == 1 and len(manifest["pages"][0]["forms"]) == 2
        assert sum(len(f["valid_lead_ids"]) + len(f["malformed"]) for f in manifest["pages"][0]["forms"]) == 20
        time.sleep(1.5)  # real-time arrivals (600 per minute)
        later = requests.get(f"{base_url}/__simulator/manifest", timeout=10).json()
        assert later["now"] > manifest["now"]
        r = requests.get(f"{base_url}/v25.0/me/accounts", headers={
            "Authorization": f"Bearer {manifest['user_token']}"}, timeout=10)
        assert r.status_code == 200
    finally:
        out = _stop(proc)
    assert proc.returncode == 0
    secrets_leaked = any(s in out for s in (manifest["user_token"], manifest["app_secret"],
                                            manifest["pages"][0]["access_token"]))
    assert not secrets_leaked
    assert "Simulator stopped." in out


@pytest.mark.parametrize("inherited", [
    "import signal; signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})",
    "import signal; signal.signal(signal.SIGINT, signal.SIG_IGN)",
], ids=["sigint-blocked", "sigint-ignored"])
def test_serve_stops_on_ctrl_c_whatever_signal_state_it_inherits(inherited):
    """A process started from a script's background job (``serve &``: SIGINT ignored) or from a parent that blocks
    SIGINT in the starting thread inherits that state; Ctrl-C / ``kill -INT`` must still stop the simulator cleanly."""
    proc, base_url = _serve("--arrival-rate", "600", signal_state=inherited)
    try:
        assert requests.get(f"{base_url}/__simulator/manifest", timeout=10).status_code == 200
    finally:
        out = _stop(proc)
    assert proc.returncode == 0 and "Simulator stopped." in out


def test_serve_stops_on_sigterm_with_a_client_connection_still_open():
    """A client holding a keep-alive connection (a sync in progress) does not keep the simulator from stopping."""
    proc, base_url = _serve()
    session = requests.Session()
    try:
        assert session.get(f"{base_url}/__simulator/manifest", timeout=10).status_code == 200
    finally:
        out = _stop(proc, signal.SIGTERM)
        session.close()
    assert proc.returncode == 0 and "Simulator stopped." in out


def test_help_and_bad_options():
    runner = CliRunner()
    result = runner.invoke(simulator, ["serve", "--help"])
    assert result.exit_code == 0
    for option in ("--host", "--port", "--seed", "--scenario", "--pages", "--forms-per-page", "--leads-per-form",
                   "--arrival-rate", "--webhook-url"):
        assert option in result.output
    bad = runner.invoke(simulator, ["serve", "--pages", "0", "--port", "0"])
    assert bad.exit_code != 0 and "at least one page" in bad.output
