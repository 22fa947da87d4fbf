"""One distributor's sync: discover its forms, read new leads page by page, land them, then parse and store them.

The two halves are separate functions because Dagster runs them as two assets (``raw_leads`` then ``leads``), while
the CLI's ``sync`` runs both and prints the seed's result object. Exactly-once comes from the warehouse, not from
luck:

- every page is landed in ``raw_leads`` as it arrives (deduped on the lead id), so memory stays flat;
- a form's cursor (newest ``created_time`` seen) is written in the same transaction as the pagination's last page,
  so it only ever covers leads that are committed; a sync that dies mid-way re-reads from the old cursor and the
  dedupe absorbs the overlap;
- the next read starts ``sync_lookback_seconds`` below the cursor, because Meta filters on whole seconds and a lead
  can become visible a little after its ``created_time``;
- parsing takes every unprocessed raw row and marks it processed in the same transaction as the rows it produced.

A DuckDB warehouse is opened once for a burst of these transactions (``Warehouse.session``: the landing of the
pages that arrive within ``SESSION_SECONDS``, then the parsing), rather than once per transaction — reopening costs
a cold primary-key index and a checkpoint each time, which grow with the tables. The cross-process lock is held for
that burst only; a long sync lets go of the file between bursts so that other processes get their turn.

A form that fails (e.g. deleted, or not visible to this token) is reported and the other forms still sync; an
authentication or permission failure stops this distributor only, with Meta's reason turned into what to do.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

from leads_pipeline.lib.distributors import registry as distributor_registry
from leads_pipeline.lib.ingest import store as ingest
from leads_pipeline.lib.graph import GraphClient, GraphError
from leads_pipeline.lib.graph.errors import MissingPermissionError, TokenExpiredError, TokenInvalidError
from leads_pipeline.lib.ingest.parse import parse_created_time_unix
from leads_pipeline.lib.security import SecretKeyError
from leads_pipeline.lib.warehouse import Warehouse
from leads_pipeline.settings import Settings, get_settings

log = logging.getLogger(__name__)

ClientFactory = Callable[[str], GraphClient]

# A sync keeps the warehouse open across its transactions for at most this long at a time (see the module docstring).
SESSION_SECONDS = 1.0


class _Burst:
    """A warehouse session opened on first use and let go once it has lasted ``seconds`` (or at the end)."""

    def __init__(self, wh: Warehouse, seconds: float = SESSION_SECONDS):
        self.wh = wh
        self.seconds = seconds
        self._cm = None
        self._since = 0.0

    def __enter__(self) -> Warehouse:
        if self._cm is None:
            self._cm = self.wh.session()
            self._cm.__enter__()
            self._since = time.monotonic()
        return self.wh

    def __exit__(self, *exc: object) -> None:
        if exc[0] is not None or time.monotonic() - self._since >= self.seconds:
            self.close(*exc)

    def close(self, *exc: object) -> None:
        cm, self._cm = self._cm, None
        if cm is not None:
            cm.__exit__(*(exc or (None, None, None)))


class SyncSetupError(Exception):
    """The distributor's configuration cannot be synced as it is (the message says what to change)."""

    @property
    def user_message(self) -> str:
        return str(self)


@dataclass
class FormSource:
    """A lead form to read, with the token that may read it (a page token when discovery found one)."""

    form_id: str
    page_id: str | None
    token: str = field(repr=False)
    name: str | None = None


@dataclass
class ExtractResult:
    fetched: int = 0
    landed: int = 0
    forms: int = 0
    graph_requests: int = 0
    errors: list[str] = field(default_factory=list)
    fatal: str | None = None  # set when the whole distributor failed (token, permissions)


@dataclass
class SyncResult:
    """The seed's result object, plus the figures Dagster and ``sync_runs`` keep."""

    success: bool
    fetched: int
    stored: int
    errors: list[str]
    message: str
    distributor: str = ""
    sync_id: str = ""
    rejected: int = 0
    graph_requests: int = 0

    def seed_dict(self) -> dict[str, Any]:
        """Exactly the seed's JSON: ``{"success","fetched","stored","errors","message"}``."""
        return {k: getattr(self, k) for k in ("success", "fetched", "stored", "errors", "message")}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def make_client(token: str, settings: Settings | None = None) -> GraphClient:
    """A Graph client configured from the settings (base URL, version, app secret, limits)."""
    s = settings or get_settings()
    return GraphClient(
        token,
        base_url=s.graph_base_url,
        api_version=s.graph_api_version,
        app_secret=s.app_secret.get_secret_value() if s.app_secret else None,
        page_limit=s.graph_page_limit,
        timeout=s.graph_timeout_seconds,
        max_retries=s.graph_max_retries,
        max_throttle_wait=s.graph_max_throttle_wait_seconds,
    )


def discover_forms(wh: Warehouse, key: str, client: GraphClient) -> list[FormSource]:
    """The forms to read for a distributor: its configured ones, else every form of its pages.

    A user token lists its pages (with page tokens) through ``/me/accounts``; a page token cannot, and is then used
    as it is for the pages configured on the distributor. Discovered forms are recorded in ``distributor_forms``.
    """
    dist = distributor_registry.get(wh, key)
    token = distributor_registry.access_token(wh, key)
    page_tokens: dict[str, str] = {}
    try:
        for page in client.me_accounts():
            if page.get("id"):
                page_tokens[str(page["id"])] = page.get("access_token") or token
    except (TokenExpiredError, TokenInvalidError):
        raise
    except GraphError as exc:  # a page token has no /me/accounts: use it directly on the configured pages
        log.info("distributor %s: /me/accounts unavailable (%s); using the token as a page token", key, exc.code)
    page_ids = list(dist.page_ids) or list(page_tokens)
    if not page_ids and not dist.form_ids:
        raise SyncSetupError(
            "This token sees no Facebook Page: give the distributor --page-id, or use a token of a user who "
            "manages the Page (pages_show_list permission)."
        )
    sources: dict[str, FormSource] = {}
    discovered: list[dict[str, Any]] = []
    for page_id in page_ids:
        page_token = page_tokens.get(page_id, token)
        for form in client.with_token(page_token).leadgen_forms(page_id):
            fid = str(form["id"])
            discovered.append({**form, "page_id": page_id})
            if not dist.form_ids or fid in dist.form_ids:
                sources[fid] = FormSource(fid, page_id, page_token, form.get("name"))
    for fid in dist.form_ids:  # configured forms that discovery did not show: read them with the plain token
        sources.setdefault(fid, FormSource(fid, None, token))
    distributor_registry.record_forms(wh, key, discovered)
    return list(sources.values())


def extract(
    wh: Warehouse,
    key: str,
    sync_id: str,
    *,
    settings: Settings | None = None,
    client_factory: ClientFactory | None = None,
    on_page: Callable[[str, int], None] | None = None,
    burst: _Burst | None = None,
) -> ExtractResult:
    """Read every form's new leads and land them in ``raw_leads`` (see the module docstring for the guarantees)."""
    s = settings or get_settings()
    own = burst is None
    burst = burst or _Burst(wh)
    try:
        return _extract(wh, key, sync_id, s, client_factory, on_page, burst)
    finally:
        if own:
            burst.close()


def _extract(wh: Warehouse, key: str, sync_id: str, s: Settings, client_factory: ClientFactory | None,
             on_page: Callable[[str, int], None] | None, burst: _Burst) -> ExtractResult:
    factory = client_factory or (lambda token: make_client(token, s))
    result = ExtractResult()
    try:
        client = factory(distributor_registry.access_token(wh, key))
    except SecretKeyError as exc:  # LEADS_SECRET_KEY missing or without the key that encrypted the token
        result.fatal = str(exc)
        result.errors.append(str(exc))
        return result
    try:
        forms = discover_forms(wh, key, client)
    except (GraphError, SyncSetupError) as exc:
        result.fatal = exc.user_message
        result.errors.append(exc.user_message)
        result.graph_requests = client.request_count
        return result
    result.forms = len(forms)
    for source in forms:
        form_client = client.with_token(source.token)
        before = form_client.request_count
        try:
            _extract_form(wh, key, sync_id, source, form_client, s, result, on_page, burst)
        except (TokenExpiredError, TokenInvalidError, MissingPermissionError) as exc:
            result.fatal = exc.user_message
            result.errors.append(f"form {source.form_id}: {exc.user_message}")
            result.graph_requests += form_client.request_count - before
            break
        except GraphError as exc:
            result.errors.append(f"form {source.form_id}: {exc.user_message}")
        result.graph_requests += form_client.request_count - before
    result.graph_requests += client.request_count
    return result


def _extract_form(wh, key, sync_id, source: FormSource, client: GraphClient, s: Settings, result, on_page,
                  burst: _Burst | None = None) -> None:
    burst = burst or _Burst(wh, 0.0)
    with burst:
        cursor = ingest.get_cursor(wh, key, source.form_id)
    since = max(cursor - s.sync_lookback_seconds, 0) if cursor is not None else None
    newest = cursor
    for page in client.iter_lead_pages(source.form_id, since=since):
        result.fetched += len(page.leads)
        for lead in page.leads:
            t = parse_created_time_unix(lead.get("created_time"))
            if t is not None and (newest is None or t > newest):
                newest = t
        last = not page.next_url_present
        with burst:
            result.landed += ingest.land_raw_page(
                wh,
                sync_id=sync_id,
                distributor=key,
                page_id=source.page_id,
                form_id=source.form_id,
                leads=page.leads,
                cursor=newest if last and newest is not None else None,
            )
        if on_page:
            on_page(source.form_id, result.fetched)


def load(wh: Warehouse, key: str, *, sync_id: str | None = None) -> ingest.ProcessResult:
    """Parse and store every unprocessed raw lead of the distributor (with its default phone region)."""
    dist = distributor_registry.get(wh, key)
    return ingest.process_raw(wh, key, default_region=dist.default_region, sync_id=sync_id)


def sync_distributor(
    wh: Warehouse,
    key: str,
    *,
    trigger: str = "manual",
    settings: Settings | None = None,
    client_factory: ClientFactory | None = None,
    on_page: Callable[[str, int], None] | None = None,
) -> SyncResult:
    """Extract then load one distributor, recorded in ``sync_runs``; never raises for a Graph API failure."""
    sync_id = ingest.start_sync(wh, key, trigger)
    burst = _Burst(wh)
    try:
        extracted = extract(wh, key, sync_id, settings=settings, client_factory=client_factory, on_page=on_page,
                            burst=burst)
        with burst:  # the parsing right after the last landing, in the same open of the warehouse
            processed = load(wh, key)
            result = summarize(key, sync_id, extracted, processed)
            ingest.finish_sync(wh, sync_id, result)
    finally:
        burst.close()
    return result


def summarize(key: str, sync_id: str, extracted: ExtractResult, processed: ingest.ProcessResult) -> SyncResult:
    """The seed's result object and message for one extract + load."""
    success = extracted.fatal is None and not extracted.errors
    parts = [f"{processed.stored} new of {extracted.fetched} fetched leads stored"]
    if processed.rejected:
        parts.append(f"{processed.rejected} rejected (see rejected_leads)")
    if extracted.fatal:
        message = f"Sync failed: {extracted.fatal}"
    elif extracted.errors:
        message = "; ".join(parts) + f"; {len(extracted.errors)} form(s) failed"
    else:
        message = "; ".join(parts)
    return SyncResult(
        success=success,
        fetched=extracted.fetched,
        stored=processed.stored,
        errors=list(extracted.errors),
        message=message,
        distributor=key,
        sync_id=sync_id,
        rejected=processed.rejected,
        graph_requests=extracted.graph_requests,
    )


def test_connection(wh: Warehouse, key: str, *, settings: Settings | None = None,
                    client_factory: ClientFactory | None = None) -> dict[str, Any]:
    """The seed's connection test ``{"success","message"}``: token valid, forms visible, leads readable."""
    s = settings or get_settings()
    factory = client_factory or (lambda token: make_client(token, s))
    try:
        client = factory(distributor_registry.access_token(wh, key))
    except SecretKeyError as exc:
        return {"success": False, "message": str(exc)}
    try:
        info = client.debug_token()
        forms = discover_forms(wh, key, client)
        for source in forms[:1]:
            next(iter(client.with_token(source.token).iter_lead_pages(source.form_id, limit=1)), None)
    except (GraphError, SyncSetupError) as exc:
        return {"success": False, "message": exc.user_message}
    expires = info.get("expires_at")
    expiry = "never expires" if not expires else f"expires at unix time {expires}"
    return {"success": True, "message": f"Connection OK: token valid ({expiry}); {len(forms)} lead form(s) readable."}
