"""``/api/distributors…``: the list (the distributors the caller may see), and — superadmins only — adding one,
its Meta settings (the access token is write-only) with its Conversions API settings (``conversions_api``, lib/capi;
its token write-only too), "test connection" and "sync now".

The console's distributor pages use ``ready_distributor``, ``run_exclusive``, ``test_distributor``,
``sync_distributor`` and ``audit_run`` too, so a test or sync runs the same way from either.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from leads_pipeline.lib import capi, crm
from leads_pipeline.lib.distributors import registry
from leads_pipeline.lib.warehouse import Warehouse

from .deps import DistributorRef, Wh, cipher_for, may, path_id
from .errors import ApiError
from .models import (
    DistributorCreate,
    DistributorSettings,
    DistributorSettingsUpdate,
    DistributorSummary,
    SyncResult,
    TestResult,
)
from .responses import errors
from .routing import ApiRoute

router = APIRouter(route_class=ApiRoute, tags=["distributors"])

Lister = may("lead.list")
Manager = may("distributor.manage")

# Conversions API body field → lib.capi.configure argument.
_CAPI_ARGS = {"access_token": "token"}

# Body field → registry argument.
_SETTING_ARGS = {"name": "name", "page_ids": "page_ids", "form_ids": "form_ids", "region": "region",
                 "interval_minutes": "interval", "enabled": "enabled", "notify_email": "notify_email",
                 "access_token": "token"}


@router.get("/api/distributors", response_model=list[DistributorSummary], operation_id="listDistributors",
            responses=errors(), summary="Distributors (key, name, enabled) the caller may see")
def list_distributors(wh: Wh, caller: Lister) -> Any:
    return [{"key": d.key, "name": d.name, "enabled": d.enabled}
            for d in crm.visible_distributors(wh, actor=caller.principal)]


@router.post("/api/distributors", response_model=DistributorSettings, status_code=201,
             operation_id="createDistributor", responses={**errors(409, 503, body=True), 201: {"headers": {
                 "Location": {"schema": {"type": "string"}, "description": "Its meta-settings."}}}},
             summary="Add a distributor (superadmin)")
def create_distributor(request: Request, response: Response, wh: Wh, caller: Manager,
                       body: DistributorCreate) -> Any:
    cipher = cipher_for(request)
    given = body.given()
    conversions = capi_changes(given.pop("conversions_api", None))
    kwargs = {_SETTING_ARGS.get(k, k): v for k, v in given.items() if k not in ("name", "access_token")}
    created = registry.add(wh, body.name, body.access_token, actor=caller.id, cipher=cipher, **kwargs)
    if conversions:
        capi.configure(wh, created.key, actor=caller.id, cipher=cipher, **conversions)
    response.headers["Location"] = f"/api/distributors/{created.key}/meta-settings"
    return with_conversions(wh, created)


def capi_changes(given: dict[str, Any] | None) -> dict[str, Any]:
    """The Conversions API part of a body as ``lib.capi.configure`` arguments, checked before anything changes."""
    changes = {_CAPI_ARGS.get(k, k): v for k, v in (given or {}).items()}
    capi.config.validate_changes(changes)
    return changes


def with_conversions(wh: Warehouse, distributor: registry.Distributor) -> dict[str, Any]:
    """The distributor's settings with its Conversions API settings and event counts."""
    return {**distributor.to_dict(), "conversions_api": capi.overview(wh, distributor.key)}


def known_distributor(wh: Wh, key: DistributorRef) -> registry.Distributor:
    """The distributor of the path (404 before the body is judged)."""
    return registry.get(wh, key)


Known = Annotated[registry.Distributor, Depends(known_distributor)]


@router.get("/api/distributors/{key}/meta-settings", response_model=DistributorSettings,
            operation_id="getMetaSettings", responses=errors(404),
            summary="A distributor's Meta settings (superadmin)")
def get_meta_settings(wh: Wh, caller: Manager, distributor: Known) -> Any:
    return with_conversions(wh, distributor)


@router.put("/api/distributors/{key}/meta-settings", response_model=DistributorSettings,
            operation_id="putMetaSettings", responses=errors(404, 409, 503, body=True),
            summary="Change a distributor's Meta settings (superadmin)")
def put_meta_settings(request: Request, wh: Wh, caller: Manager, distributor: Known,
                      body: DistributorSettingsUpdate) -> Any:
    given = body.given()
    conversions = capi_changes(given.pop("conversions_api", None))
    changes = {_SETTING_ARGS[k]: v for k, v in given.items()}
    cipher = cipher_for(request) if "token" in changes or conversions.get("token") else None
    changed = registry.update(wh, distributor.key, actor=caller.id, cipher=cipher, **changes) if changes \
        else distributor
    if conversions:
        capi.configure(wh, distributor.key, actor=caller.id, cipher=cipher, **conversions)
    return with_conversions(wh, changed)


class Running:
    """One sync / test at a time per distributor in this process (a second answers 409)."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._busy: set[str] = set()

    def claim(self, key: str) -> bool:
        with self._guard:
            if key in self._busy:
                return False
            self._busy.add(key)
            return True

    def release(self, key: str) -> None:
        with self._guard:
            self._busy.discard(key)


async def ready_distributor(request: Request) -> registry.Distributor:
    """The path's distributor, ready to test or sync: it exists (404), has a token (409), and the service can
    decrypt tokens (503 now, rather than half-way through, when LEADS_SECRET_KEY is missing)."""
    d = await run_in_threadpool(registry.get, request.app.state.warehouse, path_id(request, "key"))
    if not d.has_token:
        raise ApiError(409, f"Distributor {d.key} has no access token yet: PUT one to "
                       f"/api/distributors/{d.key}/meta-settings (access_token) first.", "no_token")
    cipher_for(request)
    return d


async def run_exclusive(request: Request, key: str, what: str, fn: Callable[[], Any]) -> Any:
    running: Running = request.app.state.running
    if not running.claim(key):
        raise ApiError(409, f"A sync or connection test of {key} is already running; try again when it ends.",
                       "busy")
    try:
        return await run_in_threadpool(fn)
    finally:
        running.release(key)


def test_distributor(request: Request, key: str) -> dict[str, Any]:
    from leads_pipeline.lib.ingest import sync

    return sync.test_connection(request.app.state.warehouse, key, settings=request.app.state.settings)


def sync_distributor(request: Request, key: str, trigger: str) -> dict[str, Any]:
    from leads_pipeline.lib.ingest import sync

    return sync.sync_distributor(request.app.state.warehouse, key, trigger=trigger,
                                 settings=request.app.state.settings).seed_dict()


def audit_run(wh: Warehouse, actor: str, action: str, key: str, after: dict[str, Any]) -> None:
    """Who asked for a test / sync, and how it went (the run itself is in sync_runs)."""
    from leads_pipeline.lib.crm._db import audit, utcnow

    with wh.transaction() as conn:
        audit(conn, actor=actor, action=action, entity_type="distributor", entity_id=key, before=None, after=after,
              at=utcnow())


@router.post("/api/distributors/{key}/test", response_model=TestResult, operation_id="testConnection",
             responses=errors(404, 409, 503), summary="Test the token, forms and lead access (superadmin)",
             response_description="The test ran: `success` says how it went.")
async def test_connection(request: Request, wh: Wh, caller: Manager, key: DistributorRef) -> Any:
    d = await ready_distributor(request)
    result = await run_exclusive(request, d.key, "test", lambda: test_distributor(request, d.key))
    await run_in_threadpool(audit_run, wh, caller.id, "distributor.test", d.key,
                            {"success": bool(result.get("success"))})
    return {"success": bool(result.get("success")), "message": str(result.get("message", ""))}


@router.post("/api/distributors/{key}/sync", response_model=SyncResult, operation_id="syncNow",
             responses=errors(404, 409, 503), summary="Sync the distributor now (superadmin)",
             response_description="The sync ran: `success` says how it went.")
async def sync_now(request: Request, wh: Wh, caller: Manager, key: DistributorRef) -> Any:
    d = await ready_distributor(request)
    result = await run_exclusive(request, d.key, "sync", lambda: sync_distributor(request, d.key, "api"))
    await run_in_threadpool(audit_run, wh, caller.id, "distributor.sync", d.key,
                            {k: result[k] for k in ("success", "fetched", "stored")})
    return result
