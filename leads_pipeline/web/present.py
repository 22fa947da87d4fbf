"""How the console shows things: local times, a lead's answers under the form's questions, contact links, page
numbers and the words for each move. Pure functions (no warehouse, no request), so the pages stay thin and each rule
is testable on its own.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import logging
import re
import zoneinfo
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import quote

from markupsafe import Markup

log = logging.getLogger(__name__)

UTC = dt.UTC

# ------------------------------------------------------------------------------------------------- time zones

# A distributor's time zone comes from its phone region (``distributors.default_region``, ISO 3166 alpha-2): the
# country's only zone, or for a country spanning several, the zone of its capital or of most of its people. Other
# multi-zone countries take the first zone ``zone.tab`` lists for them.
_MAIN_ZONE = {
    "US": "America/New_York", "CA": "America/Toronto", "MX": "America/Mexico_City", "BR": "America/Sao_Paulo",
    "AR": "America/Argentina/Buenos_Aires", "CL": "America/Santiago", "RU": "Europe/Moscow", "KZ": "Asia/Almaty",
    "AU": "Australia/Sydney", "ID": "Asia/Jakarta", "CN": "Asia/Shanghai", "UA": "Europe/Kyiv",
    "ES": "Europe/Madrid", "PT": "Europe/Lisbon", "DE": "Europe/Berlin", "NZ": "Pacific/Auckland",
    "CD": "Africa/Kinshasa", "MN": "Asia/Ulaanbaatar", "UZ": "Asia/Tashkent", "EC": "America/Guayaquil",
    "CY": "Asia/Nicosia", "MY": "Asia/Kuala_Lumpur", "GL": "America/Nuuk", "PG": "Pacific/Port_Moresby",
}


@functools.lru_cache(maxsize=1)
def _zone_table() -> dict[str, str]:
    """Country code → its first zone in tzdata's ``zone.tab`` (the system's, else the ``tzdata`` package's)."""
    text = None
    for base in zoneinfo.TZPATH:
        path = Path(base) / "zone.tab"
        if path.is_file():
            text = path.read_text(encoding="utf-8")
            break
    if text is None:
        try:
            text = resources.files("tzdata").joinpath("zoneinfo", "zone.tab").read_text(encoding="utf-8")
        except (ModuleNotFoundError, FileNotFoundError, OSError):
            log.warning("no zone.tab found: distributors without a listed zone show times in UTC")
            return {}
    table: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        parts = line.split("\t")
        if len(parts) >= 3:
            table.setdefault(parts[0].upper(), parts[2])
    return table


@functools.lru_cache(maxsize=256)
def zone_for_region(region: str | None) -> dt.tzinfo:
    """The time zone the console shows a distributor's times in (UTC when the region names no country)."""
    code = (region or "").strip().upper()
    name = _MAIN_ZONE.get(code) or _zone_table().get(code)
    if name:
        try:
            return zoneinfo.ZoneInfo(name)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            log.warning("time zone %s of region %s is not installed: showing UTC", name, code)
    return UTC


def zone_name(zone: dt.tzinfo) -> str:
    return getattr(zone, "key", None) or "UTC"


def as_utc(value: Any) -> dt.datetime | None:
    """A datetime (or ISO string) in UTC; naive values are UTC (the warehouse stores UTC)."""
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value)
        except ValueError:
            return None
    if not isinstance(value, dt.datetime):
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def local_time(value: Any, zone: dt.tzinfo | None = None) -> Markup:
    """``<time>`` showing ``value`` in ``zone`` (the distributor's), with UTC on hover; empty for no time."""
    when = as_utc(value)
    if when is None:
        return Markup("") if value in (None, "") else Markup("{}").format(value)
    zone = zone or UTC
    local = when.astimezone(zone)
    shown = local.strftime("%Y-%m-%d %H:%M") + (" UTC" if zone is UTC else "")
    return Markup('<time datetime="{}" title="{} UTC ({})">{}</time>').format(
        when.isoformat(timespec="seconds"), when.strftime("%Y-%m-%d %H:%M"), zone_name(zone), shown)


def parse_local(text: str, zone: dt.tzinfo) -> str | None:
    """A ``datetime-local`` field's value (wall time in ``zone``) as an ISO time in UTC; None for an empty field.
    A value that already names its offset keeps it. Unparseable text is passed on for the library to refuse."""
    text = (text or "").strip()
    if not text:
        return None
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        return text
    if value.tzinfo is None:
        value = value.replace(tzinfo=zone)
    return value.astimezone(UTC).isoformat()


# ------------------------------------------------------------------------------------------------- answers

# Keys the parser wrote into custom_fields before migration 8 (answers kept as typed when they did not validate).
_INTERNAL_LABELS = {"_invalid_email": "Email as typed (not valid)", "_invalid_phone": "Phone as typed (not valid)"}


@dataclass(frozen=True)
class Answer:
    key: str  # the question's key, as the lead's answers name it
    label: str  # the question as the form asked it (or the key in words when the form's questions are unknown)
    values: list[str]  # one per value Meta sent: several for a multi-select question
    from_form: bool  # the label is the form's own text

    @property
    def multiple(self) -> bool:
        return len(self.values) > 1


def key_in_words(key: str) -> str:
    """``what_is_your_budget?`` → ``What is your budget?``: the fallback label when the form is unknown."""
    if key in _INTERNAL_LABELS:
        return _INTERNAL_LABELS[key]
    words = re.sub(r"[_\s]+", " ", key).strip()
    return (words[:1].upper() + words[1:]) if words else key


def _value_text(value: Any, options: Mapping[str, str]) -> str:
    if isinstance(value, str):
        return options.get(value, value)
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return "" if value is None else str(value)


def answers(custom_fields: Any, questions: Iterable[Mapping[str, Any]] | None) -> list[Answer]:
    """A lead's answers (``leads.custom_fields``: question key → values) labelled with the form's questions, in the
    form's order, then any answer the form does not list, by key (PostgreSQL's JSONB keeps no order), the parser's
    own notes (``_…``) last. A choice's key becomes its text (``under_€2.000`` → the option's value). Blank values
    are dropped; an answer left with none is not shown."""
    if not isinstance(custom_fields, Mapping):
        return []
    asked: dict[str, Mapping[str, Any]] = {}
    for q in questions or ():
        if isinstance(q, Mapping) and isinstance(q.get("key"), str):
            asked.setdefault(q["key"], q)
    keys = [k for k in asked if k in custom_fields] + sorted(
        (k for k in custom_fields if k not in asked), key=lambda k: (str(k).startswith("_"), str(k)))
    out = []
    for key in keys:
        raw = custom_fields[key]
        values = raw if isinstance(raw, list) else [raw]
        q = asked.get(key)
        options = {str(o.get("key")): str(o.get("value")) for o in (q.get("options") or ())
                   if isinstance(o, Mapping) and o.get("key") is not None and o.get("value") is not None} if q else {}
        texts = [t for t in (_value_text(v, options).strip() for v in values) if t]
        if not texts:
            continue
        label = str(q["label"]) if q and q.get("label") else key_in_words(str(key))
        out.append(Answer(str(key), label, texts, bool(q and q.get("label"))))
    return out


# ------------------------------------------------------------------------------------------------- contact links


def contact_links(lead: Mapping[str, Any]) -> dict[str, str]:
    """``tel:``, WhatsApp and ``mailto:`` addresses for the lead's valid phone (E.164) and email; absent without."""
    links: dict[str, str] = {}
    phone = lead.get("phone")
    if isinstance(phone, str):
        digits = re.sub(r"\D", "", phone)
        if digits:
            links["tel"] = "tel:+" + digits
            links["whatsapp"] = "https://wa.me/" + digits
    email = lead.get("email")
    if isinstance(email, str) and "@" in email:
        links["mailto"] = "mailto:" + quote(email.strip(), safe="@.+-_")
    return links


def waited(minutes: int | None) -> str:
    """``125`` → ``2 h 5 min``; ``3000`` → ``2 d 2 h``: how long past a target, short enough for a badge's hover."""
    if minutes is None:
        return ""
    m = max(0, int(minutes))
    if m < 60:
        return f"{m} min"
    if m < 24 * 60:
        return f"{m // 60} h" + (f" {m % 60} min" if m % 60 else "")
    days, hours = divmod(m // 60, 24)
    return f"{days} d" + (f" {hours} h" if hours else "")


# ------------------------------------------------------------------------------------------------- pages


def page_numbers(page: int, pages: int, around: int = 2) -> list[int | None]:
    """The page links to show: the first, the last, and ``around`` either side of ``page``; None marks a gap."""
    shown = {1, pages, *range(max(1, page - around), min(pages, page + around) + 1)}
    out: list[int | None] = []
    previous = 0
    for n in sorted(shown):
        if n - previous > 1:
            out.append(None)
        out.append(n)
        previous = n
    return out


# ------------------------------------------------------------------------------------------------- moves

# Moves staff must confirm on a second page: converted is final; rejected takes the lead out of every queue.
CONFIRM_MOVES = frozenset({"converted", "rejected"})

# to-status → (the words on its choice, what it means). Leaving 'rejected' is a reopen.
_MOVES = {
    "assigned": ("Assign", "give it to someone to work (choose who below)"),
    "contacted": ("Contacted", "you reached them (a logged outbound call, email or SMS does this by itself)"),
    "converted": ("Converted", "they booked: final, the lead cannot move again"),
    "rejected": ("Reject", "not a real or reachable lead; it leaves the queues (it can be reopened)"),
    "new": ("New", "back in the queue"),
}
_REOPEN = {
    "new": ("Reopen as new", "back in the queue as a new lead"),
    "assigned": ("Reopen and assign", "back to someone to work (choose who below)"),
    "contacted": ("Reopen as contacted", "you are already in touch with them"),
}


@dataclass(frozen=True)
class Move:
    status: str
    label: str
    hint: str
    confirm: bool


def moves(from_status: str, allowed: Iterable[str]) -> list[Move]:
    """The choices of the status form: exactly the allowed moves, in the rules' order."""
    words = _REOPEN if from_status == "rejected" else _MOVES
    out = []
    for s in allowed:
        label, hint = words.get(s) or _MOVES.get(s) or (s.capitalize(), "")
        out.append(Move(s, label, hint, s in CONFIRM_MOVES))
    return out
