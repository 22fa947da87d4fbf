"""Scrubbing secrets out of any text the Graph client shows: exception messages, reprs and log lines.

Why a module of its own: Meta sometimes echoes the access token in an error message, ``requests`` puts full URLs
(query string included, so ``appsecret_proof`` and ``debug_token``'s ``input_token``) in its exception texts, and
``paging.next`` links carry ``access_token``. Every string that leaves this package as an error or a log line goes
through :func:`redact` first, with the exact secrets the client knows plus patterns for token-like strings.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

REDACTED = "[REDACTED]"
#: Shorter "secrets" would mask ordinary words and numbers.
MIN_SECRET_LENGTH = 6

#: Query/form parameters that carry credentials; stripped from ``paging`` links and redacted in text.
SECRET_PARAMS = frozenset({"access_token", "appsecret_proof", "input_token", "client_secret", "fb_exchange_token"})

_PATTERNS = [
    # name=value pairs of credential parameters, in URLs, form bodies or prose.
    (re.compile(r"(?i)\b(access_token|appsecret_proof|input_token|client_secret|fb_exchange_token)=[^&\s'\"<>]*"),
     lambda m: f"{m.group(1)}={REDACTED}"),
    # Authorization header values.
    (re.compile(r"(?i)\b(bearer|oauth)\s+[A-Za-z0-9._\-|~+/=]{8,}"), lambda m: f"{m.group(1)} {REDACTED}"),
    # Meta user/page/system-user tokens start with EAA; app tokens are "{app_id}|{app_secret}".
    (re.compile(r"\bEAA[A-Za-z0-9]{10,}"), lambda m: REDACTED),
    (re.compile(r"\b\d{5,}\|[A-Za-z0-9_\-]{16,}"), lambda m: REDACTED),
    # Any other long opaque run (hex HMAC proofs are 64 chars; tokens are longer). IDs are <= 20 digits.
    (re.compile(r"[A-Za-z0-9_\-]{40,}"), lambda m: REDACTED),
    # Whatever query string is left on a URL or request target (requests' "Max retries exceeded with url: /x?...").
    (re.compile(r"\?[A-Za-z0-9_.\-%]+=[^\s'\"<>)]*"), lambda m: "?" + REDACTED),
]


def _mask_secrets(text: str, secrets: Iterable[str | None]) -> str:
    """``text`` with every occurrence of every secret masked, overlapping ones as one ``[REDACTED]``.

    Why spans, not one ``replace`` per secret: replacing in turn depends on the order, and two secrets that overlap in
    the text (``abcdef1`` and ``bcdef12`` in ``abcdef12``) leave a piece of whichever goes second — a different piece
    per process, since a set's order follows the string hash seed. The spans of every occurrence are found in the
    original text and merged, so nothing of any secret survives and the result never depends on an order.
    """
    spans: list[tuple[int, int]] = []
    for secret in {s for s in secrets if s and len(s) >= MIN_SECRET_LENGTH}:
        start = text.find(secret)
        while start != -1:
            spans.append((start, start + len(secret)))
            start = text.find(secret, start + 1)
    if not spans:
        return text
    spans.sort()
    out: list[str] = []
    done = 0
    begin, end = spans[0]
    for s, e in spans[1:]:
        if s < end:  # overlapping: one mask (adjacent ones stay two, as before)
            end = max(end, e)
            continue
        out += [text[done:begin], REDACTED]
        done, (begin, end) = end, (s, e)
    out += [text[done:begin], REDACTED, text[end:]]
    return "".join(out)


def redact(text: object, secrets: Iterable[str | None] = ()) -> str:
    """``text`` as a string with every known secret and every token-like string replaced by ``[REDACTED]``."""
    out = _mask_secrets(str(text), secrets)
    for pattern, repl in _PATTERNS:
        out = pattern.sub(repl, out)
    return out


def strip_secret_params(url: str) -> str:
    """``url`` without credential parameters (Meta puts ``access_token`` in ``paging.next``/``previous``)."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in SECRET_PARAMS]
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), parts.fragment))


def url_path(url: str) -> str:
    """The path of ``url`` only: what log lines and errors name instead of the full URL."""
    return urlsplit(url).path or "/"
