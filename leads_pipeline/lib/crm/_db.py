"""Small helpers shared by the CRM modules: clock, JSON, audit rows, dates."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from typing import Any

from leads_pipeline.lib.warehouse import Conn

from .errors import InvalidInput


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def dumps(value: Any) -> str | None:
    return None if value is None else json.dumps(value, ensure_ascii=False, default=_json_default, sort_keys=True)


def _json_default(value: Any) -> Any:
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    return str(value)


def loads(value: Any) -> Any:
    if value is None or not isinstance(value, (str, bytes)):
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value


def audit(conn: Conn, *, actor: str, action: str, entity_type: str, entity_id: str | None,
          before: Any, after: Any, at: dt.datetime) -> None:
    """One audit_log row. ``before``/``after`` must never carry a lead's personal data."""
    conn.execute(
        "INSERT INTO audit_log (occurred_at, actor, action, entity_type, entity_id, before, after) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        [at, actor, action, entity_type, entity_id, dumps(before), dumps(after)],
    )


def audit_many(conn: Conn, *, actor: str, at: dt.datetime,
               rows: Sequence[tuple[str, str, Any, Any]]) -> None:
    """Audit rows ``(action, lead_id, before, after)`` for leads, staged and inserted with one statement."""
    if not rows:
        return
    conn.stage("crm_audit", {"action": "TEXT", "entity_id": "TEXT", "before": "JSON", "after": "JSON"},
               [(a, i, dumps(b), dumps(c)) for a, i, b, c in rows])
    conn.execute(
        "INSERT INTO audit_log (occurred_at, actor, action, entity_type, entity_id, before, after) "
        "SELECT ?, ?, action, 'lead', entity_id, before, after FROM crm_audit",
        [at, actor],
    )


def as_utc(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=dt.timezone.utc) if value.tzinfo is None else value.astimezone(dt.timezone.utc)


def parse_when(value: Any, name: str, *, end_of_day: bool = False) -> dt.datetime | None:
    """A datetime from a datetime, a date or an ISO string (naive means UTC).

    A bare date is the start of that day, or with ``end_of_day`` the start of the next (for exclusive upper bounds,
    so ``created_to=2026-06-30`` includes all of 30 June).
    """
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime):
        return as_utc(value)
    if isinstance(value, dt.date):
        day = value
    elif isinstance(value, str):
        text = value.strip()
        try:
            if len(text) == 10:
                day = dt.date.fromisoformat(text)
            else:
                return as_utc(dt.datetime.fromisoformat(text.replace("Z", "+00:00")))
        except ValueError:
            raise InvalidInput(f"{name}: {value!r} is not a date (YYYY-MM-DD) or an ISO date-time.") from None
    else:
        raise InvalidInput(f"{name}: {value!r} is not a date or a date-time.")
    start = dt.datetime(day.year, day.month, day.day, tzinfo=dt.timezone.utc)
    return start + dt.timedelta(days=1) if end_of_day else start
