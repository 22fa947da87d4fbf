"""Dagster components of the lead pipeline, for this project's ``defs/`` and for any other ``dg`` project.

Registered for ``dg`` through the ``dagster_dg_cli.registry_modules`` entry point (pyproject.toml), so
``dg list components`` shows them and ``dg scaffold defs leads_pipeline.components.LeadPipeline my_leads`` adds one.
Importing this package imports no Dagster object at module level of ``defs/`` (the component builds them).
"""

from leads_pipeline.components.pipeline import LeadPipeline

__all__ = ["LeadPipeline"]

try:  # W2's SQL-mart component, when present in this checkout
    from leads_pipeline.components.sql_mart import SqlMart  # noqa: F401

    __all__.append("SqlMart")
except ImportError:  # pragma: no cover - until sql_mart.py lands
    pass
