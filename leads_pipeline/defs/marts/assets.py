"""Marts for analysts, rebuilt from ``leads`` and staff activity: stats, funnel, daily series, scores, person links.

The marts are instances of the SQL-mart component (``leads_pipeline/components/sql_mart.py``): each names the
``.sql`` file whose ``SELECT`` fills its table (``leads_pipeline/lib/marts/sql/``), and the runner in
``leads_pipeline.lib.marts.analytics`` replaces the table in one transaction. ``sql_mart.builtin_marts()`` builds the
five built-in ones for the ``LeadPipeline`` component (``marts: true`` in ``defs/pipeline/defs.yaml``); a mart of
your own is a folder here with a ``defs.yaml`` and a ``.sql`` file, as ``leads_by_platform/`` is (docs/analytics.md,
"Adding a mart"). They refresh when any distributor's leads change, and every 15 minutes so that staff actions (which
happen outside Dagster, in the CLI and the HTTP service) reach the numbers too (``defs/automation.py``).

The operations assets beside the marts are in ``operations.py``.
"""
