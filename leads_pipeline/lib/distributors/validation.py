"""The rules for a distributor's settings as people type them (name, key, token, ids, region, interval, email), and
for reading its stored id lists back.

Every check raises :class:`~leads_pipeline.lib.distributors.errors.DistributorError` with a message that says what to
type instead, because these messages reach operators unchanged (CLI, console, HTTP API).
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterable
from typing import Any

import phonenumbers

from leads_pipeline.lib.normalise import normalise_email

from .errors import DistributorError

__all__ = [
    "KEY_RE",
    "MAX_KEY_LENGTH",
    "clean_email",
    "clean_ids",
    "clean_interval",
    "clean_key",
    "clean_name",
    "clean_region",
    "clean_token",
    "json_ids",
    "slugify",
]

KEY_RE = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
MAX_KEY_LENGTH = 48
_ID_RE = re.compile(r"[0-9]+")
# Letters NFKD does not fold to ASCII by itself.
_FOLD = str.maketrans({"ı": "i", "İ": "I", "ß": "ss", "ø": "o", "Ø": "O", "æ": "ae", "Æ": "AE", "œ": "oe",
                       "Œ": "OE", "đ": "d", "Đ": "D", "ł": "l", "Ł": "L", "þ": "th", "Þ": "TH", "&": " and "})


def slugify(name: str) -> str:
    """``MSH Med Tour`` → ``msh-med-tour``; ``Işık Sağlık`` → ``isik-saglik`` (ASCII letters, digits, dashes)."""
    folded = unicodedata.normalize("NFKD", name.translate(_FOLD))
    ascii_text = folded.encode("ascii", "ignore").decode().lower()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text).strip("-")
    slug = slug[:MAX_KEY_LENGTH].rstrip("-")
    return slug or "distributor"


def clean_name(name: Any) -> str:
    if not isinstance(name, str) or not name.strip():
        raise DistributorError("A distributor needs a name, e.g. \"MSH Med Tour\".")
    name = " ".join(name.split())
    if len(name) > 200:
        raise DistributorError("The distributor name is too long (200 characters at most).")
    return name


def clean_token(token: Any) -> str:
    if not isinstance(token, str) or not token.strip():
        raise DistributorError(
            "The access token is empty: pass a Page or system-user token (--token, --token-stdin or LEADS_NEW_TOKEN)."
        )
    token = token.strip()
    if any(ch.isspace() for ch in token):
        raise DistributorError("The access token contains spaces or line breaks: paste the token alone.")
    if not token.isascii() or not token.isprintable():
        # Meta tokens are ASCII; anything else cannot travel in an HTTP header and is a paste accident.
        raise DistributorError("The access token contains characters a Meta token never has: paste the token alone.")
    return token


def clean_ids(values: Iterable[Any] | None, what: str) -> tuple[str, ...]:
    if values is None:
        return ()
    if isinstance(values, (str, int)):
        values = [values]
    out: list[str] = []
    for value in values:
        text = str(value).strip()
        if not _ID_RE.fullmatch(text):
            raise DistributorError(f"{what} {value!r} is not a Meta id (digits only, e.g. 123456789012345).")
        if text not in out:
            out.append(text)
    return tuple(out)


def clean_region(region: Any) -> str:
    code = region.strip().upper() if isinstance(region, str) else ""
    if code not in phonenumbers.SUPPORTED_REGIONS:
        raise DistributorError(
            f"Unknown phone region {region!r}: use a two-letter country code such as TR, DE, GB or US "
            "(the country whose numbers people type without a country code)."
        )
    return code


def clean_interval(interval: Any) -> int:
    if isinstance(interval, bool):
        raise DistributorError("The sync interval must be a whole number of minutes, at least 1.")
    try:
        minutes = int(interval)
    except (TypeError, ValueError):
        raise DistributorError("The sync interval must be a whole number of minutes, at least 1.") from None
    if minutes != interval and not isinstance(interval, str):
        raise DistributorError("The sync interval must be a whole number of minutes, at least 1.")
    if minutes < 1:
        raise DistributorError(f"The sync interval must be at least 1 minute (got {minutes}).")
    return minutes


def clean_email(email: Any) -> str | None:
    if email is None or (isinstance(email, str) and not email.strip()):
        return None
    normalised = normalise_email(email)
    if normalised is None:
        raise DistributorError(f"The notification email {email!r} is not a valid address (name@example.com).")
    return normalised


def clean_key(key: str) -> str:
    if not isinstance(key, str) or not KEY_RE.fullmatch(key) or len(key) > MAX_KEY_LENGTH:
        raise DistributorError(
            f"Key {key!r} is not usable: lowercase ASCII letters, digits and single dashes, at most "
            f"{MAX_KEY_LENGTH} characters (e.g. msh-med-tour)."
        )
    return key


def json_ids(value: Any) -> tuple[str, ...]:
    """A stored id list (``distributors.page_ids`` / ``form_ids``: a JSON array, or text of one on some drivers)."""
    if value is None:
        return ()
    if isinstance(value, str):
        value = json.loads(value)
    return tuple(str(v) for v in value)
