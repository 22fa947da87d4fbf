"""The validity rules of docs/lead-validation.md, as the simulator's ground truth applies them.

A lead is malformed (with the first reason that applies) when:
``missing_id`` (no id / empty), ``bad_id`` (not a string of digits), ``bad_created_time`` (not ISO-8601 with an
offset), ``bad_field_data`` (not a list of ``{"name": str, "values": list}``), ``no_contact`` (neither a valid
e-mail nor a valid phone number). Otherwise it is valid.
"""

from __future__ import annotations

import re
from datetime import datetime

import phonenumbers

REASONS = ("missing_id", "bad_id", "bad_created_time", "bad_field_data", "no_contact")

_EMAIL_RE = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+", re.ASCII)
_DIGITS_RE = re.compile(r"[0-9]+")
_ISO_RE = re.compile(r"(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2}:\d{2})(?:\.\d+)?(Z|[+-]\d{2}:?\d{2})")


def email_is_valid(raw: object) -> bool:
    """Trimmed, lower-cased; ``local@domain.tld``: ASCII, one ``@``, a dot in the domain, no spaces."""
    if not isinstance(raw, str):
        return False
    s = raw.strip().lower()
    return s.isascii() and _EMAIL_RE.fullmatch(s) is not None


def phone_is_valid(raw: object, region: str) -> bool:
    """Parsed with ``phonenumbers`` in ``region`` (for numbers without a country code); ``is_valid_number``."""
    if not isinstance(raw, str) or not raw.strip():
        return False
    try:
        return phonenumbers.is_valid_number(phonenumbers.parse(raw.strip(), region))
    except phonenumbers.NumberParseException:
        return False


def created_time_is_valid(value: object) -> bool:
    if not isinstance(value, str):
        return False
    m = _ISO_RE.fullmatch(value)
    if not m:
        return False
    try:
        datetime.strptime(m.group(1) + " " + m.group(2), "%Y-%m-%d %H:%M:%S")
    except ValueError:
        return False
    offset = m.group(3)
    if offset != "Z":
        hh, mm = int(offset[1:3]), int(offset[-2:])
        if hh > 23 or mm > 59:
            return False
    return True


def _answers(field_data: list, *keys: str) -> list | None:
    for key in keys:
        found = [e for e in field_data if e.get("name") == key]
        if found:
            return [v for e in found for v in e.get("values", [])]
    return None


def classify_lead(obj: object, region: str) -> str | None:
    """The reason code a lead is rejected with, or ``None`` when it is valid."""
    if not isinstance(obj, dict):
        return "bad_field_data"
    lead_id = obj.get("id")
    if lead_id is None or lead_id == "":
        return "missing_id"
    if not isinstance(lead_id, str) or _DIGITS_RE.fullmatch(lead_id) is None:
        return "bad_id"
    if not created_time_is_valid(obj.get("created_time")):
        return "bad_created_time"
    fd = obj.get("field_data")
    if not isinstance(fd, list) or not all(
        isinstance(e, dict) and isinstance(e.get("name"), str) and isinstance(e.get("values"), list) for e in fd
    ):
        return "bad_field_data"
    emails = _answers(fd, "email", "work_email") or []
    phones = _answers(fd, "phone_number", "work_phone_number") or []
    if any(email_is_valid(v) for v in emails) or any(phone_is_valid(v, region) for v in phones):
        return None
    return "no_contact"
