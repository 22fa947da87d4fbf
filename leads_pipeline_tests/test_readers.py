"""Readers beside the pipeline on the embedded DuckDB — real processes, a real simulator, one real file.

Issue #13: an analyst keeps a notebook (``leads_pipeline.analysts``) and a ``leads-pipeline sql`` session open while
a ``leads-pipeline sync`` and a marts refresh run; nothing fails or hangs, the sync prints its JSON, and the readers
see the new rows once the marts run publishes its snapshot. And a pipeline command that waits too long for the file
says who holds it and what to do, as its normal output — never a traceback.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from leads_pipeline.lib.warehouse import snapshot
from leads_pipeline.simulator import FaultConfig, Scenario
from leads_pipeline_tests.pipeline_fixtures import make_sandbox

CLI = str(Path(sys.executable).with_name("leads-pipeline"))

NOTEBOOK = textwrap.dedent("""
    import json, sys, time
    from pathlib import Path
    from leads_pipeline import analysts
    stop, out = Path(sys.argv[1]), Path(sys.argv[2])
    held = analysts.engine()  # a connection kept open for the whole session, as a notebook kernel does
    counts, failures = [], []
    Path(str(out) + ".ready").touch()
    while not stop.exists():
        try:
            counts.append(int(analysts.query("SELECT count(*) AS n FROM leads WHERE created_time >= :t",
                                             {"t": "2000-01-01"})["n"][0]))
            held.execute("SELECT count(*) FROM lead_stats").fetchall()
        except Exception as exc:
            failures.append(f"{type(exc).__name__}: {exc}")
        Path(str(out) + ".last").write_text(str(counts[-1] if counts else -1))
        time.sleep(0.05)
    held.close()
    out.write_text(json.dumps({"counts": counts, "failures": failures}))
""")


def _wait_for(path: Path, proc: subprocess.Popen, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert proc.poll() is None, proc.communicate()[1]
        assert time.monotonic() < deadline, f"{path.name} never appeared"
        time.sleep(0.05)


@pytest.fixture
def box(monkeypatch, simulator_factory, tmp_path):
    # Slow pages, 10 leads each: the sync writes in many short transactions over a few seconds.
    sim = simulator_factory(Scenario(seed=5, pages=1, forms_per_page=2, leads_per_form=120, extra_leads=0),
                            faults=FaultConfig(slow_rate=1.0, slow_seconds=0.02))
    sandbox = make_sandbox(monkeypatch, sim, f"duckdb:///{tmp_path / 'data' / 'leads.duckdb'}")
    monkeypatch.setenv("LEADS_GRAPH_PAGE_LIMIT", "10")
    return sandbox


def test_a_notebook_and_an_sql_session_stay_open_while_a_sync_and_a_marts_run_write(box, tmp_path):
    env = {**os.environ}
    assert snapshot.publish(box.wh) == tmp_path / "data" / "leads.readonly.duckdb"  # what the last marts run left
    stop, out = tmp_path / "stop", tmp_path / "notebook.json"
    notebook = subprocess.Popen([sys.executable, "-c", NOTEBOOK, str(stop), str(out)], env=env,
                                stderr=subprocess.PIPE, text=True)
    session = subprocess.Popen([CLI, "sql", "--format", "csv"], env=env, stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        session.stdin.write("SELECT count(*) AS n FROM leads;\n")
        session.stdin.flush()
        assert session.stdout.readline().strip() == "n" and session.stdout.readline().strip() == "0"
        _wait_for(Path(str(out) + ".ready"), notebook)

        started = time.monotonic()
        sync = subprocess.run([CLI, "sync", box.keys[0], "--quiet"], env=env, capture_output=True, text=True,
                              timeout=120)
        synced_in = time.monotonic() - started
        assert sync.returncode == 0, sync.stderr
        result = json.loads(sync.stdout)
        assert result["success"] is True and result["stored"] > 200, result

        marts = subprocess.run([sys.executable, "-c", (
            "from leads_pipeline.lib.marts.analytics import refresh_all; "
            "from leads_pipeline.lib.warehouse import connect, snapshot; "
            "wh = connect(); refresh_all(wh); print(snapshot.publish(wh))")],
            env=env, capture_output=True, text=True, timeout=120)
        assert marts.returncode == 0, marts.stderr

        # The session, still open, reads the new snapshot; the notebook saw it too, without a failure.
        session.stdin.write("SELECT count(*) AS n FROM leads;\nSELECT max(total) AS total FROM lead_stats;\n.quit\n")
        session.stdin.flush()
        answer, errors = session.communicate(timeout=60)
        assert session.returncode == 0, errors
        assert answer.split() == ["n", str(result["stored"]), "total", str(result["stored"])]
        last, deadline = Path(str(out) + ".last"), time.monotonic() + 20
        while last.read_text() != str(result["stored"]):  # the notebook's next query reads the new snapshot
            assert time.monotonic() < deadline and notebook.poll() is None, "the notebook never saw the new rows"
            time.sleep(0.05)
        stop.touch()
        notebook.wait(timeout=60)
        assert notebook.returncode == 0, notebook.stderr.read()
        seen = json.loads(out.read_text())
        assert seen["failures"] == []
        assert seen["counts"][0] == 0 and seen["counts"][-1] == result["stored"], seen["counts"][-5:]
        assert synced_in < 60
    finally:
        stop.touch()
        for proc in (notebook, session):
            if proc.poll() is None:
                proc.kill()
                proc.wait()


HOLD_LIVE = textwrap.dedent("""
    import sys, time, duckdb
    from pathlib import Path
    con = duckdb.connect(sys.argv[1], read_only=True)  # the issue's reader: the live file, outside the lock
    Path(sys.argv[2]).touch()
    time.sleep(60)
""")

HOLD_LOCK = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from leads_pipeline.lib.warehouse import connect
    with connect().file_locked():
        Path(sys.argv[1]).touch()
        time.sleep(60)
""")


def test_a_wait_past_the_timeout_says_who_holds_the_file_and_what_to_do(box, tmp_path):
    env = {**os.environ, "LEADS_WAREHOUSE_BUSY_TIMEOUT_SECONDS": "1"}
    snapshot.publish(box.wh)  # as the last marts run did
    ready = tmp_path / "ready"
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LIVE, str(box.wh.path), str(ready)], env=env,
                              stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(ready, holder)
        sync = subprocess.run([CLI, "sync", box.keys[0], "--quiet"], env=env, capture_output=True, text=True,
                              timeout=60)
    finally:
        holder.kill()
        holder.wait()
    assert sync.returncode == 1
    assert "Traceback" not in sync.stderr, sync.stderr
    body = json.loads(sync.stdout)
    assert body["success"] is False and set(body) == {"success", "fetched", "stored", "errors", "message"}
    assert f"leads-pipeline sync {box.keys[0]} waited" in body["message"]
    assert f"(PID {holder.pid})" in body["message"] and "leads-pipeline sql" in body["message"]

    ready.unlink()
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(ready)], env=env, stderr=subprocess.PIPE,
                              text=True)
    try:
        _wait_for(ready, holder)
        stats = subprocess.run([CLI, "stats"], env=env, capture_output=True, text=True, timeout=60)
        # the readers' command is not held up by either: it reads the snapshot
        query = subprocess.run([CLI, "sql", "SELECT count(*) AS n FROM leads"], env=env, capture_output=True,
                               text=True, timeout=60)
    finally:
        holder.kill()
        holder.wait()
    assert stats.returncode == 1 and "Traceback" not in stats.stderr, stats.stderr
    assert f"held by pid {holder.pid} (python" in stats.stderr and "waited" in stats.stderr, stats.stderr[-600:]
    assert query.returncode == 0, query.stderr
    assert query.stdout.split()[:3] == ["n", "-", "0"]


@pytest.mark.postgres
def test_sql_reads_postgresql_live_as_json(postgres_url, tmp_path):
    from leads_pipeline.lib.warehouse import Warehouse

    wh = Warehouse(postgres_url)
    wh.migrate()
    with wh.transaction() as conn:
        conn.execute("INSERT INTO distributors (key, name) VALUES ('a', '100% A')")
    env = {**os.environ, "LEADS_WAREHOUSE_URL": postgres_url}
    run = subprocess.run([CLI, "sql", "--format", "json", "SELECT key, name FROM distributors WHERE name LIKE '100%'"],
                         env=env, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout) == [{"key": "a", "name": "100% A"}]
    bad = subprocess.run([CLI, "sql", "SELECT * FROM no_such_table"], env=env, capture_output=True, text=True,
                         timeout=60)
    assert bad.returncode == 1 and "no_such_table" in bad.stderr and "Traceback" not in bad.stderr
