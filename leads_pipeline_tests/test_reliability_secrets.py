"""Nothing secret leaks: a whole sandbox flow, then every place it wrote is scanned for the secrets in clear.

The flow (on DuckDB and on PostgreSQL): distributors added through the CLI (token on stdin); a successful sync through
Dagster (``sync_job.execute_in_process`` on a real on-disk instance) and through the CLI; a sync that fails on purpose
(expired token) through both; the webhook receiver (``leads-pipeline serve``) taking signed deliveries, processed with
``leads-pipeline webhooks process``. Logs are captured at DEBUG (caplog) and from every subprocess.

Scanned for the page tokens, the user token, the app secret, the webhook verify token and the Fernet key: the logs,
every file under DAGSTER_HOME (SQLite event log, run storage — as bytes), the DuckDB warehouse file (after every
process closed it) or a dump of every row of every table of the PostgreSQL test schema. None may appear.

Also: tokens at rest are Fernet-encrypted; ``leads-pipeline keys rotate`` with ``LEADS_SECRET_KEY="new,old"``
re-encrypts them, after which the old key alone fails with a clear message and the new key alone works.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
from pathlib import Path

import dagster as dg
from cryptography.fernet import Fernet

from leads_pipeline.lib.security import generate_key
from leads_pipeline.simulator import FaultConfig, Scenario
from leads_pipeline.lib.warehouse import Warehouse
from leads_pipeline_tests.reliability_fixtures import CLI, ServeProcess, files_under, find_secrets, settings_env

VERIFY_TOKEN = "verify-token-not-for-logs-8812"


def _run(args: list[str], outputs: list[str], *, stdin: str | None = None, ok: bool = True, env=None):
    proc = subprocess.run([CLI, *args], input=stdin, capture_output=True, text=True, timeout=300,
                          env=env or dict(os.environ))
    outputs.append(proc.stdout)
    outputs.append(proc.stderr)
    if ok:
        assert proc.returncode == 0, proc.stderr[-1500:]
    return proc


def _pg_dump(url: str) -> bytes:
    import psycopg

    out = []
    with psycopg.connect(url) as conn:
        tables = [r[0] for r in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() "
            "AND table_type = 'BASE TABLE'").fetchall()]
        assert "distributors" in tables and "leads" in tables
        for table in tables:
            for (row,) in conn.execute(f'SELECT row_to_json(t)::text FROM "{table}" t'):
                out.append(row)
    return "\n".join(out).encode()


def test_no_secret_in_logs_dagster_storage_or_warehouse_and_tokens_rotate(monkeypatch, simulator_factory, tmp_path,
                                                                          warehouse_url, caplog):
    caplog.set_level(logging.DEBUG)
    sim = simulator_factory(Scenario(seed=61, pages=2, forms_per_page=1, leads_per_form=30, extra_leads=None,
                                     malformed_rate=0.05))
    manifest = sim.manifest()
    fernet_key = generate_key()
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    settings_env(monkeypatch, graph_base_url=sim.base_url, secret_key=fernet_key, app_secret=manifest["app_secret"],
                 webhook_verify_token=VERIFY_TOKEN, warehouse_url=warehouse_url, graph_page_limit="10")
    secrets = {"fernet_key": fernet_key, "app_secret": manifest["app_secret"], "user_token": manifest["user_token"],
               "verify_token": VERIFY_TOKEN}
    secrets.update({f"page_token_{i}": p["access_token"] for i, p in enumerate(manifest["pages"])})
    outputs: list[str] = []

    # Distributors through the CLI, the token on stdin.
    keys = []
    for page in manifest["pages"]:
        added = _run(["distributors", "add", page["name"], "--token-stdin", "--page-id", page["id"], "--region",
                      page["default_region"]], outputs, stdin=page["access_token"] + "\n")
        keys.append(json.loads(added.stdout)["key"])
    wh = Warehouse(warehouse_url)
    with wh.transaction(read_only=True) as conn:
        stored = {r["key"]: r["token_encrypted"] for r in conn.query("SELECT key, token_encrypted FROM distributors")}
    tokens = {k: p["access_token"] for k, p in zip(keys, manifest["pages"])}
    for key, encrypted in stored.items():  # encrypted at rest, with this key
        assert not find_secrets(encrypted, secrets)
        assert Fernet(fernet_key.encode()).decrypt(encrypted.encode()).decode() == tokens[key]

    # A successful sync through Dagster on a real on-disk instance, and one through the CLI.
    from leads_pipeline.definitions import defs

    definitions = defs()
    with dg.DagsterInstance.from_config(str(home)) as instance:
        instance.add_dynamic_partitions("distributors", keys)
        job = definitions.resolve_job_def("sync_job")
        assert job.execute_in_process(partition_key=keys[0], instance=instance).success
        _run(["sync", keys[1]], outputs)
        # A sync that fails on purpose: the tokens expire.
        sim.set_faults(FaultConfig(token_expiry_after_calls=0))
        failed = job.execute_in_process(partition_key=keys[1], instance=instance, raise_on_error=False)
        bad = _run(["sync", keys[0]], outputs, ok=False)
        assert bad.returncode == 1 and "long-lived" in bad.stderr
        runs = instance.get_runs()
        assert len(runs) == 2
        event_text = "\n".join(str(e) for r in runs for e in instance.all_logs(r.run_id))
        run_config = "\n".join(json.dumps(r.run_config, default=str) + json.dumps(r.tags) for r in runs)
    sim.set_faults(None)
    assert not failed.success or "expired" in event_text.lower()

    # The webhook receiver taking signed deliveries, then processing them.
    serve = ServeProcess(dict(os.environ), tmp_path / "serve.log").start()
    try:
        sim.start_webhooks(f"{serve.url}/webhooks/meta", batch_size=3)
        announced = sim.advance(leads=5)
        assert sim.flush_webhooks(60) and sim.stats()["webhooks"]["changes_delivered"] == len(announced)
    finally:
        serve.stop()
    _run(["webhooks", "process"], outputs)
    with wh.transaction(read_only=True) as conn:
        assert conn.scalar("SELECT count(*) FROM webhook_inbox") == len(announced)

    # Scan everything.
    leaks: dict[str, list[str]] = {}
    leaks["caplog"] = find_secrets(caplog.text, secrets)
    leaks["subprocess output"] = find_secrets("\n".join(outputs), secrets)
    leaks["serve log"] = find_secrets((tmp_path / "serve.log").read_bytes(), secrets)
    leaks["dagster event log"] = find_secrets(event_text, secrets)
    leaks["dagster run config/tags"] = find_secrets(run_config, secrets)
    dagster_files = list(files_under(home))
    assert any(p.suffix == ".db" for p in dagster_files), [p.name for p in dagster_files]
    for path in dagster_files:
        leaks[f"DAGSTER_HOME/{path.relative_to(home)}"] = find_secrets(path.read_bytes(), secrets)
    if warehouse_url.startswith("duckdb"):
        db = Path(warehouse_url.split("duckdb:///", 1)[1])
        for path in [db, *db.parent.glob(db.name + ".wal")]:
            if path.exists():
                leaks[path.name] = find_secrets(path.read_bytes(), secrets)
    else:
        leaks["postgres dump"] = find_secrets(_pg_dump(warehouse_url), secrets)
    assert {k: v for k, v in leaks.items() if v} == {}
    print(f"\nSECRETS scanned: {len(leaks)} sources, {len(dagster_files)} Dagster files, {len(secrets)} secrets; "
          f"0 found")

    # Key rotation: new,old re-encrypts; then the old key alone fails clearly; the new key alone works.
    new_key = generate_key()
    env = {**os.environ, "LEADS_SECRET_KEY": f"{new_key},{fernet_key}"}
    rotated = _run(["keys", "rotate"], outputs, env=env)
    assert json.loads(rotated.stdout)["rotated"] == len(keys)
    assert not find_secrets(rotated.stdout + rotated.stderr, {**secrets, "new_key": new_key})
    with wh.transaction(read_only=True) as conn:
        after = {r["key"]: r["token_encrypted"] for r in conn.query("SELECT key, token_encrypted FROM distributors")}
    for key, encrypted in after.items():
        assert encrypted != stored[key]
        assert Fernet(new_key.encode()).decrypt(encrypted.encode()).decode() == tokens[key]
    old_only = _run(["test-connection", keys[0]], outputs, ok=False, env={**os.environ, "LEADS_SECRET_KEY": fernet_key})
    assert old_only.returncode != 0
    message = old_only.stdout + old_only.stderr
    assert "LEADS_SECRET_KEY" in message and "decrypt" in message and "Traceback" not in message, message[-800:]
    assert not find_secrets(message, secrets)
    old_sync = _run(["sync", keys[0]], outputs, ok=False, env={**os.environ, "LEADS_SECRET_KEY": fernet_key})
    assert old_sync.returncode == 1 and json.loads(old_sync.stdout)["success"] is False
    assert "LEADS_SECRET_KEY" in old_sync.stderr and "Traceback" not in old_sync.stderr, old_sync.stderr[-800:]
    new_only = _run(["sync", keys[0]], outputs, env={**os.environ, "LEADS_SECRET_KEY": new_key})
    assert json.loads(new_only.stdout)["success"] is True
