"""The staff console: server-rendered pages (Jinja2, no JavaScript) over the same operations as the API.

Log in with email + password (``leads-pipeline users set-password EMAIL``). Pages: the lead list (filters by
distributor, status and assignee, search, pagination, the seed's stats), a lead with its timeline and forms (status,
assignment, note, call/email/SMS, delete for superadmins), the stats by distributor, and — for superadmins — the
distributors' Meta settings with "test connection" and "sync now". Every form POST carries the session's CSRF token;
every change goes through ``lib/crm`` / ``lib/distributors`` as the logged-in user (so it is in ``audit_log``), then
redirects back with a flash message (post/redirect/get).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.templating import Jinja2Templates

from leads_pipeline.lib import crm
from leads_pipeline.lib.distributors import registry
from leads_pipeline.lib.crm import credentials
from leads_pipeline.lib.crm.operations import MAX_TEXT

from . import api, auth
from .api.models import TOKEN_PATTERN

log = logging.getLogger(__name__)

TEMPLATES_DIR = Path(__file__).parent / "templates"
PER_PAGE = 25
MAX_FORM_BYTES = 256 * 1024
MAX_FLASH = 500
templates = Jinja2Templates(directory=str(TEMPLATES_DIR))


def _fmt_time(value: Any) -> str:
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value)
        except ValueError:
            return value
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.timezone.utc)
        return value.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return "" if value is None else str(value)


def _fmt_value(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ", ".join(_fmt_value(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False)
    return "" if value is None else str(value)


templates.env.filters["when"] = _fmt_time
templates.env.filters["value"] = _fmt_value


# ------------------------------------------------------------------------------------------------- flash, CSRF


def flash(request: Request, kind: str, message: str) -> None:
    """A message for the next page (kind: success | error | info)."""
    text = message if len(message) <= MAX_FLASH else message[: MAX_FLASH - 1] + "…"
    items = list(request.session.get("flash") or [])[-4:]
    items.append([kind, text])
    request.session["flash"] = items


def _pop_flashes(request: Request) -> list[tuple[str, str]]:
    items = request.session.pop("flash", None) or []
    return [(str(k), str(m)) for k, m in items if isinstance(k, str)]


def render(request: Request, name: str, context: dict[str, Any] | None = None, status: int = 200) -> Response:
    caller: auth.Caller | None = request.scope.get("state", {}).get("caller")
    ctx = {
        "caller": caller,
        "user": caller.principal if caller else None,
        "can": (lambda action: bool(caller) and crm.can(caller.principal, action)),
        "csrf_token": auth.csrf_token(request.session),
        "csrf_field": auth.CSRF_FIELD,
        "flashes": _pop_flashes(request),
        "path": request.url.path,
        **(context or {}),
    }
    return templates.TemplateResponse(request, name, ctx, status_code=status)


def error_page(request: Request, status: int, exc: BaseException | str) -> Response:
    if isinstance(exc, str):
        message = exc
    elif isinstance(exc, HTTPException):
        message = {404: "There is no such page.", 405: "That method is not allowed here."}.get(
            exc.status_code, str(exc.detail))
    else:
        message = api.classify(exc).message
    titles = {400: "Bad request", 401: "Not logged in", 403: "Not allowed", 404: "Not found", 405: "Not allowed",
              413: "Too large", 429: "Too many attempts"}
    return render(request, "error.html", {"status": status, "title": titles.get(status, "Error"), "message": message},
                  status)


def _safe_next(value: str | None) -> str:
    """Only a local path (no scheme, no //host) may be a redirect target."""
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value and len(value) < 2000:
        return value
    return "/console/leads"


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def _text(form: FormData, name: str, *, max_length: int = MAX_TEXT) -> str:
    value = form.get(name)
    if value is None or not isinstance(value, str):
        return ""
    if "\x00" in value:
        raise crm.InvalidInput(f"{name.replace('_', ' ').capitalize()} contains a NUL character.")
    if len(value) > max_length:
        raise crm.InvalidInput(f"{name.replace('_', ' ').capitalize()} is longer than {max_length} characters.")
    return value


async def _read_form(request: Request) -> FormData:
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > MAX_FORM_BYTES:
        raise HTTPException(413, "The form is too large.")
    return await request.form(max_files=0, max_fields=100, max_part_size=MAX_FORM_BYTES)


# ------------------------------------------------------------------------------------------------- the page frame

Page = Callable[..., Awaitable[Response]]


def page(action: str | None = None) -> Callable[[Page], Callable[[Request], Awaitable[Response]]]:
    """Log-in, CSRF (unsafe methods) and role checks around a console handler ``(request, caller, form)``."""

    def decorate(handler: Page) -> Callable[[Request], Awaitable[Response]]:
        async def run(request: Request) -> Response:
            try:
                caller = await api.authenticate(request)
            except auth.AuthError as exc:
                return error_page(request, 401, str(exc))
            unsafe = request.method not in api.SAFE_METHODS
            if caller is None:
                if unsafe:
                    flash(request, "error", "Your session ended: log in again.")
                    return redirect("/login")
                target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                return redirect("/login?" + urlencode({"next": target}))
            form = FormData()
            if unsafe:
                try:
                    form = await _read_form(request)
                except HTTPException as exc:
                    return error_page(request, exc.status_code, exc)
                if caller.via == "session" and not auth.csrf_ok(request.session, _csrf_value(form)):
                    return csrf_failure(request)
            if action and not crm.can(caller.principal, action):
                try:
                    crm.authorize(caller.principal, action)
                except crm.PermissionDenied as exc:
                    return error_page(request, 403, exc)
            return await handler(request, caller, form)

        run.__name__ = handler.__name__
        return run

    return decorate


def _csrf_value(form: FormData) -> str | None:
    value = form.get(auth.CSRF_FIELD)
    return value if isinstance(value, str) else None


def csrf_failure(request: Request) -> Response:
    return error_page(request, 403, "This form was not sent from this console page, or it expired (missing or wrong "
                                    "CSRF token). Go back, reload the page and try again.")


async def attempt(request: Request, fn: Callable[[], Any], success: str | Callable[[Any], str]) -> Any:
    """Run an operation; flash its success or its error message. Returns the result (None on error)."""
    try:
        result = await run_in_threadpool(fn)
    except Exception as exc:  # noqa: BLE001 - every refusal becomes a flash message
        err = api.classify(exc)
        flash(request, "error", err.message)
        return None
    flash(request, "success", success(result) if callable(success) else success)
    return result if result is not None else True


# ------------------------------------------------------------------------------------------------- login


async def login_form(request: Request) -> Response:
    nxt = _safe_next(request.query_params.get("next"))
    if await api.authenticate(request) is not None:
        return redirect(nxt)
    return render(request, "login.html", {"next": nxt, "email": ""})


async def login(request: Request) -> Response:
    """Check the form's email and password under the login limits (``lib/crm/credentials``); every answer waits
    ``auth.LOGIN_MIN_SECONDS`` at least, whatever it is."""
    started = time.monotonic()
    try:
        form = await _read_form(request)
    except HTTPException as exc:
        return error_page(request, exc.status_code, exc)
    if not auth.csrf_ok(request.session, _csrf_value(form)):
        return csrf_failure(request)
    email = str(form.get("email") or "").strip().lower()[:320]
    password = str(form.get("password") or "")[: auth.MAX_PASSWORD_LENGTH]
    nxt = _safe_next(str(form.get("next") or ""))
    result = await run_in_threadpool(credentials.log_in, request.app.state.warehouse, email, password,
                                     client=auth.request_client(request))
    await auth.pace(started)
    if result.throttled:
        return render(request, "login.html", {"next": nxt, "email": email,
                                              "error": "Too many failed attempts: wait 15 minutes and try again."},
                      429)
    if result.principal is None or result.token is None:
        return render(request, "login.html", {"next": nxt, "email": email,
                                              "error": "Wrong email or password (or no console password set: "
                                                       "`leads-pipeline users set-password EMAIL`)."}, 401)
    principal = result.principal
    if auth.session_token(request.session):  # logging in again from this browser ends the session it had
        await run_in_threadpool(auth.end_session, request.app.state.warehouse, request.session)
    auth.begin_session(request.session, result.token)
    flash(request, "success", f"Logged in as {principal.email} ({principal.role}).")
    return redirect(nxt)


async def logout(request: Request) -> Response:
    """End the session in the warehouse, not only in this browser: a copy of the cookie stops working too."""
    try:
        form = await _read_form(request)
    except HTTPException as exc:
        return error_page(request, exc.status_code, exc)
    if not auth.csrf_ok(request.session, _csrf_value(form)):
        return csrf_failure(request)
    await run_in_threadpool(auth.end_session, request.app.state.warehouse, request.session)
    flash(request, "info", "Logged out.")
    return redirect("/login")


async def home(request: Request) -> Response:
    return redirect("/console/leads")


async def stylesheet(request: Request) -> Response:
    return FileResponse(TEMPLATES_DIR / "console.css", media_type="text/css",
                        headers={"Cache-Control": "public, max-age=3600"})


# ------------------------------------------------------------------------------------------------- leads


def _wh(request: Request):
    return request.app.state.warehouse


@page("lead.list")
async def leads_page(request: Request, caller: auth.Caller, form: FormData) -> Response:
    q = request.query_params
    filters: dict[str, str] = {}
    for name in ("distributor", "status", "search", "assigned_to"):
        value = (q.get(name) or "").strip()
        if value and "\x00" not in value and len(value) <= 200:
            filters[name] = value
    try:
        page_no = max(1, min(int(q.get("page") or 1), 1_000_000))
    except ValueError:
        page_no = 1
    wh = _wh(request)
    error = None

    me = caller.principal

    def load() -> tuple[Any, Any, Any, Any]:
        dists = crm.visible_distributors(wh, actor=me)
        users = crm.list_users(wh, actor=me, include_inactive=False)
        counts = crm.stats(wh, filters.get("distributor"), actor=me)
        return dists, users, counts, crm.list_leads(wh, actor=me, page=page_no, per_page=PER_PAGE, **filters)

    try:
        dists, users, counts, result = await run_in_threadpool(load)
    except (crm.CrmError, registry.DistributorError) as exc:
        error = str(exc)
        dists, users = await run_in_threadpool(lambda: (crm.visible_distributors(wh, actor=me),
                                                        crm.list_users(wh, actor=me)))
        counts, result = None, crm.Page(items=[], total=0, page=1, per_page=PER_PAGE)

    def url_for_page(n: int) -> str:
        return "/console/leads?" + urlencode({**filters, "page": n})

    return render(request, "leads.html", {
        "filters": filters, "distributors": dists, "users": users, "statuses": crm.STATUSES, "stats": counts,
        "result": result, "error": error,
        "prev_url": url_for_page(result.page - 1) if result.page > 1 else None,
        "next_url": url_for_page(result.page + 1) if result.page < result.pages else None,
    })


@page("lead.show")
async def lead_page(request: Request, caller: auth.Caller, form: FormData) -> Response:
    lead_id = api.path_id(request)
    wh = _wh(request)
    try:
        lead = await run_in_threadpool(lambda: crm.get_lead(wh, lead_id, actor=caller.principal))
    except crm.LeadNotFound as exc:
        return error_page(request, 404, exc)
    users = await run_in_threadpool(lambda: crm.list_users(wh, actor=caller.principal, include_inactive=False))
    # Offer as assignees only the users who can see this lead (the library refuses the others anyway).
    users = [u for u in users if u["distributors"] is None or lead["distributor"] in u["distributors"]]
    return render(request, "lead.html", {
        "lead": lead, "users": users, "allowed": crm.allowed_transitions(lead["status"]),
        "contact_kinds": crm.CONTACT_KINDS, "directions": crm.DIRECTIONS, "outcomes": crm.OUTCOMES,
    })


def _lead_url(request: Request) -> str:
    return f"/console/leads/{quote(str(request.path_params['id']), safe='')}"


@page("lead.status")
async def lead_status(request: Request, caller: auth.Caller, form: FormData) -> Response:
    lead_id = api.path_id(request)
    try:
        status, note = _text(form, "status", max_length=40), _text(form, "note")
    except crm.InvalidInput as exc:
        flash(request, "error", str(exc))
        return redirect(_lead_url(request))
    await attempt(request, lambda: crm.change_status(_wh(request), lead_id, status, caller.principal, note or None),
                  lambda r: f"Status changed from {r['from_status']} to {r['status']}.")
    return redirect(_lead_url(request))


@page("lead.assign")
async def lead_assign(request: Request, caller: auth.Caller, form: FormData) -> Response:
    lead_id = api.path_id(request)
    try:
        user = _text(form, "user", max_length=320)
    except crm.InvalidInput as exc:
        flash(request, "error", str(exc))
        return redirect(_lead_url(request))
    await attempt(request, lambda: crm.assign(_wh(request), lead_id, user, caller.principal),
                  lambda r: f"Assigned to {r['assigned_to_email']} (status {r['status']}).")
    return redirect(_lead_url(request))


@page("lead.note")
async def lead_note(request: Request, caller: auth.Caller, form: FormData) -> Response:
    lead_id = api.path_id(request)
    try:
        text = _text(form, "text")
    except crm.InvalidInput as exc:
        flash(request, "error", str(exc))
        return redirect(_lead_url(request))
    await attempt(request, lambda: crm.add_note(_wh(request), lead_id, text, caller.principal), "Note added.")
    return redirect(_lead_url(request))


@page("lead.log")
async def lead_log(request: Request, caller: auth.Caller, form: FormData) -> Response:
    lead_id = api.path_id(request)
    try:
        kind = _text(form, "kind", max_length=20)
        direction = _text(form, "direction", max_length=20) or "outbound"
        outcome = _text(form, "outcome", max_length=40)
        body = _text(form, "body") or None
        when = _text(form, "occurred_at", max_length=40) or None
    except crm.InvalidInput as exc:
        flash(request, "error", str(exc))
        return redirect(_lead_url(request))
    await attempt(request, lambda: crm.log_interaction(_wh(request), lead_id, kind, caller.principal,
                                                       direction=direction, outcome=outcome, body=body,
                                                       occurred_at=when),
                  lambda r: f"{kind.upper() if kind == 'sms' else kind.capitalize()} logged"
                            + (f"; status now {r['status']}." if r["status"] != r["from_status"] else "."))
    return redirect(_lead_url(request))


@page("lead.delete")
async def lead_delete(request: Request, caller: auth.Caller, form: FormData) -> Response:
    lead_id = api.path_id(request)
    try:
        reason = _text(form, "reason")
    except crm.InvalidInput as exc:
        flash(request, "error", str(exc))
        return redirect(_lead_url(request))
    if form.get("confirm") != "yes":
        flash(request, "error", "Tick the confirmation box to delete the lead.")
        return redirect(_lead_url(request))
    done = await attempt(request, lambda: crm.delete_lead(_wh(request), lead_id, caller.principal, reason),
                         f"Lead {lead_id} deleted; its personal data was erased.")
    return redirect("/console/leads" if done else _lead_url(request))


@page("lead.list")
async def stats_page(request: Request, caller: auth.Caller, form: FormData) -> Response:
    wh = _wh(request)

    me = caller.principal

    def load() -> list[dict[str, Any]]:
        everything = "All distributors" if me.scope is None else "All your distributors"
        rows = [{"key": None, "name": everything, **crm.stats(wh, actor=me)}]
        for d in crm.visible_distributors(wh, actor=me):
            rows.append({"key": d.key, "name": d.name, **crm.stats(wh, d.key, actor=me)})
        return rows

    return render(request, "stats.html", {"rows": await run_in_threadpool(load), "statuses": crm.STATUSES})


# ------------------------------------------------------------------------------------------------- distributors


@page("distributor.manage")
async def distributors_page(request: Request, caller: auth.Caller, form: FormData) -> Response:
    dists = await run_in_threadpool(registry.list_all, _wh(request))
    return render(request, "distributors.html", {"distributors": dists})


def _token(form: FormData) -> str:
    token = _text(form, "access_token", max_length=4096).strip()
    if token and not re.fullmatch(TOKEN_PATTERN, token):
        raise crm.InvalidInput("The access token has spaces or characters a token never has: paste the token alone.")
    return token


def _id_list(form: FormData, name: str) -> list[str]:
    raw = _text(form, name, max_length=4000)
    return [p for p in (s.strip() for s in raw.replace("\n", ",").split(",")) if p]


@page("distributor.manage")
async def distributor_create(request: Request, caller: auth.Caller, form: FormData) -> Response:
    try:
        name = _text(form, "name", max_length=200)
        token = _token(form)
        pages, forms = _id_list(form, "page_ids"), _id_list(form, "form_ids")
        region = _text(form, "region", max_length=10) or "TR"
        cipher = api.cipher_for(request)
    except Exception as exc:  # noqa: BLE001 - shown as a flash message
        flash(request, "error", api.classify(exc).message)
        return redirect("/console/distributors")
    created = await attempt(request, lambda: registry.add(_wh(request), name, token, page_ids=pages, form_ids=forms,
                                                          region=region, actor=caller.id, cipher=cipher),
                            lambda d: f"Distributor {d.name} added (key {d.key}).")
    return redirect(f"/console/distributors/{created.key}" if created else "/console/distributors")


@page("distributor.manage")
async def distributor_page(request: Request, caller: auth.Caller, form: FormData) -> Response:
    try:
        d = await run_in_threadpool(registry.get, _wh(request), api.path_id(request, "key"))
    except registry.DistributorNotFound as exc:
        return error_page(request, 404, exc)
    return render(request, "distributor.html", {"d": d})


@page("distributor.manage")
async def distributor_save(request: Request, caller: auth.Caller, form: FormData) -> Response:
    key = api.path_id(request, "key")
    back = f"/console/distributors/{quote(str(request.path_params['key']), safe='')}"
    try:
        changes: dict[str, Any] = {
            "name": _text(form, "name", max_length=200),
            "page_ids": _id_list(form, "page_ids"),
            "form_ids": _id_list(form, "form_ids"),
            "region": _text(form, "region", max_length=10),
            "interval": _text(form, "interval_minutes", max_length=10).strip(),
            "notify_email": _text(form, "notify_email", max_length=320),
            "enabled": form.get("enabled") == "on",
        }
        token = _token(form)
        if token:
            changes["token"] = token
        cipher = api.cipher_for(request) if token else None
    except Exception as exc:  # noqa: BLE001 - shown as a flash message
        flash(request, "error", api.classify(exc).message)
        return redirect(back)
    msg = "Settings saved" + (" (new access token stored)." if token else ".")
    await attempt(request, lambda: registry.update(_wh(request), key, actor=caller.id, cipher=cipher, **changes), msg)
    return redirect(back)


async def _run_for(request: Request, caller: auth.Caller, what: str) -> Response:
    key = str(request.path_params["key"])
    back = f"/console/distributors/{quote(key, safe='')}"
    try:
        d = await api.ready_distributor(request)
    except Exception as exc:  # noqa: BLE001 - shown as a flash message
        flash(request, "error", api.classify(exc).message)
        return redirect(back)
    if what == "test":
        fn = lambda: api.test_distributor(request, d.key)  # noqa: E731
    else:
        fn = lambda: api.sync_distributor(request, d.key, "console")  # noqa: E731
    try:
        result = await api.run_exclusive(request, d.key, what, fn)
    except Exception as exc:  # noqa: BLE001 - shown as a flash message
        flash(request, "error", api.classify(exc).message)
        return redirect(back)
    after = {"success": bool(result.get("success"))}
    if what == "sync":
        after.update(fetched=result["fetched"], stored=result["stored"])
    await run_in_threadpool(api.audit_run, _wh(request), caller.id, f"distributor.{what}", d.key, after)
    label = "Connection test" if what == "test" else "Sync"
    flash(request, "success" if result.get("success") else "error", f"{label}: {result.get('message', '')}")
    for problem in (result.get("errors") or [])[:3]:
        flash(request, "error", str(problem))
    return redirect(back)


@page("distributor.manage")
async def distributor_test(request: Request, caller: auth.Caller, form: FormData) -> Response:
    return await _run_for(request, caller, "test")


@page("distributor.manage")
async def distributor_sync(request: Request, caller: auth.Caller, form: FormData) -> Response:
    return await _run_for(request, caller, "sync")


# ------------------------------------------------------------------------------------------------- routes


# ------------------------------------------------------------------------------------------------- users (superadmin)


@page("user.manage")
async def users_page(request: Request, caller: auth.Caller, form: FormData) -> Response:
    """Every user with the distributors they work; a superadmin adds users and changes their distributors here."""
    wh = _wh(request)
    users, dists = await run_in_threadpool(lambda: (crm.list_users(wh, actor=caller.principal),
                                                    crm.visible_distributors(wh, actor=caller.principal)))
    return render(request, "users.html", {"users": users, "distributors": dists, "roles": crm.ROLES})


def _checked_distributors(form: FormData) -> list[str]:
    keys = [k for k in form.getlist("distributor") if isinstance(k, str)]
    if any("\x00" in k or len(k) > 200 for k in keys) or len(keys) > 1000:
        raise crm.InvalidInput("Bad distributor key in the form.")
    return keys


@page("user.manage")
async def user_create(request: Request, caller: auth.Caller, form: FormData) -> Response:
    try:
        name, email = _text(form, "name", max_length=200), _text(form, "email", max_length=320)
        role = _text(form, "role", max_length=20)
        keys = _checked_distributors(form)
    except crm.InvalidInput as exc:
        flash(request, "error", str(exc))
        return redirect("/console/users")
    await attempt(request, lambda: crm.add_user(_wh(request), name, email, role, distributors=keys,
                                                actor=caller.principal),
                  lambda u: f"Added {u['role']} {u['email']}"
                            + (" (no distributors: they see no leads yet)." if u["distributors"] == [] else "."))
    return redirect("/console/users")


@page("user.manage")
async def user_distributors(request: Request, caller: auth.Caller, form: FormData) -> Response:
    user_id = api.path_id(request)
    try:
        keys = _checked_distributors(form)
    except crm.InvalidInput as exc:
        flash(request, "error", str(exc))
        return redirect("/console/users")
    await attempt(request, lambda: crm.set_user_distributors(_wh(request), user_id, keys, actor=caller.principal),
                  lambda u: f"{u['email']} now works: {', '.join(u['distributors']) or 'no distributor'}.")
    return redirect("/console/users")


def routes() -> list[Route]:
    return [
        Route("/", home, methods=["GET"]),
        Route("/static/console.css", stylesheet, methods=["GET"]),
        Route("/login", api.by_method(GET=login_form, POST=login), methods=["GET", "POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/console", home, methods=["GET"]),
        Route("/console/leads", leads_page, methods=["GET"]),
        Route("/console/leads/{id}", lead_page, methods=["GET"]),
        Route("/console/leads/{id}/status", lead_status, methods=["POST"]),
        Route("/console/leads/{id}/assign", lead_assign, methods=["POST"]),
        Route("/console/leads/{id}/note", lead_note, methods=["POST"]),
        Route("/console/leads/{id}/interactions", lead_log, methods=["POST"]),
        Route("/console/leads/{id}/delete", lead_delete, methods=["POST"]),
        Route("/console/stats", stats_page, methods=["GET"]),
        Route("/console/distributors", api.by_method(GET=distributors_page, POST=distributor_create),
              methods=["GET", "POST"]),
        Route("/console/distributors/{key}", api.by_method(GET=distributor_page, POST=distributor_save),
              methods=["GET", "POST"]),
        Route("/console/distributors/{key}/test", distributor_test, methods=["POST"]),
        Route("/console/distributors/{key}/sync", distributor_sync, methods=["POST"]),
        Route("/console/users", api.by_method(GET=users_page, POST=user_create), methods=["GET", "POST"]),
        Route("/console/users/{id}/distributors", user_distributors, methods=["POST"]),
    ]
