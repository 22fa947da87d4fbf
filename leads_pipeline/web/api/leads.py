"""``/api/stats`` and ``/api/leads…``: reading and working leads, always as the caller (``lib/crm`` scopes both).

A lead outside the caller's distributors is answered 404, exactly like one that does not exist; a filter only ever
narrows the caller's distributors; stats for a distributor outside them are a 404 too.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from starlette.requests import Request

from leads_pipeline.lib import crm
from leads_pipeline.lib.crm.queries import MAX_PER_PAGE, SORTS

from .. import auth
from .deps import LeadId, Wh, count, current_caller, may, text
from .errors import ApiError
from .models import (
    MAX_EMAIL,
    MAX_PAGE,
    Assign,
    AssignResult,
    Bulk,
    BulkResult,
    Delete,
    DeleteResult,
    Interaction,
    InteractionResult,
    Lead,
    LeadDetail,
    LeadPage,
    Note,
    NoteResult,
    Stats,
    StatusChange,
    StatusResult,
)
from .responses import errors
from .routing import ApiRoute

router = APIRouter(route_class=ApiRoute, tags=["leads"])

_BULK_PERMISSION = {"status": "lead.status", "assign": "lead.assign", "delete": "lead.delete"}

# Who may call what (403 otherwise), and the query parameters, as the routes' parameter types.
Lister = may("lead.list")
Viewer = may("lead.show")
StatusChanger = may("lead.status")
Assigner = may("lead.assign")
NoteTaker = may("lead.note")
ContactLogger = may("lead.log")
Deleter = may("lead.delete")

Distributor = text("Only this distributor (key; comma-separate several for lists), within the caller's.")
StatusFilter = text(f"Status, or comma-separated statuses: {', '.join(crm.STATUSES)}.")
Search = text("Name, email or phone contains this (case-insensitive; digits match phones in any format).")
AssignedTo = text("User id or email, or 'unassigned'.", MAX_EMAIL)
CreatedFrom = text("Created on or after (YYYY-MM-DD or ISO 8601).", 40)
CreatedTo = text("Created before; a bare date includes that whole day.", 40)
Sort = text(f"One of {', '.join(SORTS)}; prefix '-' for descending (default -created_time).", 40)
PageNumber = count(1, MAX_PAGE, "Page, from 1.")
PerPage = count(1, MAX_PER_PAGE, "Leads per page.")
Limit = count(1, 1000, "How many.")


@router.get("/api/stats", response_model=Stats, operation_id="stats", responses=errors(400, 404),
            summary="Lead counts by status (the seed's stats)")
def stats(wh: Wh, caller: Lister, distributor: Distributor = None) -> Any:
    return crm.stats(wh, distributor or None, actor=caller.principal)


@router.get("/api/leads", response_model=LeadPage, operation_id="listLeads", responses=errors(400),
            summary="List leads with filters, search and pagination")
def list_leads(
    wh: Wh,
    caller: Lister,
    distributor: Distributor = None,
    status: StatusFilter = None,
    search: Search = None,
    assigned_to: AssignedTo = None,
    created_from: CreatedFrom = None,
    created_to: CreatedTo = None,
    sort: Sort = None,
    page: PageNumber = 1,
    per_page: PerPage = 50,
) -> Any:
    given = {"distributor": distributor, "status": status, "search": search, "assigned_to": assigned_to,
             "created_from": created_from, "created_to": created_to}
    filters = {k: v for k, v in given.items() if v not in (None, "")}
    result = crm.list_leads(wh, actor=caller.principal, page=page, per_page=per_page,
                            sort=sort or "-created_time", **filters)
    return result.to_dict()


@router.get("/api/leads/recent", response_model=list[Lead], operation_id="recentLeads", responses=errors(400),
            summary="The newest leads (the seed's recent leads)")
def recent_leads(wh: Wh, caller: Lister, limit: Limit = 10,
                 distributor: Distributor = None) -> Any:
    return crm.recent_leads(wh, limit, distributor or None, actor=caller.principal)


@router.post("/api/leads/bulk", response_model=BulkResult, operation_id="bulkLeads",
             responses=errors(404, body=True), summary="One action on many leads, all or nothing",
             description="Needs the permission of its action: lead.status, lead.assign, or lead.delete "
                         "(superadmin). Unknown ids — and ids of leads outside the caller's distributors — answer "
                         "404 naming them; a status move some lead cannot make answers 400 naming the leads by why. "
                         "Either way nothing changes.")
def bulk(wh: Wh, caller: Lister, body: Bulk) -> Any:
    crm.authorize(caller.principal, _BULK_PERMISSION[body.action])
    given = body.given()
    for name in ("action", "ids", "filter", "dry_run"):
        given.pop(name, None)
    args = {k: v for k, v in given.items() if v is not None}
    filt = body.filter.given() if body.filter is not None else None
    result = crm.bulk(wh, body.action, ids=body.ids, filter=filt, actor=caller.principal, dry_run=body.dry_run,
                      **args)
    return result.to_dict()


@router.get("/api/leads/{id}", response_model=LeadDetail, operation_id="getLead", responses=errors(404),
            summary="One lead with its timeline")
def get_lead(wh: Wh, caller: Viewer, id: LeadId) -> Any:
    return crm.get_lead(wh, id, actor=caller.principal)


async def reason_not_in_query(request: Request,
                              caller: Annotated[auth.Caller, Depends(current_caller)]) -> None:
    """The reason for a delete names a person's request, often with their contact data: it goes in the body, never
    in the URL (which proxies and access logs keep)."""
    if "reason" in request.query_params:
        raise ApiError(400, 'Send the reason for deleting in the JSON body, {"reason": "…"}, not in the URL.',
                       "invalid_input")


ReasonNotInQuery = Annotated[None, Depends(reason_not_in_query)]


@router.delete("/api/leads/{id}", response_model=DeleteResult, operation_id="deleteLead",
               responses=errors(404, body=True), summary="Delete a lead (privacy request; superadmin)",
               description="Erased; a tombstone keeps it from coming back. The reason goes in the body (a `?reason=` "
                           "query is refused).")
def delete_lead(wh: Wh, caller: Deleter, _: ReasonNotInQuery, id: LeadId, body: Delete) -> Any:
    return crm.delete_lead(wh, id, caller.principal, body.reason)


@router.post("/api/leads/{id}/status", response_model=StatusResult, operation_id="changeStatus",
             responses=errors(404, body=True), summary="Change a lead's status",
             description="Allowed moves: " + "; ".join(f"{f} → {', '.join(t) or '(final)'}"
                                                       for f, t in crm.TRANSITIONS.items()) + ".")
def change_status(wh: Wh, caller: StatusChanger, id: LeadId, body: StatusChange) -> Any:
    return crm.change_status(wh, id, body.status, caller.principal, body.note)


@router.post("/api/leads/{id}/assign", response_model=AssignResult, operation_id="assignLead",
             responses=errors(404, body=True), summary="Assign a lead to a user (one who may see it)")
def assign(wh: Wh, caller: Assigner, id: LeadId, body: Assign) -> Any:
    return crm.assign(wh, id, body.user, caller.principal)


@router.post("/api/leads/{id}/note", response_model=NoteResult, operation_id="addNote",
             responses=errors(404, body=True), summary="Add a note")
def add_note(wh: Wh, caller: NoteTaker, id: LeadId, body: Note) -> Any:
    return crm.add_note(wh, id, body.text, caller.principal)


@router.post("/api/leads/{id}/interactions", response_model=InteractionResult, operation_id="logInteraction",
             responses=errors(404, body=True), summary="Log a call, email or SMS")
def log_interaction(wh: Wh, caller: ContactLogger, id: LeadId, body: Interaction) -> Any:
    return crm.log_interaction(wh, id, body.kind, caller.principal, direction=body.direction or "outbound",
                               outcome=body.outcome, body=body.body, occurred_at=body.occurred_at)


@router.post("/api/leads/{id}/delete", response_model=DeleteResult, operation_id="deleteLeadPost",
             responses=errors(404, body=True), summary="Delete a lead (the seed's POST form; superadmin)")
def delete_lead_post(wh: Wh, caller: Deleter, id: LeadId, body: Delete) -> Any:
    return crm.delete_lead(wh, id, caller.principal, body.reason)
