"""Dagster instance configurations shipped with the project (local default; production on PostgreSQL)."""

from pathlib import Path

DEPLOY_DIR = Path(__file__).parent
LOCAL_INSTANCE_YAML = DEPLOY_DIR / "dagster.local.yaml"
