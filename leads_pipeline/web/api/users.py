"""``/api/users…``: the users the caller may see (a staff user: those who share one of their distributors, and the
superadmins), and — superadmins only — adding users, (de)activating them and naming a staff user's distributors."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from leads_pipeline.lib import crm
from leads_pipeline.lib.crm.users import find_user

from .deps import Flag, UserRef, Wh, may
from .errors import ApiError
from .models import User, UserCreate, UserDistributors
from .responses import errors
from .routing import ApiRoute

router = APIRouter(route_class=ApiRoute, tags=["users"])

Lister = may("user.list")
Manager = may("user.manage")
ActiveOnly = Annotated[Flag, Query(description="Hide deactivated users.")]


@router.get("/api/users", response_model=list[User], operation_id="listUsers", responses=errors(400),
            summary="Users (those the caller may see)")
def list_users(wh: Wh, caller: Lister, active_only: ActiveOnly = False) -> Any:
    return crm.list_users(wh, actor=caller.principal, include_inactive=not active_only)


@router.post("/api/users", response_model=User, status_code=201, operation_id="createUser",
             responses=errors(409, body=True), summary="Add a user (superadmin)")
def create_user(wh: Wh, caller: Manager, body: UserCreate) -> Any:
    return crm.add_user(wh, body.name, body.email, body.role, distributors=body.distributors or (),
                        actor=caller.principal)


def user_id(wh: Wh, ref: str) -> str:
    """The id of the user named by id or email (404 ``user_not_found`` otherwise)."""
    with wh.transaction(read_only=True) as conn:
        user = find_user(conn, ref) if ref else None
    if user is None:
        raise ApiError(404, f"No user {ref[:100]!r}: see GET /api/users.", "user_not_found")
    return user["id"]


@router.put("/api/users/{id}/distributors", response_model=User, operation_id="setUserDistributors",
            responses=errors(404, body=True), summary="Name the distributors a staff user sees (superadmin)",
            description="Replaces the user's distributors; audited as user.distributors. A superadmin sees every "
                        "distributor and is given none.")
def set_distributors(wh: Wh, caller: Manager, id: UserRef, body: UserDistributors) -> Any:
    return crm.set_user_distributors(wh, user_id(wh, id), body.distributors, actor=caller.principal)


@router.post("/api/users/{id}/deactivate", response_model=User, operation_id="deactivateUser",
             responses=errors(404, 409), summary="Deactivate a user (superadmin)")
def deactivate_user(wh: Wh, caller: Manager, id: UserRef) -> Any:
    uid = user_id(wh, id)
    if uid == caller.id:
        raise ApiError(409, "You cannot deactivate yourself; ask another superadmin.", "self_deactivation")
    return crm.deactivate_user(wh, uid, actor=caller.principal)


@router.post("/api/users/{id}/reactivate", response_model=User, operation_id="reactivateUser",
             responses=errors(404), summary="Reactivate a user (superadmin)")
def reactivate_user(wh: Wh, caller: Manager, id: UserRef) -> Any:
    return crm.reactivate_user(wh, user_id(wh, id), actor=caller.principal)
