"""Code location for the Celery path: the project's definitions, with each step run as a Celery task.

    dagster code-server start -m leads_pipeline.deploy.examples.celery_definitions -h 127.0.0.1 -p 4000 \\
        --location-name leads_pipeline

Needs ``dagster-celery==0.29.27`` here and on the workers, the instance of ``dagster.celery.yaml`` and the broker
settings of ``celery.executor.yaml`` (read from that file, so executor and workers cannot disagree). Workers import
this module by name when they run a step, so they need the project installed at the same version.

The warehouse must be PostgreSQL (LEADS_WAREHOUSE_URL): steps of one run execute on different machines, and a DuckDB
file lives on one. Jobs that pick their own executor keep it: ``webhook_leads_job`` runs in its run worker's
process, because its one step is latency-bound (a lead announced by a webhook should land in seconds).
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import yaml
from dagster_celery import celery_executor

from leads_pipeline.components.pipeline import LeadPipeline, build_pipeline_defs

CELERY_SETTINGS = Path(__file__).with_name("celery.executor.yaml")

leads_celery_executor = celery_executor.configured(
    yaml.safe_load(CELERY_SETTINGS.read_text())["execution"]["config"]
)


@dg.definitions
def defs() -> dg.Definitions:
    # The project's pipeline with its jobs on the location's executor (``in_process=False``), not in one process.
    pipeline = build_pipeline_defs(LeadPipeline(in_process=False))
    return dg.Definitions.merge(pipeline, dg.Definitions(executor=leads_celery_executor))
