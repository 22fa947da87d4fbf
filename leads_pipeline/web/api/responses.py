"""The error answers each route documents (the ``responses`` of FastAPI's route decorators)."""

from __future__ import annotations

from typing import Any

from .models import Error

DESCRIPTIONS = {
    400: "Bad input: the message says what to change (an invalid status move names the allowed ones).",
    401: "No credentials, or an unknown / revoked API key.",
    403: "The caller's role may not do this (or, for a browser session, the CSRF token is missing or wrong).",
    404: "No such lead / distributor / user (or none the caller may see).",
    409: "Conflicts with the current state (duplicate, already running, no token yet…).",
    413: "Request body larger than 1 MiB.",
    415: "Request body is not JSON (send Content-Type: application/json).",
    503: "The service is not configured for this (e.g. LEADS_SECRET_KEY missing) or the warehouse is unreachable.",
}


def errors(*codes: int, body: bool = False, public: bool = False) -> dict[int | str, dict[str, Any]]:
    """The error answers of a route: ``codes``, plus 401/403 unless ``public``, plus 400/413/415 with a ``body``."""
    every = set(codes)
    if not public:
        every |= {401, 403}
    if body:
        every |= {400, 413, 415}
    out: dict[int | str, dict[str, Any]] = {}
    for code in sorted(every):
        out[code] = {"model": Error, "description": DESCRIPTIONS[code]}
        if code == 401:
            out[code]["headers"] = {"WWW-Authenticate": {"schema": {"type": "string"},
                                                         "description": "Bearer realm=\"leads_pipeline\""}}
    return out
