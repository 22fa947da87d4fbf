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


def test_reading_migrates_a_new_warehouse_then_reads_a_current_one_read_only(warehouse_url):
    """``reading()`` (read-only commands such as ``stats``): a warehouse behind the code — here a new one — is
    migrated before the read; a current one is read in one read-only transaction, never written."""
    wh = Warehouse(warehouse_url)
    with wh.reading() as conn:
        assert conn.scalar("SELECT count(*) FROM leads") == 0
        assert conn.scalar("SELECT max(version) FROM schema_migrations") == MIGRATIONS[-1][0]
    assert wh.migrate() == []
    with pytest.raises(Exception, match="(?i)read.only"), wh.reading() as conn:
        conn.execute("CREATE TABLE written_by_a_reader (a INTEGER)")


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



@pytest.mark.parametrize("kept", ["copied", "read-in-place"])
@pytest.mark.parametrize("given", ["rows", "columns"])
def test_python_batches_keep_their_values_on_both_backends(warehouse, given, kept, monkeypatch):
    """Python values staged as they come from the code: text (in column data also as UTF-8 ``bytes``, mixed with
    strings in one column), JSON text, non-ASCII and emoji, timestamps with a zone and a column of them without one
    (UTC), booleans, big integers, a column with no value at all, and an empty batch (DuckDB scans them as NumPy
    object columns or converts them to Arrow; PostgreSQL copies)."""
    from leads_pipeline.lib.warehouse import connection

    # Copied: scanned as NumPy object columns (a process's first batches); read in place: through Arrow.
    monkeypatch.setattr(connection, "objects_first", lambda rows, copy: copy)
    cols = {"n": "BIGINT", "t": "TEXT", "j": "JSON", "aware": "TIMESTAMPTZ", "naive": "TIMESTAMPTZ", "ok": "BOOLEAN",
            "none": "TEXT"}
    utc = dt.timezone.utc
    noon = dt.datetime(2026, 6, 1, 12, 0, tzinfo=utc)
    rows = [(2**62, "ğüş 😀", '{"a": [1, "ç"]}', noon, dt.datetime(2026, 6, 1, 12, 0), True, None),
            (None, "text €", '{"b": null}', noon.astimezone(dt.timezone(dt.timedelta(hours=3))), None, False, None),
            (-1, None, None, None, None, None, None)]
    if given == "rows":
        batch: dict = {"rows": rows}
    else:  # column data may hold text as UTF-8 bytes, among strings
        data = {c: [r[i] for r in rows] for i, c in enumerate(cols)}
        data["j"][0], data["t"][1] = data["j"][0].encode(), data["t"][1].encode()
        batch = {"data": data}
    with warehouse.transaction() as conn:
        conn.stage("batch", cols, **batch, copy=kept == "copied")
        got = conn.query("SELECT n, t, CAST(j AS TEXT) AS j, aware, naive, ok, none FROM batch ORDER BY n NULLS LAST")
        conn.stage("batch", cols, [])
        assert conn.scalar("SELECT count(*) FROM batch") == 0
    assert [r["n"] for r in got] == [-1, 2**62, None]
    assert [r["t"] for r in got] == [None, "ğüş 😀", "text €"]
    assert [json.loads(r["j"]) if r["j"] else None for r in got] == [None, {"a": [1, "ç"]}, {"b": None}]
    assert [r["aware"] for r in got] == [None, noon, noon]
    assert [r["naive"] for r in got] == [None, noon, None]  # a time without a zone is UTC
    assert [r["ok"] for r in got] == [None, True, False]
    assert [r["none"] for r in got] == [None, None, None]

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


def test_question_marks_and_percents_inside_literals_and_comments_with_parameters(warehouse):
    """Parameters are bound by the server (PostgreSQL: ``$n``), so ``?`` and ``%`` inside literals, quoted names and
    comments stay as written — the textual ``?``→``%s`` rewrite turned ``'Why?'`` into a placeholder."""
    with warehouse.transaction() as conn:
        conn.execute("INSERT INTO distributors (key, name) VALUES (?, ?)", ["q", "Why? 100% sure"])
        row = conn.query_one(
            "SELECT '?' AS mark, '100%' AS pct, 'it''s ?' AS quoted, name AS \"name?\" -- a ? in a comment\n"
            "FROM distributors /* and ? here */ WHERE key = ? AND name LIKE '%?%' AND name LIKE ?", ["q", "%100%%"])
    assert row == {"mark": "?", "pct": "100%", "quoted": "it's ?", "name?": "Why? 100% sure"}


def test_placeholders_outside_literals_become_numbered_parameters():
    from leads_pipeline.lib.warehouse.placeholders import numbered

    sql = "SELECT ?, '?', E'\\'?', \"?\", $$ ? $$, $t$?$t$ /* ? /* ? */ ? */ -- ?\n, x::text, ?"
    assert numbered(sql) == (sql.replace("SELECT ?", "SELECT $1").replace("x::text, ?", "x::text, $2"), 2)


def test_a_placeholder_count_mismatch_is_a_clear_error(warehouse):
    with pytest.raises(Exception, match="2|placeholder|parameter"):
        with warehouse.transaction(read_only=True) as conn:
            conn.scalar("SELECT count(*) FROM distributors WHERE key = ? OR key = ?", ["a"])


@pytest.mark.postgres
def test_postgres_transactions_and_sessions_reuse_pooled_connections(postgres_url):
    """A transaction checks out a warm connection from the pool instead of opening one (TCP + auth) each time."""
    wh = Warehouse(postgres_url)
    pids = set()
    for _ in range(5):
        with wh.transaction(read_only=True) as conn:
            pids.add(conn.scalar("SELECT pg_backend_pid()"))
    with wh.session():
        for _ in range(3):
            with wh.transaction() as conn:
                pids.add(conn.scalar("SELECT pg_backend_pid()"))
    assert len(pids) == 1
    other = Warehouse(postgres_url)  # another wrapper of the same URL (callers make many) shares the pool
    with other.transaction(read_only=True) as conn:
        assert conn.scalar("SELECT pg_backend_pid()") in pids
        assert conn.scalar("SHOW TimeZone") == "UTC"
    with pytest.raises(RuntimeError):
        with wh.transaction() as conn:
            conn.execute("CREATE TABLE pool_probe (x INT)")
            raise RuntimeError("boom")
    with wh.transaction(read_only=True) as conn:  # the connection came back rolled back, and is still usable
        assert conn.scalar("SELECT to_regclass('pool_probe') IS NULL") is True


def test_a_password_in_the_url_never_shows_in_repr_or_errors():
    url = "postgresql://reader:s3cret-pw%21@127.0.0.1:1/leads"  # nothing listens on port 1
    wh = Warehouse(url)
    assert "s3cret" not in repr(wh) and "s3cret" not in wh.location and "***" in wh.location
    with pytest.raises(WarehouseError) as caught:
        with wh.transaction() as conn:
            conn.scalar("SELECT 1")
    assert "s3cret" not in str(caught.value) and "127.0.0.1" in str(caught.value)
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    with pytest.raises(WarehouseError) as bad:
        with Warehouse("postgresql://reader:s3cret-pw@host:notaport/leads").transaction():
            pass
    assert "s3cret" not in str(bad.value) and "s3cret" not in repr(Warehouse("postgresql://r:s3cret@h:x/db"))


def test_analysts_query_named_parameters_on_both_backends(warehouse, monkeypatch):
    """The notebooks' ``analysts.query``: ``:name`` parameters and a literal ``%`` alike on DuckDB and PostgreSQL;
    DuckDB answers from the readers' snapshot (published on first use, renewed by ``refresh``), PostgreSQL live."""
    from leads_pipeline import analysts
    from leads_pipeline.settings import get_settings

    monkeypatch.setenv("LEADS_WAREHOUSE_URL", warehouse.url)
    get_settings.cache_clear()
    with warehouse.transaction() as conn:
        conn.execute("INSERT INTO distributors (key, name) VALUES ('a', '100% A'), ('b', 'B')")
    sql = "SELECT key, name, '50%' AS pct FROM distributors WHERE name LIKE '100%' OR key = :k ORDER BY key"
    frame = analysts.query(sql, {"k": "b"})
    assert frame.to_dict("records") == [{"key": "a", "name": "100% A", "pct": "50%"},
                                        {"key": "b", "name": "B", "pct": "50%"}]
    with warehouse.transaction() as conn:
        conn.execute("INSERT INTO distributors (key, name) VALUES ('c', 'C')")
    count = "SELECT count(*) AS n FROM distributors"
    assert int(analysts.query(count)["n"][0]) == (2 if warehouse.backend == "duckdb" else 3)
    analysts.refresh()
    assert int(analysts.query(count)["n"][0]) == 3
