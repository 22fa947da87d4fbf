"""Dagster components of the lead pipeline, for this project's ``defs/`` and for any other ``dg`` project.

Registered for ``dg`` through the ``dagster_dg_cli.registry_modules`` entry point (pyproject.toml), so
``dg list components`` shows them and ``dg scaffold defs leads_pipeline.components.LeadPipeline my_leads`` adds one.
Importing this package imports no Dagster object at module level of ``defs/`` (the component builds them).
"""

from leads_pipeline.components.pipeline import LeadPipeline
from leads_pipeline.components.sql_mart import SqlMart

__all__ = ["LeadPipeline", "SqlMart"]
