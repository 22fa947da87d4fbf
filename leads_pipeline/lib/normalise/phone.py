"""A typed phone answer → E.164 (``+905321234567``) when ``phonenumbers`` calls it valid, read in one region.

``phonenumbers`` is the reference, but ``parse`` + ``is_valid_number`` cost ~20 µs a number, and a bulk import
normalises a million. For the shapes people actually type — an optional leading ``+``, digits, spaces, dashes, dots
and parentheses — :func:`normalise_phone` reproduces ``phonenumbers``' own steps (IDD and country-code extraction,
national-prefix stripping with the same viability and length checks) and validates the national number against the
same metadata patterns, precompiled per region and length (~2.4 µs). Anything outside those shapes (letters,
extensions, unusual national-prefix rules, …) goes to ``phonenumbers`` itself, behind an ``lru_cache`` keyed on
``(raw, region)``. The test-suite checks that both paths agree on generated numbers of every region.

Which region(s) a lead's answer is read in is :mod:`leads_pipeline.lib.normalise.regions`' business.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

import phonenumbers
from phonenumbers import PhoneMetadata

__all__ = ["normalise_phone"]


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

