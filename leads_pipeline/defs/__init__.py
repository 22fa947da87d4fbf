"""Dagster definitions, autoloaded: thin wrappers that call ``leads_pipeline.lib`` and report metadata."""
