"""The Dagster layer: definitions and their lineage, resources' configuration, the partitions sensor, one sync per
partition run with honest metadata, partial and failed syncs, the marts' automation, the completeness check, and
three partition runs launched at once on one DuckDB file. (The due-sync sensor and batches: test_scale.py.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import dagster as dg
import pytest
from dagster._core.remote_representation.external_data import RepositorySnap, ResourceConfigEnvVarSnap

from leads_pipeline.definitions import defs
from leads_pipeline.defs.ingestion import assets as ingestion_assets
from leads_pipeline.defs.ingestion.report import partition_counts
from leads_pipeline.defs.ingestion.sensors import distributor_partitions_sensor
from leads_pipeline.defs.quality.checks import leads_form_completeness
from leads_pipeline.defs.resources import WarehouseResource, resources
from leads_pipeline.lib.distributors import registry as distributors
from leads_pipeline.lib.security import generate_key
from leads_pipeline.settings import get_settings
from leads_pipeline.simulator import FaultConfig
from leads_pipeline_tests.pipeline_fixtures import make_sandbox

REPO = Path(__file__).resolve().parents[1]
MARTS = ["lead_stats", "conversion_funnel", "lead_daily", "lead_scores", "person_links"]


@pytest.fixture(scope="module")
def definitions() -> dg.Definitions:
    return defs()


def _load() -> dg.Definitions:
    """The project's definitions as a code server would load them now (resources bound to the current env)."""
    return defs()


def _materializations(run) -> dict[str, dg.AssetMaterialization]:
    return {e.asset_key.to_user_string(): e.materialization for e in run.get_asset_materialization_events()}


def test_definitions_load_with_honest_lineage_checks_and_automation(definitions):
    dg.Definitions.validate_loadable(definitions)
    graph = definitions.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert {"webhook_inbox", "raw_leads", "leads", "rejected_leads", *MARTS} <= keys
    assert "webhook_leads" not in keys  # no asset pretending to be `leads`
    # webhook_inbox (written by the HTTP receiver) → raw_leads → leads / rejected_leads → marts
    inbox = graph.get(dg.AssetKey("webhook_inbox"))
    assert not inbox.is_executable and inbox.parent_keys == set()
    assert "HTTP receiver" in inbox.description
    assert graph.get(dg.AssetKey("raw_leads")).parent_keys == {dg.AssetKey("webhook_inbox")}
    assert graph.get(dg.AssetKey("leads")).parent_keys == {dg.AssetKey("raw_leads")}
    assert graph.get(dg.AssetKey("rejected_leads")).parent_keys == {dg.AssetKey("raw_leads")}
    for mart in MARTS:
        assert dg.AssetKey("leads") in graph.get(dg.AssetKey(mart)).parent_keys
    # One step writes the three tables of a sync.
    sync = definitions.resolve_assets_def("raw_leads")
    assert sync.keys == {dg.AssetKey(k) for k in ("raw_leads", "leads", "rejected_leads")}
    assert sync.op.name == "sync_leads" and not sync.can_subset
    checks = {c.name for c in graph.asset_check_keys}
    assert {"meta_lead_id_unique", "required_fields_present", "contact_validity",
            "freshness_per_distributor", "form_completeness", "expectation_suite"} <= checks
    assert not [c for c in checks if c.startswith("leads_")]  # the UI prints the asset beside the check's name
    for key in keys - {"lead_interactions"}:
        assert graph.get(dg.AssetKey(key)).description, f"{key} has no description for the UI"
    # One due-sync sensor for both sync jobs; the table-wide checks run by their automation condition, no schedule.
    assert not list(definitions.schedules or [])
    sensor = definitions.resolve_sensor_def("sync_due_sensor")
    assert sensor.minimum_interval_seconds == 60
    assert {t.job_name for t in sensor.targets} == {"sync_job", "sync_batch_job"}
    assert definitions.resolve_sensor_def("distributor_partitions_sensor") is not None


def _configured(definitions: dg.Definitions) -> dict[str, dict]:
    """What the UI's Resources tab shows: each resource's configured values (an env var by name, or a value)."""
    snap = RepositorySnap.from_def(definitions.get_repository_def())
    return {r.name: dict(r.configured_values) for r in snap.resources}


def test_resources_show_their_configuration_with_secrets_as_env_var_names(monkeypatch, tmp_path):
    monkeypatch.setenv("LEADS_WAREHOUSE_URL", "postgresql://leads:pg-password-1@db.internal:5432/leads")
    monkeypatch.setenv("LEADS_APP_SECRET", "app-secret-value-42")
    monkeypatch.setenv("LEADS_GRAPH_BASE_URL", "http://127.0.0.1:8765")
    monkeypatch.setenv("LEADS_GRAPH_PAGE_LIMIT", "25")
    get_settings.cache_clear()
    shown = _configured(resources())
    env = ResourceConfigEnvVarSnap
    assert shown["warehouse"] == {"url": env(name="LEADS_WAREHOUSE_URL")}
    graph = shown["graph"]
    assert graph["app_secret"] == env(name="LEADS_APP_SECRET")
    assert graph["base_url"] == env(name="LEADS_GRAPH_BASE_URL") and graph["page_limit"] == env(
        name="LEADS_GRAPH_PAGE_LIMIT")
    assert json.loads(graph["api_version"]) == "v25.0" and json.loads(graph["timeout_seconds"]) == 30.0
    snapshot = repr(shown)
    assert "app-secret-value-42" not in snapshot and "pg-password-1" not in snapshot
    # The run resolves the env vars: the client the sync gets carries them.
    bound = resources().resources["graph"]
    resolved = bound.process_config_and_initialize()
    client = resolved.client_factory()("EAAtoken")
    assert client.base_url.startswith("http://127.0.0.1:8765") and client.page_limit == 25


def test_resources_without_environment_show_the_settings_defaults_and_no_secret(monkeypatch, tmp_path):
    get_settings.cache_clear()
    shown = _configured(resources())
    url = json.loads(shown["warehouse"]["url"])
    assert url == f"duckdb:///{(tmp_path / 'data' / 'leads.duckdb').resolve()}"  # make demo's default
    graph = shown["graph"]
    assert json.loads(graph["base_url"]) == "https://graph.facebook.com"
    assert "app_secret" not in graph or json.loads(graph["app_secret"]) is None
    # And that default works: the warehouse opens and migrates.
    wh = resources().resources["warehouse"].get()
    assert wh.url == url and wh.path.exists()


def test_partitions_sensor_adds_new_distributors_with_an_initial_run_and_removes_deleted(duckdb_url, monkeypatch):
    monkeypatch.setenv("LEADS_SECRET_KEY", generate_key())
    get_settings.cache_clear()
    wh = WarehouseResource(url=duckdb_url).get()
    a = distributors.add(wh, "Acme Clinic", "EAAtoken-a", page_ids=["1"])
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("distributors", ["gone-distributor"])
        ctx = dg.build_sensor_context(instance=instance, resources={"warehouse": WarehouseResource(url=duckdb_url)})
        result = distributor_partitions_sensor(ctx)
        adds = [r for r in result.dynamic_partitions_requests if isinstance(r, dg.AddDynamicPartitionsRequest)]
        deletes = [r for r in result.dynamic_partitions_requests if isinstance(r, dg.DeleteDynamicPartitionsRequest)]
        assert adds[0].partition_keys == [a.key] and deletes[0].partition_keys == ["gone-distributor"]
        assert [r.partition_key for r in result.run_requests] == [a.key]


def _count_syncs(monkeypatch) -> list[str]:
    """Wrap the one sync path as the asset calls it; returns the keys it was called with."""
    calls: list[str] = []
    real = ingestion_assets.sync_distributor

    def counting(wh, key, **kwargs):
        calls.append(key)
        return real(wh, key, **kwargs)

    monkeypatch.setattr(ingestion_assets, "sync_distributor", counting)
    return calls


def test_a_partition_run_syncs_once_and_its_metadata_equals_the_rows(monkeypatch, simulator_factory,
                                                                     warehouse_url):
    sim = simulator_factory(pages=2, forms_per_page=2, leads_per_form=30)
    box = make_sandbox(monkeypatch, sim, warehouse_url)
    calls = _count_syncs(monkeypatch)
    key = box.keys[0]
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("distributors", box.keys)
        run = _load().resolve_job_def("sync_job").execute_in_process(partition_key=key, instance=instance)
        assert run.success and calls == [key]
        mats = _materializations(run)
        assert set(mats) == {"raw_leads", "leads", "rejected_leads"}
        assert all(e.partition == key for e in run.get_asset_materialization_events())
        meta = {asset: {k: v.value for k, v in m.metadata.items()} for asset, m in mats.items()}
        assert instance.get_run_by_id(run.run_id).tags["leads/sync_status"] == "success"
    sync_id = meta["leads"]["sync_id"]
    assert {m["sync_id"] for m in meta.values()} == {sync_id}
    with box.wh.transaction(read_only=True) as conn:
        def count(sql: str, *params) -> int:
            return int(conn.scalar(sql, list(params)))

        sync_run = conn.query_one("SELECT run_id, status, fetched, stored, rejected FROM sync_runs WHERE sync_id = ?",
                                  [sync_id])
        assert count("SELECT count(*) FROM sync_runs") == 1  # one sync, one row, this run's
        stored_by_run = count("SELECT count(*) FROM leads WHERE sync_id = ?", sync_id)
        leads_rows = count("SELECT count(*) FROM leads WHERE distributor = ?", key)
        raw_rows = count("SELECT count(*) FROM raw_leads WHERE distributor = ?", key)
        landed_by_run = count("SELECT count(*) FROM raw_leads WHERE sync_id = ?", sync_id)
        rejected_rows = count("SELECT count(*) FROM rejected_leads WHERE distributor = ?", key)
        total = count("SELECT count(*) FROM leads")
    assert sync_run["run_id"] == run.run_id and sync_run["status"] == "success"
    page = box.manifest()["pages"][0]
    on_wire = sum(len(f["valid_lead_ids"]) + len(f["malformed_lead_ids"]) + f["malformed_without_id"]
                  for f in page["forms"])
    assert meta["raw_leads"]["fetched"] == sync_run["fetched"] == on_wire
    assert meta["raw_leads"]["landed"] == landed_by_run == raw_rows
    assert meta["raw_leads"]["dagster/partition_row_count"] == raw_rows
    assert meta["leads"]["stored"] == sync_run["stored"] == stored_by_run == leads_rows > 0
    assert meta["leads"]["dagster/partition_row_count"] == leads_rows and meta["leads"]["dagster/row_count"] == total
    assert meta["rejected_leads"]["rejected"] == sync_run["rejected"] == rejected_rows
    assert meta["rejected_leads"]["dagster/partition_row_count"] == rejected_rows
    assert meta["raw_leads"]["partial"] is False and meta["raw_leads"]["failures"] == []
    assert meta["raw_leads"]["held_elsewhere"] == {}
    preview = meta["leads"]["preview"]
    assert "@" not in preview or "***@" in preview  # contact data masked in the UI


def test_a_partial_sync_materialises_and_shows_the_failed_form(monkeypatch, simulator_factory, duckdb_url):
    sim = simulator_factory(pages=1, forms_per_page=2, leads_per_form=20)
    box = make_sandbox(monkeypatch, sim, duckdb_url)
    page = box.manifest()["pages"][0]
    good = page["forms"][0]
    missing = "990000000000001"  # a form id Meta does not know: reading it fails, the other form still syncs
    dist = distributors.add(box.wh, "Two Forms Clinic", page["access_token"], form_ids=[good["id"], missing],
                            region=page["default_region"])
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("distributors", [dist.key])
        run = _load().resolve_job_def("sync_job").execute_in_process(partition_key=dist.key, instance=instance)
        assert run.success
        raw = _materializations(run)["raw_leads"].metadata
        assert raw["partial"].value is True and raw["status"].value == "partial"
        failures = raw["failures"].value
        assert [f.get("form_id") for f in failures] == [missing] and failures[0]["error"]
        assert instance.get_run_by_id(run.run_id).tags["leads/sync_status"] == "partial"
        warnings = [e.message for e in instance.all_logs(run.run_id) if e.level == 30]
        assert any(missing in m for m in warnings)
    with box.wh.transaction(read_only=True) as conn:
        stored = {r["meta_lead_id"] for r in conn.query("SELECT meta_lead_id FROM leads WHERE distributor = ?",
                                                        [dist.key])}
    assert set(good["valid_lead_ids"]) <= stored


def test_a_token_failure_fails_the_run_once_without_retries(monkeypatch, simulator_factory, duckdb_url):
    sim = simulator_factory(pages=1, forms_per_page=1, leads_per_form=10)
    box = make_sandbox(monkeypatch, sim, duckdb_url)
    token = box.manifest()["pages"][0]["access_token"]
    sim.set_faults(FaultConfig(token_expiry_after_calls=0, expire_tokens=[token]))
    calls = _count_syncs(monkeypatch)
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("distributors", box.keys)
        run = _load().resolve_job_def("sync_job").execute_in_process(partition_key=box.keys[0], instance=instance,
                                                                      raise_on_error=False)
        assert not run.success and calls == [box.keys[0]]  # the retry policy did not run it again
        failure = run.get_step_failure_events()[0].step_failure_data
        assert box.keys[0] in failure.error.message and "expired" in failure.error.message.lower()
        assert token not in failure.error.message
        # The distributor backs off (issue 15): the failure says until when, and shows its health.
        assert "back off: next try at" in failure.error.message
        assert failure.user_failure_data.metadata["health/state"].value == "backing_off"
        assert not [e for e in run.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]
        assert not run.get_asset_materialization_events()
    with box.wh.transaction(read_only=True) as conn:
        assert [r["status"] for r in conn.query("SELECT status FROM sync_runs")] == ["failed"]


def test_sync_job_and_marts_through_dagster_equal_the_manifest(monkeypatch, simulator_factory, duckdb_url):
    sim = simulator_factory()
    box = make_sandbox(monkeypatch, sim, duckdb_url)
    definitions = _load()
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("distributors", box.keys)
        job = definitions.resolve_job_def("sync_job")
        for key in box.keys:
            run = job.execute_in_process(partition_key=key, instance=instance)
            assert run.success
            checks = {c.check_name: c.passed for c in run.get_asset_check_evaluations()}
            # Only the cheap blocking checks run with a sync; the table-wide ones have their own job.
            assert checks == {"meta_lead_id_unique": True, "required_fields_present": True}
            shown = _materializations(run)["raw_leads"].metadata  # the distributor's health (issue 15)
            assert shown["health/state"].value == "ok" and shown["health/next_sync"].value.startswith("in ")
        assert box.stored() == box.expected()
        marts = definitions.resolve_job_def("marts_job").execute_in_process(instance=instance)
        assert marts.success
        quality = definitions.resolve_job_def("leads_quality_job").execute_in_process(instance=instance)
        evaluations = {c.check_name: c for c in quality.get_asset_check_evaluations()}
        assert set(evaluations) == {"contact_validity", "freshness_per_distributor", "form_completeness",
                                    "expectation_suite", "speed_to_lead", "sync_health"}
        assert all(c.passed for c in evaluations.values()), {n: c.metadata for n, c in evaluations.items()}
        assert evaluations["form_completeness"].metadata["forms_checked"].value == sum(
            len(p["forms"]) for p in box.manifest()["pages"])
    with box.wh.transaction() as conn:
        total = conn.scalar("SELECT total FROM lead_stats WHERE distributor = '__all__'")
    assert total == len(box.expected()[0])


def test_form_completeness_warns_for_a_form_short_of_metas_count(monkeypatch, simulator_factory, warehouse_url):
    sim = simulator_factory(pages=1, forms_per_page=2, leads_per_form=15)
    box = make_sandbox(monkeypatch, sim, warehouse_url)
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("distributors", box.keys)
        assert _load().resolve_job_def("sync_job").execute_in_process(partition_key=box.keys[0],
                                                                      instance=instance).success
    resource = WarehouseResource(url=warehouse_url)
    complete = leads_form_completeness(dg.build_asset_check_context(), warehouse=resource)
    assert complete.passed and complete.metadata["forms_checked"].value == 2
    short_form = box.manifest()["pages"][0]["forms"][1]
    with box.wh.transaction() as conn:  # Meta now counts 7 more leads than the warehouse holds (e.g. expired ones)
        conn.execute("UPDATE distributor_forms SET leads_count = leads_count + 7, expired_leads_count = 7 "
                     "WHERE form_id = ?", [short_form["id"]])
    short = leads_form_completeness(dg.build_asset_check_context(), warehouse=resource)
    assert not short.passed and short.severity == dg.AssetCheckSeverity.WARN
    (row,) = short.metadata["short_forms"].value
    assert row["form_id"] == short_form["id"] and row["distributor"] == box.keys[0] and row["shortfall"] == 7
    assert short_form["id"] in short.description and "short by 7" in short.description
    assert "leads-pipeline import" in short.description
    assert short.metadata["problem"].value == short.description  # the sentence, not only JSON, in the UI


def test_partition_metadata_is_read_in_one_open_of_the_warehouse(monkeypatch, simulator_factory, duckdb_url):
    import duckdb

    sim = simulator_factory(pages=1, forms_per_page=1, leads_per_form=10)
    box = make_sandbox(monkeypatch, sim, duckdb_url)
    WarehouseResource(url=duckdb_url).get()  # migrated (once per process) before counting
    opens: list[str] = []
    real = duckdb.connect
    monkeypatch.setattr(duckdb, "connect", lambda *a, **k: opens.append(str(a[:1])) or real(*a, **k))
    counts = partition_counts(box.wh, box.keys[0], detail=True)
    assert len(opens) == 1
    assert counts.leads == 0 and counts.leads_schema is not None and counts.leads_preview


def test_marts_are_requested_when_leads_change(monkeypatch, simulator_factory, duckdb_url):
    sim = simulator_factory()
    box = make_sandbox(monkeypatch, sim, duckdb_url)
    definitions = _load()
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("distributors", box.keys)
        first = dg.evaluate_automation_conditions(defs=definitions, instance=instance)
        definitions.resolve_job_def("sync_job").execute_in_process(partition_key=box.keys[0], instance=instance)
        second = dg.evaluate_automation_conditions(defs=definitions, instance=instance, cursor=first.cursor)
        requested = {m for m in MARTS if second.get_num_requested(dg.AssetKey(m)) == 1}
    # Only one of the distributors has synced: the others' missing partitions must not hold the marts back.
    assert requested == set(MARTS)
    assert first.total_requested == 0


def test_three_partition_runs_launched_at_once_on_duckdb_all_succeed(monkeypatch, simulator_factory, tmp_path):
    sim = simulator_factory(pages=3, forms_per_page=1, leads_per_form=80)
    box = make_sandbox(monkeypatch, sim, f"duckdb:///{tmp_path / 'shared.duckdb'}")
    home = tmp_path / "dagster_home"
    home.mkdir()
    env = {**os.environ, "DAGSTER_HOME": str(home), "DAGSTER_DISABLE_TELEMETRY": "1"}
    dagster = str(Path(sys.executable).with_name("dagster"))
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    with dg.DagsterInstance.from_config(str(home)) as instance:  # the instance the three CLI processes share
        instance.add_dynamic_partitions("distributors", box.keys)
    procs = [
        subprocess.Popen(
            [dagster, "asset", "materialize", "-m", "leads_pipeline.definitions", "--select",
             "raw_leads,leads,rejected_leads", "--partition", key],
            # Not the repository: the dagster CLI loads a .env from its working directory (make demo writes one).
            env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        for key in box.keys
    ]
    outputs = [p.communicate(timeout=600)[0] for p in procs]
    codes = [p.returncode for p in procs]
    assert codes == [0, 0, 0], "\n".join(o[-2000:] for o in outputs)
    assert box.stored() == box.expected()


def test_the_local_dagster_home_is_made_with_its_storage(monkeypatch, tmp_path):
    """Dagster's SQLite storages create their tables unguarded: two processes opening a new home at once (the UI,
    the daemon, a CLI sync's report) fail with "table jobs already exists". The home ``make demo`` / ``make dev``
    make holds its storage from the start, so no process opening it later creates tables."""
    import sqlite3

    from leads_pipeline.commands.demo import dagster_home

    monkeypatch.setenv("LEADS_DATA_DIR", str(tmp_path))
    get_settings.cache_clear()
    home = dagster_home()
    assert home == (tmp_path / "dagster_home").resolve() and (home / "dagster.yaml").is_file()
    for db, table in (("history/runs.db", "runs"), ("history/runs/index.db", "event_logs"),
                      ("schedules/schedules.db", "jobs")):
        with sqlite3.connect(home / db) as conn:
            assert conn.execute("SELECT count(*) FROM sqlite_master WHERE name = ?", [table]).fetchone()[0] == 1, db


def test_a_cli_sync_is_recorded_in_the_local_dagster_instance(monkeypatch, simulator_factory, duckdb_url, tmp_path):
    from click.testing import CliRunner

    from leads_pipeline.cli import main
    from leads_pipeline.defs.events import instance_home, record_cli_sync

    box = make_sandbox(monkeypatch, simulator_factory(pages=1, forms_per_page=1, leads_per_form=12), duckdb_url)
    key = box.keys[0]
    home = get_settings().data_dir / "dagster_home"
    assert instance_home() is None  # no instance yet: a CLI sync records nothing and creates nothing
    assert CliRunner().invoke(main, ["sync", key]).exit_code == 0
    assert not home.exists()
    from leads_pipeline.commands.demo import dagster_home

    assert dagster_home() == home.resolve()  # what `make demo` / `make dev` create
    box.sim.advance(leads=3)
    out = CliRunner().invoke(main, ["sync", key])
    assert out.exit_code == 0, out.output
    stored = json.loads(out.output)["stored"]
    # Written by a detached child process (the command does not wait for dagster): poll for it.
    deadline = time.monotonic() + 60
    with dg.DagsterInstance.from_config(str(home)) as instance:
        while time.monotonic() < deadline and instance.get_latest_materialization_event(
                dg.AssetKey("rejected_leads")) is None:
            time.sleep(0.2)
        events = {a: instance.get_latest_materialization_event(dg.AssetKey(a)) for a in ("raw_leads", "leads",
                                                                                         "rejected_leads")}
        assert all(e is not None and e.dagster_event.partition == key and not e.run_id for e in events.values())
        meta = events["leads"].asset_materialization.metadata
        assert meta["stored"].value == stored == 3 and meta["source"].value == "cli sync"
        with box.wh.transaction(read_only=True) as conn:
            rows = conn.scalar("SELECT count(*) FROM leads WHERE distributor = ?", [key])
        assert meta["dagster/partition_row_count"].value == rows  # the same figures a run reports
        assert key in instance.get_dynamic_partitions("distributors")
    (home / "dagster.yaml").write_text("storage: [not, valid\n")  # a broken instance never fails the command
    assert record_cli_sync(key, SimpleNamespace(success=True, stored=1), wh=box.wh, wait=True) is False
    assert CliRunner().invoke(main, ["sync", key]).exit_code == 0
