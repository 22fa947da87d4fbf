"""The SQL-mart component as an analyst uses it: a folder with a ``defs.yaml`` and a ``.sql`` file becomes a Dagster
asset that fills a table of the real warehouse (a DuckDB file, PostgreSQL), reports its rows and columns, and says
which file is wrong when the SQL is. Also: this project's marts are the five built-in ones, declared the same way."""

from __future__ import annotations

from datetime import UTC, datetime

import dagster as dg
import pytest
from dagster.components.testing import create_defs_folder_sandbox

from leads_pipeline.components.sql_mart import SqlMart, builtin_marts
from leads_pipeline.defs.automation import MART_REFRESH
from leads_pipeline.defs.metadata import OWNERS
from leads_pipeline.defs.resources import WarehouseResource
from leads_pipeline.lib.marts.analytics import MartSqlError, refresh_sql_file, replace_from_sql

CREATED = datetime(2026, 6, 2, 9, 0, tzinfo=UTC)

MART_YAML = """\
type: leads_pipeline.components.sql_mart.SqlMart
attributes:
  name: leads_by_status
  sql: leads_by_status.sql
  deps: [leads]
  description: Leads per distributor and status.
"""
MART_SQL = """\
-- leads per distributor and status
SELECT distributor, status, count(*) AS leads
FROM leads
GROUP BY distributor, status;
"""


def _add_leads(wh, *rows: tuple[str, str, str]) -> None:
    with wh.transaction() as conn:
        for lead_id, distributor, status in rows:
            conn.execute(
                "INSERT INTO leads (meta_lead_id, distributor, form_id, created_time, status, first_seen_at, "
                "updated_at) VALUES (?, ?, 'f1', ?, ?, ?, ?)",
                [lead_id, distributor, CREATED, status, CREATED, CREATED],
            )


def _table(wh, sql: str) -> list[dict]:
    with wh.transaction(read_only=True) as conn:
        return conn.query(sql)


def _materialize(assets, wh, *, raise_on_error: bool = True) -> dg.ExecuteInProcessResult:
    return dg.materialize(assets, resources={"warehouse": WarehouseResource(url=wh.url)},
                          raise_on_error=raise_on_error)


def _specs(defs: dg.Definitions) -> dict[str, dg.AssetSpec]:
    return {s.key.to_user_string(): s for a in defs.assets for s in a.specs}


def test_an_analyst_adds_a_mart_with_a_yaml_and_a_sql_file(warehouse):
    _add_leads(warehouse, ("L1", "d1", "new"), ("L2", "d1", "new"), ("L3", "d1", "converted"), ("L4", "d2", "new"))
    with create_defs_folder_sandbox() as sandbox:
        folder = sandbox.defs_folder_path / "leads_by_status"
        folder.mkdir()
        (folder / "defs.yaml").write_text(MART_YAML)
        (folder / "leads_by_status.sql").write_text(MART_SQL)
        with sandbox.build_all_defs() as defs:
            spec = _specs(defs)["leads_by_status"]
            assert [d.asset_key.to_user_string() for d in spec.deps] == ["leads"]
            assert spec.group_name == "marts" and list(spec.owners) == list(OWNERS)
            assert spec.automation_condition.get_label() == MART_REFRESH.get_label()
            assert spec.description == "Leads per distributor and status."
            result = _materialize(list(defs.assets), warehouse)

        (event,) = result.get_asset_materialization_events()
        meta = event.materialization.metadata
        assert meta["dagster/row_count"].value == 3
        assert meta["dagster/table_name"].value == "leads_by_status"
        assert [c.name for c in meta["dagster/column_schema"].schema.columns] == ["distributor", "status", "leads"]
        rows = _table(warehouse, "SELECT distributor, status, leads FROM leads_by_status ORDER BY distributor, status")
        assert [(r["distributor"], r["status"], r["leads"]) for r in rows] == [
            ("d1", "converted", 1), ("d1", "new", 2), ("d2", "new", 1)]

        # The analyst changes the query (a new column, one dropped): the next run rebuilds the table to match, and a
        # rerun replaces the rows rather than adding to them.
        (folder / "leads_by_status.sql").write_text(
            "SELECT status, count(*) AS leads, count(DISTINCT distributor) AS distributors FROM leads GROUP BY status")
        with sandbox.build_all_defs() as defs:
            new_version = _specs(defs)["leads_by_status"].code_version
            _materialize(list(defs.assets), warehouse)
            _materialize(list(defs.assets), warehouse)
        assert new_version != spec.code_version  # the UI shows the SQL changed since the last run
    rows = _table(warehouse, "SELECT * FROM leads_by_status ORDER BY status")
    assert rows == [{"status": "converted", "leads": 1, "distributors": 1},
                    {"status": "new", "leads": 3, "distributors": 2}]


def test_a_bad_sql_file_fails_naming_the_file(warehouse, tmp_path):
    _add_leads(warehouse, ("L1", "d1", "new"))
    (tmp_path / "typo.sql").write_text("SELECT distributor, count(*) AS leads FROM leadz GROUP BY distributor\n")
    asset = SqlMart(name="typo_mart", sql="typo.sql", deps=["leads"]).build_asset(tmp_path)
    result = _materialize([asset], warehouse, raise_on_error=False)
    assert not result.success
    (failure,) = result.get_step_failure_events()
    message = failure.step_failure_data.error.cause.message if failure.step_failure_data.error.cause else ""
    message = failure.step_failure_data.error.message + message
    assert "typo.sql" in message and "typo_mart" in message and "leadz" in message.lower()
    assert not _table(warehouse, "SELECT * FROM information_schema.tables WHERE table_name = 'typo_mart'")

    # Not a SELECT, or no file at all: the definitions do not load, and the error names the file.
    (tmp_path / "delete.sql").write_text("-- clean up\nDELETE FROM leads\n")
    with pytest.raises(MartSqlError, match=r"delete\.sql.*one SELECT"):
        SqlMart(name="cleanup", sql="delete.sql").build_asset(tmp_path)
    with pytest.raises(MartSqlError, match=r"missing\.sql"):
        SqlMart(name="missing", sql="missing.sql").build_asset(tmp_path)
    # A second statement smuggled after the SELECT never runs.
    (tmp_path / "two.sql").write_text("SELECT 1 AS x; DELETE FROM leads")
    with pytest.raises(MartSqlError, match=r"two\.sql"):
        refresh_sql_file(warehouse, "two_mart", tmp_path / "two.sql")
    assert _table(warehouse, "SELECT count(*) AS n FROM leads") == [{"n": 1}]


def test_a_mart_never_replaces_a_pipeline_table(warehouse, tmp_path):
    _add_leads(warehouse, ("L1", "d1", "new"))
    (tmp_path / "leads.sql").write_text("SELECT * FROM leads WHERE status = 'converted'")
    with pytest.raises(MartSqlError, match=r"leads\.sql.*pipeline's own tables"):
        SqlMart(name="leads", sql="leads.sql").build_asset(tmp_path)
    with pytest.raises(MartSqlError, match="pipeline's own tables"):
        replace_from_sql(warehouse, "distributors", "SELECT 1 AS x")
    assert _table(warehouse, "SELECT meta_lead_id FROM leads") == [{"meta_lead_id": "L1"}]


def test_the_builtin_marts_keep_their_keys_deps_group_and_automation():
    specs = {s.key.to_user_string(): s for a in builtin_marts() for s in a.specs}
    assert list(specs) == ["lead_stats", "conversion_funnel", "lead_daily", "lead_scores", "person_links"]
    for name, spec in specs.items():
        deps = {d.asset_key.to_user_string() for d in spec.deps}
        assert deps == ({"leads"} if name == "person_links" else {"leads", "lead_interactions"}), name
        assert spec.group_name == "marts" and spec.kinds == {"sql"}
        assert spec.automation_condition.get_label() == "when leads change, and every 15 minutes"
        assert list(spec.owners) == list(OWNERS)


def test_this_projects_marts_are_the_builtin_sql_marts():
    """The marts this project loads (``leads_pipeline.definitions``) are the five built-in SQL marts, each built from
    its file under ``lib/marts/sql/`` (or its refresh function), and defined once."""
    from leads_pipeline.definitions import defs

    builtin = {s.key.to_user_string(): s for a in builtin_marts() for s in a.specs}
    loaded = defs()
    graph = loaded.resolve_asset_graph()
    for name, spec in builtin.items():
        node = graph.get(dg.AssetKey(name))
        assert node.parent_keys == {d.asset_key for d in spec.deps}, name
        assert (node.group_name, node.description, node.code_version) == (
            spec.group_name, spec.description, spec.code_version), name
        assert node.automation_condition.get_label() == spec.automation_condition.get_label()
        assert node.freshness_policy is not None  # green while the 15-minute refreshes keep their cadence
        source = loaded.resolve_assets_def(name).specs_by_key[dg.AssetKey(name)].metadata["source"].value
        assert source in (f"leads_pipeline.lib.marts:sql/{name}.sql", f"leads_pipeline.lib.marts.scores:refresh_{name}",
                          f"leads_pipeline.lib.marts.analytics:refresh_{name}")
