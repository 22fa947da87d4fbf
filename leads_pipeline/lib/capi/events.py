"""Conversion events from what already happens: the outbox (table ``conversion_events``) and the events' wire shape.

Every stage a lead reaches is already recorded: its arrival (``leads.first_seen_at``, stage ``new``) and every status
change or reopening (``lead_interactions`` rows of kind ``status_change`` / ``reopen``, stage = ``to_status``), whether
a staff member, a bulk action, the CLI or the HTTP service made it. :func:`enqueue` scans those for stages not yet in
the outbox and adds them, so nothing in ``lib/crm`` has to know about Meta, and no path that changes a status can
forget to report it. It runs before every send.

Each event's id is the SHA-256 of distributor, lead, stage and stage time (to the microsecond): scanning twice, or
two scanners at once, insert one row (``ON CONFLICT DO NOTHING``), and a row sent once is never sent again.

What is scanned: stages of the 7 days before the dataset was configured and later (Meta accepts a week of backfill;
older stages are never sent), written in the last :data:`SCAN_WINDOW` (so a scan reads a bounded slice; an event
that waited longer than Meta's 7 days is marked expired by the sender, not sent).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

from leads_pipeline.lib.warehouse import Conn, Warehouse, retry_conflicts

from . import config as capi_config

__all__ = ["BACKFILL", "SCAN_WINDOW", "STAGE_KINDS", "enqueue", "event_id", "hash_email", "hash_phone",
           "wire_event"]

#: Interaction kinds whose ``to_status`` is a stage the lead reached.
STAGE_KINDS = ("status_change", "reopen")
#: Meta accepts events up to 7 days old: what happened that long before the dataset was configured is sent too.
BACKFILL = dt.timedelta(days=7)
#: How far back a scan reads rows by the time they were written.
SCAN_WINDOW = dt.timedelta(days=30)
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _utc(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def event_id(distributor: str, lead_id: str, stage: str, at: dt.datetime) -> str:
    """The deterministic id of the event "lead reached stage at time" (hex SHA-256)."""
    micros = (_utc(at) - _EPOCH) // dt.timedelta(microseconds=1)
    return hashlib.sha256(f"{distributor}\x1f{lead_id}\x1f{stage}\x1f{micros}".encode()).hexdigest()


def _candidates(conn: Conn, key: str, stages: Sequence[str], since: dt.datetime, written_since: dt.datetime
                ) -> list[dict[str, Any]]:
    """Stages reached at ``since`` or later, written at ``written_since`` or later, not yet in the outbox."""
    parts: list[str] = []
    params: list[Any] = []
    if "new" in stages:
        parts.append(
            "SELECT l.meta_lead_id, 'new' AS stage, l.first_seen_at AS at FROM leads l "
            "WHERE l.distributor = ? AND l.first_seen_at >= ? AND l.first_seen_at >= ? "
            "AND NOT EXISTS (SELECT 1 FROM conversion_events c WHERE c.meta_lead_id = l.meta_lead_id "
            "AND c.distributor = l.distributor AND c.stage = 'new' AND c.event_time = l.first_seen_at)")
        params += [key, since, written_since]
    moves = [s for s in stages if s != "new"] + (["new"] if "new" in stages else [])
    if moves:
        marks = ", ".join("?" for _ in moves)
        kinds = ", ".join(f"'{k}'" for k in STAGE_KINDS)
        parts.append(
            "SELECT i.meta_lead_id, i.to_status AS stage, i.occurred_at AS at FROM lead_interactions i "
            "JOIN leads l ON l.meta_lead_id = i.meta_lead_id AND l.distributor = i.distributor "
            f"WHERE i.distributor = ? AND i.kind IN ({kinds}) AND i.to_status IN ({marks}) "
            "AND i.occurred_at >= ? AND i.recorded_at >= ? "
            "AND NOT EXISTS (SELECT 1 FROM conversion_events c WHERE c.meta_lead_id = i.meta_lead_id "
            "AND c.distributor = i.distributor AND c.stage = i.to_status AND c.event_time = i.occurred_at)")
        params += [key, *moves, since, written_since]
    if not parts:
        return []
    return conn.query(" UNION ALL ".join(parts), params)


def enqueue(wh: Warehouse, key: str, *, now: dt.datetime | None = None) -> int:
    """Add the distributor's stages not yet in the outbox; returns how many. Nothing when no dataset is set.

    One short transaction, no network I/O.
    """
    now = _utc(now or dt.datetime.now(dt.UTC))

    def run() -> int:
        with wh.transaction() as conn:
            settings = capi_config.load(conn, key)
            if not settings.enabled or settings.configured_at is None:
                return 0
            since = _utc(settings.configured_at) - BACKFILL
            rows = _candidates(conn, key, settings.sent_stages, since, now - SCAN_WINDOW)
            new: dict[str, tuple[Any, ...]] = {}
            for r in rows:
                at = _utc(r["at"])
                eid = event_id(key, r["meta_lead_id"], r["stage"], at)
                new[eid] = (eid, key, r["meta_lead_id"], r["stage"], settings.stage_events[r["stage"]], at)
            added = 0
            if new:
                conn.stage("capi_new_events", {"event_id": "TEXT", "distributor": "TEXT", "meta_lead_id": "TEXT",
                                               "stage": "TEXT", "event_name": "TEXT", "event_time": "TIMESTAMPTZ"},
                           list(new.values()))
                added = max(conn.execute(
                    "INSERT INTO conversion_events (event_id, distributor, meta_lead_id, stage, event_name, "
                    "event_time, status, attempts, created_at) SELECT event_id, distributor, meta_lead_id, stage, "
                    "event_name, event_time, 'pending', 0, ? FROM capi_new_events ON CONFLICT (event_id) DO NOTHING",
                    [now]), 0)
            conn.execute("UPDATE capi_settings SET enqueued_at = ? WHERE distributor = ?", [now, key])
            return added

    return retry_conflicts(run, what="conversions api enqueue")


# ----------------------------------------------------------------------------------------------------------------------
# The wire shape (Meta's payload specification for CRM events)
# ----------------------------------------------------------------------------------------------------------------------


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def hash_email(email: str | None) -> str | None:
    """Meta's ``em``: SHA-256 of the trimmed, lower-cased address (None when there is none)."""
    text = (email or "").strip().lower()
    return _sha256(text) if text and "@" in text else None


def hash_phone(phone: str | None) -> str | None:
    """Meta's ``ph``: SHA-256 of the digits with the country code, no symbols or leading zeros (from the stored
    E.164 number; None when there is none)."""
    digits = "".join(ch for ch in (phone or "") if ch.isdigit()).lstrip("0")
    return _sha256(digits) if len(digits) >= 7 else None


def wire_event(row: Mapping[str, Any], *, crm_name: str, contacts: Mapping[str, Any] | None = None
               ) -> dict[str, Any]:
    """One outbox row as Meta's CRM event: the stage's name and time (Unix seconds), ``system_generated``, Meta's lead
    id as an integer, ``event_source: crm`` and the CRM's name; hashed ``em``/``ph`` only when ``contacts`` are given
    (the setting ``hashed_contacts``). Nothing else about the person leaves."""
    user_data: dict[str, Any] = {"lead_id": int(row["meta_lead_id"])}
    if contacts:
        em, ph = hash_email(contacts.get("email")), hash_phone(contacts.get("phone"))
        if em:
            user_data["em"] = [em]
        if ph:
            user_data["ph"] = [ph]
    return {
        "event_name": row["event_name"],
        "event_time": int((_utc(row["event_time"]) - _EPOCH).total_seconds()),
        "event_id": row["event_id"],
        "action_source": "system_generated",
        "user_data": user_data,
        "custom_data": {"event_source": "crm", "lead_event_source": crm_name},
    }
