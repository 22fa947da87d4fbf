"""``leads-pipeline simulator serve``: starts, prints where to look (never a secret), stops on a signal."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time

import requests
from click.testing import CliRunner

from leads_pipeline.commands.simulator import simulator

LAUNCH = "from leads_pipeline.commands.simulator import simulator; simulator(prog_name='simulator')"


def _serve(*args: str) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-c", LAUNCH, "serve", "--port", "0", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    first = proc.stdout.readline()
    match = re.search(r"http://127\.0\.0\.1:\d+", first)
    assert match, first
    return proc, match.group(0)


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
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)  # a loaded CI machine (4 workers on 2 cores) once needed over 15 s
    assert proc.returncode == 0
    secrets_leaked = any(s in out for s in (manifest["user_token"], manifest["app_secret"],
                                            manifest["pages"][0]["access_token"]))
    assert not secrets_leaked
    assert "Simulator stopped." in out


def test_help_and_bad_options():
    runner = CliRunner()
    result = runner.invoke(simulator, ["serve", "--help"])
    assert result.exit_code == 0
    for option in ("--host", "--port", "--seed", "--scenario", "--pages", "--forms-per-page", "--leads-per-form",
                   "--arrival-rate", "--webhook-url"):
        assert option in result.output
    bad = runner.invoke(simulator, ["serve", "--pages", "0", "--port", "0"])
    assert bad.exit_code != 0 and "at least one page" in bad.output
