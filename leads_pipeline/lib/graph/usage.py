"""Meta's rate-limit headers, turned into "how full is the quota" and "how long until access returns".

Meta sends no ``Retry-After`` and throttles with HTTP 400, so the only hint of when to call again is in two
headers whose values are JSON *strings*:

* ``X-App-Usage``: ``{"call_count": 28, "total_time": 25, "total_cputime": 25}``, percentages of the app's
  rolling-hour quota (platform limits).
* ``X-Business-Use-Case-Usage``: ``{"<business-object-id>": [{"type": "leadgen", "call_count": 95,
  "total_cputime": 20, "total_time": 20, "estimated_time_to_regain_access": 3}, ...], ...}``; page tokens
  (what a lead sync uses) fall under these BUC limits. ``estimated_time_to_regain_access`` is in **minutes**.

``X-Page-Usage`` (no longer documented, still parsed by many clients) is read like ``X-App-Usage``. Malformed
values are ignored: a header we cannot read must never turn a good response into a failure.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

APP_USAGE = "x-app-usage"
PAGE_USAGE = "x-page-usage"
BUC_USAGE = "x-business-use-case-usage"
_PERCENT_KEYS = ("call_count", "total_time", "total_cputime")


@dataclass(frozen=True)
class Usage:
    """What the usage headers of one response say.

    ``max_percent``: the highest usage percentage in any header entry (100 means throttled or about to be).
    ``wait_seconds``: the longest ``estimated_time_to_regain_access`` over BUC entries, in seconds (0 if none).
    ``wait_type``: the BUC ``type`` of that longest wait (e.g. ``"leadgen"``), if any.
    """

    max_percent: float = 0.0
    wait_seconds: float = 0.0
    wait_type: str | None = None

    @property
    def present(self) -> bool:
        return self.max_percent > 0 or self.wait_seconds > 0


def parse_usage(headers: Mapping[str, str] | None) -> Usage:
    """Read ``X-App-Usage``, ``X-Page-Usage`` and ``X-Business-Use-Case-Usage`` (case-insensitive) into a Usage."""
    if not headers:
        return Usage()
    lowered = {str(k).lower(): v for k, v in headers.items()}
    max_percent = 0.0
    wait_seconds = 0.0
    wait_type: str | None = None

    for name in (APP_USAGE, PAGE_USAGE):
        value = _load(lowered.get(name))
        if isinstance(value, Mapping):
            max_percent = max(max_percent, _max_percent(value))

    buc = _load(lowered.get(BUC_USAGE))
    if isinstance(buc, Mapping):
        for entries in buc.values():
            if isinstance(entries, Mapping):
                entries = [entries]
            if not isinstance(entries, list):
                continue
            for entry in entries:
                if not isinstance(entry, Mapping):
                    continue
                max_percent = max(max_percent, _max_percent(entry))
                minutes = _number(entry.get("estimated_time_to_regain_access"))
                if minutes * 60 > wait_seconds:
                    wait_seconds = minutes * 60
                    wait_type = entry.get("type") if isinstance(entry.get("type"), str) else None

    return Usage(max_percent=max_percent, wait_seconds=wait_seconds, wait_type=wait_type)


def _load(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, (bytes, bytearray)):
        value = value.decode("utf-8", "replace")
    try:
        return json.loads(value)
    except (TypeError, ValueError):
        return None


def _max_percent(entry: Mapping[str, Any]) -> float:
    return max((_number(entry.get(key)) for key in _PERCENT_KEYS), default=0.0)


def _number(value: Any) -> float:
    if isinstance(value, bool):
        return 0.0
    try:
        number = float(value)
    except (TypeError, ValueError):
        return 0.0
    return number if number > 0 and number == number and number != float("inf") else 0.0
