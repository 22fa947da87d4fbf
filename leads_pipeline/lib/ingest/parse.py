"""Lead JSON (as Meta's Graph API returns it) → a typed ``leads`` row, or a rejection with its reason.

The rules are those of ``docs/lead-validation.md``, the same ones the simulator's ground truth applies
(``leads_pipeline.simulator.validation``): a lead is rejected with the *first* reason that applies —
``missing_id``, ``bad_id``, ``bad_created_time``, ``bad_field_data``, ``no_contact`` — and is otherwise valid, even
when one of its two contact answers is unusable (that column is then NULL and the raw answer is kept in
``custom_fields["_invalid_email"]`` / ``["_invalid_phone"]``).

Speed matters (a million leads go through :func:`parse_leads` in seconds), so there is no per-row validation
framework here: plain dicts, precompiled regular expressions, and a phone-number fast path.

Phones: ``phonenumbers`` is the reference, but ``parse`` + ``is_valid_number`` cost ~20 µs a number. For the shapes
people actually type — an optional leading ``+``, digits, spaces, dashes, dots and parentheses — :func:`normalise_phone`
reproduces ``phonenumbers``' own steps (IDD and country-code extraction, national-prefix stripping with the same
viability and length checks) and validates the national number against the same metadata patterns, precompiled per
region and length. Anything outside those shapes (letters, extensions, unusual national-prefix rules, …) goes to
``phonenumbers`` itself, behind an ``lru_cache`` keyed on ``(raw, region)``. The test-suite checks that both paths
agree on generated numbers of every region.

Nothing here raises on any input: whatever the shape of the lead, the result is a :class:`ParsedLead` or a
:class:`Rejection` with a reason.
"""

from __future__ import annotations

import gc
import hashlib
import json
import re
from collections.abc import Iterable
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from typing import Any

import phonenumbers
from phonenumbers import PhoneMetadata

__all__ = [
    "REASONS",
    "LEAD_COLUMNS",
    "ParsedLead",
    "Rejection",
    "parse_lead",
    "parse_lead_row",
    "parse_leads",
    "normalise_email",
    "normalise_phone",
    "parse_created_time",
    "parse_created_time_unix",
    "lead_key",
    "canonical_json",
    "gc_paused",
]

REASONS = ("missing_id", "bad_id", "bad_created_time", "bad_field_data", "no_contact")

#: The Meta-sourced columns of ``leads``, in the order of :meth:`ParsedLead.as_row`.
LEAD_COLUMNS = (
    "meta_lead_id", "distributor", "page_id", "form_id", "ad_id", "ad_name", "adset_id", "adset_name",
    "campaign_id", "campaign_name", "created_time", "is_organic", "platform", "full_name", "first_name",
    "last_name", "email", "phone", "city", "country", "custom_fields", "disclaimer_responses",
)

# Questions that fill a column of their own; every other answer goes to custom_fields.
_EMAIL_KEYS = ("email", "work_email")
_PHONE_KEYS = ("phone_number", "work_phone_number")
_NAME_KEYS = frozenset(("full_name", "first_name", "last_name", "city", "country"))
_BOOL_TEXT = {"true": True, "false": False, "1": True, "0": False}

_DIGITS_RE = re.compile(r"[0-9]+")
# The simulator's rule (docs/lead-validation.md): ASCII, one "@", a dot in the domain, no spaces.
_EMAIL_RE = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+", re.ASCII)
# ISO-8601 with an offset; the same expression as the simulator's ground truth (so the same leads are valid).
_ISO_RE = re.compile(r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:?\d{2})")
_META_TIME_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\+0000")
_UTC = timezone.utc
_EPOCH = datetime(1970, 1, 1, tzinfo=_UTC)
_ZERO = timedelta(0)


@dataclass(slots=True)
class ParsedLead:
    """One valid lead: the Meta-sourced columns of the ``leads`` table (staff columns are the warehouse's)."""

    meta_lead_id: str
    distributor: str
    page_id: str | None
    form_id: str | None
    ad_id: str | None
    ad_name: str | None
    adset_id: str | None
    adset_name: str | None
    campaign_id: str | None
    campaign_name: str | None
    created_time: datetime  # tz-aware, UTC
    is_organic: bool | None
    platform: str | None
    full_name: str | None
    first_name: str | None
    last_name: str | None
    email: str | None
    phone: str | None  # E.164
    city: str | None
    country: str | None
    custom_fields: dict[str, list[Any]] = field(default_factory=dict)
    disclaimer_responses: list[Any] = field(default_factory=list)

    def as_row(self) -> tuple:
        """The values in :data:`LEAD_COLUMNS` order (JSON columns still as Python objects)."""
        return (
            self.meta_lead_id, self.distributor, self.page_id, self.form_id, self.ad_id, self.ad_name, self.adset_id,
            self.adset_name, self.campaign_id, self.campaign_name, self.created_time, self.is_organic, self.platform,
            self.full_name, self.first_name, self.last_name, self.email, self.phone, self.city, self.country,
            self.custom_fields, self.disclaimer_responses,
        )


@dataclass(slots=True)
class Rejection:
    """A malformed lead: why (a code of :data:`REASONS` and a sentence), what, and its stable ``reject_key``."""

    reason: str
    detail: str
    meta_lead_id: str | None
    form_id: str | None
    payload: Any
    reject_key: str
    distributor: str | None = None
    page_id: str | None = None


# ----------------------------------------------------------------------------------------------------------------------
# Keys and canonical JSON
# ----------------------------------------------------------------------------------------------------------------------


def _jsonable(value: Any) -> Any:
    """``value`` with everything JSON cannot hold made representable (non-str keys, non-finite floats, objects)."""
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return value if value == value and value not in (float("inf"), float("-inf")) else repr(value)
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return repr(value)


def canonical_json(value: Any) -> str:
    """Sorted keys, no spaces, ASCII-only: the same text for the same content, whatever the key order."""
    try:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError, RecursionError):
        try:
            return json.dumps(_jsonable(value), sort_keys=True, separators=(",", ":"))
        except RecursionError:  # a cyclic structure (never from JSON): its repr still identifies it
            return json.dumps(repr(value))


def lead_key(raw: Any) -> str:
    """The lead's Meta id when it is a digit string, else ``"sha256:" + sha256(canonical JSON)``.

    Used as ``raw_leads.raw_key`` and ``rejected_leads.reject_key``, so the same payload always maps to one row.
    """
    if isinstance(raw, dict):
        lead_id = raw.get("id")
        if isinstance(lead_id, str) and _DIGITS_RE.fullmatch(lead_id):
            return lead_id
    return "sha256:" + hashlib.sha256(canonical_json(raw).encode()).hexdigest()


# ----------------------------------------------------------------------------------------------------------------------
# created_time
# ----------------------------------------------------------------------------------------------------------------------


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


# ----------------------------------------------------------------------------------------------------------------------
# Email
# ----------------------------------------------------------------------------------------------------------------------


def normalise_email(s: Any) -> str | None:
    """Trimmed and lower-cased when it is a valid ``local@domain.tld`` (ASCII, one ``@``, no spaces), else None."""
    if not isinstance(s, str):
        return None
    t = s.strip().lower()
    if t.isascii() and _EMAIL_RE.fullmatch(t) is not None:
        return t
    return None


# ----------------------------------------------------------------------------------------------------------------------
# Phone
# ----------------------------------------------------------------------------------------------------------------------

_E164_RE = re.compile(r"\+[1-9][0-9]{7,14}")
# Shapes the fast path reproduces exactly: optional leading "+", then digits and common separators (ASCII only).
_SIMPLE_PHONE_RE = re.compile(r"\+?[0-9 ().\-]+")
_SEPARATORS = str.maketrans("", "", " ().-")
_MAX_NSN = 17  # phonenumbers' _MAX_LENGTH_FOR_NSN
_FALLBACK = object()  # "ask phonenumbers itself"
# phonenumbers' _test_number_length (type UNKNOWN), folded to the three outcomes parse distinguishes.
_LEN_OK, _LEN_REJECT, _LEN_TOO_LONG = 0, 1, 2


class _Rules:
    """One region's (or non-geographic calling code's) metadata, precompiled for ``parse`` + ``is_valid_number``."""

    __slots__ = ("cc", "cc_str", "prefix", "general", "general_lengths", "local_only", "descs", "checks", "npfp",
                 "npfp_simple", "idd", "usable", "candidates")

    # Mobile (when distinct) and fixed-line first: the alternation then usually succeeds on its first branch.
    _TYPES = ("fixed_line", "premium_rate", "toll_free", "shared_cost", "voip", "personal_number", "pager", "uan",
              "voicemail")

    def __init__(self, md: Any):
        self.cc = md.country_code
        self.cc_str = str(md.country_code)
        self.prefix = "+" + self.cc_str
        gd = md.general_desc
        pattern = gd.national_number_pattern if gd is not None else None
        self.general = re.compile(pattern) if pattern else None
        self.general_lengths = tuple(gd.possible_length or ()) if gd is not None else ()
        self.local_only = tuple(gd.possible_length_local_only or ()) if gd is not None else ()
        # Valid = matches the general description and the description of some type (phonenumbers'
        # _number_type_helper != UNKNOWN); mobile counts only when its pattern differs from fixed-line's
        # (phonenumbers does not test it otherwise). A description applies only to its possible lengths, so there
        # is one expression per length (built on first use): a lookahead for the general pattern, then an
        # alternation of the type patterns — one regex call per number.
        descs = [getattr(md, name) for name in self._TYPES]
        if not md.same_mobile_and_fixed_line_pattern:
            descs.insert(0, md.mobile)
        self.descs = [dsc for dsc in descs if dsc is not None and dsc.national_number_pattern]
        self.checks: dict[int, Any] = {}
        npfp = md.national_prefix_for_parsing
        self.npfp = re.compile(npfp) if npfp else None
        self.npfp_simple = self.npfp is None or (self.npfp.groups == 0 and not md.national_prefix_transform_rule)
        idd = md.international_prefix
        self.idd = re.compile(idd) if idd else None
        self.usable = bool(self.general_lengths)
        # For a calling code shared by several regions (+1, +7, +44, …): (leading_digits, rules) in
        # region_code_for_number's order; None when the code has one region.
        self.candidates: tuple | None = None

    def general_match(self, nsn: str) -> bool:
        return self.general is not None and self.general.fullmatch(nsn) is not None

    def valid(self, nsn: str) -> bool:
        """is_valid_number_for_region(nsn, this region)."""
        try:
            check = self.checks[len(nsn)]
        except KeyError:
            check = self._build_check(len(nsn))
        return check is not None and check(nsn) is not None

    def _build_check(self, length: int) -> Any:
        check = None
        if self.general is not None and (not self.general_lengths or length in self.general_lengths):
            pats = [dsc.national_number_pattern for dsc in self.descs
                    if not dsc.possible_length or length in dsc.possible_length]
            if pats:
                alternation = "|".join(f"(?:{p})" for p in pats)
                check = re.compile(f"(?=(?:{self.general.pattern})\\Z)(?:{alternation})").fullmatch
        self.checks[length] = check
        return check

    def valid_number(self, nsn: str) -> bool:
        """is_valid_number for (this calling code, nsn): region_code_for_number, then that region's rules."""
        if self.candidates is None:
            return self.valid(nsn)
        for leading, rules in self.candidates:
            if leading is not None:
                if leading.match(nsn):
                    return rules.valid(nsn)
            elif rules.valid(nsn):
                return True
        return False

    def length_result(self, number: str) -> int:
        n = len(number)
        if n in self.local_only:
            return _LEN_REJECT
        lengths = self.general_lengths
        if lengths[0] == n:
            return _LEN_OK
        if lengths[0] > n:
            return _LEN_REJECT
        if lengths[-1] < n:
            return _LEN_TOO_LONG
        return _LEN_OK if n in lengths[1:] else _LEN_REJECT

    def strip_national_prefix(self, number: str) -> Any:
        """phonenumbers' ``_maybe_strip_national_prefix_carrier_code`` for prefixes without capture/transform."""
        if not number or self.npfp is None:
            return number
        m = self.npfp.match(number)
        if m is None:
            return number
        if not self.npfp_simple:
            return _FALLBACK
        rest = number[m.end():]
        if self.general_match(number) and not self.general_match(rest):
            return number
        return rest

    def finish(self, national: str) -> Any:
        """What ``parse`` does once the calling code is known (these being its rules), then validity and E.164."""
        if len(national) < 2:
            return None
        m = self.npfp.match(national) if self.npfp is not None else None
        if m is not None:  # _maybe_strip_national_prefix_carrier_code, kept only if the length test allows
            if not self.npfp_simple:
                return _FALLBACK
            rest = national[m.end():]
            general = self.general
            if not (general is not None and general.fullmatch(national) is not None
                    and general.fullmatch(rest) is None) and self.length_result(rest) != _LEN_REJECT:
                national = rest
        if len(national) > _MAX_NSN:
            return None
        # Validity is the calling code's (any of its regions), not only the parsing region's: a JE default
        # region still accepts a GB number typed nationally.
        main = _CC_RULES.get(self.cc_str) or _cc_rules(self.cc_str)
        if main is None:
            return _FALLBACK
        return self.prefix + national if main.valid_number(national) else None


_REGION_RULES: dict[str, _Rules | None] = {}
_CC_RULES: dict[str, _Rules | None] = {}  # calling code (as text) → the rules parse uses after extracting it
_CC_CODES = frozenset(str(cc) for cc in phonenumbers.COUNTRY_CODE_TO_REGION_CODE)


def _region_rules(region: str | None) -> _Rules | None:
    """The rules of a supported region (None for an unknown region, or metadata the fast path cannot use)."""
    try:
        return _REGION_RULES[region]
    except KeyError:
        pass
    rules = None
    if region in phonenumbers.SUPPORTED_REGIONS:
        md = PhoneMetadata.metadata_for_region(region, None)
        if md is not None:
            rules = _Rules(md)
            if not rules.usable:
                rules = None
    _REGION_RULES[region] = rules
    return rules


def _cc_rules(cc_str: str) -> _Rules | None:
    try:
        return _CC_RULES[cc_str]
    except KeyError:
        pass
    cc = int(cc_str)
    regions = phonenumbers.COUNTRY_CODE_TO_REGION_CODE[cc]
    md = PhoneMetadata.metadata_for_region_or_calling_code(cc, regions[0])
    rules = _Rules(md) if md is not None else None
    if rules is not None and not rules.usable:
        rules = None
    if rules is not None and len(regions) > 1:
        candidates = []
        for region in regions:
            rmd = PhoneMetadata.metadata_for_region(region, None)
            if rmd is not None:
                candidates.append((re.compile(rmd.leading_digits) if rmd.leading_digits else None, _Rules(rmd)))
        rules.candidates = tuple(candidates)
    _CC_RULES[cc_str] = rules
    return rules


def _international(digits: str) -> Any:
    """Digits after a "+" or an IDD: the calling code (prefix-free, 1–3 digits), then the national number."""
    for i in (1, 2, 3):
        code = digits[:i]
        if code in _CC_CODES:
            rules = _cc_rules(code)
            return _FALLBACK if rules is None else rules.finish(digits[i:])
    return _FALLBACK  # includes a leading 0; parse then retries without the "+"


def _fast_phone(s: str, region: str | None) -> Any:
    """E.164 / None when the answer is a simple shape this module reproduces exactly, else ``_FALLBACK``."""
    if s[0] == "+":
        if _E164_RE.fullmatch(s) is not None:
            return _international(s[1:])
        if _SIMPLE_PHONE_RE.fullmatch(s) is None:
            return _FALLBACK
        digits = s[1:].translate(_SEPARATORS)
        if len(digits) < 3 or "+" in digits:
            return _FALLBACK
        return _international(digits)
    if _SIMPLE_PHONE_RE.fullmatch(s) is None:
        return _FALLBACK
    digits = s.translate(_SEPARATORS)
    if len(digits) < 3 or "+" in digits:
        return _FALLBACK
    rules = _region_rules(region)
    if rules is None:
        return _FALLBACK
    if rules.idd is not None:
        m = rules.idd.match(digits)
        if m is not None:
            rest = digits[m.end():]
            if len(rest) <= 2 or rest[0] == "0":
                return _FALLBACK
            return _international(rest)
    if digits.startswith(rules.cc_str):
        # Typed with the default region's calling code but no "+" (905321234567 in TR): parse's heuristic.
        potential = rules.strip_national_prefix(digits[len(rules.cc_str):])
        if potential is _FALLBACK:
            return _FALLBACK
        if ((not rules.general_match(digits) and rules.general_match(potential))
                or rules.length_result(digits) == _LEN_TOO_LONG):
            main = _cc_rules(rules.cc_str)
            return _FALLBACK if main is None else main.finish(potential)
    return rules.finish(digits)


@lru_cache(maxsize=65536)
def _slow_phone(s: str, region: str | None) -> str | None:
    try:
        num = phonenumbers.parse(s, region)
        if phonenumbers.is_valid_number(num):
            return phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.E164)
    except Exception:  # noqa: BLE001 - any input that phonenumbers cannot read is simply not a valid phone
        return None
    return None


def normalise_phone(s: Any, region: str | None) -> str | None:
    """The number in E.164 (``+905321234567``) when ``phonenumbers`` calls it valid, else None.

    ``region`` (e.g. ``TR``) is used for numbers typed without a country code.
    """
    if not isinstance(s, str):
        return None
    s = s.strip()
    if not s:
        return None
    if len(s) <= 40:
        try:
            result = _fast_phone(s, region)
        except Exception:  # noqa: BLE001 - a surprise in the fast path must not lose a lead: ask phonenumbers
            result = _FALLBACK
        if result is not _FALLBACK:
            return result
    return _slow_phone(s, region)


# ----------------------------------------------------------------------------------------------------------------------
# Leads
# ----------------------------------------------------------------------------------------------------------------------


def _text(value: Any) -> str | None:
    """A Meta scalar (id, name) as text: strings as they are, integers as digits, anything else None."""
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def _first_text(values: list | None) -> str | None:
    if values:
        for v in values:
            if isinstance(v, str):
                v = v.strip()
                if v:
                    return v
    return None


def _blank(v: Any) -> bool:
    return v is None or (isinstance(v, str) and not v.strip())


def _reject(raw: Any, reason: str, detail: str, distributor: str, page_id: str | None, form_id: str | None,
            lead_id: str | None = None) -> Rejection:
    if isinstance(raw, dict):
        f = raw.get("form_id")
        if isinstance(f, str) and f:
            form_id = f
    return Rejection(reason, detail, lead_id, form_id, raw, lead_key(raw), distributor, page_id)


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def parse_lead(raw: Any, *, distributor: str, page_id: str | None, default_region: str,
               form_id: str | None = None) -> ParsedLead | Rejection:
    """One lead → :class:`ParsedLead`, or :class:`Rejection` with the first reason of docs/lead-validation.md.

    ``page_id`` and ``form_id`` are where the lead was read (``form_id`` is used when the payload has none);
    ``default_region`` is the distributor's phone region for numbers typed without a country code.
    """
    result = parse_lead_row(raw, distributor, page_id, default_region, form_id)
    return ParsedLead(*result) if type(result) is tuple else result


def parse_lead_row(raw: Any, distributor: str, page_id: str | None, default_region: str,
                   form_id: str | None = None) -> tuple | Rejection:
    """:func:`parse_lead` without the object: the values in :data:`LEAD_COLUMNS` order (JSON columns as Python
    objects), or the :class:`Rejection`. The bulk paths use it (no object per lead)."""
    if not isinstance(raw, dict):
        return _reject(raw, "bad_field_data", f"the lead is not a JSON object but {type(raw).__name__}",
                       distributor, page_id, form_id)
    get = raw.get
    lead_id = get("id")
    if lead_id is None or lead_id == "":
        return _reject(raw, "missing_id", "the lead has no id", distributor, page_id, form_id)
    if not isinstance(lead_id, str) or _DIGITS_RE.fullmatch(lead_id) is None:
        # Keep the id as Meta sent it (analysts look rejects up by it); the reject_key stays the payload hash.
        as_sent = str(lead_id)[:200] if isinstance(lead_id, (str, int, float)) else None
        return _reject(raw, "bad_id", f"id {_short(lead_id)} is not a string of digits", distributor, page_id,
                       form_id, as_sent)
    created = parse_created_time(get("created_time"))
    if created is None:
        return _reject(raw, "bad_created_time",
                       f"created_time {_short(get('created_time'))} is not ISO-8601 with an offset "
                       "(e.g. 2026-06-01T12:34:56+0000)", distributor, page_id, form_id, lead_id)
    fd = get("field_data")
    if not isinstance(fd, list):
        return _reject(raw, "bad_field_data",
                       "field_data is missing" if fd is None else f"field_data is a {type(fd).__name__}, not a list",
                       distributor, page_id, form_id, lead_id)
    answers: dict[str, list] = {}
    for i, entry in enumerate(fd):
        if not isinstance(entry, dict):
            return _reject(raw, "bad_field_data", f"field_data[{i}] is not an object", distributor, page_id,
                           form_id, lead_id)
        name = entry.get("name")
        values = entry.get("values")
        if not isinstance(name, str) or not isinstance(values, list):
            return _reject(raw, "bad_field_data", f"field_data[{i}] is not {{\"name\": str, \"values\": list}}",
                           distributor, page_id, form_id, lead_id)
        if name in answers:
            answers[name] = answers[name] + values
        else:
            answers[name] = values

    # Contact: `email` (else `work_email`), `phone_number` (else `work_phone_number`).
    email_key = "email" if "email" in answers else ("work_email" if "work_email" in answers else None)
    phone_key = ("phone_number" if "phone_number" in answers
                 else ("work_phone_number" if "work_phone_number" in answers else None))
    email = None
    bad_emails: list = []
    if email_key is not None:
        for v in answers[email_key]:
            e = normalise_email(v)
            if e is None:
                if not _blank(v):
                    bad_emails.append(v)
            elif email is None:
                email = e
    phone = None
    bad_phones: list = []
    if phone_key is not None:
        for v in answers[phone_key]:
            p = normalise_phone(v, default_region)
            if p is None:
                if not _blank(v):
                    bad_phones.append(v)
            elif phone is None:
                phone = p
    if email is None and phone is None:
        said = []
        said.append("email answer invalid" if bad_emails else "no email answer")
        said.append("phone answer invalid" if bad_phones else "no phone answer")
        return _reject(raw, "no_contact", "neither a valid email nor a valid phone number (" + ", ".join(said) + ")",
                       distributor, page_id, form_id, lead_id)

    custom: dict[str, list] = {}
    for name, values in answers.items():
        if name != email_key and name != phone_key and name not in _NAME_KEYS:
            custom[name] = values
    if bad_emails:
        custom["_invalid_email"] = bad_emails
    if bad_phones:
        custom["_invalid_phone"] = bad_phones

    full_name = first_name = last_name = city = country = None
    if "full_name" in answers:
        full_name = _first_text(answers["full_name"])
    if "first_name" in answers:
        first_name = _first_text(answers["first_name"])
    if "last_name" in answers:
        last_name = _first_text(answers["last_name"])
    if full_name is None and (first_name or last_name):
        full_name = " ".join(p for p in (first_name, last_name) if p)
    if "city" in answers:
        city = _first_text(answers["city"])
    if "country" in answers:
        country = _first_text(answers["country"])

    disclaimers = get("custom_disclaimer_responses")
    if type(disclaimers) is not list:
        disclaimers = [disclaimers] if isinstance(disclaimers, dict) else (
            disclaimers if isinstance(disclaimers, list) else [])
    organic = get("is_organic")
    if type(organic) is not bool and organic is not None:
        organic = _BOOL_TEXT.get(organic) if isinstance(organic, str) else None
    platform = get("platform")
    lead_form = get("form_id")
    if type(lead_form) is not str or not lead_form:
        lead_form = _text(lead_form) or form_id
    # Ad fields (absent on organic leads): strings as they are, integers as digits, anything else None.
    ad_id, ad_name, adset_id = get("ad_id"), get("ad_name"), get("adset_id")
    adset_name, campaign_id, campaign_name = get("adset_name"), get("campaign_id"), get("campaign_name")
    if type(ad_id) is not str and ad_id is not None:
        ad_id = _text(ad_id)
    if type(ad_name) is not str and ad_name is not None:
        ad_name = _text(ad_name)
    if type(adset_id) is not str and adset_id is not None:
        adset_id = _text(adset_id)
    if type(adset_name) is not str and adset_name is not None:
        adset_name = _text(adset_name)
    if type(campaign_id) is not str and campaign_id is not None:
        campaign_id = _text(campaign_id)
    if type(campaign_name) is not str and campaign_name is not None:
        campaign_name = _text(campaign_name)
    return (
        lead_id, distributor, page_id, lead_form, ad_id, ad_name, adset_id, adset_name, campaign_id, campaign_name,
        created, organic, platform if type(platform) is str else None, full_name, first_name, last_name, email, phone,
        city, country, custom, disclaimers,
    )


def parse_leads(raws: Iterable[Any], *, distributor: str, page_id: str | None, default_region: str,
                form_id: str | None = None) -> tuple[list[ParsedLead], list[Rejection]]:
    """Many leads at once: (valid leads, rejections), each in input order."""
    parsed: list[ParsedLead] = []
    rejected: list[Rejection] = []
    ok, bad = parsed.append, rejected.append
    with gc_paused():
        for raw in raws:
            result = parse_lead(raw, distributor=distributor, page_id=page_id, default_region=default_region,
                                form_id=form_id)
            if type(result) is ParsedLead:
                ok(result)
            else:
                bad(result)
    return parsed, rejected


@contextmanager
def gc_paused():
    """No cyclic garbage collection while a batch builds many small objects that all live on (no cycles are made).

    Otherwise the collector runs again and again over the growing batch, costing a third of the time or more.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
