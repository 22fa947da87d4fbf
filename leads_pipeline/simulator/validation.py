"""The rules of docs/lead-validation.md, as the simulator's ground truth applies them (written from the document,
importing nothing of the pipeline: this is the oracle the parser is tested against).

A record is **quarantined** (not a lead; the first reason that applies): ``missing_id`` (no id / empty),
``bad_id`` (not a string of digits), ``bad_created_time`` (not ISO-8601 with an offset), ``bad_field_data`` (not a
list of ``{"name": str, "values": list}``). Every other record is a **lead**; it is stored with status ``rejected``
and reason ``no valid contact`` when none of its e-mail answers (``email``, then ``work_email``) is an address and
none of its phone answers (``phone_number``, then ``work_phone_number``) is a valid number, else with status ``new``.

E-mail: trimmed, lower-cased, valid when ``local@domain.tld`` (ASCII, one ``@``, a dot in the domain, no spaces);
an answer that is not is repaired (spaces inside removed, ``@@`` → ``@``, commas in the domain → dots) and checked
again. Phone: ``phonenumbers.parse`` + ``is_valid_number`` in each region of :func:`phone_regions` in turn, the
first that makes it valid winning: the country answer's region, the form locale's (not ``en_US``, nor a
language-only locale), the default region, then US for an ``en_US`` form.
"""

from __future__ import annotations

import json
import re
import unicodedata
from datetime import datetime
from pathlib import Path

import phonenumbers

QUARANTINE_REASONS = ("missing_id", "bad_id", "bad_created_time", "bad_field_data")
REASONS = QUARANTINE_REASONS
NO_VALID_CONTACT = "no valid contact"

_EMAIL_RE = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+", re.ASCII)
_DIGITS_RE = re.compile(r"[0-9]+")
_ISO_RE = re.compile(r"(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2}:\d{2})(?:\.\d+)?(Z|[+-]\d{2}:?\d{2})")

# docs/lead-validation.md, "Country answers": region → the names that mean it (compared folded, see _fold). The names
# are data shared with the parser (one file); how they are compared is this module's own.
COUNTRIES: dict[str, list[str]] = json.loads(
    (Path(__file__).parents[1] / "country_names.json").read_text("utf-8"))["names"]
LANGUAGE_ONLY_LOCALES = ("ar_AR", "es_LA", "en_PI", "en_UD", "eo_EO", "fb_LT", "la_VA")
LATE_LOCALES = ("en_US",)  # tried after the default region


def _fold(text: str) -> str:
    """Compared spelling: case-folded, accents dropped, dots dropped, hyphens as spaces, one space between words."""
    folded = text.casefold().replace("ı", "i")  # Turkish dotless i has no decomposition
    s = "".join(ch for ch in unicodedata.normalize("NFKD", folded) if not unicodedata.combining(ch))
    s = re.sub(r"\s+", " ", s.replace(".", "").replace("-", " ")).strip()
    return s


_COUNTRY_BY_NAME = {_fold(name): region for region, names in COUNTRIES.items() for name in names}


def country_region(answer: object) -> str | None:
    if not isinstance(answer, str):
        return None
    folded = _fold(answer)
    if len(folded) == 2 and folded.isascii() and folded.upper() in phonenumbers.SUPPORTED_REGIONS:
        return folded.upper()
    return _COUNTRY_BY_NAME.get(folded)


def _locale(locale: object) -> tuple[str, str | None]:
    """(normalised tag, its region or None)."""
    if not isinstance(locale, str):
        return "", None
    m = re.fullmatch(r"([^_]+)_([^_]+)", locale.strip().replace("-", "_"))
    if m is None:
        return "", None
    tag = m.group(1).lower() + "_" + m.group(2).upper()
    region = m.group(2).upper()
    if tag in LANGUAGE_ONLY_LOCALES or region not in phonenumbers.SUPPORTED_REGIONS:
        return tag, None
    return tag, region


def phone_regions(country: str | None, locale: str | None, region: str) -> list[str]:
    """The regions a phone answer is tried in, in order (the country answer's, the form locale's, the default
    region, then US for an en_US form)."""
    tag, locale_region = _locale(locale)
    late = tag in LATE_LOCALES
    candidates = [country_region(country), None if late else locale_region, region.upper() if region else None,
                  locale_region if late else None]
    out: list[str] = []
    for r in candidates:
        if r is not None and r not in out:
            out.append(r)
    return out


def canonical_email(raw: object) -> str | None:
    """The address the answer is, typing slips repaired, or None."""
    if not isinstance(raw, str):
        return None
    s = raw.strip().lower()
    if not (s.isascii() and _EMAIL_RE.fullmatch(s)):
        s = re.sub(r"\s", "", s)
        s = re.sub(r"@+", "@", s)
        if "@" in s:
            local, _, domain = s.partition("@")
            s = local + "@" + domain.replace(",", ".")
    return s if s.isascii() and _EMAIL_RE.fullmatch(s) else None


def email_is_valid(raw: object) -> bool:
    return canonical_email(raw) is not None


def phone_in_region(raw: object, region: str) -> str | None:
    """E.164 when ``phonenumbers`` reads ``raw`` in ``region`` as a valid number."""
    if not isinstance(raw, str) or not raw.strip():
        return None
    try:
        num = phonenumbers.parse(raw.strip(), region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(num):
        return None
    return phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.E164)


def phone_is_valid(raw: object, region: str) -> bool:
    return phone_in_region(raw, region) is not None


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


def _values(field_data: list, key: str) -> list:
    return [v for e in field_data if e["name"] == key for v in e["values"]]


def classify_lead(obj: object, region: str, locale: str | None = None) -> str | None:
    """The quarantine reason of a record that cannot be a lead, or ``None`` when it is a lead. (``region`` and
    ``locale`` do not change the answer; they are accepted so that every rule takes the same arguments.)"""
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
    return None


def contacts(obj: dict, region: str, locale: str | None = None) -> tuple[str | None, str | None]:
    """(email, E.164 phone) the lead's ``leads`` row holds — for a record :func:`classify_lead` calls a lead."""
    fd = obj["field_data"]
    email = next((e for e in map(canonical_email, _values(fd, "email") + _values(fd, "work_email")) if e), None)
    country = next((v.strip() for v in _values(fd, "country") if isinstance(v, str) and v.strip()), None)
    phone = None
    phones = _values(fd, "phone_number") + _values(fd, "work_phone_number")
    if phones:
        regions = phone_regions(country, locale, region)
        phone = next((p for v in phones for p in (phone_in_region(v, r) for r in regions) if p), None)
    return email, phone


def lead_status(obj: dict, region: str, locale: str | None = None) -> tuple[str, str | None]:
    """``('new', None)``, or ``('rejected', 'no valid contact')`` for a lead nobody can reach."""
    email, phone = contacts(obj, region, locale)
    return ("new", None) if email or phone else ("rejected", NO_VALID_CONTACT)
