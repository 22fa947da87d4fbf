"""The JSON API under ``/api``: the seed's admin routes (Meta settings, test, sync, leads, stats) for programs.

Every handler: authenticate (API key, or the console's session) → check the role (``crm.authorize``) → for a
session-authenticated unsafe request, check the CSRF token → read and validate the body against the OpenAPI schema
(``openapi.REQUEST_SCHEMAS``) → call ``lib/crm`` or ``lib/distributors`` as the caller, so each change lands in
``audit_log`` with the acting user. Errors are ``{"error": "<message for a person>", "detail": {"code": …}}`` with
400/401/403/404/409/413/415 (and 503 when the service itself is not configured); bad input never gets a 5xx.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import logging
import threading
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from jsonschema import Draft202012Validator
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from leads_pipeline.lib import crm
from leads_pipeline.lib.crm.operations import MAX_TEXT
from leads_pipeline.lib.crm.queries import MAX_PER_PAGE
from leads_pipeline.lib.crm.users import find_user
from leads_pipeline.lib.distributors import registry
from leads_pipeline.lib.crm.privacy import PrivacyConfigError
from leads_pipeline.lib.security import SecretKeyError, TokenCipher
from leads_pipeline.lib.warehouse import Warehouse, WarehouseError

from . import auth, openapi

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024 * 1024
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_BULK_PERMISSION = {"status": "lead.status", "assign": "lead.assign", "delete": "lead.delete"}
_VALIDATORS = {name: Draft202012Validator(schema) for name, schema in openapi.REQUEST_SCHEMAS.items()}


# ------------------------------------------------------------------------------------------------- errors


class ApiError(Exception):
    """An error answer: HTTP status, a message for a person, a code and extra facts for programs."""

    def __init__(self, status: int, message: str, code: str, headers: Mapping[str, str] | None = None,
                 **extra: Any):
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.headers = dict(headers or {})
        self.extra = extra


UNAUTHENTICATED = ("Authentication required: send an API key (Authorization: Bearer lp_… or X-API-Key), or log in "
                   "to the console.")


def classify(exc: BaseException) -> ApiError:
    """The ``ApiError`` for any exception an operation may raise (unexpected ones become a logged 500)."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, auth.AuthError):
        return ApiError(401, str(exc), "unauthenticated", {"WWW-Authenticate": 'Bearer realm="leads_pipeline"'})
    if isinstance(exc, crm.PermissionDenied):
        return ApiError(403, str(exc), "forbidden")
    if isinstance(exc, crm.BulkInvalidTransition):
        groups = [{"from_status": f, "why": why, "ids": ids} for f, why, ids in exc.groups]
        return ApiError(400, str(exc), "invalid_transition", to_status=exc.to_status, groups=groups)
    if isinstance(exc, crm.InvalidTransition):
        return ApiError(400, str(exc), "invalid_transition", from_status=exc.from_status, to_status=exc.to_status,
                        allowed=list(exc.allowed))
    if isinstance(exc, crm.LeadNotFound):
        return ApiError(404, str(exc), "lead_not_found", ids=exc.ids, deleted=exc.deleted)
    if isinstance(exc, crm.UserExists):
        return ApiError(409, str(exc), "user_exists")
    if isinstance(exc, crm.UnknownUser):
        return ApiError(400, str(exc), "unknown_user")
    if isinstance(exc, crm.InvalidInput):
        return ApiError(400, str(exc), "invalid_input")
    if isinstance(exc, registry.DistributorNotFound):
        return ApiError(404, str(exc), "distributor_not_found")
    if isinstance(exc, registry.DuplicateDistributor):
        return ApiError(409, str(exc), "distributor_exists")
    if isinstance(exc, registry.DistributorError):
        return ApiError(400, str(exc), "invalid_input")
    if isinstance(exc, SecretKeyError):
        return ApiError(503, str(exc), "not_configured")
    if isinstance(exc, WarehouseError):
        return ApiError(503, str(exc), "warehouse_unavailable")
    if isinstance(exc, HTTPException):
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        message = {404: "No such route: see /openapi.json for the API's routes.",
                   405: "Method not allowed on this route."}.get(exc.status_code, str(exc.detail))
        return ApiError(exc.status_code, message, code, exc.headers)
    if isinstance(exc, PrivacyConfigError):
        log.error("privacy configuration error: %s", exc)
    else:
        log.exception("unexpected error in the HTTP API")
    return ApiError(500, "Internal error; it was logged. Please report it.", "internal")


def error_response(exc: BaseException) -> Response:
    err = classify(exc)
    return json_response({"error": err.message, "detail": {"code": err.code, **err.extra}}, err.status, err.headers)


# ------------------------------------------------------------------------------------------------- JSON


def _default(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.timezone.utc)
        return value.astimezone(dt.timezone.utc).isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if hasattr(value, "to_dict"):
        return value.to_dict()
    return str(value)


def dumps(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False, default=_default, allow_nan=False)


def json_response(data: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    return Response(dumps(data).encode("utf-8"), status_code=status, headers=dict(headers or {}),
                    media_type="application/json")


# ------------------------------------------------------------------------------------------------- input


def _check_text(value: Any, where: str) -> None:
    """Strings must be storable by both backends: no NUL characters, no lone surrogates."""
    if isinstance(value, str):
        if "\x00" in value:
            raise ApiError(400, f"{where}: text must not contain NUL characters.", "invalid_input")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ApiError(400, f"{where}: text is not valid Unicode.", "invalid_input") from None
    elif isinstance(value, dict):
        for k, v in value.items():
            _check_text(k, where)
            _check_text(v, f"{where}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _check_text(v, f"{where}[{i}]")


async def read_body(request: Request, limit: int = MAX_BODY_BYTES) -> bytes:
    length = request.headers.get("content-length")
    if length is not None:
        try:
            if int(length) > limit:
                raise ApiError(413, f"The request body is larger than {limit} bytes.", "too_large")
        except ValueError:
            raise ApiError(400, "Bad Content-Length header.", "invalid_input") from None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, f"The request body is larger than {limit} bytes.", "too_large")
        chunks.append(chunk)
    return b"".join(chunks)


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


async def read_json(request: Request, schema: str) -> dict[str, Any]:
    """The request's JSON object, validated against ``openapi.REQUEST_SCHEMAS[schema]``.

    A missing body is a 400 (every documented body is required); a non-JSON content type is 415.
    """
    raw = await read_body(request)
    if not raw.strip():
        raise ApiError(400, f"Send a JSON object as the body (Content-Type: application/json); see the {schema} "
                       "schema in /openapi.json.", "missing_body")
    content_type = request.headers.get("content-type", "")
    if not _is_json(content_type):
        raise ApiError(415, "Send the body as JSON (Content-Type: application/json), not "
                       f"{content_type[:100] or 'without a content type'!r}.", "unsupported_media_type")
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ApiError(400, f"The body is not valid JSON: {exc}.", "invalid_json") from None
    if not isinstance(data, dict):
        raise ApiError(400, "The body must be a JSON object.", "invalid_input")
    errors = sorted(_VALIDATORS[schema].iter_errors(data), key=lambda e: list(e.absolute_path))
    if errors:
        problems = [_describe(e) for e in errors[:20]]
        raise ApiError(400, "Invalid request: " + "; ".join(problems), "validation_failed", errors=problems)
    _check_text(data, "body")
    return data


def _describe(error: Any) -> str:
    where = ".".join(str(p) for p in error.absolute_path)
    message = error.message
    if len(message) > 300:
        message = message[:300] + "…"
    return f"{where}: {message}" if where else message


def _query_text(request: Request, name: str, max_length: int = openapi.MAX_SHORT) -> str | None:
    value = request.query_params.get(name)
    if value is None:
        return None
    if len(value) > max_length:
        raise ApiError(400, f"{name} is longer than {max_length} characters.", "invalid_input")
    _check_text(value, name)
    return value


def _query_int(request: Request, name: str, default: int, lo: int, hi: int) -> int:
    value = request.query_params.get(name)
    if value is None:
        return default
    text = value.strip()
    if not text or not (text.isascii() and text.lstrip("+-").isdigit()) or len(text) > 12:
        raise ApiError(400, f"{name} must be a whole number (got {value[:40]!r}).", "invalid_input")
    n = int(text)
    if not lo <= n <= hi:
        raise ApiError(400, f"{name} must be between {lo} and {hi} (got {n}).", "invalid_input")
    return n


def _query_bool(request: Request, name: str, default: bool = False) -> bool:
    value = request.query_params.get(name)
    if value is None:
        return default
    v = value.strip().lower()
    if v in ("true", "1", "yes"):
        return True
    if v in ("false", "0", "no"):
        return False
    raise ApiError(400, f"{name} must be true or false (got {value[:40]!r}).", "invalid_input")


def path_id(request: Request, name: str = "id") -> str:
    value = str(request.path_params[name])
    if "\x00" in value or len(value) > 1000:
        return ""  # no lead/user/distributor has such an id: the lookup answers 404
    return value


# ------------------------------------------------------------------------------------------------- handlers' frame

Handler = Callable[[Request, auth.Caller], Awaitable[Response]]


async def authenticate(request: Request) -> auth.Caller | None:
    """The caller of a request: an API key when one is sent (a bad one is a 401), else the console's session."""
    if "caller" in request.scope.get("state", {}):
        return request.state.caller
    wh: Warehouse = request.app.state.warehouse
    key = auth.api_key_from_headers(request.headers)
    caller: auth.Caller | None = None
    if key is not None:
        caller = await run_in_threadpool(auth.authenticate_api_key, wh, key)
    elif "session" in request.scope:
        session = request.session
        uid, fp = session.get("uid"), session.get("pwv")
        if isinstance(uid, str) and isinstance(fp, str):
            caller = await run_in_threadpool(auth.session_caller, wh, uid, fp)
            if caller is None:
                for k in ("uid", "pwv"):
                    session.pop(k, None)
    request.state.caller = caller
    return caller


def endpoint(action: str | None = None, *, public: bool = False) -> Callable[[Handler], Callable]:
    """Wrap a handler with authentication, the role check, the CSRF check and the error mapping."""

    def decorate(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def run(request: Request) -> Response:
            try:
                caller = None
                if not public:
                    caller = await authenticate(request)
                    if caller is None:
                        raise ApiError(401, UNAUTHENTICATED, "unauthenticated",
                                       {"WWW-Authenticate": 'Bearer realm="leads_pipeline"'})
                    if caller.via == "session" and request.method not in SAFE_METHODS:
                        if not auth.csrf_ok(request.session, request.headers.get(auth.CSRF_HEADER)):
                            raise ApiError(403, "Missing or wrong CSRF token: send the console's token in the "
                                           "X-CSRF-Token header (or use an API key).", "csrf_failed")
                    if action:
                        crm.authorize(caller.principal, action)
                return await handler(request, caller)  # type: ignore[arg-type]
            except Exception as exc:  # noqa: BLE001 - every error becomes a JSON answer
                return error_response(exc)

        run.__name__ = handler.__name__
        run.__doc__ = handler.__doc__
        return run

    return decorate


def _wh(request: Request) -> Warehouse:
    return request.app.state.warehouse


def cipher_for(request: Request) -> TokenCipher:
    secret = request.app.state.settings.secret_key
    return TokenCipher(secret.get_secret_value() if secret is not None else "")


# ------------------------------------------------------------------------------------------------- service


@endpoint(public=True)
async def health(request: Request, caller: None) -> Response:
    def check() -> int:
        with _wh(request).transaction(read_only=True) as conn:
            return int(conn.scalar("SELECT max(version) FROM schema_migrations") or 0)

    try:
        version = await run_in_threadpool(check)
    except Exception as exc:  # noqa: BLE001 - any failure means "not healthy"
        log.warning("health check failed: %s", type(exc).__name__)
        raise ApiError(503, "The warehouse does not answer.", "warehouse_unavailable") from None
    return json_response({"status": "ok", "backend": _wh(request).backend, "schema_version": version})


@endpoint()
async def me(request: Request, caller: auth.Caller) -> Response:
    p = caller.principal
    perms = [a for a in crm.ACTIONS if crm.can(p, a)]
    return json_response({"id": p.id, "name": p.name, "email": p.email, "role": p.role, "via": caller.via,
                          "permissions": perms})


# ------------------------------------------------------------------------------------------------- leads


@endpoint("lead.list")
async def stats(request: Request, caller: auth.Caller) -> Response:
    distributor = _query_text(request, "distributor") or None
    return json_response(await run_in_threadpool(crm.stats, _wh(request), distributor))


def lead_filters(request: Request) -> dict[str, Any]:
    out = {}
    for name in crm.FILTER_KEYS:
        limit = 320 if name == "assigned_to" else 40 if name.startswith("created_") else openapi.MAX_SHORT
        value = _query_text(request, name, limit)
        if value not in (None, ""):
            out[name] = value
    return out


@endpoint("lead.list")
async def list_leads(request: Request, caller: auth.Caller) -> Response:
    filters = lead_filters(request)
    sort = _query_text(request, "sort", 40) or "-created_time"
    page = _query_int(request, "page", 1, 1, openapi.MAX_PAGE)
    per_page = _query_int(request, "per_page", 50, 1, MAX_PER_PAGE)
    result = await run_in_threadpool(lambda: crm.list_leads(_wh(request), page=page, per_page=per_page, sort=sort,
                                                            **filters))
    return json_response(result.to_dict())


@endpoint("lead.list")
async def recent_leads(request: Request, caller: auth.Caller) -> Response:
    limit = _query_int(request, "limit", 10, 1, 1000)
    distributor = _query_text(request, "distributor") or None
    return json_response(await run_in_threadpool(crm.recent_leads, _wh(request), limit, distributor))


@endpoint("lead.show")
async def get_lead(request: Request, caller: auth.Caller) -> Response:
    return json_response(await run_in_threadpool(crm.get_lead, _wh(request), path_id(request)))


@endpoint("lead.status")
async def change_status(request: Request, caller: auth.Caller) -> Response:
    body = await read_json(request, "StatusChange")
    result = await run_in_threadpool(crm.change_status, _wh(request), path_id(request), body["status"],
                                     caller.principal, body.get("note"))
    return json_response(result)


@endpoint("lead.assign")
async def assign(request: Request, caller: auth.Caller) -> Response:
    body = await read_json(request, "Assign")
    return json_response(await run_in_threadpool(crm.assign, _wh(request), path_id(request), body["user"],
                                                 caller.principal))


@endpoint("lead.note")
async def add_note(request: Request, caller: auth.Caller) -> Response:
    body = await read_json(request, "Note")
    return json_response(await run_in_threadpool(crm.add_note, _wh(request), path_id(request), body["text"],
                                                 caller.principal))


@endpoint("lead.log")
async def log_interaction(request: Request, caller: auth.Caller) -> Response:
    body = await read_json(request, "Interaction")
    result = await run_in_threadpool(
        lambda: crm.log_interaction(_wh(request), path_id(request), body["kind"], caller.principal,
                                    direction=body.get("direction") or "outbound", outcome=body["outcome"],
                                    body=body.get("body"), occurred_at=body.get("occurred_at")))
    return json_response(result)


@endpoint("lead.delete")
async def delete_lead_post(request: Request, caller: auth.Caller) -> Response:
    body = await read_json(request, "Delete")
    return json_response(await run_in_threadpool(crm.delete_lead, _wh(request), path_id(request),
                                                 caller.principal, body["reason"]))


@endpoint("lead.delete")
async def delete_lead(request: Request, caller: auth.Caller) -> Response:
    reason = _query_text(request, "reason", MAX_TEXT)
    if not reason:
        raise ApiError(400, "Give the reason for deleting: DELETE /api/leads/{id}?reason=….", "invalid_input")
    return json_response(await run_in_threadpool(crm.delete_lead, _wh(request), path_id(request),
                                                 caller.principal, reason))


@endpoint("lead.list")
async def bulk(request: Request, caller: auth.Caller) -> Response:
    body = await read_json(request, "Bulk")
    action = body.pop("action")
    crm.authorize(caller.principal, _BULK_PERMISSION[action])
    ids = body.pop("ids", None)
    filt = body.pop("filter", None)
    dry_run = bool(body.pop("dry_run", False))
    args = {k: v for k, v in body.items() if v is not None}
    result = await run_in_threadpool(lambda: crm.bulk(_wh(request), action, ids=ids, filter=filt,
                                                      actor=caller.principal, dry_run=dry_run, **args))
    return json_response(result.to_dict())


# ------------------------------------------------------------------------------------------------- distributors


def summary(d: registry.Distributor) -> dict[str, Any]:
    return {"key": d.key, "name": d.name, "enabled": d.enabled}


@endpoint("lead.list")
async def list_distributors(request: Request, caller: auth.Caller) -> Response:
    return json_response([summary(d) for d in await run_in_threadpool(registry.list_all, _wh(request))])


_SETTING_ARGS = {"name": "name", "page_ids": "page_ids", "form_ids": "form_ids", "region": "region",
                 "interval_minutes": "interval", "enabled": "enabled", "notify_email": "notify_email",
                 "access_token": "token"}


@endpoint("distributor.manage")
async def create_distributor(request: Request, caller: auth.Caller) -> Response:
    body = await read_json(request, "DistributorCreate")
    cipher = cipher_for(request)
    kwargs = {_SETTING_ARGS.get(k, k): v for k, v in body.items() if k not in ("name", "access_token")}
    created = await run_in_threadpool(lambda: registry.add(_wh(request), body["name"], body["access_token"],
                                                           actor=caller.id, cipher=cipher, **kwargs))
    return json_response(created.to_dict(), 201,
                         {"Location": f"/api/distributors/{created.key}/meta-settings"})


def _known_distributor(request: Request) -> str:
    return path_id(request, "key")


@endpoint("distributor.manage")
async def get_meta_settings(request: Request, caller: auth.Caller) -> Response:
    d = await run_in_threadpool(registry.get, _wh(request), _known_distributor(request))
    return json_response(d.to_dict())


@endpoint("distributor.manage")
async def put_meta_settings(request: Request, caller: auth.Caller) -> Response:
    key = _known_distributor(request)
    await run_in_threadpool(registry.get, _wh(request), key)  # 404 before judging the body's values
    body = await read_json(request, "DistributorSettingsUpdate")
    changes = {_SETTING_ARGS[k]: v for k, v in body.items()}
    cipher = cipher_for(request) if "token" in changes else None
    updated = await run_in_threadpool(lambda: registry.update(_wh(request), key, actor=caller.id, cipher=cipher,
                                                              **changes))
    return json_response(updated.to_dict())


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
    d = await run_in_threadpool(registry.get, _wh(request), _known_distributor(request))
    if not d.has_token:
        raise ApiError(409, f"Distributor {d.key} has no access token yet: PUT one to "
                       f"/api/distributors/{d.key}/meta-settings (access_token) first.", "no_token")
    cipher_for(request)  # a 503 now, rather than half-way through, when LEADS_SECRET_KEY is missing
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

    settings = request.app.state.settings
    return sync.test_connection(_wh(request), key, settings=settings)


def sync_distributor(request: Request, key: str, trigger: str) -> dict[str, Any]:
    from leads_pipeline.lib.ingest import sync

    settings = request.app.state.settings
    return sync.sync_distributor(_wh(request), key, trigger=trigger, settings=settings).seed_dict()


@endpoint("distributor.manage")
async def test_connection(request: Request, caller: auth.Caller) -> Response:
    d = await ready_distributor(request)
    result = await run_exclusive(request, d.key, "test", lambda: test_distributor(request, d.key))
    await run_in_threadpool(audit_run, _wh(request), caller.id, "distributor.test", d.key,
                            {"success": bool(result.get("success"))})
    return json_response({"success": bool(result.get("success")), "message": str(result.get("message", ""))})


@endpoint("distributor.manage")
async def sync_now(request: Request, caller: auth.Caller) -> Response:
    d = await ready_distributor(request)
    result = await run_exclusive(request, d.key, "sync", lambda: sync_distributor(request, d.key, "api"))
    await run_in_threadpool(audit_run, _wh(request), caller.id, "distributor.sync", d.key,
                            {k: result[k] for k in ("success", "fetched", "stored")})
    return json_response(result)


def audit_run(wh: Warehouse, actor: str, action: str, key: str, after: dict[str, Any]) -> None:
    """Who asked for a test / sync, and how it went (the run itself is in sync_runs)."""
    from leads_pipeline.lib.crm._db import audit, utcnow

    with wh.transaction() as conn:
        audit(conn, actor=actor, action=action, entity_type="distributor", entity_id=key, before=None, after=after,
              at=utcnow())


# ------------------------------------------------------------------------------------------------- users


@endpoint("user.list")
async def list_users(request: Request, caller: auth.Caller) -> Response:
    active_only = _query_bool(request, "active_only")
    return json_response(await run_in_threadpool(lambda: crm.list_users(_wh(request),
                                                                        include_inactive=not active_only)))


@endpoint("user.manage")
async def create_user(request: Request, caller: auth.Caller) -> Response:
    body = await read_json(request, "UserCreate")
    user = await run_in_threadpool(lambda: crm.add_user(_wh(request), body["name"], body["email"], body["role"],
                                                        actor=caller.principal))
    return json_response(user, 201)


async def _user_ref(request: Request) -> str:
    ref = path_id(request)

    def find() -> dict[str, Any] | None:
        with _wh(request).transaction(read_only=True) as conn:
            return find_user(conn, ref)

    user = await run_in_threadpool(find) if ref else None
    if user is None:
        raise ApiError(404, f"No user {ref[:100]!r}: see GET /api/users.", "user_not_found")
    return user["id"]


@endpoint("user.manage")
async def deactivate_user(request: Request, caller: auth.Caller) -> Response:
    user_id = await _user_ref(request)
    if user_id == caller.id:
        raise ApiError(409, "You cannot deactivate yourself; ask another superadmin.", "self_deactivation")
    return json_response(await run_in_threadpool(lambda: crm.deactivate_user(_wh(request), user_id,
                                                                             actor=caller.principal)))


@endpoint("user.manage")
async def reactivate_user(request: Request, caller: auth.Caller) -> Response:
    user_id = await _user_ref(request)
    return json_response(await run_in_threadpool(lambda: crm.reactivate_user(_wh(request), user_id,
                                                                             actor=caller.principal)))


# ------------------------------------------------------------------------------------------------- routes


def by_method(**handlers: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
    """One endpoint for several methods of a path (so a 405 names every allowed method in ``Allow``)."""

    async def dispatch(request: Request) -> Response:
        method = "GET" if request.method == "HEAD" else request.method
        return await handlers[method](request)

    return dispatch


def _route(path: str, **handlers: Callable[[Request], Awaitable[Response]]) -> Route:
    return Route(path, by_method(**handlers) if len(handlers) > 1 else next(iter(handlers.values())),
                 methods=list(handlers))


def routes() -> list[Route]:
    return [
        _route("/api/health", GET=health),
        _route("/api/me", GET=me),
        _route("/api/stats", GET=stats),
        _route("/api/leads", GET=list_leads),
        _route("/api/leads/recent", GET=recent_leads),
        _route("/api/leads/bulk", POST=bulk),
        _route("/api/leads/{id}", GET=get_lead, DELETE=delete_lead),
        _route("/api/leads/{id}/status", POST=change_status),
        _route("/api/leads/{id}/assign", POST=assign),
        _route("/api/leads/{id}/note", POST=add_note),
        _route("/api/leads/{id}/interactions", POST=log_interaction),
        _route("/api/leads/{id}/delete", POST=delete_lead_post),
        _route("/api/distributors", GET=list_distributors, POST=create_distributor),
        _route("/api/distributors/{key}/meta-settings", GET=get_meta_settings, PUT=put_meta_settings),
        _route("/api/distributors/{key}/test", POST=test_connection),
        _route("/api/distributors/{key}/sync", POST=sync_now),
        _route("/api/users", GET=list_users, POST=create_user),
        _route("/api/users/{id}/deactivate", POST=deactivate_user),
        _route("/api/users/{id}/reactivate", POST=reactivate_user),
    ]
