"""The settings' defaults that need no settings library: where data lives, how long a DuckDB open waits.

Both readers of the settings use them — ``Settings`` (:mod:`leads_pipeline.settings_model`, pydantic-settings) and the
quick readers of :mod:`leads_pipeline.settings` — so they live below both (no import circle between the two).
"""

from __future__ import annotations

import os
from pathlib import Path


def _default_data_dir() -> Path:
    """Where runtime data lives when ``LEADS_DATA_DIR`` is not set: anchored, never the current folder.

    A relative ``data`` made ``stats`` run from another folder open a new, empty warehouse and print zeros. From a
    source checkout (the editable install ``make`` creates) it is the checkout's ``data/``, where ``make demo``
    puts the demo; from an installed package, the user's data folder (``$XDG_DATA_HOME/leads_pipeline``).
    """
    checkout = Path(__file__).resolve().parents[1]
    if (checkout / "pyproject.toml").is_file() and (checkout / "workspace.yaml").is_file():
        return checkout / "data"
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "leads_pipeline"


DEFAULT_DATA_DIR = _default_data_dir()
#: ``LEADS_WAREHOUSE_BUSY_TIMEOUT_SECONDS`` when unset.
DEFAULT_BUSY_TIMEOUT_SECONDS = 600.0
