"""Migration 15: the questions of each lead form, as discovery read them."""

from __future__ import annotations

from ..dialect import Dialect

NAME = "the questions of each lead form"


def statements(d: Dialect) -> list[str]:
    """``distributor_forms.questions``: Meta's ``questions`` of the form (``key``, ``label``, ``type``, ``options``).

    A lead's answers are keyed by the question's key (``what_is_your_budget?``, ``budget_band``); staff need the
    question as the form asked it, and a choice's text rather than its key. Discovery already asks Meta for
    ``questions`` (``graph.client.FORM_FIELDS``) and now keeps them; forms discovered before stay NULL until the
    next sync's discovery fills them in.
    """
    return [f"ALTER TABLE distributor_forms ADD COLUMN IF NOT EXISTS questions {d.json}"]
