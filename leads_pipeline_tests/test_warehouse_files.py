"""The DuckDB warehouse on disk: private file modes, and rewriting the file so that erased rows are gone from it.

Leads are personal (and health-related) data. ``leads.duckdb`` used to be created 0644 in a 0755 directory under
the usual umask 022, so every user of the machine could copy it. Each test sets that umask explicitly.
"""

from __future__ import annotations

import json
import logging
import os
import stat
from pathlib import Path

import pytest

from leads_pipeline.lib.warehouse import Warehouse, connect


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_a_new_duckdb_warehouse_is_private_to_its_owner(tmp_path, umask_022):
    path = tmp_path / "srv" / "leads" / "leads.duckdb"
    wh = Warehouse(f"duckdb:///{path}")
    with wh.session():  # the file stays open, so the write-ahead log is there between transactions
        wh.migrate()
        with wh.transaction() as conn:
            conn.execute("INSERT INTO users (id, name, email, role, active) VALUES ('u', 'U', 'u@x.org', 'staff', "
                         "TRUE)")
        wal = path.with_name("leads.duckdb.wal")
        assert wal.exists()
        assert _mode(wal) == 0o600
        assert _mode(path) == 0o600
    assert _mode(tmp_path / "srv") == 0o700 and _mode(tmp_path / "srv" / "leads") == 0o700
    assert _mode(path) == 0o600
    assert _mode(path.with_name("leads.duckdb.lock")) == 0o600
    assert not [p for p in path.parent.iterdir() if _mode(p) & 0o077]


def test_the_default_data_directory_is_created_private(tmp_path, umask_022, monkeypatch):
    from leads_pipeline.settings import get_settings

    data = tmp_path / "fresh-data"
    monkeypatch.setenv("LEADS_DATA_DIR", str(data))
    get_settings.cache_clear()
    wh = connect()
    wh.migrate()
    assert _mode(data) == 0o700
    assert _mode(data / "leads.duckdb") == 0o600


def test_an_existing_file_others_can_read_is_reported_once_and_left_alone(tmp_path, umask_022, caplog):
    path = tmp_path / "shared.duckdb"
    Warehouse(f"duckdb:///{path}").migrate()
    os.chmod(path, 0o644)
    caplog.set_level(logging.WARNING, logger="leads_pipeline.lib.warehouse")
    wh = Warehouse(f"duckdb:///{path}")
    for _ in range(3):
        with wh.transaction(read_only=True) as conn:
            conn.scalar("SELECT 1")
    warnings = [r.getMessage() for r in caplog.records if "can be read by other users" in r.getMessage()]
    assert len(warnings) == 1 and f"chmod 600 {path}" in warnings[0]
    assert _mode(path) == 0o644


# ------------------------------------------------------------------------------------------------------ compact

MARKER = "unique.marker.qz7wx@erased.example"


def _land_people(wh: Warehouse, n: int = 300) -> None:
    from leads_pipeline.lib.ingest.land import land_page

    leads = [{"id": str(900000000000000 + i), "created_time": "2026-06-01T10:00:00+0000",
              "field_data": [{"name": "email", "values": [MARKER if i == 7 else f"p{i}@x.org"]},
                             {"name": "full_name", "values": [f"Name {i}"]}]} for i in range(n)]
    land_page(wh, sync_id="s", distributor="msh", default_region="TR", page_id="1", form_id="f", leads=leads)


def _schema(conn) -> list:
    return [tuple(r.values()) for r in conn.query(
        "SELECT table_name, column_name, data_type, column_default, is_nullable FROM information_schema.columns "
        "WHERE table_schema = current_schema() ORDER BY table_name, column_name")]


def test_an_erased_email_stays_in_the_duckdb_file_until_compact_rewrites_it(tmp_path, umask_022, monkeypatch):
    """A privacy delete removes rows, not bytes: the e-mail is still readable in leads.duckdb afterwards. The CLI's
    `privacy compact` writes a fresh copy of the file in its place, and the bytes are gone."""
    import subprocess
    import sys

    from leads_pipeline.lib import crm

    path = tmp_path / "data" / "leads.duckdb"
    wh = Warehouse(f"duckdb:///{path}")
    wh.migrate()
    _land_people(wh)
    crm.delete_lead(wh, "900000000000007", "cli", "privacy request")
    with wh.transaction(read_only=True) as conn:
        schema, counts = _schema(conn), {t: conn.scalar(f"SELECT count(*) FROM {t}") for t in ("leads", "raw_leads")}
        indexes = conn.query("SELECT index_name, table_name, sql FROM duckdb_indexes() ORDER BY index_name")
        next_raw_id = conn.scalar("SELECT max(id) FROM raw_leads") + 1
    assert MARKER.encode() in path.read_bytes()  # erased from the tables, not from the file

    env = {**os.environ, "LEADS_WAREHOUSE_URL": f"duckdb:///{path}"}
    cli = str(Path(sys.executable).with_name("leads-pipeline"))
    out = subprocess.run([cli, "privacy", "compact", "--yes", "--json"],
                         env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["backend"] == "duckdb" and report["path"] == str(path.resolve())
    assert report["bytes_after"] <= report["bytes_before"]

    assert MARKER.encode() not in path.read_bytes()
    assert _mode(path) == 0o600 and sorted(p.name for p in path.parent.iterdir()) == ["leads.duckdb",
                                                                                       "leads.duckdb.lock"]
    with wh.transaction() as conn:  # the same warehouse: schema, indexes, rows, sequences
        assert _schema(conn) == schema
        assert conn.query("SELECT index_name, table_name, sql FROM duckdb_indexes() ORDER BY index_name") == indexes
        assert {t: conn.scalar(f"SELECT count(*) FROM {t}") for t in ("leads", "raw_leads")} == counts
        conn.execute("INSERT INTO raw_leads (distributor, raw_key, sync_id, payload, fetched_at) "
                     "VALUES ('msh', 'k-new', 's2', '{}', CURRENT_TIMESTAMP)")
        assert conn.scalar("SELECT id FROM raw_leads WHERE raw_key = 'k-new'") == next_raw_id
    assert wh.migrate() == []


def test_compact_waits_for_a_session_and_refuses_inside_one(tmp_path):
    from leads_pipeline.lib.warehouse import WarehouseError
    from leads_pipeline.lib.warehouse.compact import compact

    wh = Warehouse(f"duckdb:///{tmp_path / 'w.duckdb'}")
    wh.migrate()
    with wh.session(), pytest.raises(WarehouseError, match="inside Warehouse.session"):
        compact(wh)
    with pytest.raises(WarehouseError, match="no DuckDB warehouse"):
        compact(Warehouse(f"duckdb:///{tmp_path / 'absent.duckdb'}"))


def test_compact_on_postgresql_rewrites_every_table_of_the_schema(postgres_url):
    from leads_pipeline.lib import crm
    from leads_pipeline.lib.warehouse.compact import compact

    wh = Warehouse(postgres_url)
    wh.migrate()
    _land_people(wh, 50)
    crm.delete_lead(wh, "900000000000007", "cli", "privacy request")

    def files() -> dict[str, int]:
        with wh.transaction(read_only=True) as conn:
            return {r["relname"]: r["relfilenode"] for r in conn.query(
                "SELECT c.relname, c.relfilenode FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = current_schema() AND c.relkind = 'r'")}

    before = files()
    result = compact(wh)
    after = files()
    assert result.backend == "postgres" and set(result.tables) == set(before) >= {"leads", "raw_leads"}
    assert all(after[t] != before[t] for t in ("leads", "raw_leads", "rejected_leads"))  # new files written
    with wh.transaction(read_only=True) as conn:
        assert conn.scalar("SELECT count(*) FROM leads") == 49


# ------------------------------------------------------------------------------------------------------ snapshot


def _names(path: Path) -> list[str]:
    from leads_pipeline.analysts import _open_snapshot

    con = _open_snapshot(path)
    try:
        return [r[0] for r in con.execute("SELECT name FROM distributors ORDER BY name").fetchall()]
    finally:
        con.close()


def test_the_readers_snapshot_is_published_atomically_private_and_never_blocks_a_write(tmp_path, umask_022):
    from leads_pipeline.analysts import _open_snapshot
    from leads_pipeline.lib.warehouse import snapshot

    wh = Warehouse(f"duckdb:///{tmp_path / 'leads.duckdb'}")
    wh.migrate()
    with wh.transaction() as conn:
        conn.execute("INSERT INTO distributors (key, name) VALUES ('a', 'A')")
    published = snapshot.publish(wh)
    assert published == snapshot.path_for(wh) == tmp_path / "leads.readonly.duckdb"
    assert _mode(published) == 0o600
    reader = _open_snapshot(published)  # a notebook that keeps its connection
    try:
        with wh.session():  # a write, inside a session (its WAL not yet folded into the file), then a publication
            with wh.transaction() as conn:
                conn.execute("INSERT INTO distributors (key, name) VALUES ('b', 'B')")
            assert snapshot.publish(wh) == published
        assert reader.execute("SELECT count(*) FROM distributors").fetchone()[0] == 1  # its copy, unchanged
        assert _names(published) == ["A", "B"]  # a new reader: the new copy
    finally:
        reader.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["leads.duckdb", "leads.duckdb.lock",
                                                          "leads.readonly.duckdb"]


@pytest.mark.postgres
def test_postgres_needs_no_snapshot(postgres_url):
    from leads_pipeline.lib.warehouse import snapshot

    wh = Warehouse(postgres_url)
    assert snapshot.path_for(wh) is None and snapshot.publish(wh) is None
