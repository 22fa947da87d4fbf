"""Lead JSON (as Meta's Graph API returns it) → a typed ``leads`` row, or a quarantine :class:`Rejection`.

The rules are those of ``docs/lead-validation.md``, which the simulator's ground truth implements on its own
(``leads_pipeline.simulator.validation``). Only what cannot be a lead is quarantined (``rejected_leads``), with the
*first* reason that applies — ``missing_id``, ``bad_id``, ``bad_created_time``, ``bad_field_data``. Every other lead
is a ``leads`` row: contact answers normalised (:mod:`leads_pipeline.lib.normalise`: the lead's country answer and
its form's locale before the distributor's default region; typing slips repaired); an answer that still does not
validate is kept as typed in ``email_raw`` / ``phone_raw``; a lead with neither a valid email nor a valid phone is
stored with ``status = 'rejected'`` and ``status_reason = 'no valid contact'``, where staff see it and can reopen it.
Every value of every answer is kept: a question without a column of its own goes to ``custom_fields``, and so does
one that fills a column when its answer holds more than the column shows (a second ``city``, a ``work_email`` next
to the ``email`` used).

Speed matters (a million leads go through :func:`parse_lead_row` in seconds), so there is no per-row validation
framework here: plain dicts and tuples, precompiled regular expressions, the phone fast path of
:mod:`leads_pipeline.lib.normalise.phone`, and a cached answer to "which regions" per (country, locale, region).

Nothing here raises on any input: whatever the shape of the lead, the result is a row or a :class:`Rejection`.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any

from leads_pipeline.lib.memory import gc_paused
from leads_pipeline.lib.normalise import normalise_email, normalise_phone, phone_regions
from leads_pipeline.lib.normalise.times import (
    parse_created_time,
    parse_created_time_unix,
)

__all__ = [  # normalise_email/normalise_phone/parse_created_time*: re-exported, the rules live in lib/normalise
    "LEAD_COLUMNS", "NO_VALID_CONTACT", "REASONS", "STATUS_NEW", "STATUS_REJECTED", "ParsedLead", "Rejection",
    "canonical_json", "lead_key", "normalise_email", "normalise_phone", "parse_created_time",
    "parse_created_time_unix", "parse_lead", "parse_lead_row", "parse_leads", "sent_id",
]

#: Why a record is quarantined in ``rejected_leads`` (it cannot be a lead).
REASONS = ("missing_id", "bad_id", "bad_created_time", "bad_field_data")

#: The status a parsed lead starts in (values of ``lib/crm/rules.STATUSES``), and the reason of a lead nobody can
#: reach (``leads.status_reason``).
STATUS_NEW = "new"
STATUS_REJECTED = "rejected"
NO_VALID_CONTACT = "no valid contact"

#: The ingest-written columns of ``leads``, in the order of :meth:`ParsedLead.as_row`.
LEAD_COLUMNS = (
    "meta_lead_id", "distributor", "page_id", "form_id", "ad_id", "ad_name", "adset_id", "adset_name",
    "campaign_id", "campaign_name", "created_time", "is_organic", "platform", "full_name", "first_name",
    "last_name", "email", "phone", "city", "country", "custom_fields", "disclaimer_responses", "email_raw",
    "phone_raw", "status", "status_reason",
)

# Questions that fill a column; every other answer goes to custom_fields (and these too when the column does not
# show all of their answer). Email and phone: the plain question first, then the work one.
_EMAIL_KEYS = ("email", "work_email")
_PHONE_KEYS = ("phone_number", "work_phone_number")
_NAME_KEYS = frozenset(("full_name", "first_name", "last_name", "city", "country"))
_COLUMN_KEYS = _NAME_KEYS | frozenset(_EMAIL_KEYS + _PHONE_KEYS)
_BOOL_TEXT = {"true": True, "false": False, "1": True, "0": False}

_DIGITS_RE = re.compile(r"[0-9]+")

@dataclass(slots=True)
class ParsedLead:
    """One lead: the ingest-written columns of the ``leads`` table (staff columns are the warehouse's)."""

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
    email_raw: str | None = None  # the answer as typed when no email answer validates
    phone_raw: str | None = None
    status: str = STATUS_NEW
    status_reason: str | None = None

    def as_row(self) -> tuple:
        """The values in :data:`LEAD_COLUMNS` order (JSON columns still as Python objects)."""
        return (
            self.meta_lead_id, self.distributor, self.page_id, self.form_id, self.ad_id, self.ad_name, self.adset_id,
            self.adset_name, self.campaign_id, self.campaign_name, self.created_time, self.is_organic, self.platform,
            self.full_name, self.first_name, self.last_name, self.email, self.phone, self.city, self.country,
            self.custom_fields, self.disclaimer_responses, self.email_raw, self.phone_raw, self.status,
            self.status_reason,
        )


@dataclass(slots=True)
class Rejection:
    """A record that cannot be a lead: why (a code of :data:`REASONS` and a sentence), what, its ``reject_key``."""

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


#: The longest id kept as sent (PostgreSQL's btree index on ``raw_leads.meta_lead_id`` takes ~2.7 kB per entry).
SENT_ID_LIMIT = 200


def sent_id(raw: Any) -> str | None:
    """The lead's ``id`` as Meta sent it, as text — a string as it is, an integer's digits, anything else (a float,
    a boolean, an object) its JSON — cut at :data:`SENT_ID_LIMIT` characters; None when there is none.

    ``raw_leads.meta_lead_id`` and ``rejected_leads.meta_lead_id`` keep it also when it is not a usable Meta id
    (``bad_id``), so that such a record can be looked up — and erased on a privacy request — by the id Meta sent.
    """
    if not isinstance(raw, dict):
        return None
    value = raw.get("id")
    if value is None or value == "":
        return None
    if isinstance(value, str):
        text = value
    elif isinstance(value, int) and not isinstance(value, bool):
        text = str(value)
    else:
        text = canonical_json(value)
    return text[:SENT_ID_LIMIT]


# ----------------------------------------------------------------------------------------------------------------------
# Leads
# ----------------------------------------------------------------------------------------------------------------------


# The types an ad field keeps as it is (anything else goes through _text).
_TEXT_OR_NONE = frozenset({str, type(None)})


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


@lru_cache(maxsize=64)
def _default_regions(default_region: str) -> tuple[str, ...]:
    """:func:`phone_regions` of a lead without signals (most leads): one cache probe on the region alone."""
    return phone_regions(None, None, default_region)


def _typed(v: Any) -> bool:
    """Text with something in it: what ``email_raw`` / ``phone_raw`` keep as typed."""
    return isinstance(v, str) and bool(v.strip())


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
               form_id: str | None = None, form_locales: Mapping[str, str] | None = None) -> ParsedLead | Rejection:
    """One lead → :class:`ParsedLead`, or :class:`Rejection` with the first reason of docs/lead-validation.md.

    ``page_id`` and ``form_id`` are where the lead was read (``form_id`` is used when the payload has none);
    ``default_region`` is the distributor's phone region; ``form_locales`` maps form ids to their locale
    (``distributor_forms.locale``, e.g. ``de_DE``): the lead's form's locale is read before the default region.
    """
    result = parse_lead_row(raw, distributor, page_id, default_region, form_id, form_locales)
    return ParsedLead(*result) if type(result) is tuple else result


def parse_lead_row(raw: Any, distributor: str, page_id: str | None, default_region: str,
                   form_id: str | None = None, form_locales: Mapping[str, str] | None = None) -> tuple | Rejection:
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
        # Keep the id as Meta sent it (analysts and privacy requests look rejects up by it); the reject_key stays the
        # payload hash.
        return _reject(raw, "bad_id", f"id {_short(lead_id)} is not a string of digits", distributor, page_id,
                       form_id, sent_id(raw))
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
        if name in answers:  # a question repeated: its values joined
            answers[name] = answers[name] + values
        else:
            answers[name] = values
    lead_form = get("form_id")
    if type(lead_form) is not str or not lead_form:
        lead_form = _text(lead_form) or form_id

    # Scalar columns take the first non-blank value.
    full_name = _first_text(answers["full_name"]) if "full_name" in answers else None
    first_name = _first_text(answers["first_name"]) if "first_name" in answers else None
    last_name = _first_text(answers["last_name"]) if "last_name" in answers else None
    city = _first_text(answers["city"]) if "city" in answers else None
    country = _first_text(answers["country"]) if "country" in answers else None
    if full_name is None and (first_name or last_name):
        full_name = " ".join(p for p in (first_name, last_name) if p)

    # Contact: the first valid value of `email`, then `work_email` (likewise phones); else the first one typed.
    # `shown`: the contact questions whose answer a column shows (the rest go to custom_fields too).
    email = email_raw = phone = phone_raw = None
    shown: tuple = ()
    raw_key = None
    for key in _EMAIL_KEYS:
        values = answers.get(key)
        if values:
            for v in values:
                email = normalise_email(v)
                if email is not None:
                    break
                if raw_key is None and _typed(v):
                    email_raw, raw_key = v, key
            if email is not None:
                shown = (key,)
                break
    if email is not None:
        email_raw = None
    elif raw_key is not None:
        shown = (raw_key,)
    raw_key = None
    for key in _PHONE_KEYS:
        values = answers.get(key)
        if values:
            locale = form_locales.get(lead_form) if form_locales and lead_form else None
            regions = (_default_regions(default_region) if country is None and locale is None
                       else phone_regions(country, locale, default_region))
            for v in values:
                for region in regions:
                    phone = normalise_phone(v, region)
                    if phone is not None:
                        break
                if phone is not None:
                    break
                if raw_key is None and _typed(v):
                    phone_raw, raw_key = v, key
            if phone is not None:
                shown += (key,)
                break
    if phone is not None:
        phone_raw = None
    elif raw_key is not None:
        shown += (raw_key,)

    # Every value is kept: answers without a column, and column questions whose answer the column does not show
    # (several values; a value that is not text; a contact question another one's answer filled the column for).
    custom: dict[str, list] = {}
    for name, values in answers.items():
        if name not in _COLUMN_KEYS or len(values) > 1:
            custom[name] = values
        elif values and name not in shown:
            v = values[0]
            if type(v) is str:
                if name not in _NAME_KEYS and v.strip():
                    custom[name] = values
            elif v is not None:
                custom[name] = values

    disclaimers = get("custom_disclaimer_responses")
    if type(disclaimers) is not list:
        disclaimers = [disclaimers] if isinstance(disclaimers, dict) else (
            disclaimers if isinstance(disclaimers, list) else [])
    organic = get("is_organic")
    if type(organic) is not bool and organic is not None:
        organic = _BOOL_TEXT.get(organic) if isinstance(organic, str) else None
    platform = get("platform")
    # Ad fields (absent on organic leads): strings as they are, integers as digits, anything else None.
    ad = (get("ad_id"), get("ad_name"), get("adset_id"), get("adset_name"), get("campaign_id"), get("campaign_name"))
    if not _TEXT_OR_NONE.issuperset(map(type, ad)):  # rare: a number or something else among them
        ad = tuple(map(_text, ad))
    ad_id, ad_name, adset_id, adset_name, campaign_id, campaign_name = ad
    reachable = email is not None or phone is not None
    return (
        lead_id, distributor, page_id, lead_form, ad_id, ad_name, adset_id, adset_name, campaign_id, campaign_name,
        created, organic, platform if type(platform) is str else None, full_name, first_name, last_name, email, phone,
        city, country, custom, disclaimers, email_raw, phone_raw, STATUS_NEW if reachable else STATUS_REJECTED,
        None if reachable else NO_VALID_CONTACT,
    )


def parse_leads(raws: Iterable[Any], *, distributor: str, page_id: str | None, default_region: str,
                form_id: str | None = None, form_locales: Mapping[str, str] | None = None,
                ) -> tuple[list[ParsedLead], list[Rejection]]:
    """Many leads at once: (valid leads, rejections), each in input order."""
    parsed: list[ParsedLead] = []
    rejected: list[Rejection] = []
    ok, bad = parsed.append, rejected.append
    with gc_paused():
        for raw in raws:
            result = parse_lead(raw, distributor=distributor, page_id=page_id, default_region=default_region,
                                form_id=form_id, form_locales=form_locales)
            if type(result) is ParsedLead:
                ok(result)
            else:
                bad(result)
    return parsed, rejected

