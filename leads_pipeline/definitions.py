"""Dagster entry point: every definition under ``leads_pipeline/defs/`` is loaded automatically.

``dagster dev`` in the repository root (or ``leads-pipeline dev``) opens the UI with this code location.
"""

from pathlib import Path

import dagster as dg


@dg.definitions
def defs() -> dg.Definitions:
    return dg.load_from_defs_folder(path_within_project=Path(__file__).parent)
