"""``SqlMart``: a mart as a ``.sql`` file and a few lines of YAML, the way analysts add one.

An analyst who wants a new table in the warehouse writes one ``SELECT`` over ``leads``, ``lead_interactions`` or the
other marts, and declares it in a ``defs.yaml`` (``dg scaffold defs leads_pipeline.components.sql_mart.SqlMart
marts/my_mart``)::

    type: leads_pipeline.components.sql_mart.SqlMart
    attributes:
      name: leads_by_country
      sql: leads_by_country.sql          # beside this defs.yaml, or a package file: "my_pkg.marts:sql/x.sql"
      deps: [leads]
      description: Leads per country answer, per distributor.

Materialising it runs the query through the project's ``warehouse`` resource (DuckDB or PostgreSQL) and replaces the
table's rows in one transaction (:func:`leads_pipeline.lib.marts.analytics.replace_from_sql`); the run reports the
row count, the table name and its column schema, as every mart does. By default it refreshes as the built-in marts do
(``MART_REFRESH``: when leads change, and every 15 minutes). Its code version is a hash of the SQL, so the UI shows
which marts changed since they last ran.

Two built-in marts need Python beside their SQL (``lead_scores`` reads free-text answers, ``person_links`` groups
leads transitively); the component names their refresh function with ``refresh: module:function`` instead of
``sql``. :func:`builtin_marts` builds the five built-in marts for the ``LeadPipeline`` component (``marts: true``).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.resources
import re
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Annotated

import dagster as dg
from pydantic import ConfigDict, Field

from leads_pipeline.defs.automation import MART_REFRESH
from leads_pipeline.defs.metadata import OWNERS, table_schema
from leads_pipeline.defs.resources import WarehouseResource
from leads_pipeline.lib.marts import analytics
from leads_pipeline.lib.warehouse import Warehouse

Refresh = Callable[[Warehouse], int]
_PACKAGE_FILE = re.compile(r"^(?P<module>[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*):(?P<file>.+)$")
_TARGET = re.compile(r"^(?P<module>[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*):(?P<attr>[A-Za-z_]\w*)$")


def resolve_sql_path(sql: str, base: Path | None) -> Path:
    """``sql`` as a file: ``package.module:relative/file.sql`` (a file shipped in a package), an absolute path, or a
    path relative to ``base`` (the folder of the ``defs.yaml``)."""
    match = _PACKAGE_FILE.match(sql)
    if match:
        root = importlib.resources.files(match["module"])
        return Path(str(root.joinpath(match["file"])))
    path = Path(sql)
    return path if path.is_absolute() or base is None else base / path


def _import_refresh(target: str) -> Refresh:
    match = _TARGET.match(target)
    if not match:
        raise analytics.MartSqlError(f"refresh {target!r}: name a function as 'package.module:function'")
    try:
        fn = getattr(importlib.import_module(match["module"]), match["attr"])
    except (ImportError, AttributeError) as exc:
        raise analytics.MartSqlError(f"refresh {target!r}: cannot be imported ({exc})") from exc
    return fn


def mart_asset(
    name: str,
    refresh: Refresh,
    *,
    description: str | None = None,
    deps: Sequence[str] = ("leads", "lead_interactions"),
    group_name: str = "marts",
    owners: Sequence[str] | None = None,
    automation: dg.AutomationCondition | None = None,
    freshness: dg.FreshnessPolicy | None = None,
    code_version: str = "1",
    source: str | None = None,
) -> dg.AssetsDefinition:
    """One mart asset: ``refresh(warehouse)`` rebuilds the table ``name`` and returns the rows written."""
    metadata = {"source": dg.MetadataValue.text(source)} if source else None

    @dg.asset(
        name=name,
        deps=list(deps),
        group_name=group_name,
        owners=list(owners if owners is not None else OWNERS),
        kinds={"sql"},
        automation_condition=automation if automation is not None else MART_REFRESH,
        freshness_policy=freshness,
        description=description,
        code_version=code_version,
        metadata=metadata,
    )
    def _mart(warehouse: WarehouseResource) -> dg.MaterializeResult:
        wh = warehouse.get()
        with wh.session():  # one open of the warehouse for the refresh and its metadata (no network I/O inside)
            rows = refresh(wh)
            schema = table_schema(wh, name)
        return dg.MaterializeResult(
            metadata={"dagster/row_count": rows, "dagster/table_name": name, "dagster/column_schema": schema}
        )

    return _mart


def _sql_version(sql: str) -> str:
    return hashlib.sha256(sql.encode()).hexdigest()[:12]


class SqlMartScaffolder(dg.Scaffolder):
    """``dg scaffold defs leads_pipeline.components.sql_mart.SqlMart marts/NAME`` writes a ``defs.yaml`` and a
    starting ``NAME.sql`` beside it, so the new mart loads and runs at once."""

    def scaffold(self, request: dg.ScaffoldRequest) -> None:
        name = re.sub(r"\W", "_", request.target_path.name.lower())
        dg.scaffold_component(request, {"name": name, "sql": f"{name}.sql", "deps": ["leads"],
                                        "description": "What this table holds, one sentence."})
        sql = request.target_path / f"{name}.sql"
        if not sql.exists():
            sql.write_text("-- One SELECT: its result replaces the table's rows at each refresh.\n"
                           "SELECT distributor, count(*) AS leads\nFROM leads\nGROUP BY distributor\n")


@dg.scaffold_with(SqlMartScaffolder)
class SqlMart(dg.Component, dg.Resolvable, dg.Model):
    """A warehouse table rebuilt from one SQL ``SELECT`` (a ``.sql`` file), as a Dagster asset."""

    # The automation condition and freshness policy are Dagster objects (resolved from "{{ … }}" templates in YAML).
    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    name: str = Field(description="The table and the asset key: a lower-case SQL name, not one of the pipeline's "
                      "own tables.")
    sql: str | None = Field(None, description="The .sql file (one SELECT): a path relative to this defs.yaml, or a "
                            "package file as 'package.module:path/file.sql'.")
    refresh: str | None = Field(None, description="Instead of sql, for a mart that needs Python: "
                                "'package.module:function' taking the warehouse and returning the rows written.")
    deps: list[str] = Field(["leads", "lead_interactions"], description="Asset keys the query reads (the lineage).")
    description: str | None = Field(None, description="What the table holds, shown in the UI.")
    group_name: str = Field("marts", description="The asset group.")
    owners: list[str] | None = Field(None, description="team:… or email addresses; default the project's owners.")
    automation: Annotated[
        dg.AutomationCondition | None,
        dg.Resolver.default(
            model_field_type=str,
            description="When the mart refreshes, e.g. \"{{ dg.AutomationCondition.on_cron('0 * * * *') }}\"; "
            "default: when leads change, and every 15 minutes (the built-in marts' condition).",
        ),
    ] = None
    freshness: Annotated[
        dg.FreshnessPolicy | None,
        dg.Resolver.default(
            model_field_type=str,
            description="Optional, e.g. "
            "\"{{ dg.FreshnessPolicy.time_window(fail_window=datetime.timedelta(hours=2)) }}\".",
        ),
    ] = None

    def build_asset(self, base: Path | None) -> dg.AssetsDefinition:
        """The mart's asset; ``base`` is the folder relative ``sql`` paths start from."""
        analytics.check_mart_name(self.name, f"mart {self.name!r} ({self.sql or self.refresh})")
        if (self.sql is None) == (self.refresh is None):
            raise analytics.MartSqlError(f"mart {self.name!r}: give either sql (a .sql file) or refresh "
                                         "(module:function), not both or neither")
        if self.sql is not None:
            path = resolve_sql_path(self.sql, base)
            query = analytics.read_sql(path)  # a missing or empty file fails the load, naming it
            refresh: Refresh = partial(_refresh_from, query=query, table=self.name, source=self.sql)
            version = _sql_version(query)
        else:
            refresh = _import_refresh(self.refresh or "")
            version = "1"
        return mart_asset(
            self.name, refresh, description=self.description, deps=self.deps, group_name=self.group_name,
            owners=self.owners, automation=self.automation, freshness=self.freshness, code_version=version,
            source=self.sql or self.refresh,
        )

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        return dg.Definitions(assets=[self.build_asset(context.path)])


def _refresh_from(wh: Warehouse, *, query: str, table: str, source: str) -> int:
    return analytics.replace_from_sql(wh, table, query, source=source)


# The five built-in marts: what this project's defs/marts/builtin/defs.yaml declares, and what the LeadPipeline
# component adds with `marts: true`. Descriptions are what the UI shows.
BUILTIN_DESCRIPTIONS = {
    "lead_stats": "The seed's counts per distributor and in total (`distributor = '__all__'`): total, new, assigned, "
                  "contacted, converted, rejected.",
    "conversion_funnel": "Per distributor × form × campaign × weekly cohort: leads, how many reached assigned / "
                         "contacted / converted / rejected, stage-to-stage rates, median and p90 hours from lead to "
                         "first contact, stages reported to Meta.",
    "lead_daily": "A daily time series per distributor, every day from its first lead to today (zeros on quiet "
                  "days): new leads (organic / paid), contacted, converted, rejected.",
    "lead_scores": "An explainable rule-based score (0–100, grade A–D) per lead, with the reasons stored beside it.",
    "person_links": "Leads that are the same person (same normalised email or phone) across forms and distributors.",
}


def builtin_marts(
    *, owners: Sequence[str] | None = None, automation: dg.AutomationCondition | None = None,
    group_name: str = "marts",
) -> list[dg.AssetsDefinition]:
    """The five built-in marts as assets (keys ``lead_stats``, ``conversion_funnel``, ``lead_daily``,
    ``lead_scores``, ``person_links``), their SQL from ``leads_pipeline/lib/marts/sql/``."""
    common = {"owners": list(owners) if owners is not None else None, "automation": automation,
              "group_name": group_name}
    marts = [
        SqlMart(name=name, sql=f"leads_pipeline.lib.marts:sql/{name}.sql", description=BUILTIN_DESCRIPTIONS[name],
                **common)
        for name in analytics.SQL_MARTS
    ]
    marts.append(SqlMart(name="lead_scores", refresh="leads_pipeline.lib.marts.scores:refresh_lead_scores",
                         description=BUILTIN_DESCRIPTIONS["lead_scores"], **common))
    marts.append(SqlMart(name="person_links", refresh="leads_pipeline.lib.marts.analytics:refresh_person_links",
                         deps=["leads"], description=BUILTIN_DESCRIPTIONS["person_links"], **common))
    return [m.build_asset(None) for m in marts]
