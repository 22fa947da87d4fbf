"""Which phone regions a lead's number is read in: the lead's own signals before the distributor's default region.

A number typed without a country code (``7467941176``, ``0151 23456789``) means something only in a region. The
distributor's ``default_region`` is where most of its leads live, but a lead often says where it comes from, and
docs/lead-validation.md reads the phone answer in these regions, in order, the first that makes it valid winning:

1. the **country answer** (the ``country`` question: ``Germany``, ``DE``, ``Türkiye``, ``UK``…), when it names a
   country (:data:`COUNTRY_NAMES`, or an ISO 3166 two-letter code of a phone region);
2. the **form's locale** (``de_DE`` → DE, ``en_GB`` → GB), except the locales that name a language, not a country
   (``ar_AR``, ``es_LA``, …) and ``en_US``, Meta's default form language: an English form says little about where
   the person lives, and 15 of Turkey's 29 mobile prefixes are valid US area codes (``5321234567`` read in US is a
   valid US number) — so ``en_US`` is tried *after* the default region;
3. the distributor's **default region**;
4. US, when the form's locale is ``en_US``.

A number typed with ``+`` (or the region's international prefix) is valid in the first region already: reading it
elsewhere changes nothing. The simulator's ground truth (``leads_pipeline/simulator/validation.py``) implements the
same rule on its own; a test checks that both tables name the same countries.
"""

from __future__ import annotations

import json
import unicodedata
from functools import lru_cache
from pathlib import Path
from typing import Any

import phonenumbers

__all__ = ["COUNTRY_NAMES", "GENERIC_LOCALES", "phone_regions", "region_of_country", "region_of_locale"]

#: The names a country answer may use, by phone region (English, native and Turkish names): data, in one file that
#: the simulator's ground truth reads too (two-letter codes of phone regions are read directly).
_NAMES: dict[str, list[str]] = json.loads((Path(__file__).parents[2] / "country_names.json").read_text("utf-8"))["names"]

#: Locales that name a language, not a country (Meta's pseudo-locales among them): no region.
LANGUAGE_ONLY_LOCALES = frozenset(("ar_AR", "es_LA", "en_PI", "en_UD", "eo_EO", "fb_LT", "la_VA"))
#: Locales that say too little to go before the default region (see the module docstring).
GENERIC_LOCALES = frozenset(("en_US",))


def _fold(text: str) -> str:
    """Lower case, accents and other combining marks removed, dots dropped, hyphens as spaces, single spaces:
    ``Türkiye`` → ``turkiye``, ``U.K.`` → ``uk``."""
    decomposed = unicodedata.normalize("NFKD", text.casefold().replace("ı", "i"))  # dotless ı: no decomposition
    kept = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(kept.replace(".", "").replace("-", " ").split())


#: Country answers, folded (:func:`_fold`) → phone region.
COUNTRY_NAMES: dict[str, str] = {_fold(name): region for region, names in _NAMES.items() for name in names}


@lru_cache(maxsize=4096)
def region_of_country(answer: str) -> str | None:
    """The phone region a country answer names (``Germany`` → ``DE``, ``uk`` → ``GB``), or None."""
    folded = _fold(answer)
    if len(folded) == 2 and folded.isascii() and folded.upper() in phonenumbers.SUPPORTED_REGIONS:
        return folded.upper()
    return COUNTRY_NAMES.get(folded)


def _locale_tag(locale: str) -> str | None:
    """``de-de`` / ``de_DE`` → ``de_DE``; None when it is not language_COUNTRY."""
    parts = locale.strip().replace("-", "_").split("_")
    if len(parts) != 2 or not parts[0] or not parts[1]:
        return None
    return f"{parts[0].lower()}_{parts[1].upper()}"


@lru_cache(maxsize=1024)
def region_of_locale(locale: str) -> str | None:
    """The country of a form locale (``de_DE`` → ``DE``), or None for a language-only or malformed locale."""
    tag = _locale_tag(locale)
    if tag is None or tag in LANGUAGE_ONLY_LOCALES:
        return None
    region = tag.split("_")[1]
    return region if region in phonenumbers.SUPPORTED_REGIONS else None


@lru_cache(maxsize=4096)
def _regions(country: str | None, locale: str | None, default_region: str | None) -> tuple[str, ...]:
    ordered = [region_of_country(country) if country else None]
    late = None
    if locale:
        if _locale_tag(locale) in GENERIC_LOCALES:
            late = region_of_locale(locale)
        else:
            ordered.append(region_of_locale(locale))
    ordered += [default_region.upper() if default_region else None, late]
    out: list[str] = []
    for region in ordered:
        if region and region not in out:
            out.append(region)
    return tuple(out)


def phone_regions(country: Any, locale: Any, default_region: str | None) -> tuple[str, ...]:
    """The regions a lead's phone answer is read in, in order (see the module docstring); at least one when
    ``default_region`` is given. ``country``: the first non-blank country answer; ``locale``: the form's locale."""
    return _regions(country if isinstance(country, str) and country.strip() else None,
                    locale if isinstance(locale, str) and locale.strip() else None, default_region)
