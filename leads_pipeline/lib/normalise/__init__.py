"""Contact answers as people type them → the values the warehouse keeps: pure functions, no I/O.

- :func:`normalise_email`: trimmed, lower-cased, typing slips repaired (:mod:`.emails`);
- :func:`normalise_phone`: E.164 in one region, with a verified fast path (:mod:`.phone`);
- :func:`phone_regions`: the regions a lead's number is read in — its country answer and its form's locale before
  the distributor's default region (:mod:`.regions`); :func:`normalise_phone_in` reads it in them, first valid wins.

The rules are docs/lead-validation.md's; the parser (``lib/ingest/parse.py``), CRM contacts and the distributor
registry use these, so one copy of each rule serves them all.
"""

from __future__ import annotations

from typing import Any

from leads_pipeline.lib.normalise.emails import EMAIL_PATTERN, is_email, normalise_email
from leads_pipeline.lib.normalise.phone import normalise_phone
from leads_pipeline.lib.normalise.regions import (
    phone_regions,
    region_of_country,
    region_of_locale,
)

__all__ = ["EMAIL_PATTERN", "is_email", "normalise_email", "normalise_phone", "normalise_phone_in", "phone_regions", "region_of_country",
           "region_of_locale"]


def normalise_phone_in(s: Any, regions: tuple[str, ...]) -> str | None:
    """The answer in E.164, read in the first of ``regions`` in which it is a valid number; None when in none."""
    for region in regions:
        e164 = normalise_phone(s, region)
        if e164 is not None:
            return e164
    return None
