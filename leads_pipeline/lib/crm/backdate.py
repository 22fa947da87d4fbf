"""Back-dated changes: ``bulk(..., at=...)`` dates status changes and assignments in the past.

People and services act now; only seeding a history (the demo's staff activity, which follows each lead's own time)
and tests date changes otherwise. The rules that keep such a history believable live here: every target lead has a
time, none is in the future, none before the lead arrived or before its last status change. The change is recorded
now (``recorded_at``, the audit row), and the audit row names the time it was dated.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from ._db import parse_when
from .errors import InvalidInput

# Logged interactions may be back-dated, not dated in the future (beyond clock skew).
FUTURE_TOLERANCE = dt.timedelta(minutes=5)


def at_of(at: dt.datetime | Mapping[str, dt.datetime], lead_id: str) -> dt.datetime:
    """The time of the change to one lead: ``at`` itself, or its entry when ``at`` maps lead ids to times."""
    return at[lead_id] if isinstance(at, Mapping) else at


def backdated(rows: Sequence[Mapping[str, Any]], at: Any, now: dt.datetime) -> dict[str, dt.datetime]:
    """``bulk``'s ``at`` as a time per target lead, checked: every target has one, none is in the future, none is
    before the lead arrived or before its last status change (a lead's history stays in order)."""
    given = at if isinstance(at, Mapping) else None
    out: dict[str, dt.datetime] = {}
    missing, future, early = [], [], []
    for r in rows:
        lead_id = r["meta_lead_id"]
        value = given.get(lead_id) if given is not None else at
        when = parse_when(value, "at")
        if when is None:
            missing.append(lead_id)
            continue
        out[lead_id] = when
        if when > now + FUTURE_TOLERANCE:
            future.append(lead_id)
        floor = max((parse_when(r[c], c) for c in ("created_time", "status_changed_at") if r.get(c)), default=None)
        if floor is not None and when < floor:
            early.append(lead_id)
    for ids, problem in ((missing, "have no time in 'at'"), (future, "would be dated in the future"),
                         (early, "would be dated before they arrived or before their last status change")):
        if ids:
            raise InvalidInput(f"{len(ids)} lead(s) {problem}: {', '.join(ids[:5])}{' …' if len(ids) > 5 else ''}.")
    return out


def dated(rows: list[tuple[str, str, Any, Any]], at: Any, when: Mapping[str, dt.datetime] | dt.datetime
           ) -> list[tuple[str, str, Any, Any]]:
    """Audit rows of a back-dated change name the time it was dated (the audit row itself is stamped now)."""
    if at is None or not isinstance(when, Mapping):
        return rows
    return [(a, i, b, {**c, "occurred_at": when[i].isoformat()}) for a, i, b, c in rows]
