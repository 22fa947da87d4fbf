"""Meta's ``created_time`` → an aware UTC datetime (or unix seconds), None when it is not ISO-8601 with an offset.

Meta sends ``2026-06-01T12:34:56+0000``; ``+00:00``, ``Z`` and fractional seconds are accepted too (docs/lead-
validation.md: the simulator's ground truth uses the same expression, so the same leads are valid). Meta's own shape
takes a fast path (one match, then ``datetime.fromisoformat``).
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import Any

__all__ = ["parse_created_time", "parse_created_time_unix"]

# ISO-8601 with an offset; the same expression as the simulator's ground truth (so the same leads are valid).
_ISO_RE = re.compile(r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:?\d{2})")
_META_TIME_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\+0000")
_UTC = timezone.utc
_EPOCH = datetime(1970, 1, 1, tzinfo=_UTC)
_ZERO = timedelta(0)


def parse_created_time(value: Any) -> datetime | None:
    """``2026-06-01T12:34:56+0000`` (also ``+00:00``, ``Z``, fractional seconds) → aware UTC datetime, else None."""
    if not isinstance(value, str):
        return None
    if _META_TIME_RE.fullmatch(value) is not None:  # Meta's own shape, e.g. 2026-06-01T12:34:56+0000
        try:
            return datetime.fromisoformat(value)  # tzinfo is timezone.utc for +0000
        except ValueError:
            return None
    m = _ISO_RE.fullmatch(value)
    if m is None:
        return None
    off = m.group(8)
    try:
        if off != "Z" and (int(off[1:3]) > 23 or int(off[-2:]) > 59):
            return None
        try:
            dt = datetime.fromisoformat(value)  # C-fast; takes every shape the expression lets through
        except ValueError:
            dt = _created_time_slow(m)  # e.g. non-ASCII digits, which the ground truth's expression accepts
            if dt is None:
                return None
        return dt if dt.utcoffset() == _ZERO else dt.astimezone(_UTC)
    except (ValueError, OverflowError):  # out of datetime's range once moved to UTC
        return None


def _created_time_slow(m: re.Match) -> datetime | None:
    y, mo, d, hh, mi, ss, frac, off = m.groups()
    try:
        micro = int((frac + "00000")[:6]) if frac else 0
        dt = datetime(int(y), int(mo), int(d), int(hh), int(mi), int(ss), micro, tzinfo=_UTC)
        if off != "Z":
            delta = timedelta(hours=int(off[1:3]), minutes=int(off[-2:]))
            dt = dt - delta if off[0] == "+" else dt + delta
    except (ValueError, OverflowError):
        return None
    return dt


def parse_created_time_unix(value: Any) -> int | None:
    """``created_time`` as unix seconds (what ``filtering=time_created`` compares against), or None when invalid."""
    dt = parse_created_time(value)
    if dt is None:
        return None
    return int((dt - _EPOCH).total_seconds() // 1)
