"""Migration 16: the funnel counts the stages reported to Meta."""

from __future__ import annotations

from ..dialect import Dialect

NAME = "conversion_funnel: stages reported to Meta"


def statements(d: Dialect) -> list[str]:
    """``conversion_funnel.stages_reported_to_meta``: how many of the group's lead stages Meta accepted through the
    Conversions API (``conversion_events`` rows with status ``sent``, migration 13).

    Meta optimises for leads that convert only from what the CRM reports; beside the funnel an analyst sees at a
    glance whether a distributor's stages actually reach Meta (a dataset never configured, a token refused, events
    expiring unsent). The mart is rebuilt whole on every refresh, so the rows that exist get 0 until the next one;
    nullable with a default, as DuckDB adds no constrained column to an existing table.
    """
    return ["ALTER TABLE conversion_funnel ADD COLUMN IF NOT EXISTS stages_reported_to_meta BIGINT DEFAULT 0"]
