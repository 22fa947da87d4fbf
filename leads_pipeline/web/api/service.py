"""``/api/health`` (no login) and ``/api/me`` (the caller, their role and permissions)."""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Depends

from leads_pipeline.lib import crm

from .. import auth
from .deps import Wh, current_caller
from .errors import ApiError
from .models import Health, Me
from .responses import errors
from .routing import ApiRoute

log = logging.getLogger(__name__)

router = APIRouter(route_class=ApiRoute, tags=["service"])


@router.get("/api/health", response_model=Health, operation_id="health", responses=errors(503, public=True),
            summary="Liveness and warehouse check")
def health(wh: Wh) -> Any:
    try:
        with wh.transaction(read_only=True) as conn:
            version = int(conn.scalar("SELECT max(version) FROM schema_migrations") or 0)
    except Exception as exc:  # noqa: BLE001 - any failure means "not healthy"
        log.warning("health check failed: %s", type(exc).__name__)
        raise ApiError(503, "The warehouse does not answer.", "warehouse_unavailable") from None
    return {"status": "ok", "backend": wh.backend, "schema_version": version}


@router.get("/api/me", response_model=Me, operation_id="me", responses=errors(),
            summary="Who am I (the caller's user, role and permissions)")
def me(caller: Annotated[auth.Caller, Depends(current_caller)]) -> Any:
    p = caller.principal
    return {"id": p.id, "name": p.name, "email": p.email, "role": p.role, "via": caller.via,
            "permissions": [a for a in crm.ACTIONS if crm.can(p, a)]}
