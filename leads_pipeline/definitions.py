"""Dagster entry point: every definition under ``leads_pipeline/defs/`` is loaded automatically.

``defs/pipeline/defs.yaml`` is an instance of the ``LeadPipeline`` component (``leads_pipeline/components``), which
builds the pipeline's assets, checks, jobs, sensors and resources from the factory functions under ``defs/``; any
other ``defs.yaml`` there (e.g. SQL marts) adds to it. ``dagster dev -w workspace.yaml`` in the repository root (or
``leads-pipeline dev``) opens the UI with this code location; tests and the demo call :func:`defs`.
"""

from pathlib import Path

import dagster as dg


@dg.definitions
def defs() -> dg.Definitions:
    return dg.load_from_defs_folder(path_within_project=Path(__file__).parent)
