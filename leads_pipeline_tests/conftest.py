"""Shared fixtures: real warehouses (a DuckDB file; a fresh PostgreSQL schema), settings isolation.

PostgreSQL tests use ``LEADS_TEST_POSTGRES_URL`` (default: the local server, trust auth). Where it is unreachable
they skip with the reason, except under ``CI=true``, where an unreachable PostgreSQL is a failure.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

import pytest

# Nothing leaves this machine during tests: no Dagster telemetry upload, no Great Expectations analytics.
os.environ["DAGSTER_DISABLE_TELEMETRY"] = "1"
os.environ["GX_ANALYTICS_ENABLED"] = "False"
# Never read the developer's .env (e.g. the sandbox settings `make demo` writes), here or in any subprocess.
os.environ["LEADS_ENV_FILE"] = ""

from leads_pipeline.lib.warehouse import Warehouse  # noqa: E402

pytest_plugins = [p for p in ("leads_pipeline_tests.conftest_simulator", "leads_pipeline_tests.demo_fixtures") if
                  (Path(__file__).parent / (p.rsplit(".", 1)[1] + ".py")).exists()]

POSTGRES_URL = os.environ.get("LEADS_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture(autouse=True)
def _isolated_settings(tmp_path, monkeypatch):
    """No test reads the developer's .env or data/: each gets its own data dir and a fresh settings cache."""
    from leads_pipeline.settings import get_settings

    for name in list(os.environ):
        if name.startswith("LEADS_") and name not in ("LEADS_TEST_POSTGRES_URL", "LEADS_ENV_FILE"):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LEADS_DATA_DIR", str(tmp_path / "data"))
    # Receivers in tests only store, as most tests assert the inbox's state; test_webhook_dispatch.py turns the
    # service's processing (the default) on.
    monkeypatch.setenv("LEADS_WEBHOOK_PROCESS", "sensor")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def _postgres_reachable() -> str | None:
    try:
        import psycopg

        with psycopg.connect(POSTGRES_URL, connect_timeout=3):
            return None
    except Exception as exc:  # noqa: BLE001 - any failure means "not reachable"
        return f"PostgreSQL at {POSTGRES_URL.split('@')[-1]} is not reachable ({type(exc).__name__})"


@pytest.fixture(scope="session")
def postgres_available() -> None:
    reason = _postgres_reachable()
    if reason:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{reason}; under CI=true PostgreSQL tests must run (is the server started?)")
        pytest.skip(reason)


@pytest.fixture
def postgres_url(postgres_available) -> str:
    """A URL whose search_path is a fresh schema, dropped after the test."""
    import psycopg

    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    sep = "&" if "?" in POSTGRES_URL else "?"
    yield f"{POSTGRES_URL}{sep}options=-csearch_path%3D{schema}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture
def duckdb_url(tmp_path) -> str:
    return f"duckdb:///{tmp_path / 'warehouse.duckdb'}"


_TEMPLATE: list[Path] = []


def premigrated(url: str) -> str:
    """``url``, and for a DuckDB file that does not exist yet, a copy of a file migrated to the newest schema: the
    same tables ``migrate()`` creates, without the second it takes (hundreds of tests would spend minutes on it).
    The template is made once per test process."""
    if not url.startswith("duckdb:///"):
        return url
    target = Path(url.removeprefix("duckdb:///"))
    if target.exists():
        return url
    if not _TEMPLATE:
        import tempfile

        path = Path(tempfile.mkdtemp(prefix="leads-template-")) / "warehouse.duckdb"
        Warehouse(f"duckdb:///{path}").migrate()
        assert not path.with_name(path.name + ".wal").exists(), "the template must be checkpointed"
        _TEMPLATE.append(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(_TEMPLATE[0], target)
    return url


@pytest.fixture(params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def warehouse_url(request) -> str:
    """Both backends: every test using it runs once on DuckDB and once on PostgreSQL."""
    if request.param == "duckdb":
        return request.getfixturevalue("duckdb_url")
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def warehouse(warehouse_url) -> Warehouse:
    """A migrated, empty warehouse on each backend."""
    wh = Warehouse(premigrated(warehouse_url))
    wh.migrate()
    return wh


def pytest_collection_modifyitems(config, items):
    """Run the scale tests last: they leave a Dagster test instance in a process-wide weak reference that a later
    `defs()` evaluation in the same session trips over ("undefined DagsterInstance weakref")."""
    items.sort(key=lambda item: "test_scale" in item.nodeid)
