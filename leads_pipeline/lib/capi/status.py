"""What the outbox holds, and which distributors have something to send (for the sensor, the API and the console)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from leads_pipeline.lib.warehouse import Warehouse

from . import config as capi_config
from .events import STAGE_KINDS

__all__ = ["due", "outbox_counts", "overview"]

#: A distributor whose last send stopped on an error is tried again after this, unless its settings change.
RETRY_AFTER_ERROR = dt.timedelta(hours=1)
#: Sends at least this often, even with nothing new (Meta wants events at least daily; metadata stays fresh).
AT_LEAST_EVERY = dt.timedelta(days=1)
#: Rows written this little before the last scan may have committed after it: they count as new for :func:`due`.
SCAN_SLACK = dt.timedelta(minutes=2)


def _utc(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def outbox_counts(wh: Warehouse, key: str | None = None, *, now: dt.datetime | None = None
                  ) -> dict[str, dict[str, Any]]:
    """Per distributor: events by status and the age of the oldest pending one (seconds, None when none waits)."""
    now = _utc(now or dt.datetime.now(dt.UTC))
    where, params = ("WHERE distributor = ?", [key]) if key else ("", [])
    with wh.transaction(read_only=True) as conn:
        rows = conn.query(
            "SELECT distributor, status, count(*) AS n, min(event_time) AS oldest FROM conversion_events "
            f"{where} GROUP BY distributor, status", params)
    out: dict[str, dict[str, Any]] = {}
    for r in rows:
        item = out.setdefault(r["distributor"], {"pending": 0, "sent": 0, "failed": 0, "expired": 0,
                                                 "oldest_pending_age_seconds": None})
        item[r["status"]] = int(r["n"])
        if r["status"] == "pending" and r["oldest"] is not None:
            item["oldest_pending_age_seconds"] = round(max((now - _utc(r["oldest"])).total_seconds(), 0.0), 1)
    if key and key not in out:
        out[key] = {"pending": 0, "sent": 0, "failed": 0, "expired": 0, "oldest_pending_age_seconds": None}
    return out


def overview(wh: Warehouse, key: str, *, now: dt.datetime | None = None) -> dict[str, Any]:
    """A distributor's settings (never a token) with its events by status: what the API and the console show."""
    return {**capi_config.get(wh, key).to_dict(), "events": outbox_counts(wh, key, now=now)[key]}


def due(wh: Warehouse, now: dt.datetime | None = None) -> list[str]:
    """Keys of the distributors with a dataset that have something to do: events waiting, stages written since their
    last scan, or no send for a day. One whose last send stopped on an error waits :data:`RETRY_AFTER_ERROR` unless
    its settings changed since."""
    now = _utc(now or dt.datetime.now(dt.UTC))
    kinds = ", ".join(f"'{k}'" for k in STAGE_KINDS)
    slack = int(SCAN_SLACK.total_seconds())
    with wh.transaction(read_only=True) as conn:
        rows = conn.query(
            "SELECT s.distributor, s.last_send_at, s.last_error, s.updated_at, ("
            "  EXISTS (SELECT 1 FROM conversion_events c WHERE c.distributor = s.distributor AND c.status = 'pending')"
            "  OR s.enqueued_at IS NULL"
            "  OR EXISTS (SELECT 1 FROM leads l WHERE l.distributor = s.distributor "
            f"     AND l.first_seen_at > s.enqueued_at - INTERVAL '{slack} seconds')"
            "  OR EXISTS (SELECT 1 FROM lead_interactions i WHERE i.distributor = s.distributor "
            f"     AND i.kind IN ({kinds})"
            f"     AND i.recorded_at > s.enqueued_at - INTERVAL '{slack} seconds')"
            "  OR s.last_send_at IS NULL OR s.last_send_at < ?) AS work "
            "FROM capi_settings s JOIN distributors d ON d.key = s.distributor "
            "WHERE s.dataset_id IS NOT NULL ORDER BY s.distributor",
            [now - AT_LEAST_EVERY])
        out = []
        for r in rows:
            if not r["work"]:
                continue
            if r["last_error"] and r["last_send_at"] is not None:
                waited = now - _utc(r["last_send_at"])
                changed = r["updated_at"] is not None and _utc(r["updated_at"]) > _utc(r["last_send_at"])
                if waited < RETRY_AFTER_ERROR and not changed:
                    continue
            out.append(r["distributor"])
    return out
