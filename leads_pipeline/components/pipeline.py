"""``LeadPipeline``: the whole lead pipeline as one ``dg.Component`` (YAML-configurable).

A data engineer adds it to a ``dg`` project with ``dg scaffold defs leads_pipeline.components.LeadPipeline my_leads``
and edits ``defs.yaml``::

    type: leads_pipeline.components.LeadPipeline
    attributes:
      warehouse_url_env: LEADS_WAREHOUSE_URL   # a variable's *name*: a PostgreSQL URL may carry a password
      graph:
        base_url: "{{ env.LEADS_GRAPH_BASE_URL }}"   # plain values or templates for what is not secret
        api_version: v25.0
        app_secret_env: LEADS_APP_SECRET          # secrets only ever by name: resolved in each run, never shown
        token_cipher_key_env: LEADS_SECRET_KEY
      sync_minutes: 5
      marts: true
      owners: ["team:lead-ops"]

It builds every Dagster object of the pipeline — partitions, the sync step (``raw_leads`` → ``leads`` /
``rejected_leads``), the batch and webhook jobs, sensors, checks, marts, operations, the Conversions API asset, the
readers' snapshot, the resources — from the factory functions under ``leads_pipeline/defs/`` (they are functions so
that ``load_from_defs_folder`` finds nothing at the top of those modules and nothing is defined twice). This project's
own ``defs/pipeline/defs.yaml`` is an instance of it.

Why these fields: secrets and URLs that may carry a password are names of environment variables (``dg.EnvVar`` in
the resources: the UI shows the name, each run resolves the value); ``{{ env.X }}`` in a component resolves at load
time and would show the value. ``sync_minutes`` and ``marts_minutes`` set the freshness windows and cadences, so the
UI's freshness is green exactly when syncs and refreshes keep their cadence.
"""

from __future__ import annotations

from datetime import timedelta

import dagster as dg
from pydantic import Field

from leads_pipeline.defs.metadata import OWNERS


class GraphSettings(dg.Model, dg.Resolvable):
    """Meta's Graph API (or the built-in simulator). Unset fields follow LEADS_* and the settings' defaults."""

    base_url: str | None = Field(None, description="Graph API root, e.g. https://graph.facebook.com or the "
                                 "simulator's http://127.0.0.1:8765 (a value or \"{{ env.LEADS_GRAPH_BASE_URL }}\").")
    api_version: str | None = Field(None, description="Graph API version, e.g. v25.0.")
    app_secret_env: str | None = Field("LEADS_APP_SECRET", description="Name of the environment variable holding "
                                       "the Meta app secret (appsecret_proof).")
    token_cipher_key_env: str | None = Field("LEADS_SECRET_KEY", description="Name of the environment variable "
                                             "holding the Fernet key(s) that decrypt the distributors' tokens.")


class LeadPipelineScaffolder(dg.Scaffolder):
    """``dg scaffold defs leads_pipeline.components.LeadPipeline NAME`` writes a defs.yaml with every field named."""

    def scaffold(self, request: dg.ScaffoldRequest) -> None:
        dg.scaffold_component(request, {
            "warehouse_url_env": "LEADS_WAREHOUSE_URL",
            "graph": {"base_url": "https://graph.facebook.com", "api_version": "v25.0",
                      "app_secret_env": "LEADS_APP_SECRET", "token_cipher_key_env": "LEADS_SECRET_KEY"},
            "sync_minutes": 5,
            "marts": True,
            "marts_minutes": 15,
            "owners": list(OWNERS),
        })


@dg.scaffold_with(LeadPipelineScaffolder)
class LeadPipeline(dg.Component, dg.Model, dg.Resolvable):
    """Facebook / Instagram Lead Ads into a warehouse, per distributor: syncs and webhooks into raw_leads → leads /
    rejected_leads, quality checks, marts for analysts, stages back to Meta's Conversions API."""

    warehouse_url: str | None = Field(None, description="duckdb:///path/file.duckdb or postgresql://… as a value "
                                      "(no password here: use warehouse_url_env).")
    warehouse_url_env: str | None = Field("LEADS_WAREHOUSE_URL", description="Name of the environment variable "
                                          "holding the warehouse URL (unset in the environment: the settings' "
                                          "default, a DuckDB file under LEADS_DATA_DIR).")
    graph: GraphSettings = Field(default_factory=GraphSettings)
    sync_minutes: int = Field(5, ge=1, description="The distributors' sync cadence: freshness of raw_leads / leads "
                              "/ rejected_leads warns after 3 and fails after 6 missed syncs.")
    marts: bool = Field(True, description="Build the five built-in marts (lead_stats, conversion_funnel, lead_daily, "
                        "lead_scores, person_links) and the readers' snapshot.")
    marts_minutes: int = Field(15, ge=1, description="The marts' (and the table-wide checks') refresh cadence.")
    owners: list[str] = Field(default_factory=lambda: list(OWNERS), description="Owners on every asset "
                              "(team:… or email addresses).")
    in_process: bool = Field(True, description="Run each run's steps in the run's own process (one warehouse "
                             "writer; no process per step). False: the code location's executor, e.g. Celery "
                             "(deploy/examples/celery_definitions.py); the webhook job stays in-process.")

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        return build_pipeline_defs(self)


def _marts(cfg: LeadPipeline) -> list[dg.AssetsDefinition]:
    """The five built-in marts, as SQL-mart components (``components/sql_mart.py``) over ``lib/marts/sql/``."""
    from leads_pipeline.components.sql_mart import builtin_marts
    from leads_pipeline.defs.automation import mart_refresh

    return builtin_marts(owners=cfg.owners, automation=mart_refresh(cfg.marts_minutes))


INGESTED = ("raw_leads", "leads", "rejected_leads")
MART_KEYS = ("lead_stats", "conversion_funnel", "lead_daily", "lead_scores", "person_links", "analytics_snapshot")


def build_pipeline_defs(cfg: LeadPipeline) -> dg.Definitions:
    """Every Dagster object of the pipeline for one configuration (the component's body, also used directly)."""
    from leads_pipeline.defs.automation import build_automation_sensor
    from leads_pipeline.defs.capi.assets import build_capi_asset, build_capi_job
    from leads_pipeline.defs.capi.sensors import build_capi_sensor
    from leads_pipeline.defs.ingestion.assets import build_sync_assets
    from leads_pipeline.defs.ingestion.batch import build_batch_job
    from leads_pipeline.defs.ingestion.jobs import build_sync_job
    from leads_pipeline.defs.ingestion.sensors import build_partitions_sensor, build_sync_due_sensor
    from leads_pipeline.defs.marts.jobs import build_marts_job
    from leads_pipeline.defs.marts.operations import build_operations_assets
    from leads_pipeline.defs.marts.snapshot import build_snapshot_asset
    from leads_pipeline.defs.quality.checks import build_checks, build_quality_job
    from leads_pipeline.defs.resources import build_resources
    from leads_pipeline.defs.webhooks.assets import build_webhook_inbox
    from leads_pipeline.defs.webhooks.sensors import build_webhook_job, build_webhook_sensor

    sync_job, batch_job, webhook_job = build_sync_job(cfg.in_process), build_batch_job(), build_webhook_job()
    assets: list = [build_webhook_inbox(), build_sync_assets(), build_capi_asset(),
                    *build_operations_assets(cfg.marts_minutes)]
    jobs: list = [sync_job, batch_job, webhook_job, build_quality_job(cfg.in_process), build_capi_job(cfg.in_process)]
    if cfg.marts:
        assets += [*_marts(cfg), build_snapshot_asset()]
        jobs.append(build_marts_job(cfg.in_process))
    defs = dg.Definitions(
        assets=assets,
        asset_checks=build_checks(cfg.marts_minutes),
        jobs=jobs,
        sensors=[build_partitions_sensor(), build_sync_due_sensor(sync_job, batch_job),
                 build_webhook_sensor(webhook_job), build_capi_sensor(), build_automation_sensor()],
        resources=build_resources(
            warehouse_url=cfg.warehouse_url, warehouse_url_env=cfg.warehouse_url_env,
            graph_base_url=cfg.graph.base_url, graph_api_version=cfg.graph.api_version,
            app_secret_env=cfg.graph.app_secret_env, token_cipher_key_env=cfg.graph.token_cipher_key_env),
        # Every run in one process unless a job says otherwise: the steps share one warehouse (DuckDB has one
        # writer), and a process per step costs seconds each (automation runs of the marts and checks too).
        executor=dg.in_process_executor if cfg.in_process else None,
    )
    return _with_policies(defs, cfg)


def _with_policies(defs: dg.Definitions, cfg: LeadPipeline) -> dg.Definitions:
    """Owners on every asset; freshness windows that follow the cadences (green while syncs and refreshes keep
    them: warn after 3 missed syncs / 2 missed refreshes, fail after 6 / 4)."""
    synced = dg.FreshnessPolicy.time_window(fail_window=timedelta(minutes=6 * cfg.sync_minutes),
                                            warn_window=timedelta(minutes=3 * cfg.sync_minutes))
    refreshed = dg.FreshnessPolicy.time_window(fail_window=timedelta(minutes=4 * cfg.marts_minutes),
                                               warn_window=timedelta(minutes=2 * cfg.marts_minutes))

    def apply(spec: dg.AssetSpec) -> dg.AssetSpec:
        key = spec.key.to_user_string()
        policy = synced if key in INGESTED else refreshed if key in MART_KEYS else None
        spec = spec.replace_attributes(owners=list(cfg.owners))
        return spec.replace_attributes(freshness_policy=policy) if policy else spec

    return defs.map_asset_specs(func=apply)
