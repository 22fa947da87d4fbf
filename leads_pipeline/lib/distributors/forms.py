"""What discovery learnt about lead forms (table ``distributor_forms``), and Meta's limits said out loud.

``distributor_forms`` holds one row per form a distributor's token showed on ``/{page}/leadgen_forms``: its name,
status, locale, questions and Meta's counts. Seeing a form is not owning it — ownership is ``form_owners``
(:mod:`.ownership`) — but the counts matter for the owner: ``leads_count`` is what Meta says the form collected (the
completeness check compares it with the stored leads), and ``expired_leads_count`` counts leads Meta no longer serves
through the API (about 90 days after they were created). Those leads exist only in the Ads Manager export, so
:func:`form_limit_warnings` tells the operator to import that file instead of letting a sync look complete.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from leads_pipeline.lib.warehouse import Conn, Warehouse

__all__ = ["form_details", "form_limit_warnings", "owned_form_details", "questions_of", "record"]

_STAGE_COLUMNS = {"distributor": "TEXT", "page_id": "TEXT", "form_id": "TEXT", "form_name": "TEXT", "status": "TEXT",
                  "locale": "TEXT", "leads_count": "BIGINT", "expired_leads_count": "BIGINT", "questions": "JSON"}
# What is kept of a question and of a choice (Meta sends more: ids, conditional answers, inline context).
_QUESTION_KEYS = ("key", "label", "type")


def _count(value: Any) -> int | None:
    """Meta's counts arrive as numbers (or numeric strings); anything else is unknown, not zero."""
    if value is None or isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def questions_of(form: Mapping[str, Any]) -> list[dict[str, Any]] | None:
    """The form's questions as kept: ``[{"key", "label", "type", "options": [{"key", "value"}]?}]`` in the form's
    order, or None when Meta sent none (unknown, so a recorded list is kept). Anything malformed is skipped."""
    raw = form.get("questions")
    if isinstance(raw, Mapping):  # a Graph edge shape ({"data": [...]}) is accepted too
        raw = raw.get("data")
    if not isinstance(raw, list):
        return None
    out = []
    for q in raw:
        if not isinstance(q, Mapping) or not isinstance(q.get("key"), str) or not q["key"]:
            continue
        kept: dict[str, Any] = {k: str(q[k]) for k in _QUESTION_KEYS if q.get(k) is not None}
        options = q.get("options")
        if isinstance(options, list):
            kept["options"] = [{"key": str(o["key"]), "value": str(o.get("value") or o["key"])}
                               for o in options if isinstance(o, Mapping) and o.get("key") is not None]
        out.append(kept)
    return out


def record(conn: Conn, key: str, forms: Iterable[Mapping[str, Any]]) -> dict[str, str | None]:
    """Upsert the forms discovery found for ``key`` into ``distributor_forms``; returns ``{form_id: page_id|None}``.

    A count the discovery did not ask Meta for (``None``) keeps the count recorded before: unknown is not zero.
    """
    rows: dict[str, tuple] = {}
    for form in forms:
        form_id = form.get("id")
        if form_id is None or str(form_id) == "":
            continue
        questions = questions_of(form)
        rows[str(form_id)] = (key, str(form.get("page_id") or ""), str(form_id), _text(form.get("name")),
                              _text(form.get("status")), _text(form.get("locale")), _count(form.get("leads_count")),
                              _count(form.get("expired_leads_count")),
                              None if questions is None else json.dumps(questions, ensure_ascii=False))
    if not rows:
        return {}
    conn.stage("found_forms", _STAGE_COLUMNS, [rows[f] for f in sorted(rows)])
    conn.execute(
        "INSERT INTO distributor_forms (distributor, page_id, form_id, form_name, status, locale, leads_count, "
        "expired_leads_count, questions, discovered_at) SELECT distributor, page_id, form_id, form_name, status, "
        "locale, leads_count, expired_leads_count, questions, CURRENT_TIMESTAMP FROM found_forms ORDER BY form_id "
        "ON CONFLICT (distributor, form_id) DO UPDATE SET page_id = excluded.page_id, "
        "form_name = excluded.form_name, status = excluded.status, locale = excluded.locale, "
        "leads_count = COALESCE(excluded.leads_count, distributor_forms.leads_count), "
        "expired_leads_count = COALESCE(excluded.expired_leads_count, distributor_forms.expired_leads_count), "
        "questions = COALESCE(excluded.questions, distributor_forms.questions)"
    )
    return {form_id: (row[1] or None) for form_id, row in rows.items()}


def _owned_rows(conn: Conn, key: str, form_ids: Iterable[str] | None = None) -> list[dict[str, Any]]:
    """The forms ``key`` owns, with what its discovery recorded about them (name, counts; NULL when never seen)."""
    params: list[Any] = [key]
    only = ""
    if form_ids is not None:
        ids = sorted({str(f) for f in form_ids})
        if not ids:
            return []
        only = f" AND o.form_id IN ({', '.join('?' for _ in ids)})"
        params += ids
    return conn.query(
        "SELECT o.form_id, o.page_id, o.claim, o.claimed_at, f.form_name, f.status, f.locale, f.leads_count, "
        "f.expired_leads_count FROM form_owners o LEFT JOIN distributor_forms f "
        "ON f.distributor = o.distributor AND f.form_id = o.form_id "
        f"WHERE o.distributor = ?{only} ORDER BY o.form_id",
        params,
    )


def form_limit_warnings(conn: Conn, key: str, form_ids: Iterable[str] | None = None) -> list[str]:
    """One sentence per form ``key`` owns (or only ``form_ids`` of them) whose leads Meta no longer serves.

    For ``test-connection`` and a form's first sync: a lead past Meta's limit can be read only from the Ads Manager
    export, and nothing else would tell the operator that the warehouse is missing it.
    """
    warnings = []
    for row in _owned_rows(conn, key, form_ids):
        expired = row["expired_leads_count"]
        if not expired or expired <= 0:
            continue
        label = f"form {row['form_id']}" + (f" ({row['form_name']})" if row["form_name"] else "")
        leads = "1 lead is" if expired == 1 else f"{expired} leads are"
        warnings.append(
            f"{label}: {leads} older than Meta's 90-day limit and can no longer be read through the API; download "
            f"them in Ads Manager and run `leads-pipeline import FILE --distributor {key}`"
        )
    return warnings


def owned_form_details(conn: Conn, key: str) -> list[dict[str, Any]]:
    """The forms ``key`` owns, JSON-ready (for ``leads-pipeline distributors forms``)."""
    return [
        {"form_id": r["form_id"], "page_id": r["page_id"], "claim": r["claim"], "name": r["form_name"],
         "status": r["status"], "locale": r["locale"], "leads_count": r["leads_count"],
         "expired_leads_count": r["expired_leads_count"],
         "claimed_at": r["claimed_at"].isoformat() if r["claimed_at"] is not None else None}
        for r in _owned_rows(conn, key)
    ]


def form_details(wh: Warehouse, key: str, form_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    """``{form_id: {"name", "questions"}}`` of ``key``'s recorded forms among ``form_ids`` (one read), for showing a
    lead's answers under the questions the form asked; a form never discovered is absent, ``questions`` None when
    its discovery predates them."""
    ids = sorted({str(f) for f in form_ids if f})
    if not ids:
        return {}
    with wh.transaction(read_only=True) as conn:
        rows = conn.query(
            f"SELECT form_id, form_name, CAST(questions AS TEXT) AS questions FROM distributor_forms "
            f"WHERE distributor = ? AND form_id IN ({', '.join('?' for _ in ids)})", [key, *ids])
    out = {}
    for r in rows:
        questions = json.loads(r["questions"]) if r["questions"] else None
        out[r["form_id"]] = {"name": r["form_name"], "questions": questions if isinstance(questions, list) else None}
    return out
