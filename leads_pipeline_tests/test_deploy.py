"""Deployment configuration: every shipped instance / workspace / executor file loads through the libraries' own
schemas, and the production instance (``deploy/dagster.postgres.yaml``) runs the real daemon against PostgreSQL.

The Kubernetes and Celery examples need ``dagster-k8s==0.29.27`` and ``dagster-celery==0.29.27``. Where they are
not installed those checks skip with the reason, except under ``CI=true``, where a missing library is a failure.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
import yaml

from leads_pipeline.deploy import DEPLOY_DIR, LOCAL_INSTANCE_YAML
from leads_pipeline_tests.conftest import POSTGRES_URL

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = DEPLOY_DIR / "examples"
POSTGRES_YAML = DEPLOY_DIR / "dagster.postgres.yaml"
BIN = Path(sys.executable).parent

SHIPPED_YAML = sorted(p.relative_to(DEPLOY_DIR).as_posix() for p in DEPLOY_DIR.rglob("*.yaml"))
INSTANCE_YAML = ["dagster.local.yaml", "dagster.postgres.yaml", "examples/dagster.k8s.yaml",
                 "examples/dagster.celery.yaml"]


def _require(module: str):
    """Import an optional deployment library; skip without it, fail under CI=true (it is pinned there)."""
    try:
        return __import__(module, fromlist=["_"])
    except ImportError as exc:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{module} is required under CI=true (pin {module.replace('_', '-')}==0.29.27): {exc}")
        pytest.skip(f"{module} is not installed (pip install {module.replace('_', '-')}==0.29.27): {exc}")


def _load(rel: str) -> dict:
    return yaml.safe_load((DEPLOY_DIR / rel).read_text())


def _instance_config(rel: str) -> dict:
    """The file as Dagster's instance loader validates it (structure, storage selector, concurrency rules)."""
    from dagster._core.instance.config import dagster_instance_config

    with tempfile.TemporaryDirectory() as home:
        shutil.copy(DEPLOY_DIR / rel, Path(home) / "dagster.yaml")
        config, custom_class = dagster_instance_config(home)
    assert custom_class is None
    return dict(config)


def _pg_env(db_name: str) -> dict[str, str]:
    """DAGSTER_PG_* for a database on the test server (LEADS_TEST_POSTGRES_URL)."""
    url = urlsplit(POSTGRES_URL)
    return {
        "DAGSTER_PG_USERNAME": unquote(url.username or "postgres"),
        "DAGSTER_PG_PASSWORD": unquote(url.password or ""),
        "DAGSTER_PG_HOST": url.hostname or "127.0.0.1",
        "DAGSTER_PG_PORT": str(url.port or 5432),
        "DAGSTER_PG_DB": db_name,
    }


@pytest.fixture
def dagster_db(postgres_available, monkeypatch) -> Iterator[str]:
    """A fresh database for Dagster's instance storage (dropped after), with DAGSTER_PG_* pointing at it."""
    import psycopg

    name = f"dagster_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    for key, value in _pg_env(name).items():
        monkeypatch.setenv(key, value)
    yield name
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _dagster_db_url(name: str) -> str:
    url = urlsplit(POSTGRES_URL)
    return url._replace(path=f"/{name}", query="").geturl()


def _home_with(tmp_path: Path, config: dict | Path, name: str = "dagster_home") -> Path:
    home = tmp_path / name
    home.mkdir()
    if isinstance(config, Path):
        shutil.copy(config, home / "dagster.yaml")
    else:
        (home / "dagster.yaml").write_text(yaml.safe_dump(config))
    return home


# --------------------------------------------------------------------------------------------------------------
# Every shipped file loads
# --------------------------------------------------------------------------------------------------------------


def test_the_expected_files_are_shipped():
    assert {"dagster.local.yaml", "dagster.postgres.yaml", "workspace.grpc.yaml", "examples/dagster.k8s.yaml",
            "examples/workspace.k8s.yaml", "examples/helm-values.k8s.yaml", "examples/dagster.celery.yaml",
            "examples/celery.executor.yaml"} <= set(SHIPPED_YAML)
    assert (REPO / "docs" / "deployment.md").is_file()


@pytest.mark.parametrize("rel", SHIPPED_YAML)
def test_every_yaml_parses_and_is_commented(rel):
    text = (DEPLOY_DIR / rel).read_text()
    assert isinstance(yaml.safe_load(text), dict)
    assert text.lstrip().startswith("#"), f"{rel} should say what it is for in a leading comment"


@pytest.mark.parametrize("rel", INSTANCE_YAML)
def test_instance_configs_pass_dagsters_instance_schema_with_telemetry_off(rel):
    config = _instance_config(rel)
    assert config["telemetry"] == {"enabled": False}
    if "storage" in config:
        # SQLAlchemy 2.1 maps postgresql:// to psycopg 3, on which dagster-postgres 0.29.27 cannot store events.
        assert config["storage"]["postgres"]["postgres_db"]["scheme"] == "postgresql+psycopg2"


def test_postgres_instance_config_has_the_production_settings():
    config = _instance_config("dagster.postgres.yaml")
    db = config["storage"]["postgres"]["postgres_db"]
    assert {k: v for k, v in db.items() if k in {"username", "password", "hostname", "db_name", "port"}} == {
        "username": {"env": "DAGSTER_PG_USERNAME"}, "password": {"env": "DAGSTER_PG_PASSWORD"},
        "hostname": {"env": "DAGSTER_PG_HOST"}, "db_name": {"env": "DAGSTER_PG_DB"}, "port": {"env": "DAGSTER_PG_PORT"},
    }
    runs = config["concurrency"]["runs"]
    assert runs["max_concurrent_runs"] >= 2
    assert {"key": "leads/distributor", "value": {"applyLimitPerUniqueValue": True}, "limit": 1} in (
        runs["tag_concurrency_limits"])
    assert config["concurrency"]["pools"]["default_limit"] >= 1
    assert config["run_retries"]["enabled"] and config["run_retries"]["max_retries"] >= 1
    assert config["run_retries"]["retry_on_asset_or_op_failure"] is False
    assert config["run_monitoring"]["enabled"] is True
    # The default run launcher cannot resume a run in place; Dagster refuses resume attempts with it.
    assert config["run_monitoring"].get("max_resume_run_attempts", 0) == 0
    for kind in ("schedule", "sensor"):
        assert config["retention"][kind]["purge_after_days"]["skipped"] > 0


def test_local_instance_config_still_limits_runs_per_distributor():
    config = _instance_config("dagster.local.yaml")
    assert {"key": "leads/distributor", "value": {"applyLimitPerUniqueValue": True}, "limit": 1} in (
        config["concurrency"]["runs"]["tag_concurrency_limits"])
    assert "storage" not in config  # SQLite under DAGSTER_HOME, as `leads-pipeline demo` / `dev` expect


def test_local_instance_builds_on_sqlite(tmp_path):
    import dagster as dg
    from dagster._core.run_coordinator import QueuedRunCoordinator

    with dg.DagsterInstance.from_config(str(_home_with(tmp_path, LOCAL_INSTANCE_YAML))) as instance:
        assert isinstance(instance.run_coordinator, QueuedRunCoordinator)
        assert instance.run_coordinator.dequeue_interval_seconds == 1  # a queued run starts within a second
        assert instance.run_retries_enabled
        assert not instance.telemetry_enabled
        assert type(instance.run_storage).__name__ == "SqliteRunStorage"


@pytest.mark.parametrize("rel", ["workspace.grpc.yaml", "examples/workspace.k8s.yaml"])
def test_workspaces_pass_dagsters_workspace_schema(rel, monkeypatch):
    from dagster._core.workspace.config_schema import ensure_workspace_config

    monkeypatch.setenv("DAGSTER_CODE_SERVER_HOST", "127.0.0.1")
    monkeypatch.setenv("DAGSTER_CODE_SERVER_PORT", "4000")
    processed = ensure_workspace_config(_load(rel), str(DEPLOY_DIR / rel))
    (entry,) = processed["load_from"]
    assert entry["grpc_server"]["location_name"] == "leads_pipeline"


def test_k8s_example_is_accepted_by_dagster_k8s():
    _require("dagster_k8s")
    from dagster._config import process_config
    from dagster_k8s import K8sRunLauncher

    config = _instance_config("examples/dagster.k8s.yaml")
    launcher = config["run_launcher"]
    assert (launcher["module"], launcher["class"]) == ("dagster_k8s", "K8sRunLauncher")
    result = process_config(K8sRunLauncher.config_type(), launcher["config"])
    assert result.success, result.errors
    value = result.value
    assert value["instance_config_map"] and value["service_account_name"]
    # Run workers get the project's secrets (warehouse URL, Fernet key, Meta app secret) from the Secret.
    assert "leads-pipeline-env" in value["env_secrets"]
    # K8sRunLauncher checks its run workers and can resume a run whose pod died: Dagster allows resuming here.
    assert config["run_monitoring"]["max_resume_run_attempts"] >= 1
    assert K8sRunLauncher.supports_resume_run.fget(None) is True  # a constant property
    assert config["storage"]["postgres"]


def test_k8s_helm_values_match_the_example_instance_and_workspace():
    values = _load("examples/helm-values.k8s.yaml")
    instance = _load("examples/dagster.k8s.yaml")
    workspace = _load("examples/workspace.k8s.yaml")
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    server = workspace["load_from"][0]["grpc_server"]
    assert deployment["name"] == server["host"] and deployment["port"] == server["port"]
    assert deployment["dagsterApiGrpcArgs"] == ["--module-name", "leads_pipeline.definitions"]
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    assert values["telemetry"]["enabled"] is False
    assert values["postgresql"]["enabled"] is False  # an external (managed) PostgreSQL
    assert values["concurrency"]["runs"]["tagConcurrencyLimits"] == [
        {"key": "leads/distributor", "value": {"applyLimitPerUniqueValue": True}, "limit": 1}]
    assert instance["concurrency"]["runs"]["tag_concurrency_limits"] == [
        {"key": "leads/distributor", "value": {"applyLimitPerUniqueValue": True}, "limit": 1}]
    assert values["dagsterDaemon"]["runMonitoring"]["enabled"] is True
    assert values["dagsterDaemon"]["runRetries"]["enabled"] is True
    secrets = {s["name"] for s in values["runLauncher"]["config"]["k8sRunLauncher"]["envSecrets"]}
    assert "leads-pipeline-env" in secrets


def test_celery_example_is_accepted_by_dagster_celery(monkeypatch):
    _require("dagster_celery")
    from dagster_celery.cli import get_validated_config

    monkeypatch.setenv("DAGSTER_CELERY_BROKER_URL", "pyamqp://guest@127.0.0.1//")
    monkeypatch.setenv("DAGSTER_CELERY_BACKEND_URL", "rpc://")
    # The same function `dagster-celery worker start -y FILE` uses to read the worker's config.
    config = get_validated_config(str(EXAMPLES / "celery.executor.yaml"))
    assert config["broker"] == "pyamqp://guest@127.0.0.1//" and config["backend"] == "rpc://"
    assert config["config_source"]["worker_prefetch_multiplier"] == 1
    instance = _instance_config("examples/dagster.celery.yaml")
    assert instance["storage"]["postgres"]  # workers on other machines write events into the same instance


def test_celery_code_location_runs_every_step_on_celery_except_the_webhook_job():
    _require("dagster_celery")
    import dagster as dg

    from leads_pipeline.deploy.examples.celery_definitions import defs

    definitions = defs()
    dg.Definitions.validate_loadable(definitions)
    assert definitions.resolve_job_def("sync_job").executor_def.name == "celery"
    assert definitions.resolve_job_def("marts_job").executor_def.name == "celery"
    # One step, latency-bound: stays in the run worker's process.
    assert definitions.resolve_job_def("webhook_leads_job").executor_def.name == "in_process"


# --------------------------------------------------------------------------------------------------------------
# The instances build on a real PostgreSQL
# --------------------------------------------------------------------------------------------------------------


@pytest.mark.postgres
def test_postgres_instance_builds_on_a_fresh_database(tmp_path, dagster_db):
    import dagster as dg
    import psycopg
    from dagster._core.run_coordinator import QueuedRunCoordinator
    from dagster._core.scheduler.instigation import TickStatus
    from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage, PostgresScheduleStorage

    with dg.DagsterInstance.from_config(str(_home_with(tmp_path, POSTGRES_YAML))) as instance:
        assert isinstance(instance.run_storage, PostgresRunStorage)
        assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
        assert isinstance(instance.schedule_storage, PostgresScheduleStorage)
        coordinator = instance.run_coordinator
        assert isinstance(coordinator, QueuedRunCoordinator)
        queue = instance.get_concurrency_config().run_queue_config
        assert queue.max_concurrent_runs == 8
        assert queue.max_user_code_failure_retries > 0
        assert [dict(limit) for limit in queue.tag_concurrency_limits] == [
            {"key": "leads/distributor", "value": {"applyLimitPerUniqueValue": True}, "limit": 1}]
        assert instance.get_concurrency_config().pool_config.default_pool_limit == 4
        assert instance.run_retries_enabled and instance.run_retries_max_retries == 2
        assert instance.run_monitoring_enabled and instance.run_monitoring_max_runtime_seconds == 7200
        assert not instance.telemetry_enabled
        from dagster._core.definitions.run_request import InstigatorType

        retention = instance.get_tick_retention_settings(InstigatorType.SCHEDULE)
        assert retention[TickStatus.SKIPPED] == 3 and retention[TickStatus.FAILURE] == 90
        # The daemon the production instance needs: scheduler, sensors, run queue, monitoring, run retries.
        assert {"SCHEDULER", "SENSOR", "QUEUED_RUN_COORDINATOR", "MONITORING", "EVENT_LOG_CONSUMER"} <= set(
            instance.get_required_daemon_types())
        # Events can be written and read back (with a bare postgresql:// scheme this raises a SyntaxError).
        run_id = str(uuid.uuid4())
        instance.report_engine_event("deployment check", job_name="deploy_check", run_id=run_id)
        assert [e.message for e in instance.all_logs(run_id)] == ["deployment check"]
    with psycopg.connect(_dagster_db_url(dagster_db)) as conn:
        tables = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    assert {"runs", "event_logs", "jobs", "job_ticks", "dynamic_partitions"} <= tables


@pytest.mark.postgres
def test_k8s_instance_builds_with_a_kubeconfig_outside_the_cluster(tmp_path, dagster_db):
    """The shipped K8s instance, loaded for real. Only the addresses change: the in-cluster credentials become a
    kubeconfig naming a cluster that is never contacted (building the launcher calls no API server), and the
    instance database becomes the test server's (the password still comes from DAGSTER_PG_PASSWORD)."""
    _require("dagster_k8s")
    import dagster as dg
    from dagster_k8s import K8sRunLauncher

    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "test",
        "clusters": [{"name": "test", "cluster": {"server": "https://127.0.0.1:6443"}}],
        "users": [{"name": "test", "user": {"token": "not-a-real-token"}}],
        "contexts": [{"name": "test", "context": {"cluster": "test", "user": "test"}}],
    }))
    config = _load("examples/dagster.k8s.yaml")
    config["run_launcher"]["config"].update(load_incluster_config=False, kubeconfig_file=str(kubeconfig))
    env = _pg_env(dagster_db)
    config["storage"]["postgres"]["postgres_db"].update(
        username=env["DAGSTER_PG_USERNAME"], hostname=env["DAGSTER_PG_HOST"], db_name=dagster_db,
        port=int(env["DAGSTER_PG_PORT"]), params={})
    with dg.DagsterInstance.from_config(str(_home_with(tmp_path, config))) as instance:
        assert isinstance(instance.run_launcher, K8sRunLauncher)
        # Accepted only because this launcher can resume runs (the instance refuses it otherwise).
        assert instance.run_monitoring_max_resume_run_attempts >= 1
        assert instance.run_launcher.supports_check_run_worker_health


@pytest.mark.postgres
def test_celery_instance_builds(tmp_path, dagster_db):
    import dagster as dg

    with dg.DagsterInstance.from_config(str(_home_with(tmp_path, EXAMPLES / "dagster.celery.yaml"))) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert instance.run_retries_enabled and instance.run_monitoring_enabled


# --------------------------------------------------------------------------------------------------------------
# The daemon against the real PostgreSQL: due-sync sensor → queue → run workers → leads in the PostgreSQL warehouse
# --------------------------------------------------------------------------------------------------------------

# From starting the code server: the due-sync sensor's first tick (when the daemon starts, then every minute), then
# two runs of three step processes each (the sync step and the two blocking checks).
DAEMON_DEADLINE_SECONDS = 240


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    """A subprocess in its own session (so that it and everything it spawns can be stopped together)."""
    with log.open("wb") as out:  # the child keeps its own copy of the descriptor
        # Not the repository: the dagster CLIs load a .env from their working directory (make demo writes one).
        return subprocess.Popen(args, cwd=log.parent, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)


def _stop(proc: subprocess.Popen | None, grace: float) -> None:
    """SIGTERM (Dagster shuts down cleanly on it), then SIGKILL the process group of what is left (run workers)."""
    if proc is None:
        return
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(grace)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)  # the group's id is our child's pid (start_new_session=True)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(10)


def _tail(log: Path, lines: int = 40) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:]) if log.exists() else ""


def _wait_for_code_server(port: int, proc: subprocess.Popen, log: Path, timeout: float) -> None:
    """Until the code server answers with the loaded definitions (the daemon reloads a failed location only
    once a minute, so it must not start before)."""
    from dagster._grpc.client import DagsterGrpcClient
    from dagster._grpc.types import ListRepositoriesResponse
    from dagster._serdes import deserialize_value

    client = DagsterGrpcClient(port=port, host="127.0.0.1")
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"the code server exited ({proc.returncode}):\n{_tail(log)}"
        try:
            response = deserialize_value(client.list_repositories())
            if isinstance(response, ListRepositoriesResponse):
                return
            last = response
        except Exception as exc:  # noqa: BLE001 - not up yet
            last = exc
        time.sleep(1)
    pytest.fail(f"the code server did not load leads_pipeline.definitions in {timeout:.0f}s ({last}):\n{_tail(log)}")


@pytest.mark.slow
@pytest.mark.postgres
def test_daemon_on_postgres_runs_the_due_sync_sensor_and_lands_the_leads(tmp_path, dagster_db, postgres_url,
                                                                         monkeypatch):
    import dagster as dg
    import psycopg

    from leads_pipeline.lib.distributors import registry as distributors
    from leads_pipeline.lib.security import generate_key
    from leads_pipeline.simulator import Scenario, SimulatorServer
    from leads_pipeline.lib.warehouse import Warehouse
    from leads_pipeline.settings import get_settings

    sim = SimulatorServer(Scenario(seed=3, pages=2, forms_per_page=1, leads_per_form=50)).start()
    code_server = daemon = instance = None
    code_log, daemon_log = tmp_path / "code-server.log", tmp_path / "daemon.log"
    try:
        manifest = sim.manifest()
        port = _free_port()
        home = _home_with(tmp_path, POSTGRES_YAML)
        for key, value in {
            "DAGSTER_HOME": str(home),
            "DAGSTER_DISABLE_TELEMETRY": "1",
            "DAGSTER_CODE_SERVER_HOST": "127.0.0.1",
            "DAGSTER_CODE_SERVER_PORT": str(port),
            "LEADS_WAREHOUSE_URL": postgres_url,
            "LEADS_GRAPH_BASE_URL": sim.base_url,
            "LEADS_APP_SECRET": manifest["app_secret"],
            "LEADS_SECRET_KEY": generate_key(),
        }.items():
            monkeypatch.setenv(key, value)
        get_settings.cache_clear()

        wh = Warehouse(postgres_url)
        wh.migrate()
        keys = [
            distributors.add(wh, page["name"], page["access_token"], page_ids=[page["id"]],
                             region=page["default_region"]).key
            for page in manifest["pages"]
        ]
        expected = {i for page in manifest["pages"] for form in page["forms"] for i in form["valid_lead_ids"]}
        assert len(keys) == 2 and len(expected) > 50

        instance = dg.DagsterInstance.from_config(str(home))
        instance.add_dynamic_partitions("distributors", keys)

        env = dict(os.environ)
        started = time.monotonic()
        # The production layout of docs/deployment.md: one code server, the daemon loading it through
        # deploy/workspace.grpc.yaml; the default run launcher asks the code server to start each run.
        code_server = _start([str(BIN / "dagster"), "code-server", "start", "-m", "leads_pipeline.definitions",
                              "-h", "127.0.0.1", "-p", str(port), "--location-name", "leads_pipeline"],
                             env, code_log)
        _wait_for_code_server(port, code_server, code_log, timeout=120)
        daemon = _start([str(BIN / "dagster-daemon"), "run", "-w", str(DEPLOY_DIR / "workspace.grpc.yaml")],
                        env, daemon_log)

        sensor_runs = dg.RunsFilter(job_name="sync_job", tags={"dagster/sensor_name": "sync_due_sensor"})
        deadline = started + DAEMON_DEADLINE_SECONDS
        succeeded: dict[str, dg.DagsterRun] = {}
        while time.monotonic() < deadline:
            assert daemon.poll() is None, f"dagster-daemon exited ({daemon.returncode}):\n{_tail(daemon_log)}"
            assert code_server.poll() is None, f"the code server exited:\n{_tail(code_log)}"
            runs = instance.get_runs(filters=sensor_runs)
            failed = [r for r in runs if r.status == dg.DagsterRunStatus.FAILURE]
            if failed:
                errors = [e.message for e in instance.all_logs(failed[0].run_id) if e.level >= 40]
                pytest.fail(f"run {failed[0].run_id} ({failed[0].tags.get('leads/distributor')}) failed: "
                            f"{errors[-3:]}\n{_tail(daemon_log, 20)}")
            succeeded = {r.tags["leads/distributor"]: r for r in runs if r.status == dg.DagsterRunStatus.SUCCESS}
            if set(succeeded) == set(keys):
                break
            time.sleep(2)
        took = time.monotonic() - started
        assert set(succeeded) == set(keys), (
            f"after {took:.0f}s: {[(r.tags.get('leads/distributor'), r.status.value) for r in runs]}\n"
            f"{_tail(daemon_log)}")
        print(f"\ndaemon test: both due syncs succeeded {took:.0f}s after start")  # noqa: T201
        # The runs came from the due-sync sensor through the queue, one per distributor, tagged as the limits expect.
        for key, run in succeeded.items():
            assert run.tags["dagster/partition"] == key and run.tags["leads/trigger"] == "schedule"
            events = {e.dagster_event.event_type for e in instance.all_logs(run.run_id) if e.dagster_event}
            assert dg.DagsterEventType.RUN_ENQUEUED in events and dg.DagsterEventType.ASSET_MATERIALIZATION in events

        # Never two runs of one distributor at the same time (tag_concurrency_limits).
        records = instance.get_run_records(filters=dg.RunsFilter(job_name="sync_job"))
        for key in keys:
            spans = sorted((r.start_time, r.end_time or time.time()) for r in records
                           if r.dagster_run.tags.get("leads/distributor") == key and r.start_time)
            assert all(later[0] >= earlier[1] for earlier, later in zip(spans, spans[1:])), spans

        # The leads are in the PostgreSQL warehouse: exactly the manifest's valid leads.
        with wh.transaction(read_only=True) as conn:
            stored = {r["meta_lead_id"] for r in conn.query("SELECT meta_lead_id FROM leads")}
        assert stored == expected

        # And Dagster's own records are in the PostgreSQL instance database.
        with psycopg.connect(_dagster_db_url(dagster_db)) as conn:
            rows = dict(conn.execute("SELECT run_id, status FROM runs WHERE pipeline_name = 'sync_job'").fetchall())
            ticks = conn.execute("SELECT count(*) FROM job_ticks WHERE type = 'SENSOR' AND status = 'SUCCESS'"
                                 ).fetchone()[0]
            partitions = {r[0] for r in conn.execute(
                "SELECT partition FROM dynamic_partitions WHERE partitions_def_name = 'distributors'")}
            materialized = conn.execute(
                "SELECT count(*) FROM event_logs WHERE dagster_event_type = 'ASSET_MATERIALIZATION' "
                "AND run_id = ANY(%s)", [[r.run_id for r in succeeded.values()]]).fetchone()[0]
        assert all(rows[r.run_id] == "SUCCESS" for r in succeeded.values())
        assert ticks >= 1 and partitions == set(keys) and materialized >= 3 * len(keys)

        # Every daemon the instance requires is alive (scheduler, sensors, queue, monitoring, run retries).
        heartbeats = instance.get_daemon_heartbeats()
        assert set(instance.get_required_daemon_types()) <= set(heartbeats), sorted(heartbeats)
    finally:
        _stop(daemon, grace=60)
        _stop(code_server, grace=30)
        if instance is not None:
            instance.dispose()
        sim.stop()
