"""A typed e-mail answer → the address (trimmed, lower-cased) when it is one, after repairing common typing slips.

The rule is docs/lead-validation.md's, which the simulator's ground truth implements on its own: an address is
``local@domain.tld`` — ASCII, exactly one ``@``, a dot in the domain, no spaces. An answer that is not one as typed
gets the slips people make on a phone keyboard repaired, in this order, and is checked again:

1. whitespace inside removed (``harrytaylor1990 @icloud.com``; autocorrect adds a space after a dot or before ``@``);
2. a run of ``@`` made one (``ayse@@gmail.com``);
3. commas in the domain made dots (``posteo,de``) — a domain never holds a comma.

Nothing is guessed beyond that: no ``@`` or no dot in the domain (``ayse@gmail``), non-ASCII letters
(``şeyma@gmail.com``) stay invalid, and the parser keeps such an answer as typed, flagged (``leads.email_raw``).

The common case (already a clean address) costs one regular-expression match; the repairs run only for the rest.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["EMAIL_PATTERN", "is_email", "normalise_email"]

#: What an address is (ASCII checked apart): one "@", a dot in the domain, no spaces. Lead answers, staff logins and
#: the warehouse's quality suite all use this one pattern.
EMAIL_PATTERN = r"[^@\s]+@[^@\s]+\.[^@\s]+"
_EMAIL_RE = re.compile(EMAIL_PATTERN, re.ASCII)
_ATS_RE = re.compile(r"@{2,}")


def is_email(s: str) -> bool:
    """Whether ``s`` is an address exactly as given (no repairs): for what people type about themselves, e.g. a login."""
    return s.isascii() and _EMAIL_RE.fullmatch(s) is not None


def normalise_email(s: Any) -> str | None:
    """The address, trimmed and lower-cased, when the answer is one (after repairing typing slips), else None."""
    if not isinstance(s, str):
        return None
    t = s.strip().lower()
    if t.isascii() and _EMAIL_RE.fullmatch(t) is not None:
        return t
    if not t:
        return None
    t = _ATS_RE.sub("@", "".join(t.split()))
    at = t.find("@")
    if at >= 0 and "," in t[at:]:
        t = t[:at] + t[at:].replace(",", ".")
    if t.isascii() and _EMAIL_RE.fullmatch(t) is not None:
        return t
    return None
