"""Which forms a distributor's run reads, with which token — and what failed on the way, Page by Page.

The network half (:func:`list_pages`) runs outside any warehouse transaction: ``/me/accounts`` (the Page tokens of a
user token), then ``/{page}/leadgen_forms`` for each Page the distributor reads. The warehouse half
(:func:`choose_forms`) then records what was seen and settles ownership
(:mod:`leads_pipeline.lib.distributors.ownership`): a distributor with ``--form-id`` reads exactly the forms it
claims; one without reads the forms of its Pages that it owns after claiming the unowned ones — never a form another
distributor owns.

Failure isolation: one Page whose forms cannot be listed (no access, another business's Page, Leads Access Manager,
a throttle that outlasts the client's waits) becomes a *failure* naming the Page, Meta's message and what to do; the
other Pages go on. Only a token error of the distributor's own token (190/102) is final for the distributor; a token
error of a Page token from ``/me/accounts`` concerns that Page only.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from leads_pipeline.lib.distributors import ownership
from leads_pipeline.lib.distributors.forms import form_limit_warnings
from leads_pipeline.lib.graph import (
    GraphClient,
    GraphError,
    MissingPermissionError,
    ObjectNotFoundError,
    ThrottledError,
    TokenExpiredError,
    TokenInvalidError,
    TransientGraphError,
    page_tokens,
)
from leads_pipeline.lib.warehouse import Conn, Warehouse
from leads_pipeline.lib.webhooks import inbox

log = logging.getLogger(__name__)

__all__ = [
    "DistributorFailure",
    "FormSource",
    "Listing",
    "choose_forms",
    "failure",
    "is_final",
    "list_pages",
    "route_waiting",
]


class DistributorFailure(Exception):
    """A failure final for the whole distributor this run (its token, its configuration); says what to do."""

    @property
    def user_message(self) -> str:
        return str(self)


@dataclass
class FormSource:
    """A lead form to read, with the token that may read it; ``derived``: a Page token from ``/me/accounts``."""

    form_id: str
    page_id: str | None
    token: str = field(repr=False)
    derived: bool = False


@dataclass
class Listing:
    """What the network half found: the Page tokens, the forms listed per Page, and the Pages that failed."""

    tokens: dict[str, str] | None  # None: the distributor's token is a Page token
    forms: list[dict[str, Any]] = field(default_factory=list)
    listed_pages: set[str] = field(default_factory=set)
    failures: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    graph_requests: int = 0  # of the Page-token clients (the distributor's client counts its own)


def what_to_do(exc: GraphError, kind: str, object_id: str) -> str:
    """One sentence an operator can act on, for a Page's or form's failure."""
    if isinstance(exc, ThrottledError):
        return "Meta is throttling these calls; the next sync tries again (or lower the sync frequency)."
    if isinstance(exc, TransientGraphError):
        return "Meta failed temporarily; the next sync tries again from the stored cursor, nothing is lost."
    if isinstance(exc, (MissingPermissionError, TokenExpiredError, TokenInvalidError)):
        return exc.user_message
    if isinstance(exc, ObjectNotFoundError):
        return (f"Check that {kind} {object_id} exists and that the token's user can see it (a role on the Page, "
                "access in Leads Access Manager); if it belongs to another business, remove it from this distributor.")
    return f"Check {kind} {object_id} and the token's access to it; Meta's message says what it refused."


def failure(kind: str, object_id: str, exc: GraphError) -> tuple[dict[str, Any], str]:
    """The ``failures`` entry and the ``errors`` line for ``kind`` ('page' or 'form') ``object_id``."""
    label = "Page" if kind == "page" else "form"
    entry = {f"{kind}_id": object_id, "error": exc.message, "what_to_do": what_to_do(exc, label, object_id)}
    return entry, f"{label} {object_id}: {exc}"


def is_final(exc: BaseException, derived: bool) -> bool:
    """Whether ``exc`` ends the distributor's run: a token error of the distributor's own token only."""
    return isinstance(exc, (TokenExpiredError, TokenInvalidError)) and not derived


def list_pages(client: GraphClient, page_ids: tuple[str, ...], form_ids: tuple[str, ...],
               owned: dict[str, str | None]) -> Listing:
    """The network half of discovery (no warehouse): Page tokens, then each Page's forms.

    Pages listed: the configured ``page_ids``; without any, every Page of a user token — or, for a distributor
    with ``--form-id``, the Pages its claimed forms are on (all of the token's Pages when one is not known yet).
    Raises :class:`DistributorFailure` for a failure final for the distributor.
    """
    try:
        tokens = page_tokens(client)
    except (TokenExpiredError, TokenInvalidError) as exc:
        raise DistributorFailure(exc.user_message) from exc
    except GraphError as exc:  # throttled or failing after the client's retries: this run cannot know the Pages
        raise DistributorFailure(f"Listing the token's Pages (/me/accounts) failed: {exc.user_message}") from exc
    listing = Listing(tokens)
    if form_ids:
        pages = list(page_ids) + [p for p in owned.values() if p and p not in page_ids]
        if tokens and (not pages or any(p is None for p in owned.values())):
            pages += [p for p in tokens if p not in pages]
    else:
        pages = list(page_ids) or list(tokens or ())
        if not pages:
            raise DistributorFailure(
                "This token sees no Facebook Page: give the distributor --page-id, or use a token of a user who "
                "manages the Page (pages_show_list permission)."
            )
    for page_id in dict.fromkeys(pages):
        derived = bool(tokens) and page_id in tokens
        reader = client.with_token(tokens[page_id]) if derived else client
        try:
            forms = reader.leadgen_forms(page_id)
        except GraphError as exc:
            if is_final(exc, derived):
                raise DistributorFailure(exc.user_message) from exc
            entry, line = failure("page", page_id, exc)
            listing.failures.append(entry)
            listing.errors.append(line)
            log.info("Page %s: listing forms failed (%s %s)", page_id, type(exc).__name__, exc.code)
            continue
        finally:
            if reader is not client:  # a Page-token client counts its own requests
                listing.graph_requests += reader.request_count
        listing.listed_pages.add(page_id)
        for form in forms:
            if isinstance(form, dict) and form.get("id") is not None:
                listing.forms.append({**form, "id": str(form["id"]), "page_id": page_id})
    return listing


def choose_forms(conn: Conn, key: str, token: str, explicit: bool, listing: Listing,
                 cursors: dict[str, int]) -> tuple[list[FormSource], list[str]]:
    """The warehouse half (in the caller's transaction, no network): record and claim what was listed, then the
    forms to read and the warnings of forms read for the first time (leads out of Meta's reach)."""
    discovered = ownership.claim_discovered(conn, key, listing.forms) if listing.forms else set()
    owned = ownership.owned_forms(conn, key)
    if explicit:
        chosen = owned
    else:
        listed = {f["id"]: f["page_id"] for f in listing.forms}
        chosen = {f: listed[f] for f in sorted(discovered) if f in listed}
    tokens = listing.tokens or {}
    sources = []
    for form_id, page_id in chosen.items():
        derived = page_id is not None and page_id in tokens
        sources.append(FormSource(form_id, page_id, tokens[page_id] if derived else token, derived))
    first = [s.form_id for s in sources if s.form_id not in cursors]
    warnings = form_limit_warnings(conn, key, first) if first else []
    return sources, warnings


def route_waiting(wh: Warehouse, owned: dict[str, str | None], forms: list[FormSource]) -> None:
    """Forms a discovery claimed (not in ``owned`` before): webhook changes waiting for their owner go to it now."""
    if any(f.form_id not in owned for f in forms):
        inbox.reroute_unrouted(wh)
