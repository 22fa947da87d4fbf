"""Fetching leads by id (the webhook processor's runs of :func:`~leads_pipeline.lib.ingest.sync.sync_distributor`).

A ``leadgen`` webhook names a lead but carries none of its answers, so the run fetches exactly the ids it was given
through Graph batch requests (≤ 50 ids per POST), each Page's ids with that Page's token (from ``/me/accounts`` for a
user token). Every id gets an outcome (see :data:`~leads_pipeline.lib.ingest.runs.LEAD_OUTCOMES`): Meta's 100/33
right after the event is ``not_found`` (the lead may become readable later: the caller retries it), throttling,
transient failures and token or permission problems are ``retry``, other permanent errors of one lead ``failed``.
What was fetched is landed and stored like a form's page; its outcome is then read back from the tables.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from leads_pipeline.lib.graph import (
    GraphClient,
    GraphError,
    ObjectNotFoundError,
    is_call_or_token_error,
    page_tokens,
)
from leads_pipeline.lib.ingest.discovery import is_final
from leads_pipeline.lib.ingest.runs import LeadOutcome
from leads_pipeline.lib.warehouse import Conn

__all__ = ["Fetched", "fetch", "outcomes", "pages", "tombstoned"]

_MAX_ERROR = 500


@dataclass
class Fetched:
    """The leads Meta gave (by id), the outcome of each id it did not, and what failed."""

    leads: dict[str, dict[str, Any]] = field(default_factory=dict)
    outcomes: dict[str, LeadOutcome] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    fatal: str | None = None
    graph_requests: int = 0
    ok_groups: int = 0


def _short(text: str) -> str:
    return text if len(text) <= _MAX_ERROR else text[: _MAX_ERROR - 1] + "…"


def tombstoned(conn: Conn, lead_ids: Sequence[str]) -> set[str]:
    """The ids deleted on request (never fetched again)."""
    if not lead_ids:
        return set()
    conn.stage("wanted_ids", {"leadgen_id": "TEXT"}, [(i,) for i in lead_ids])
    return {r["meta_lead_id"] for r in conn.query(
        "SELECT t.meta_lead_id FROM lead_tombstones t JOIN wanted_ids w ON w.leadgen_id = t.meta_lead_id")}


def fetch(client: GraphClient, wanted: Sequence[tuple[str, str | None, str | None]]) -> Fetched:
    """Fetch ``wanted`` ``(leadgen_id, page_id, form_id)`` with the right token per Page (no warehouse)."""
    out = Fetched()
    if not wanted:
        return out
    try:
        tokens = page_tokens(client) or {}
    except GraphError as exc:
        message = _short(str(exc))
        if is_final(exc, derived=False):
            out.fatal = exc.user_message
        out.errors.append(f"listing the token's Pages (/me/accounts) failed: {message}")
        out.outcomes = {w[0]: LeadOutcome("retry", message) for w in wanted}
        return out
    groups: dict[str | None, list[str]] = {}
    for lead_id, page_id, _form in wanted:
        groups.setdefault(page_id if page_id in tokens else None, []).append(lead_id)
    for page_id, ids in groups.items():
        reader = client.with_token(tokens[page_id]) if page_id is not None else client
        try:
            answers = reader.get_leads_batch(ids)
        except GraphError as exc:
            message = _short(str(exc))
            out.errors.append(f"Page {page_id or '(token)'}: {message}")
            out.outcomes.update({i: LeadOutcome("retry", message) for i in ids})
            if is_final(exc, derived=page_id is not None):
                out.fatal = exc.user_message
                rest = [w[0] for w in wanted if w[0] not in out.outcomes and w[0] not in out.leads]
                out.outcomes.update({i: LeadOutcome("retry", message) for i in rest})
                break
            continue
        finally:
            if reader is not client:
                out.graph_requests += reader.request_count
        out.ok_groups += 1
        for lead_id, answer in answers.items():
            if isinstance(answer, dict):
                out.leads[lead_id] = answer
            elif isinstance(answer, ObjectNotFoundError):
                out.outcomes[lead_id] = LeadOutcome("not_found", _short(str(answer)))
            elif is_call_or_token_error(answer):
                out.outcomes[lead_id] = LeadOutcome("retry", _short(str(answer)))
            elif isinstance(answer, GraphError):
                out.outcomes[lead_id] = LeadOutcome("failed", _short(str(answer)))
            else:
                out.outcomes[lead_id] = LeadOutcome("failed", "unexpected answer from the Graph API")
    return out


def pages(leads: dict[str, dict[str, Any]], wanted: Sequence[tuple[str, str | None, str | None]],
          ) -> dict[tuple[str | None, str | None], list[dict[str, Any]]]:
    """The fetched leads grouped as pages of ``(page_id, form_id)`` (the form Meta names, else the webhook's)."""
    where = {lead_id: (page_id, form_id) for lead_id, page_id, form_id in wanted}
    out: dict[tuple[str | None, str | None], list[dict[str, Any]]] = {}
    for lead_id, lead in leads.items():
        page_id, form_id = where.get(lead_id, (None, None))
        form = lead.get("form_id") or form_id
        out.setdefault((page_id, str(form) if form else None), []).append(lead)
    return out


def outcomes(conn: Conn, key: str, sync_id: str, lead_ids: Sequence[str]) -> dict[str, LeadOutcome]:
    """What the tables now say about fetched ``lead_ids``: stored by this run, already stored, held by another
    distributor (named), quarantined (with the reason) or deleted."""
    if not lead_ids:
        return {}
    conn.stage("fetched_ids", {"leadgen_id": "TEXT"}, [(i,) for i in lead_ids])
    rows = conn.query(
        "SELECT f.leadgen_id, l.distributor, l.sync_id, "
        "EXISTS (SELECT 1 FROM lead_tombstones t WHERE t.meta_lead_id = f.leadgen_id) AS gone, "
        "(SELECT max(r.reason) FROM rejected_leads r WHERE r.distributor = ? AND r.meta_lead_id = f.leadgen_id) "
        "AS reason FROM fetched_ids f LEFT JOIN leads l ON l.meta_lead_id = f.leadgen_id",
        [key],
    )
    out: dict[str, LeadOutcome] = {}
    for r in rows:
        if r["gone"]:
            out[r["leadgen_id"]] = LeadOutcome("deleted")
        elif r["distributor"] == key:
            out[r["leadgen_id"]] = LeadOutcome("stored" if r["sync_id"] == sync_id else "exists")
        elif r["distributor"] is not None:
            out[r["leadgen_id"]] = LeadOutcome(
                "held_elsewhere", f"lead already belongs to distributor '{r['distributor']}': not stored for '{key}'")
        elif r["reason"] is not None:
            out[r["leadgen_id"]] = LeadOutcome("quarantined", f"rejected: {r['reason']} (see rejected_leads)")
        else:
            out[r["leadgen_id"]] = LeadOutcome("retry", "fetched but not stored yet (see the run's errors)")
    return out
