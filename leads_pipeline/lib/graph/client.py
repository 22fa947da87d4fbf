"""``GraphClient``: the one place the pipeline talks HTTP to Meta's Graph API (or the simulator).

Why a hand-written client (on ``urllib3``) rather than ``facebook_business``: the SDK puts the token in every URL,
re-requests pages by cursor instead of following ``paging.next``, hides Meta's throttle headers and installs a
crash reporter. This client:

* sends the access token only in ``Authorization: Bearer`` (never in a URL; the single exception is
  :meth:`GraphClient.debug_token`, whose ``input_token`` Meta only accepts as a query parameter), and adds
  ``appsecret_proof`` (hex HMAC-SHA256 of the token keyed by the app secret) as a query parameter when an app
  secret is configured;
* retries what is temporary (codes 1/2, ``is_transient``, HTTP 5xx, timeouts, dropped connections, truncated or
  invalid JSON) with exponential backoff and full jitter, and never retries auth or permission errors;
* on throttling (HTTP 400 with codes 4/17/32/341/613/80000-80014, no ``Retry-After``) waits what
  ``X-Business-Use-Case-Usage`` says, without calling Meta meanwhile, and gives up with a
  :class:`~.errors.ThrottledError` when the wait would exceed ``max_throttle_wait``;
* pages by ``paging.next`` only (``after`` is present on the last page too; an empty page may still have ``next``),
  strips the ``access_token`` Meta puts in ``next`` and refuses a ``next`` on another host.

**Resuming.** :meth:`GraphClient.iter_lead_pages` is a generator: each page is requested only when the caller asks
for it, so memory does not grow with the number of leads. If a page request still fails after the retries, the
exception propagates out of the generator; every page already yielded was complete, and the caller (the sync) keeps
its own cursor (the largest ``created_time`` it stored) and re-runs from there. Paging cursors are not persisted:
Meta says they can be invalidated, so a re-run restarts the ``time_created`` filter instead, and the sync dedupes
leads by id. :attr:`GraphClient.last_page_number` tells how far the latest iteration got.

Logging (``logging.getLogger(__name__)``) names the method, the path without query string, the status and the
attempt; never a token, a proof or a query string.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import logging
import os
import random
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import orjson
import urllib3
from urllib3.exceptions import DecodeError, HTTPError, NewConnectionError, ProtocolError, ProxyError, SSLError
from urllib3.exceptions import TimeoutError as HTTPTimeout

from .errors import GraphError, ThrottledError, TransientGraphError, error_from_envelope
from .redaction import SECRET_PARAMS, redact, strip_secret_params, url_path
from .usage import Usage, parse_usage

logger = logging.getLogger(__name__)

#: Every Lead field the pipeline stores; always sent explicitly (without ``fields`` Meta returns a minimal set).
LEAD_FIELDS: tuple[str, ...] = (
    "id",
    "created_time",
    "field_data",
    "ad_id",
    "ad_name",
    "adset_id",
    "adset_name",
    "campaign_id",
    "campaign_name",
    "form_id",
    "is_organic",
    "platform",
    "custom_disclaimer_responses",
    "partner_name",
    "retailer_item_id",
)
#: ``leads_count`` / ``expired_leads_count``: how many leads a form has, and how many are out of Meta's reach (~90 days).
FORM_FIELDS: tuple[str, ...] = ("id", "name", "status", "locale", "questions", "leads_count", "expired_leads_count")
ACCOUNT_FIELDS: tuple[str, ...] = ("id", "name", "access_token", "tasks")
#: ``filtering`` operators Meta documents for ``time_created``.
TIME_OPERATORS = frozenset({"GREATER_THAN", "GREATER_THAN_OR_EQUAL", "LESS_THAN"})
#: Meta's cap on sub-requests per batch POST.
BATCH_LIMIT = 50

_API_VERSION = re.compile(r"^v\d+\.\d+$")
_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class LeadPage:
    """One page of ``/{form-id}/leads``: the leads, whether Meta said there is more, and the paging block.

    ``paging`` is Meta's raw ``paging`` object with credential parameters removed from ``next``/``previous``.
    """

    leads: list[dict[str, Any]]
    next_url_present: bool
    page_number: int
    paging: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class GraphStats:
    """Counters of one client, for benchmarks and run metadata (``with_token`` clients count their own)."""

    requests: int = 0
    retries: int = 0
    throttle_waits: int = 0
    throttle_seconds: float = 0.0
    backoff_seconds: float = 0.0

    @property
    def seconds_waited(self) -> float:
        return self.throttle_seconds + self.backoff_seconds


class _Counters:
    """Thread-safe mutable home of :class:`GraphStats`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stats = GraphStats()

    def add(self, **deltas: float) -> None:
        with self._lock:
            self._stats = replace(self._stats, **{k: getattr(self._stats, k) + v for k, v in deltas.items()})

    @property
    def snapshot(self) -> GraphStats:
        with self._lock:
            return self._stats


#: Sent with every request (Meta's logs and a proxy's show who called).
USER_AGENT = "leads-pipeline"

#: How many times in a row the same ``paging.next`` may come back before paging is treated as a loop.
MAX_SAME_NEXT = 3


def _new_pool(base_url: str) -> urllib3.PoolManager:
    """A keep-alive connection pool for ``base_url`` with the environment's settings read once, here: the proxy
    (``HTTPS_PROXY``/``HTTP_PROXY``, ``NO_PROXY``, by requests' own rules, user and password included) and the CA
    bundle (``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE``, else certifi's, as requests did). Every request goes to
    ``base_url``'s host (Meta's ``paging.next`` links point back to it), so the settings for it hold for all.

    Why urllib3 and not a ``requests.Session`` on top of it: requests prepares, hooks, merges cookies and re-reads
    the response in chunks on every call — paging 100k leads from the simulator took 1.6 s of CPU through it and
    1.1 s through urllib3 (issue #14, P7)."""
    import certifi
    from requests.utils import get_auth_from_url, get_environ_proxies, select_proxy

    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or certifi.where()
    tls: dict[str, Any] = {"cert_reqs": "CERT_REQUIRED"}
    tls["ca_cert_dir" if os.path.isdir(bundle) else "ca_certs"] = bundle
    # Up to 10 connections kept per host, as requests kept: a client used by several threads at once keeps them all.
    pools: dict[str, Any] = {"num_pools": 2, "maxsize": 10, **tls}
    proxy = select_proxy(base_url, get_environ_proxies(base_url))
    if not proxy:
        return urllib3.PoolManager(**pools)
    user, password = get_auth_from_url(proxy)
    headers = urllib3.make_headers(proxy_basic_auth=f"{user}:{password}") if user else None
    return urllib3.ProxyManager(proxy, proxy_headers=headers, **pools)


class GraphClient:
    """A Graph API client for one access token (see the module docstring for the retry and paging rules)."""

    def __init__(
        self,
        access_token: str,
        *,
        base_url: str = "https://graph.facebook.com",
        api_version: str = "v25.0",
        app_secret: str | None = None,
        page_limit: int = 100,
        timeout: float = 30.0,
        max_retries: int = 6,
        max_throttle_wait: float = 300.0,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
        pool: urllib3.PoolManager | None = None,
    ) -> None:
        if not access_token or not isinstance(access_token, str):
            raise ValueError("access_token is required")
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.query:
            raise ValueError(f"base_url must be an http(s) URL without a query string, got {redact(base_url)!r}")
        if not _API_VERSION.match(api_version):
            raise ValueError(f"api_version must look like 'v25.0', got {api_version!r}")
        if page_limit < 1 or max_retries < 0 or timeout <= 0:
            raise ValueError("page_limit must be >= 1, max_retries >= 0 and timeout > 0")
        self.base_url = base_url.rstrip("/")
        self.api_version = api_version
        self.page_limit = page_limit
        self.timeout = timeout
        self.max_retries = max_retries
        self.max_throttle_wait = max_throttle_wait
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self._sleep = sleep
        self._owns_pool = pool is None
        self._pool = pool if pool is not None else _new_pool(self.base_url)
        self._app_secret = app_secret
        self._set_token(access_token)
        self._counters = _Counters()
        self._random = random.Random()
        # Shared by every client derived from this one (``with_token``): a client waiting out a throttle window holds
        # it, and the others take it before each request, so clients reading in parallel threads send nothing into
        # the window either.
        self._gate = threading.RLock()
        self.last_usage: Usage = Usage()
        self.last_page_number: int = 0

    def _set_token(self, token: str) -> None:
        self._token = token
        self._proof = (
            hmac.new(self._app_secret.encode(), token.encode(), hashlib.sha256).hexdigest()
            if self._app_secret else None
        )

    # -- lifecycle and introspection ---------------------------------------------------------------------------
    def with_token(self, access_token: str | None = None, *, own_session: bool = False) -> GraphClient:
        """A client for another token (e.g. a page token from :meth:`me_accounts`; None: this client's) sharing
        config, the throttle gate and — unless ``own_session`` (a client for another thread: it keeps its own
        keep-alive connection, closed by :meth:`close`) — the connection pool.

        Counters (``request_count``, ``stats``) and the throttle-wait budget start at zero for the new client.
        """
        access_token = self._token if access_token is None else access_token
        if not access_token or not isinstance(access_token, str):
            raise ValueError("access_token is required")
        other = copy.copy(self)
        other._owns_pool = own_session
        if own_session:
            other._pool = _new_pool(self.base_url)
        other._set_token(access_token)
        other._counters = _Counters()
        other.last_usage = Usage()
        other.last_page_number = 0
        return other

    def close(self) -> None:
        if self._owns_pool:
            self._pool.clear()

    def __enter__(self) -> GraphClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"GraphClient(base_url={self.base_url!r}, api_version={self.api_version!r}, "
                f"access_token='***', app_secret={'***' if self._app_secret else None!r})")

    @property
    def request_count(self) -> int:
        """HTTP requests attempted so far by this client (retries included; ``with_token`` clients count apart)."""
        return self._counters.snapshot.requests

    @property
    def stats(self) -> GraphStats:
        """A snapshot of requests, retries, throttle waits and seconds waited."""
        return self._counters.snapshot

    @property
    def _secrets(self) -> tuple[str | None, ...]:
        return (self._token, self._proof, self._app_secret)

    # -- the request primitive -----------------------------------------------------------------------------------
    def get(self, path: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """GET ``{base_url}/{api_version}/{path}`` with retries; the decoded JSON body (errors raise GraphError)."""
        body = self._send("GET", self._url(path), params=_encode_params(params))
        if not isinstance(body, dict):
            raise GraphError(f"expected a JSON object, got {type(body).__name__}", path=url_path(self._url(path)))
        return body

    def post(self, path: str, data: Mapping[str, Any]) -> dict[str, Any]:
        """POST a form to ``{base_url}/{api_version}/{path}`` with the same retries and throttle waits as a GET; the
        decoded JSON body (errors raise GraphError). Lists and dicts in ``data`` are sent as JSON strings."""
        body = self._send("POST", self._url(path), data=dict(_encode_params(data)))
        if not isinstance(body, dict):
            raise GraphError(f"expected a JSON object, got {type(body).__name__}", path=url_path(self._url(path)))
        return body

    def _url(self, path: str) -> str:
        if "?" in path or "#" in path or "://" in path:
            raise ValueError("path must be a Graph path like '123/leads'; pass query parameters in params")
        return f"{self.base_url}/{self.api_version}/{path.lstrip('/')}"

    def _send(
        self,
        method: str,
        url: str,
        *,
        params: Sequence[tuple[str, str]] | None = None,
        data: Mapping[str, str] | None = None,
        extra_secrets: Iterable[str] = (),
    ) -> Any:
        """One logical call: the HTTP request plus its retries and throttle waits. Returns the decoded body."""
        path = url_path(url)
        secrets = (*self._secrets, *extra_secrets)
        query = list(params or ())
        if self._proof:
            query.append(("appsecret_proof", self._proof))
        target = f"{url}{'&' if '?' in url else '?'}{urlencode(query)}" if query else url
        headers = {"Accept": "application/json", "Accept-Encoding": "gzip, deflate",
                   "Authorization": f"Bearer {self._token}", "User-Agent": USER_AGENT}
        body = None
        if data is not None:
            body = urlencode(list(data.items()))
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        attempt = 0
        while True:
            attempt += 1
            with self._gate:  # another client of this token family waiting out a throttle window holds it
                pass
            self._counters.add(requests=1)
            try:
                resp = self._pool.request(method, target, body=body, headers=headers, timeout=self.timeout,
                                          retries=False, redirect=False)
            except SSLError as exc:  # a certificate problem does not fix itself
                raise GraphError(f"TLS error talking to {urlsplit(url).netloc}: {redact(exc, secrets)}",
                                 path=path, secrets=secrets) from None
            except (HTTPTimeout, NewConnectionError, ProtocolError, ProxyError, DecodeError) as exc:
                # timeouts, refused or dropped connections, a body cut short or its compression broken
                failure: GraphError = TransientGraphError(
                    f"{type(exc).__name__}: {_exception_summary(exc, secrets)}", path=path, secrets=secrets)
                logger.debug("%s %s -> %s (attempt %d)", method, path, type(exc).__name__, attempt)
            except HTTPError as exc:
                raise GraphError(f"{type(exc).__name__}: {redact(exc, secrets)}", path=path,
                                 secrets=secrets) from None
            else:
                logger.debug("%s %s -> %d (attempt %d)", method, path, resp.status, attempt)
                outcome = self._interpret(resp, path, secrets)
                if not isinstance(outcome, GraphError):
                    return outcome
                failure = outcome

            if isinstance(failure, ThrottledError):
                self._wait_out_throttle(failure, method, path, attempt)
                continue
            if not isinstance(failure, TransientGraphError):
                logger.info("%s %s failed: %s %s/%s (not retried)", method, path, type(failure).__name__,
                            failure.code, failure.subcode)
                raise failure
            if attempt > self.max_retries:
                raise TransientGraphError(
                    failure.message, attempts=attempt, code=failure.code, subcode=failure.subcode,
                    type=failure.type, fbtrace_id=failure.fbtrace_id, http_status=failure.http_status,
                    path=path, secrets=secrets) from None
            delay = self._backoff(attempt)
            logger.warning("%s %s: transient failure (%s), attempt %d of %d; retrying in %.2f s", method, path,
                           _short(failure), attempt, self.max_retries + 1, delay)
            self._counters.add(retries=1, backoff_seconds=delay)
            self._sleep(delay)

    def _interpret(self, resp: urllib3.BaseHTTPResponse, path: str, secrets: tuple[str | None, ...]) -> Any:
        """The decoded body of a good response, or the GraphError describing a bad one (returned, not raised)."""
        status = resp.status
        content = resp.data
        usage = parse_usage(resp.headers)
        self.last_usage = usage
        if usage.max_percent >= 90:
            logger.warning("Meta usage at %.0f%% of quota (path %s)", usage.max_percent, path)
        try:
            body = orjson.loads(content)  # 2-3x the stdlib's speed on a page of 100 leads (issue #14, P7)
        except (ValueError, UnicodeDecodeError):
            body = _INVALID
        if isinstance(body, dict) and "error" in body:
            return error_from_envelope(body, http_status=status, path=path, secrets=secrets,
                                       wait_seconds=usage.wait_seconds or None)
        if status == 429:  # not Meta's style, but proxies and gateways do it
            return ThrottledError("HTTP 429 Too Many Requests", http_status=status, path=path,
                                  wait_seconds=usage.wait_seconds or None, secrets=secrets)
        if status >= 500:
            return TransientGraphError(f"HTTP {status}", http_status=status, path=path, secrets=secrets)
        if 300 <= status < 400:
            return GraphError(f"unexpected HTTP {status} redirect; check base_url", http_status=status, path=path,
                              secrets=secrets)
        if status >= 400:
            return GraphError(f"HTTP {status} without a Graph error body; is {urlsplit(self.base_url).netloc} a "
                              "Graph API endpoint?", http_status=status, path=path, secrets=secrets)
        if body is _INVALID:
            return TransientGraphError(f"invalid or truncated JSON in an HTTP {status} response ({len(content)}"
                                       " bytes)", http_status=status, path=path, secrets=secrets)
        return body

    def _wait_out_throttle(self, err: ThrottledError, method: str, path: str, attempt: int) -> None:
        """Sleep through a throttle window (no calls meanwhile), or raise ``err`` if it is too long."""
        spent = self._counters.snapshot.throttle_seconds
        wait = err.wait_seconds if err.wait_seconds and err.wait_seconds > 0 else self._backoff(attempt)
        if wait > self.max_throttle_wait:
            err.note = f"(The client waits at most {self.max_throttle_wait:.0f} s for a throttle window.)"
            raise err
        if spent + wait > self.max_throttle_wait:
            err.note = (f"(The client already waited {spent:.0f} s for throttling, and waits at most "
                        f"{self.max_throttle_wait:.0f} s in all.)")
            raise err
        if attempt > self.max_retries:
            err.note = f"(Still throttled after {attempt} attempts.)"
            raise err
        logger.warning("%s %s: throttled (code %s), attempt %d; waiting %.1f s before the next call", method, path,
                       err.code, attempt, wait)
        if not self._gate.acquire(blocking=False):
            # Another client of this family (a thread of the same sync) is waiting out the window this request
            # was sent into before it knew: wait for it to end, not for a window of our own after it.
            logger.info("%s %s: throttled while another reader waits out the window; waiting with it", method, path)
            with self._gate:
                pass
            self._counters.add(retries=1)
            return
        try:  # the clients sharing the gate wait too
            self._counters.add(retries=1, throttle_waits=1, throttle_seconds=wait)
            self._sleep(wait)
        finally:
            self._gate.release()

    def _backoff(self, attempt: int) -> float:
        """Full jitter: uniform in [0, min(backoff_max, backoff_base * 2**(attempt-1))]."""
        cap = min(self.backoff_max, self.backoff_base * (2 ** (attempt - 1)))
        return self._random.uniform(0, max(cap, 0.0))

    # -- paging ------------------------------------------------------------------------------------------------
    def _iter_pages(self, path: str, params: Sequence[tuple[str, str]]) -> Iterator[dict[str, Any]]:
        """Raw pages of an edge, following ``paging.next`` until it is absent."""
        url = self._url(path)
        query: Sequence[tuple[str, str]] = params
        previous_next: str | None = None
        repeats = 0
        while True:
            body = self._send("GET", url, params=query)
            if not isinstance(body, dict):
                raise GraphError(f"expected a page object, got {type(body).__name__}", path=url_path(url))
            yield body
            paging = body.get("paging") if isinstance(body.get("paging"), dict) else {}
            next_url = paging.get("next")
            if not next_url:
                return
            if not isinstance(next_url, str):
                raise GraphError("paging.next is not a URL", path=url_path(url))
            url, query = self._split_next(next_url)
            # An empty page may point back where it started (the next attempt can serve the data); the same link
            # over and over is a loop.
            repeats = repeats + 1 if next_url == previous_next else 0
            if repeats >= MAX_SAME_NEXT:
                raise GraphError(
                    f"Meta returned the same paging.next link {MAX_SAME_NEXT + 1} times; stopping to avoid an endless loop",
                    path=url_path(url),
                )
            previous_next = next_url

    def _split_next(self, next_url: str) -> tuple[str, list[tuple[str, str]]]:
        """A ``paging.next`` URL as (URL without query, params without credentials); refuses other hosts."""
        ours, theirs = urlsplit(self.base_url), urlsplit(next_url)
        if _origin(theirs) != _origin(ours):
            shown = f"{theirs.scheme}://{theirs.hostname}" if theirs.hostname else "a relative link"
            raise GraphError(
                f"paging.next points at {shown}, not at {ours.scheme}://{ours.hostname}; refusing to send the token "
                "there", path=redact(theirs.path))
        query = [(k, v) for k, v in parse_qsl(theirs.query, keep_blank_values=True) if k not in SECRET_PARAMS]
        return urlunsplit((theirs.scheme, theirs.netloc, theirs.path, "", "")), query

    def _collect(self, path: str, params: Sequence[tuple[str, str]]) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        for page in self._iter_pages(path, params):
            data = page.get("data")
            if isinstance(data, list):
                items.extend(data)
        return items

    # -- endpoints ---------------------------------------------------------------------------------------------
    def me_accounts(self) -> list[dict[str, Any]]:
        """Every Page the token's user can act on (``/me/accounts``, all pages): id, name, access_token, tasks."""
        return self._collect("me/accounts", [("fields", ",".join(ACCOUNT_FIELDS)), ("limit", str(self.page_limit))])

    def leadgen_forms(self, page_id: str) -> list[dict[str, Any]]:
        """Every lead form of a Page (needs a page token with pages_read_engagement): id, name, status, locale,
        questions, leads_count, expired_leads_count."""
        return self._collect(f"{_segment(page_id)}/leadgen_forms",
                             [("fields", ",".join(FORM_FIELDS)), ("limit", str(self.page_limit))])

    def debug_token(self, input_token: str | None = None) -> dict[str, Any]:
        """Meta's view of a token (``/debug_token``): the ``data`` object (is_valid, expires_at, scopes, ...).

        Meta wants the call authorised by an app token ``{app_id}|{app_secret}`` or by the inspected token itself.
        This client sends its own token as ``input_token`` (unless another is given) and authorises with the same
        token in the header. ``input_token`` is the one place a token goes in a URL: Meta accepts it only as a
        query parameter of this GET. It is still kept out of logs and error texts.
        """
        token = input_token or self._token
        body = self._send("GET", self._url("debug_token"), params=[("input_token", token)], extra_secrets=(token,))
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, dict):
            raise GraphError("debug_token answered without a data object", path=f"/{self.api_version}/debug_token")
        return data

    def subscribed_apps(self, page_id: str) -> list[dict[str, Any]]:
        """The apps subscribed to a Page's webhooks, each with its ``subscribed_fields``."""
        return self._collect(f"{_segment(page_id)}/subscribed_apps", [])

    def subscribe_page(self, page_id: str, fields: Sequence[str] = ("leadgen",)) -> bool:
        """Subscribe this app to a Page's webhook fields (POST ``subscribed_fields=leadgen``); True on success.

        Meta documents ``{"success": true}``; its own doc prints ``"true"`` as a string, so both are accepted.
        """
        if isinstance(fields, str):
            fields = (fields,)
        body = self._send("POST", self._url(f"{_segment(page_id)}/subscribed_apps"),
                          data={"subscribed_fields": ",".join(fields)})
        return _truthy(body.get("success") if isinstance(body, dict) else body)

    def subscribe_app(self, app_id: str, callback_url: str, verify_token: str, fields: Sequence[str] = ("leadgen",),
                      object_type: str = "page") -> bool:
        """Subscribe the app itself to an object's webhook fields (POST ``/{app-id}/subscriptions``), what the App
        Dashboard's Webhooks page does; needs this client to hold the app token ``{app_id}|{app_secret}``. Meta
        verifies ``callback_url`` at once (a GET with ``hub.challenge`` and ``verify_token``); a callback that does
        not echo it is error 2200. Pages still have to install the app (:meth:`subscribe_page`) to be delivered."""
        if isinstance(fields, str):
            fields = (fields,)
        body = self._send("POST", self._url(f"{_segment(app_id)}/subscriptions"),
                          data={"object": object_type, "callback_url": callback_url, "fields": ",".join(fields),
                                "verify_token": verify_token, "include_values": "true"},
                          extra_secrets=(verify_token,))
        return _truthy(body.get("success") if isinstance(body, dict) else body)

    def iter_lead_pages(
        self,
        form_id: str,
        *,
        since: int | None = None,
        operator: str = "GREATER_THAN",
        limit: int | None = None,
        fields: Sequence[str] = LEAD_FIELDS,
    ) -> Iterator[LeadPage]:
        """Stream a form's leads page by page (``GET /{form-id}/leads``), each page requested only when needed.

        ``since`` (Unix seconds) adds ``filtering=[{"field":"time_created","operator":operator,"value":since}]``;
        an ISO date would be silently ignored by Meta (and return every lead), so only ints are accepted.
        Stops when a page has no ``paging.next``; an empty page with ``next`` is followed.
        """
        if operator not in TIME_OPERATORS:
            raise ValueError(f"operator must be one of {sorted(TIME_OPERATORS)}, got {operator!r}")
        if since is not None and (isinstance(since, bool) or not isinstance(since, int)):
            raise TypeError(f"since must be Unix seconds as an int (Meta ignores ISO dates), got {since!r}")
        page_size = self.page_limit if limit is None else limit
        if page_size < 1:
            raise ValueError("limit must be >= 1")
        fields = (fields,) if isinstance(fields, str) else tuple(fields)
        params = [("fields", ",".join(fields)), ("limit", str(page_size))]
        if since is not None:
            params.append(("filtering", _json([{"field": "time_created", "operator": operator, "value": since}])))
        return self._lead_pages(f"{_segment(form_id)}/leads", params)

    def _lead_pages(self, path: str, params: list[tuple[str, str]]) -> Iterator[LeadPage]:
        self.last_page_number = 0
        for number, body in enumerate(self._iter_pages(path, params), start=1):
            paging = body.get("paging") if isinstance(body.get("paging"), dict) else {}
            data = body.get("data")
            self.last_page_number = number
            yield LeadPage(
                leads=data if isinstance(data, list) else [],
                next_url_present=bool(paging.get("next")),
                page_number=number,
                paging=_clean_paging(paging),
            )

    def get_lead(self, lead_id: str, fields: Sequence[str] = LEAD_FIELDS) -> dict[str, Any]:
        """One lead by id (e.g. a webhook's ``leadgen_id``)."""
        fields = (fields,) if isinstance(fields, str) else fields
        return self.get(_segment(lead_id), {"fields": ",".join(fields)})

    def get_leads_batch(
        self, lead_ids: Iterable[str], fields: Sequence[str] = LEAD_FIELDS
    ) -> dict[str, dict[str, Any] | GraphError]:
        """Many leads by id through Graph batch requests (at most 50 per POST).

        Returns ``{lead_id: lead dict or GraphError}``: one bad id (deleted, no access) does not fail the others.
        Items Meta timed out (``null``) and transient item errors are re-sent, up to ``max_retries`` more rounds,
        after which they are :class:`TransientGraphError` values. Item-level throttling is reported per item as
        :class:`ThrottledError` values (batch items carry no usage headers to wait on). A failure of the whole POST
        (bad token, throttled app, retries exhausted) raises.
        """
        fields = (fields,) if isinstance(fields, str) else fields
        ids = list(dict.fromkeys(str(i) for i in lead_ids))
        field_list = ",".join(fields)
        results: dict[str, dict[str, Any] | GraphError] = {}
        for start in range(0, len(ids), BATCH_LIMIT):
            results.update(self._batch_chunk(ids[start:start + BATCH_LIMIT], field_list))
        return {i: results[i] for i in ids}

    def _batch_chunk(self, ids: list[str], field_list: str) -> dict[str, dict[str, Any] | GraphError]:
        results: dict[str, dict[str, Any] | GraphError] = {}
        pending = ids
        last_failure: dict[str, GraphError] = {}
        url = f"{self.base_url}/{self.api_version}/"
        for round_number in range(1, self.max_retries + 2):
            batch = [{"method": "GET", "relative_url": f"{_segment(i)}?fields={field_list}"} for i in pending]
            body = self._send("POST", url, data={"batch": _json(batch), "include_headers": "false"})
            if not isinstance(body, list):
                raise GraphError(f"batch answered with a {type(body).__name__}, not a list", path=url_path(url))
            retry: list[str] = []
            for position, lead_id in enumerate(pending):
                item = body[position] if position < len(body) else None
                outcome = self._batch_item(lead_id, item)
                if isinstance(outcome, TransientGraphError):
                    last_failure[lead_id] = outcome
                    retry.append(lead_id)
                else:
                    results[lead_id] = outcome
            if not retry:
                return results
            pending = retry
            if round_number <= self.max_retries:
                delay = self._backoff(round_number)
                logger.warning("batch: %d of %d items timed out or failed transiently (round %d); retrying in "
                               "%.2f s", len(retry), len(ids), round_number, delay)
                self._counters.add(retries=1, backoff_seconds=delay)
                self._sleep(delay)
        for lead_id in pending:
            last = last_failure[lead_id]
            results[lead_id] = TransientGraphError(last.message, attempts=self.max_retries + 1, code=last.code,
                                                   http_status=last.http_status, path=last.path)
        return results

    def _batch_item(self, lead_id: str, item: Any) -> dict[str, Any] | GraphError:
        path = f"/{self.api_version}/{lead_id}"
        if item is None:
            return TransientGraphError("Meta timed out on this batch item (null)", path=path)
        if not isinstance(item, dict):
            return TransientGraphError("malformed batch item", path=path)
        status = item.get("code") if isinstance(item.get("code"), int) else None
        raw = item.get("body")
        try:
            body = json.loads(raw) if isinstance(raw, (str, bytes)) else raw
        except ValueError:
            return TransientGraphError(f"invalid JSON in a batch item (HTTP {status})", http_status=status,
                                       path=path)
        if isinstance(body, dict) and "error" in body:
            return error_from_envelope(body, http_status=status, path=path, secrets=self._secrets)
        if status is not None and status >= 500:
            return TransientGraphError(f"HTTP {status} in a batch item", http_status=status, path=path)
        if not isinstance(body, dict) or (status is not None and status >= 300):
            return GraphError(f"unexpected batch item (HTTP {status})", http_status=status, path=path)
        return body


_INVALID = object()


def _origin(parts: Any) -> tuple[str, str, int | None]:
    scheme = (parts.scheme or "").lower()
    try:
        port = parts.port or _DEFAULT_PORTS.get(scheme)
    except ValueError:
        port = None
    return scheme, (parts.hostname or "").lower(), port


def _segment(node_id: str) -> str:
    """A node id as one safe path segment (ids are digits; anything else is percent-encoded)."""
    text = str(node_id)
    if not text or text in (".", ".."):
        raise ValueError(f"not a Graph node id: {node_id!r}")
    return quote(text, safe="_-.")


def _json(value: Any) -> str:
    """Compact, key-sorted JSON, the way Meta's SDK encodes list/dict parameters."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _encode_params(params: Mapping[str, Any] | None) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for key, value in (params or {}).items():
        if value is None:
            continue
        if key in SECRET_PARAMS:
            raise ValueError(f"{key} must not be passed as a parameter; the client sends credentials itself")
        if key == "fields" and isinstance(value, (list, tuple)):
            out.append((key, ",".join(map(str, value))))
        elif isinstance(value, bool):
            out.append((key, "true" if value else "false"))
        elif isinstance(value, (list, tuple, dict)):
            out.append((key, _json(value)))
        else:
            out.append((key, str(value)))
    return out


def _clean_paging(paging: Mapping[str, Any]) -> dict[str, Any]:
    cleaned = dict(paging)
    for key in ("next", "previous"):
        if isinstance(cleaned.get(key), str):
            cleaned[key] = strip_secret_params(cleaned[key])
    return cleaned


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() == "true"
    return value is True


def _short(err: GraphError) -> str:
    if err.code is not None:
        return f"code {err.code}" + (f", HTTP {err.http_status}" if err.http_status else "")
    return err.message.split(": ")[0][:100]


def _exception_summary(exc: BaseException, secrets: Iterable[str | None]) -> str:
    """An HTTP exception's text, redacted (it embeds the URL, whose query string holds the proof), shortened."""
    text = redact(exc, secrets)
    return text if len(text) <= 300 else text[:297] + "..."
