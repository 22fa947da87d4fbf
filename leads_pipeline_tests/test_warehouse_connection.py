"""The connection layer: both backends migrate, stage batches and answer the same SQL the same way."""

from __future__ import annotations

import datetime as dt
import json
import multiprocessing

import pytest

from leads_pipeline.lib.warehouse import Warehouse, WarehouseError
from leads_pipeline.lib.warehouse.migrations import MIGRATIONS


def test_migrate_is_versioned_and_idempotent(warehouse_url):
    wh = Warehouse(warehouse_url)
    assert wh.migrate() == [v for v, _, _ in MIGRATIONS]
    assert wh.migrate() == []
    with wh.transaction() as conn:
        assert conn.scalar("SELECT max(version) FROM schema_migrations") == MIGRATIONS[-1][0]


def test_stage_then_set_based_upsert_and_json_as_text(warehouse):
    now = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.timezone.utc)
    with warehouse.transaction() as conn:
        conn.stage("batch", {"key": "TEXT", "name": "TEXT", "page_ids": "JSON"},
                   [("a", "A 100%", json.dumps(["1"])), ("b", "B", json.dumps([]))])
        conn.execute("INSERT INTO distributors (key, name, page_ids, created_at, updated_at) "
                     "SELECT key, name, page_ids, ?, ? FROM batch", [now, now])
    with warehouse.transaction(read_only=True) as conn:
        rows = conn.query("SELECT key, name, page_ids, created_at FROM distributors ORDER BY key")
    assert [r["key"] for r in rows] == ["a", "b"]
    assert rows[0]["name"] == "A 100%"
    assert json.loads(rows[0]["page_ids"]) == ["1"]
    assert rows[0]["created_at"] == now


def test_failed_transaction_rolls_back(warehouse):
    with pytest.raises(RuntimeError):
        with warehouse.transaction() as conn:
            conn.execute("INSERT INTO distributors (key, name) VALUES ('x', 'X')")
            raise RuntimeError("boom")
    with warehouse.transaction() as conn:
        assert conn.scalar("SELECT count(*) FROM distributors") == 0


def test_unknown_scheme_is_a_clear_error():
    with pytest.raises(WarehouseError, match="duckdb:///"):
        Warehouse("mysql://x/y")


def test_repr_hides_password():
    assert "secret" not in repr(Warehouse("postgresql://u:secret@h/db"))


def _writer(url: str, key: str) -> None:
    wh = Warehouse(url)
    for i in range(20):
        with wh.transaction() as conn:
            conn.execute("INSERT INTO distributors (key, name) VALUES (?, ?)", [f"{key}{i}", key])


def test_duckdb_writers_in_several_processes_take_turns(duckdb_url):
    """DuckDB's single-writer rule: concurrent processes queue on the lock instead of failing."""
    Warehouse(duckdb_url).migrate()
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(duckdb_url, k)) for k in "abc"]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    with Warehouse(duckdb_url).transaction() as conn:
        assert conn.scalar("SELECT count(*) FROM distributors") == 60


def test_percent_and_question_marks_in_literals(warehouse):
    """A literal % works with and without parameters on both backends (LIKE patterns are common)."""
    with warehouse.transaction() as conn:
        conn.execute("INSERT INTO distributors (key, name) VALUES ('p', '100% sure')")
        assert conn.scalar("SELECT count(*) FROM distributors WHERE name LIKE '%sure'") == 1
        assert conn.scalar("SELECT count(*) FROM distributors WHERE name LIKE '%sure' AND key = ?", ["p"]) == 1
