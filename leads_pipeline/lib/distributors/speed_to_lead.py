"""Speed to lead: each distributor's target time to a lead's first contact, and the leads waiting past it.

Why: a lead called within minutes converts several times better than one called the next day, and staff had no way
to see which leads were waiting too long. ``distributors.speed_to_lead_minutes`` (default 60, NULL = no target) is
the target; a lead is **overdue** when it is still ``new`` or ``assigned``, nobody has contacted it
(``first_contacted_at`` is empty: a logged outbound call/email/SMS or the move to ``contacted`` sets it), and more
than the target has passed since Meta's ``created_time``. The clock starts at ``created_time`` because that is when the
person asked to be called; a sync that was late is part of the wait they felt.

Used by the console (:func:`overdue_minutes` over a page of lead items: one read of the targets), the ``leads``
asset check ``leads_speed_to_lead`` (:func:`summary`) and the daily digest email (:func:`enqueue_digests`). The
check and the digest look at leads created in the last ``LOOKBACK_DAYS`` days: an old backlog (a historical import)
is not a speed problem of today and would otherwise keep the check failing forever.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any

from leads_pipeline.lib.warehouse import Conn, Warehouse, retry_conflicts

from .errors import DistributorError, DistributorNotFound

__all__ = [
    "DEFAULT_TARGET_MINUTES",
    "LOOKBACK_DAYS",
    "MAX_TARGET_MINUTES",
    "OPEN_STATUSES",
    "breaches",
    "clean_target",
    "enqueue_digests",
    "is_overdue",
    "minutes_overdue",
    "overdue_minutes",
    "set_target",
    "speed_to_lead_targets",
    "summary",
]

DEFAULT_TARGET_MINUTES = 60
MAX_TARGET_MINUTES = 7 * 24 * 60
#: Statuses of a lead still waiting for its first contact.
OPEN_STATUSES = ("new", "assigned")
#: The check and the digest look at leads created this many days back.
LOOKBACK_DAYS = 7
#: Leads listed by name (id and link) in one digest; the rest are counted.
DIGEST_LINES = 50


def clean_target(value: Any) -> int | None:
    """A target in whole minutes (1 … a week), or None for "no target" (``off``, ``none``, empty)."""
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "off", "none", "no")):
        return None
    try:
        minutes = int(str(value).strip())
    except ValueError:
        raise DistributorError(f"The speed-to-lead target is whole minutes (e.g. 60), or 'off': not {value!r}.")
    if not 1 <= minutes <= MAX_TARGET_MINUTES:
        raise DistributorError(f"The speed-to-lead target is between 1 and {MAX_TARGET_MINUTES} minutes "
                               "(a week), or 'off'.")
    return minutes


def speed_to_lead_targets(wh: Warehouse) -> dict[str, int | None]:
    """Every distributor's target in minutes (None: no target)."""
    with wh.transaction(read_only=True) as conn:
        return _targets(conn)


def _targets(conn: Conn) -> dict[str, int | None]:
    rows = conn.query("SELECT key, speed_to_lead_minutes FROM distributors")
    return {r["key"]: (None if r["speed_to_lead_minutes"] is None else int(r["speed_to_lead_minutes"])) for r in rows}


def set_target(wh: Warehouse, key: str, minutes: Any, *, actor: str = "system") -> int | None:
    """Set a distributor's target (see :func:`clean_target`); audited. Returns the new target."""
    target = clean_target(minutes)

    def run() -> int | None:
        with wh.transaction() as conn:
            row = conn.query_one("SELECT speed_to_lead_minutes FROM distributors WHERE key = ?", [key])
            if row is None:
                raise DistributorNotFound(
                    f"No distributor with key {key!r}: see `leads-pipeline distributors list` for the keys.")
            before = row["speed_to_lead_minutes"]
            if before != target:
                conn.execute("UPDATE distributors SET speed_to_lead_minutes = ?, updated_at = CURRENT_TIMESTAMP "
                             "WHERE key = ?", [target, key])
                conn.execute(
                    "INSERT INTO audit_log (occurred_at, actor, action, entity_type, entity_id, before, after) "
                    "VALUES (CURRENT_TIMESTAMP, ?, 'distributor.speed_to_lead', 'distributor', ?, ?, ?)",
                    [actor or "system", key, json.dumps({"speed_to_lead_minutes": before}),
                     json.dumps({"speed_to_lead_minutes": target})])
        return target

    return retry_conflicts(run, what="distributors speed-to-lead")


# ----------------------------------------------------------------------------------------------------------------------
# One lead (the console)
# ----------------------------------------------------------------------------------------------------------------------


def _as_dt(value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return None
    if not isinstance(value, datetime):
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def minutes_overdue(lead: Mapping[str, Any], target_minutes: int | None, *, now: datetime | None = None) -> int | None:
    """Whole minutes ``lead`` (a crm lead item) is past ``target_minutes`` (at least 1), or None when it is not
    overdue: no target, already contacted, no longer open, or still within the target."""
    if target_minutes is None or lead.get("status") not in OPEN_STATUSES or lead.get("first_contacted_at"):
        return None
    created = _as_dt(lead.get("created_time"))
    if created is None:
        return None
    waited = ((now or datetime.now(UTC)) - created).total_seconds() / 60
    if waited <= target_minutes:
        return None
    return max(1, math.floor(waited - target_minutes))


def is_overdue(lead: Mapping[str, Any], target_minutes: int | None, *, now: datetime | None = None) -> bool:
    """Whether ``lead`` waits past ``target_minutes`` for its first contact (see :func:`minutes_overdue`)."""
    return minutes_overdue(lead, target_minutes, now=now) is not None


def overdue_minutes(wh: Warehouse, items: Iterable[Mapping[str, Any]], *, now: datetime | None = None
                    ) -> dict[str, int]:
    """``{meta_lead_id: minutes past the target}`` for the overdue leads among ``items`` (one read of the targets;
    leads that are not overdue are absent)."""
    items = list(items)
    if not any(i.get("status") in OPEN_STATUSES and not i.get("first_contacted_at") for i in items):
        return {}
    targets = speed_to_lead_targets(wh)
    now = now or datetime.now(UTC)
    out = {}
    for item in items:
        late = minutes_overdue(item, targets.get(item.get("distributor")), now=now)
        if late is not None:
            out[str(item.get("meta_lead_id"))] = late
    return out


# ----------------------------------------------------------------------------------------------------------------------
# Every distributor (the asset check, the digest)
# ----------------------------------------------------------------------------------------------------------------------

_SECONDS_WAITED = "extract(epoch FROM l.created_time)"
_OPEN = ("l.status IN ('new', 'assigned') AND l.first_contacted_at IS NULL "
         f"AND {_SECONDS_WAITED} + d.speed_to_lead_minutes * 60 < ?")


def breaches(wh: Warehouse, *, now: datetime | None = None, lookback_days: int = LOOKBACK_DAYS,
             distributor: str | None = None) -> list[dict[str, Any]]:
    """The open breaches: leads created in the last ``lookback_days`` days still waiting past their distributor's
    target, longest waiting first, with the form's name and the assignee's (no contact data)."""
    now = now or datetime.now(UTC)
    params: list[Any] = [now - timedelta(days=lookback_days), now.timestamp()]
    only = ""
    if distributor is not None:
        only = " AND l.distributor = ?"
        params.append(distributor)
    with wh.transaction(read_only=True) as conn:
        rows = conn.query(
            "SELECT l.meta_lead_id, l.distributor, d.name AS distributor_name, d.notify_email, "
            "d.speed_to_lead_minutes AS target_minutes, l.form_id, f.form_name, l.created_time, l.status, "
            "u.name AS assigned_to_name "
            "FROM leads l JOIN distributors d ON d.key = l.distributor "
            "LEFT JOIN distributor_forms f ON f.distributor = l.distributor AND f.form_id = l.form_id "
            "LEFT JOIN users u ON u.id = l.assigned_to "
            f"WHERE d.speed_to_lead_minutes IS NOT NULL AND l.created_time >= ? AND {_OPEN}{only} "
            "ORDER BY l.distributor, l.created_time, l.meta_lead_id",
            params,
        )
    for r in rows:
        r["minutes_overdue"] = minutes_overdue({**r, "first_contacted_at": None}, int(r["target_minutes"]), now=now)
    return rows


def summary(wh: Warehouse, *, now: datetime | None = None, lookback_days: int = LOOKBACK_DAYS
            ) -> list[dict[str, Any]]:
    """Per distributor with a target, over the leads created in the last ``lookback_days`` days: the target, leads,
    leads contacted, contacted within the target, the median minutes to first contact, the open breaches and the
    longest current wait in minutes."""
    now = now or datetime.now(UTC)
    first = "extract(epoch FROM l.first_contacted_at) - extract(epoch FROM l.created_time)"
    with wh.transaction(read_only=True) as conn:
        rows = conn.query(
            "SELECT l.distributor, max(d.speed_to_lead_minutes) AS target_minutes, count(*) AS leads, "
            "count(l.first_contacted_at) AS contacted, "
            f"count(*) FILTER (WHERE l.first_contacted_at IS NOT NULL AND {first} <= d.speed_to_lead_minutes * 60) "
            "AS contacted_within_target, "
            # GREATEST ignores NULLs on both backends: a lead never contacted must stay out (NULL), not count as 0.
            "percentile_cont(0.5) WITHIN GROUP (ORDER BY CASE WHEN l.first_contacted_at IS NOT NULL "
            f"THEN GREATEST(0.0, ({first}) / 60.0) END) "
            "AS median_minutes_to_first_contact, "
            f"count(*) FILTER (WHERE {_OPEN}) AS open_breaches, "
            f"min(l.created_time) FILTER (WHERE {_OPEN}) AS oldest_breach_created "
            "FROM leads l JOIN distributors d ON d.key = l.distributor "
            "WHERE d.speed_to_lead_minutes IS NOT NULL AND l.created_time >= ? "
            "GROUP BY l.distributor ORDER BY l.distributor",
            [now.timestamp(), now.timestamp(), now - timedelta(days=lookback_days)],
        )
    for r in rows:
        for k in ("leads", "contacted", "contacted_within_target", "open_breaches", "target_minutes"):
            r[k] = int(r[k] or 0)
        median = r["median_minutes_to_first_contact"]
        r["median_minutes_to_first_contact"] = None if median is None else round(float(median), 1)
        oldest = _as_dt(r.pop("oldest_breach_created"))
        r["longest_wait_minutes"] = None if oldest is None else math.floor((now - oldest).total_seconds() / 60)
    return rows


def _waited(minutes: int) -> str:
    hours, mins = divmod(int(minutes), 60)
    days, hours = divmod(hours, 24)
    parts = [f"{days} d" if days else "", f"{hours} h" if hours else "", f"{mins} min" if mins or not (days or hours)
             else ""]
    return " ".join(p for p in parts if p)


def _digest_text(name: str, day: date, rows: list[dict[str, Any]], stats: dict[str, Any] | None,
                 console_url: str) -> tuple[str, str]:
    target = int(rows[0]["target_minutes"])
    n = len(rows)
    subject = f"Speed to lead: {n} lead{'s' if n != 1 else ''} waiting past {_waited(target)} for {name} ({day})"
    intro = (f"{n} lead{'s' if n != 1 else ''} of {name} {'are' if n != 1 else 'is'} still waiting for a first "
             f"contact past the target of {_waited(target)} (leads of the last {LOOKBACK_DAYS} days; longest "
             "wait first).")
    lines = [intro, ""]
    base = console_url.rstrip("/")
    for r in sorted(rows, key=lambda r: r["created_time"])[:DIGEST_LINES]:
        waited = _waited(int(r["minutes_overdue"]) + target)
        who = f"assigned to {r['assigned_to_name']}" if r.get("assigned_to_name") else "unassigned"
        form = r.get("form_name") or (f"form {r['form_id']}" if r.get("form_id") else "unknown form")
        created = _as_dt(r["created_time"])
        lines.append(f"- waiting {waited} · {form} · {who} · created {created:%Y-%m-%d %H:%M} UTC\n"
                     f"  {base}/leads/{r['meta_lead_id']}")
    if n > DIGEST_LINES:
        lines.append(f"… and {n - DIGEST_LINES} more: {base}/leads?status=new")
    if stats:
        median = stats.get("median_minutes_to_first_contact")
        after = f", median first contact after {_waited(round(median))}" if median is not None else ""
        lines += ["", (f"Last {LOOKBACK_DAYS} days: {stats['leads']} leads, {stats['contacted']} contacted, "
                       f"{stats['contacted_within_target']} within the target{after}.")]
    how = (f"`leads-pipeline distributors update {rows[0]['distributor']} --speed-to-lead MINUTES`")
    lines += ["", f"Contact details are in the console; they are not sent by email. Change the target with {how}."]
    return subject, "\n".join(lines) + "\n"


def enqueue_digests(wh: Warehouse, *, now: datetime | None = None, console_url: str | None = None) -> int:
    """Queue today's speed-to-lead digest (one email per distributor with open breaches and a ``notify_email``,
    to each of its addresses) in the notification outbox; once per distributor and UTC day, however often it is
    called. Returns the rows queued. Sent by ``notifications.send_pending`` like every outbox row."""
    from leads_pipeline.lib.crm import notifications

    now = now or datetime.now(UTC)
    base = console_url or notifications.ConsoleSettings().console_url
    found = breaches(wh, now=now)
    if not found:
        return 0
    stats = {s["distributor"]: s for s in summary(wh, now=now)}
    by_distributor: dict[str, list[dict[str, Any]]] = {}
    for r in found:
        if notifications.recipients(r["notify_email"]):
            by_distributor.setdefault(r["distributor"], []).append(r)
    day = now.astimezone(UTC).date()
    added = 0

    def run() -> int:
        count = 0
        with wh.transaction() as conn:
            for key, rows in by_distributor.items():
                subject, body = _digest_text(rows[0]["distributor_name"] or key, day, rows, stats.get(key), base)
                count += notifications.enqueue_notice(
                    conn, key=f"speed-to-lead:{key}:{day.isoformat()}", kind="speed_to_lead_digest",
                    distributor=key, notify_email=rows[0]["notify_email"], subject=subject, body=body)
        return count

    if by_distributor:
        added = retry_conflicts(run, what="speed-to-lead digest")
    return added
