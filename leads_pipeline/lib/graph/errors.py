"""Graph API errors as exceptions that say what happened and what the user should do about it.

Meta answers almost every failure with HTTP 400 and an envelope
``{"error": {message, type, code, error_subcode, error_user_title, error_user_msg, fbtrace_id, is_transient}}``;
the *code* (not the HTTP status) says what went wrong. :func:`error_from_envelope` turns an envelope into the
matching subclass, so callers can ``except TokenExpiredError`` instead of comparing numbers, and every exception
carries a ``user_message`` a distributor's operator can act on ("create a new long-lived page token").

Which errors are retried is decided by the client (``client.py``): only :class:`TransientGraphError` and
:class:`ThrottledError` ever are. ``str()`` and ``repr()`` of every error go through :func:`redaction.redact`, so
they never show an access token, an ``appsecret_proof`` or a URL's query string, even when Meta echoes a token.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from .redaction import redact

#: Permissions a lead sync needs (Meta "Retrieving Leads" and "Webhooks for Leadgen").
REQUIRED_PERMISSIONS = (
    "leads_retrieval",
    "pages_read_engagement",
    "pages_show_list",
    "pages_manage_metadata",
    "ads_management",
)

#: Platform throttle codes (app, user, Page, custom, application) and business-use-case (BUC) codes.
PLATFORM_THROTTLE_CODES = {4: "app", 17: "user", 32: "Pages", 341: "application", 613: "custom"}
BUC_THROTTLE_CODES = {
    80000: "Ads Insights",
    80001: "Pages",
    80002: "Instagram",
    80003: "Custom Audience",
    80004: "Ads Management",
    80005: "LeadGen",
    80006: "Messenger",
    80008: "WhatsApp Business Management",
    80009: "Catalog Management",
    80014: "Catalog Batch",
}
TRANSIENT_CODES = frozenset({1, 2})
TOKEN_CODES = frozenset({102, 190})

_VERSION_SEGMENT = re.compile(r"^v\d+\.\d+$")
_PERMISSION_NAME = re.compile(
    r"\b(leads_retrieval|pages_[a-z_]+|ads_[a-z_]+|business_management|instagram_[a-z_]+|public_profile|"
    r"read_insights|catalog_management|whatsapp_[a-z_]+)\b"
)
_EXPIRED_ON = re.compile(r"expired on (?:\w+, )?(\d{1,2})-(\w{3})-(\d{2,4}) (\d{1,2}):(\d{2}):(\d{2}) ([A-Z]{2,5})")
_EXPIRED_UNIX = re.compile(r"expired at unix time (\d+)")
_OBJECT_ID_IN_MESSAGE = re.compile(r"Object with ID '([^']+)'")
_TZ_OFFSETS = {"UTC": 0, "GMT": 0, "PST": -8, "PDT": -7, "MST": -7, "MDT": -6, "CST": -6, "CDT": -5,
               "EST": -5, "EDT": -4, "CET": 1, "CEST": 2, "IST": 5.5}


class GraphError(Exception):
    """A failed Graph API call. ``message`` is Meta's text (redacted); ``user_message`` says what to do.

    Attributes: ``code``, ``subcode``, ``type``, ``fbtrace_id`` (quote it to Meta support), ``http_status``
    (``None`` when no response arrived), ``path`` (the request path, no query string), ``is_transient``.
    """

    def __init__(
        self,
        message: str,
        *,
        code: int | None = None,
        subcode: int | None = None,
        type: str | None = None,  # noqa: A002 - Meta's field name
        fbtrace_id: str | None = None,
        http_status: int | None = None,
        user_title: str | None = None,
        user_msg: str | None = None,
        is_transient: bool = False,
        path: str | None = None,
        secrets: Iterable[str | None] = (),
    ) -> None:
        secrets = tuple(secrets)
        self.message = redact(message, secrets)
        self.code = code
        self.subcode = subcode
        self.type = type
        self.fbtrace_id = redact(fbtrace_id, secrets) if fbtrace_id else None
        self.http_status = http_status
        self.user_title = redact(user_title, secrets) if user_title else None
        self.user_msg = redact(user_msg, secrets) if user_msg else None
        self.is_transient = is_transient
        self.path = redact(path, secrets) if path else None
        super().__init__(str(self))

    # -- what the user reads ------------------------------------------------------------------------------------
    @property
    def user_message(self) -> str:
        """One or two sentences saying what went wrong and what to do; subclasses make it specific."""
        text = f"Meta's Graph API rejected the request: {self.message}"
        if self.user_msg:
            text += f" ({self.user_msg})"
        return text

    def _details(self) -> str:
        bits = []
        if self.code is not None:
            bits.append(f"code {self.code}" + (f"/{self.subcode}" if self.subcode is not None else ""))
        if self.type:
            bits.append(self.type)
        if self.http_status is not None:
            bits.append(f"HTTP {self.http_status}")
        if self.path:
            bits.append(f"request {self.path}")
        if self.fbtrace_id:
            bits.append(f"fbtrace_id {self.fbtrace_id}")
        return ", ".join(bits)

    def __str__(self) -> str:
        details = self._details()
        text = self.user_message
        if self.message and self.message not in text:
            text += f" Meta said: {self.message}"
        return redact(f"{text} [{details}]" if details else text)

    def __repr__(self) -> str:
        return redact(
            f"{type(self).__name__}(code={self.code!r}, subcode={self.subcode!r}, http_status={self.http_status!r}, "
            f"fbtrace_id={self.fbtrace_id!r}, path={self.path!r}, message={self.message!r})"
        )

    def __reduce__(self):  # keyword-only constructor: pickle the state, not the args
        return (_rebuild, (type(self), self.__dict__.copy()))


def _rebuild(cls: type[GraphError], state: dict[str, Any]) -> GraphError:
    err = cls.__new__(cls)
    err.__dict__.update(state)
    Exception.__init__(err, str(err))
    return err


class TokenExpiredError(GraphError):
    """190/463: the token's lifetime ran out. ``expired_at`` is parsed from Meta's "Session has expired on …"."""

    @property
    def expired_at(self) -> datetime | None:
        return parse_expiry(self.message)

    @property
    def user_message(self) -> str:
        when = self.expired_at
        if when is not None:
            said = _EXPIRED_ON.search(self.message)
            local = f" ({said.group(0)[len('expired on '):]})" if said else ""
            head = f"The access token expired on {when:%Y-%m-%d %H:%M} UTC{local}."
        else:
            head = "The access token has expired (Meta did not say when)."
        return (
            f"{head} Create a new long-lived page token (from a long-lived user token, or a system-user token that "
            "never expires) and store it for this distributor."
        )


class TokenInvalidError(GraphError):
    """190 (other subcodes) and 102: the token no longer works; the subcode says why."""

    _ADVICE = {
        458: "The app is no longer installed for the user behind this token (the app was removed or "
        "de-authorised); reconnect the app to the Page and generate a new page token.",
        459: "The Facebook user behind this token is checkpointed; they must log in to facebook.com and "
        "clear the checkpoint, then generate a new token.",
        460: "The token was invalidated because the Facebook user's password changed; generate a new token.",
        464: "The Facebook user behind this token is unconfirmed; they must confirm their account, then "
        "generate a new token.",
        467: "The access token is invalid (revoked, logged out, malformed or for another app); generate a new "
        "long-lived page token.",
        492: "The user behind this token has no role on the Page any more; give them a role on the Page "
        "(e.g. in Business Settings), then generate a new page token.",
        493: "The token is invalid because its user has not used the app for more than 90 days; log in "
        "again and generate a new token.",
    }

    @property
    def user_message(self) -> str:
        advice = self._ADVICE.get(self.subcode or -1)
        if advice:
            return advice
        lowered = self.message.lower()
        if "appsecret_proof" in lowered and "invalid" in lowered:
            return ("The appsecret_proof was rejected: the configured app secret does not belong to the app that "
                    "issued this token; set the right app secret.")
        if "appsecret_proof" in lowered or "application secret required" in lowered:
            return ("This Meta app requires appsecret_proof on server calls; configure the app secret "
                    "(LEADS_APP_SECRET) so the client can send it.")
        if self.code == 102:
            return "The API session is invalid (the token expired or was revoked); generate a new token."
        return "The access token is invalid; generate a new long-lived page token and store it for this distributor."


class MissingPermissionError(GraphError):
    """10 and 200-299: the token lacks a permission. ``permissions`` names it, or lists the ones a sync needs."""

    @property
    def permissions(self) -> tuple[str, ...]:
        named = tuple(dict.fromkeys(_PERMISSION_NAME.findall(self.message)))
        return named or REQUIRED_PERMISSIONS

    @property
    def named_in_message(self) -> bool:
        return bool(_PERMISSION_NAME.search(self.message))

    @property
    def user_message(self) -> str:
        if self.named_in_message:
            names = ", ".join(self.permissions)
            return (f"The token lacks the {names} permission. Re-authorise the app granting {names} (the user "
                    "must also have access to the Page and its leads in Leads Access Manager), then generate a "
                    "new page token.")
        return ("The token lacks a permission Meta requires. A lead sync needs "
                f"{', '.join(REQUIRED_PERMISSIONS)}; check the granted scopes (debug_token), re-authorise the app "
                "with the missing ones and generate a new page token.")


class ObjectNotFoundError(GraphError):
    """100/33: the id does not exist, or this token cannot see it. ``object_id`` comes from the request path."""

    @property
    def object_id(self) -> str | None:
        from_path = object_id_from_path(self.path)
        if from_path:
            return from_path
        match = _OBJECT_ID_IN_MESSAGE.search(self.message)
        return match.group(1) if match else None

    @property
    def user_message(self) -> str:
        return (f"Meta cannot find object {self.object_id or '(unknown id)'}: it does not exist, was deleted, or "
                "this token cannot see it (wrong Page token, missing leads_retrieval / pages_read_engagement, or "
                "the user lacks access to the Page). Check the id and the token's Page.")


class ThrottledError(GraphError):
    """Rate limited (4, 17, 32, 341, 613, 80000-80014). ``wait_seconds``: when access returns, if Meta said."""

    def __init__(self, message: str, *, wait_seconds: float | None = None, note: str | None = None,
                 **kwargs: Any) -> None:
        self.wait_seconds = wait_seconds
        self.note = note
        super().__init__(message, **kwargs)

    @property
    def limit_name(self) -> str:
        if self.code in BUC_THROTTLE_CODES:
            return BUC_THROTTLE_CODES[self.code]
        if self.code in PLATFORM_THROTTLE_CODES:
            return f"{PLATFORM_THROTTLE_CODES[self.code]} rate limit"
        return "rate limit"

    @property
    def user_message(self) -> str:
        code = f"code {self.code} {self.limit_name}" if self.code is not None else f"HTTP {self.http_status}"
        if self.wait_seconds:
            minutes = max(1, round(self.wait_seconds / 60))
            when = f"access returns in ~{minutes} minute{'s' if minutes != 1 else ''}"
        else:
            when = "Meta did not say when access returns"
        note = f" {self.note}" if self.note else ""
        return f"Meta throttled this app/page ({code}); {when}; try later or lower the sync frequency.{note}"


class TransientGraphError(GraphError):
    """A temporary failure (codes 1/2, ``is_transient``, HTTP 5xx, timeout, dropped connection, bad JSON).

    Raised to the caller only after the client's retries are used up; ``attempts`` says how many were made.
    """

    def __init__(self, message: str, *, attempts: int | None = None, **kwargs: Any) -> None:
        self.attempts = attempts
        kwargs.setdefault("is_transient", True)
        super().__init__(message, **kwargs)

    @property
    def user_message(self) -> str:
        tries = f" after {self.attempts} attempts" if self.attempts else ""
        return (f"Meta's Graph API failed temporarily{tries} ({self.message}); nothing was lost, re-run the sync "
                "later (it resumes from its stored cursor).")



def is_call_or_token_error(exc: BaseException) -> bool:
    """Whether ``exc`` is about the call or the token rather than the object asked for: Meta throttling or failing
    (after the client's retries), or a token expired, invalid or missing a permission (the operator can fix it). The
    same request may then succeed later; any other Graph error is about the object itself."""
    return isinstance(exc, (TransientGraphError, ThrottledError, TokenExpiredError, TokenInvalidError,
                            MissingPermissionError))


def object_id_from_path(path: str | None) -> str | None:
    """The node id a request path targets: ``/v25.0/123/leads`` -> ``123`` (prefixes before the version skipped)."""
    if not path:
        return None
    segments = [s for s in path.split("?")[0].split("/") if s]
    for i, segment in enumerate(segments):
        if _VERSION_SEGMENT.match(segment):
            segments = segments[i + 1:]
            break
    return segments[0] if segments else None


def parse_expiry(message: str) -> datetime | None:
    """When a token expired, from Meta's 190/463 text ("Session has expired on Sunday, 25-Dec-16 04:45:57 PST"
    or "Session has expired at unix time 1394622000"), in UTC; ``None`` if the message does not say."""
    unix = _EXPIRED_UNIX.search(message)
    if unix:
        return datetime.fromtimestamp(int(unix.group(1)), tz=UTC)
    match = _EXPIRED_ON.search(message)
    if not match:
        return None
    day, month, year, hour, minute, second, tz_name = match.groups()
    try:
        naive = datetime.strptime(f"{day}-{month}-{year} {hour}:{minute}:{second}",
                                  "%d-%b-%y %H:%M:%S" if len(year) == 2 else "%d-%b-%Y %H:%M:%S")
    except ValueError:
        return None
    offset = _TZ_OFFSETS.get(tz_name, 0)
    return naive.replace(tzinfo=timezone(timedelta(hours=offset))).astimezone(UTC)


def error_class_for(code: int | None, subcode: int | None, *, is_transient: bool = False,
                    http_status: int | None = None) -> type[GraphError]:
    """Which exception a Graph error code maps to (the code wins over the HTTP status)."""
    if code in TOKEN_CODES:
        return TokenExpiredError if (code == 190 and subcode == 463) else TokenInvalidError
    if code == 10 or (code is not None and 200 <= code <= 299):
        return MissingPermissionError
    if code == 100 and subcode == 33:
        return ObjectNotFoundError
    if code in PLATFORM_THROTTLE_CODES or code in BUC_THROTTLE_CODES or (code is not None and 80000 <= code <= 80014):
        return ThrottledError
    if code in TRANSIENT_CODES or is_transient or (http_status is not None and http_status >= 500):
        return TransientGraphError
    return GraphError


def error_from_envelope(
    body: Mapping[str, Any],
    *,
    http_status: int | None,
    path: str | None,
    secrets: Iterable[str | None] = (),
    wait_seconds: float | None = None,
) -> GraphError:
    """Build the right :class:`GraphError` subclass from a response body holding Meta's ``error`` envelope."""
    raw = body.get("error")
    if not isinstance(raw, Mapping):  # some old endpoints answer {"error": "text"}
        raw = {"message": str(raw)}
    code = _as_int(raw.get("code"))
    subcode = _as_int(raw.get("error_subcode"))
    is_transient = raw.get("is_transient") is True
    cls = error_class_for(code, subcode, is_transient=is_transient, http_status=http_status)
    kwargs: dict[str, Any] = dict(
        code=code,
        subcode=subcode,
        type=_as_str(raw.get("type")),
        fbtrace_id=_as_str(raw.get("fbtrace_id")),
        http_status=http_status,
        user_title=_as_str(raw.get("error_user_title")),
        user_msg=_as_str(raw.get("error_user_msg")),
        is_transient=is_transient or cls is TransientGraphError,
        path=path,
        secrets=secrets,
    )
    if cls is ThrottledError:
        kwargs["wait_seconds"] = wait_seconds
    return cls(_as_str(raw.get("message")) or "(no message)", **kwargs)


def _as_int(value: Any) -> int | None:
    try:
        return int(value) if value is not None and not isinstance(value, bool) else None
    except (TypeError, ValueError):
        return None


def _as_str(value: Any) -> str | None:
    return None if value is None else str(value)
