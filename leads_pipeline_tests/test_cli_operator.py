"""Operator commands as a new user meets them: the quarantine (`rejected list`), `stats` on an empty warehouse, the
anchored data directory, and `--help` that says what each command does."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from leads_pipeline.cli import main
from leads_pipeline.lib.warehouse import Warehouse
from leads_pipeline.settings import Settings, get_settings
from leads_pipeline_tests.crm_fixtures import add_distributor_sql, add_user_sql

REPO = Path(__file__).resolve().parents[1]


def _quarantine(wh, distributor: str, key: str, reason: str, payload: str) -> None:
    with wh.transaction() as conn:
        conn.execute("INSERT INTO rejected_leads (distributor, reject_key, meta_lead_id, form_id, page_id, reason, "
                     "detail, payload, first_seen_at, last_seen_at) VALUES (?, ?, ?, 'f1', '1001', ?, ?, ?, "
                     "CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)",
                     [distributor, key, None if key.startswith("sha256:") else key, reason, f"{reason} detail",
                      payload])


@pytest.fixture
def run(warehouse, monkeypatch):
    monkeypatch.setenv("LEADS_WAREHOUSE_URL", warehouse.url)
    get_settings.cache_clear()
    runner = CliRunner()

    def invoke(*args: str, ok: bool = True):
        result = runner.invoke(main, list(args))
        if ok:
            assert result.exit_code == 0, (result.output, result.exception)
        return result

    return invoke


def test_rejected_list_shows_why_never_the_answers_and_follows_the_scope(run, warehouse):
    add_distributor_sql(warehouse, "a")
    add_distributor_sql(warehouse, "b")
    secret = '{"field_data": "not a list", "email": "private.person@example.com"}'
    _quarantine(warehouse, "a", "lead_42", "bad_id", secret)
    _quarantine(warehouse, "a", "sha256:" + "0" * 64, "missing_id", secret)
    _quarantine(warehouse, "b", "900000000000001", "bad_created_time", secret)
    out = run("rejected", "list").stdout
    assert "lead_42" in out and "bad_created_time" in out
    assert "3 quarantined (1 bad_created_time, 1 bad_id, 1 missing_id)" in out
    assert "private.person" not in out
    data = json.loads(run("rejected", "list", "--json", "--reason", "bad_id").stdout)
    assert data["total"] == 3 and [i["reject_key"] for i in data["items"]] == ["lead_42"]
    assert "payload" not in data["items"][0]
    add_user_sql(warehouse, "sa", "sa@example.com", distributors=("a",))
    mine = json.loads(run("rejected", "list", "--json", "--as", "sa@example.com").stdout)
    assert mine["total"] == 2 and {i["distributor"] for i in mine["items"]} == {"a"}
    refused = run("rejected", "list", "--distributor", "b", "--as", "sa@example.com", ok=False)
    assert refused.exit_code == 1 and "No distributor with key 'b'" in refused.stderr


def test_stats_on_an_empty_warehouse_says_so_and_where(run, warehouse):
    result = run("stats")
    assert json.loads(result.stdout)["total"] == 0
    assert "holds no leads yet" in result.stderr and "make demo" in result.stderr
    location = warehouse.url.split("?")[0]
    assert location in result.stderr
    # Where it is, never with a password.
    assert Warehouse("postgresql://u:s3cret@127.0.0.1:5432/x").location == "postgresql://u:***@127.0.0.1:5432/x"


def test_stats_where_no_warehouse_exists_prints_zeros_and_creates_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("LEADS_DATA_DIR", str(tmp_path / "nothing-here"))
    get_settings.cache_clear()
    result = CliRunner().invoke(main, ["stats"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == dict.fromkeys(("total", "new", "assigned", "contacted", "converted",
                                                       "rejected"), 0)
    assert "holds no leads yet" in result.stderr and str(tmp_path / "nothing-here") in result.stderr
    assert not (tmp_path / "nothing-here").exists()
    unknown = CliRunner().invoke(main, ["stats", "--distributor", "nobody"])
    assert unknown.exit_code == 1 and "no distributor 'nobody'" in unknown.stderr


def test_the_default_data_directory_is_the_checkout_not_the_current_folder(tmp_path, monkeypatch):
    monkeypatch.delenv("LEADS_DATA_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    get_settings.cache_clear()
    settings = Settings()
    assert settings.data_dir == REPO / "data"
    assert settings.resolved_warehouse_url == f"duckdb:///{REPO / 'data' / 'leads.duckdb'}"


def test_help_says_what_each_command_does():
    out = subprocess.run([str(Path(sys.executable).with_name("leads-pipeline")), "--help"], capture_output=True,
                         text=True, check=True).stdout
    lines = [line.split(None, 1) for line in out.split("Commands:")[1].strip().splitlines()]
    assert {name for name, _ in lines} >= {"stats", "rejected", "sync", "import"}
    assert all(len(text.rstrip(".").split()) >= 2 for _, text in lines), lines  # no bare "Print..."


def test_import_shows_progress_on_a_terminal_and_nothing_in_a_pipe(tmp_path, duckdb_url):
    import os
    import pty

    wh = Warehouse(duckdb_url)
    wh.migrate()
    add_distributor_sql(wh, "msh")
    leads = tmp_path / "leads.jsonl"
    leads.write_text("".join(json.dumps({"id": str(800000000000000 + i), "created_time": "2026-06-01T10:00:00+0000",
                                         "field_data": [{"name": "email", "values": [f"p{i}@example.com"]}]}) + "\n"
                             for i in range(50)))
    env = {**os.environ, "LEADS_WAREHOUSE_URL": duckdb_url}
    exe = str(Path(sys.executable).with_name("leads-pipeline"))
    primary, secondary = pty.openpty()
    try:
        done = subprocess.run([exe, "import", str(leads), "--distributor", "msh"], stdout=subprocess.PIPE,
                              stderr=secondary, env=env, timeout=120)
        os.close(secondary)
        shown = b""
        while True:
            try:
                chunk = os.read(primary, 4096)
            except OSError:
                break
            if not chunk:
                break
            shown += chunk
    finally:
        os.close(primary)
    assert done.returncode == 0 and json.loads(done.stdout)["stored"] == 50
    assert b"50 leads read" in shown and b"50 new stored" in shown
    again = subprocess.run([exe, "import", str(leads), "--distributor", "msh"], capture_output=True, env=env,
                           timeout=120)
    assert again.returncode == 0 and b"leads read" not in again.stderr  # a pipe gets the JSON only
