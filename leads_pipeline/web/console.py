"""The staff console: server-rendered pages (Jinja2, no JavaScript) over the same operations as the API.

Log in with email + password (``leads-pipeline users set-password EMAIL``). Pages: the lead list (all, "my leads",
unassigned; filters by distributor, status and assignee, search, page numbers, the seed's stats), a lead with its
answers under the form's questions, contact links and timeline, and the forms to work it (only the moves the rules
allow, none pre-chosen, with assignment; call/email/SMS each with its own outcomes; note; delete for superadmins),
the stats by distributor, and — for superadmins — the distributors' Meta settings with "test connection" and "sync
now". Times show in the distributor's time zone (UTC on hover). Final moves (converted, rejected, delete) ask on a
confirmation page first. Every form POST carries the session's CSRF token; every change goes through ``lib/crm`` /
``lib/distributors`` as the logged-in user (so it is in ``audit_log``), then redirects back with a flash message
(post/redirect/get). Presentation rules (time zones, answers, links, page numbers, move words) are in
``present.py``.
"""

from __future__ import annotations

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

from leads_pipeline.lib import capi, crm
from leads_pipeline.lib.crm import credentials
from leads_pipeline.lib.crm.operations import MAX_TEXT
from leads_pipeline.lib.distributors import health, registry
from leads_pipeline.lib.distributors.forms import form_details

from . import api, auth, present
from .api.models import TOKEN_PATTERN

log = logging.getLogger(__name__)

TEMPLATES_DIR = Path(__file__).parent / "templates"
PER_PAGE = 25
MAX_FORM_BYTES = 256 * 1024
MAX_FLASH = 500
templates = Jinja2Templates(directory=str(TEMPLATES_DIR))


# Times: ``{{ t | when(zone) }}`` shows ``t`` in ``zone`` (a distributor's) with UTC on hover; without a zone, UTC.
templates.env.filters["when"] = present.local_time
templates.env.filters["waited"] = present.waited


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
    """The lead list: views (all, "my leads", unassigned), filters, search, page numbers; times in each lead's
    distributor's time zone; leads past their distributor's speed-to-lead target marked overdue."""
    q = request.query_params
    filters: dict[str, str] = {}
    for name in ("distributor", "status", "search", "assigned_to"):
        value = (q.get(name) or "").strip()
        if value and "\x00" not in value and len(value) <= 200:
            filters[name] = value
    view = q.get("view") if q.get("view") in VIEWS else None
    if view:
        filters.pop("assigned_to", None)  # the view says whose leads these are
    try:
        page_no = max(1, min(int(q.get("page") or 1), 1_000_000))
    except ValueError:
        page_no = 1
    wh = _wh(request)
    error = None

    me = caller.principal
    query = dict(filters)
    if view == "mine":
        query["assigned_to"] = me.id
    elif view == "unassigned":
        query["assigned_to"] = "unassigned"

    def load() -> tuple[Any, Any, Any, Any, dict[str, int]]:
        with wh.session():  # one open of the warehouse for the page's reads (each its own transaction)
            dists = crm.visible_distributors(wh, actor=me)
            users = crm.list_users(wh, actor=me, include_inactive=False)
            counts = crm.stats(wh, filters.get("distributor"), actor=me)
            result = crm.list_leads(wh, actor=me, page=page_no, per_page=PER_PAGE, **query)
            return dists, users, counts, result, _overdue(wh, result.items)

    try:
        dists, users, counts, result, overdue = await run_in_threadpool(load)
    except (crm.CrmError, registry.DistributorError) as exc:
        error = str(exc)
        dists, users = await run_in_threadpool(lambda: (crm.visible_distributors(wh, actor=me),
                                                        crm.list_users(wh, actor=me)))
        counts, result, overdue = None, crm.Page(items=[], total=0, page=1, per_page=PER_PAGE), {}

    def url_for(**changes: Any) -> str:
        params = {**filters, **({"view": view} if view else {}), **changes}
        return "/console/leads?" + urlencode({k: v for k, v in params.items() if v not in (None, "")})

    zones = {d.key: present.zone_for_region(d.region) for d in dists}
    return render(request, "leads.html", {
        "filters": filters, "view": view, "views": VIEWS, "distributors": dists, "users": users,
        "statuses": crm.STATUSES, "stats": counts, "result": result, "error": error, "overdue": overdue,
        "zones": zones, "zone_names": sorted({present.zone_name(z) for z in zones.values()}),
        "links": {i["meta_lead_id"]: present.contact_links(i) for i in result.items},
        "view_urls": {v: "/console/leads?" + urlencode({**{k: x for k, x in filters.items() if k != "assigned_to"},
                                                        **({"view": v} if v else {})})
                      for v in ("", *VIEWS)},
        "dist_names": {d.key: d.name for d in dists},
        "clear_url": "/console/leads" + (f"?view={view}" if view else ""),
        "pages": [(n, url_for(page=n) if n else None) for n in present.page_numbers(result.page, result.pages)],
        "prev_url": url_for(page=result.page - 1) if result.page > 1 else None,
        "next_url": url_for(page=result.page + 1) if result.page < result.pages else None,
    })


# "my leads" and "unassigned": ?view=… on the list (a bookmark keeps working for whoever opens it).
VIEWS = {"mine": "My leads", "unassigned": "Unassigned"}


def _overdue(wh: Any, items: list[dict[str, Any]]) -> dict[str, int]:
    """``{lead id: minutes past its distributor's speed-to-lead target}`` for the overdue ones among ``items`` (the
    rule is ``lib/distributors/health``'s, one read of the targets)."""
    return health.overdue_minutes(wh, items) if items else {}


def _assignable(users: list[dict[str, Any]], distributor: str) -> list[dict[str, Any]]:
    """The active users who can see a lead of ``distributor`` (the library refuses the others anyway)."""
    return [u for u in users if u["distributors"] is None or distributor in u["distributors"]]


def _distributor(wh: Any, key: str) -> registry.Distributor | None:
    try:
        return registry.get(wh, key)
    except registry.DistributorNotFound:
        return None


def _zone_of(wh: Any, key: str) -> Any:
    """The time zone a distributor's times show in (its phone region's; UTC for a distributor gone meanwhile)."""
    d = _distributor(wh, key)
    return present.zone_for_region(d.region) if d else present.UTC


@page("lead.show")
async def lead_page(request: Request, caller: auth.Caller, form: FormData) -> Response:
    """A lead: its facts with contact links, its answers under the form's questions, its timeline in local time, and
    the forms to work it — only the moves the rules allow, none chosen for you."""
    lead_id = api.path_id(request)
    wh = _wh(request)
    me = caller.principal

    def load() -> dict[str, Any]:
        with wh.session():  # one open of the warehouse for the page's reads (each its own transaction)
            lead = crm.get_lead(wh, lead_id, actor=me)
            users = _assignable(crm.list_users(wh, actor=me, include_inactive=False), lead["distributor"])
            forms = form_details(wh, lead["distributor"], [lead["form_id"]] if lead["form_id"] else [])
            d = _distributor(wh, lead["distributor"])
            overdue = _overdue(wh, [lead])
        return {"lead": lead, "users": users, "zone": present.zone_for_region(d.region) if d else present.UTC,
                "distributor_name": d.name if d else lead["distributor"], "form": forms.get(lead["form_id"]),
                "overdue": overdue}

    try:
        ctx = await run_in_threadpool(load)
    except crm.LeadNotFound as exc:
        return error_page(request, 404, exc)
    lead, form_info = ctx["lead"], ctx["form"]
    allowed = crm.allowed_transitions(lead["status"])
    return render(request, "lead.html", {
        **ctx, "allowed": allowed, "moves": present.moves(lead["status"], allowed),
        "answers": present.answers(lead["custom_fields"], form_info["questions"] if form_info else None),
        "links": present.contact_links(lead), "zone_name": present.zone_name(ctx["zone"]),
        "contact_kinds": crm.CONTACT_KINDS, "directions": crm.DIRECTIONS, "outcomes": crm.OUTCOMES,
        "kind_words": KIND_WORDS,
    })


# How a contact kind is named on its form and in messages ("Log an email", "Email logged").
KIND_WORDS = {"call": ("a call", "Call"), "email": ("an email", "Email"), "sms": ("an SMS", "SMS")}


def _lead_url(request: Request) -> str:
    return f"/console/leads/{quote(str(request.path_params['id']), safe='')}"


def _confirm(request: Request, lead: dict[str, Any], *, title: str, message: str, consequence: str,
             action: str, fields: dict[str, str], button: str, danger: bool = False) -> Response:
    """The page that asks before a final move: the same form again, with ``confirm=yes``; no script needed."""
    return render(request, "confirm.html", {
        "lead": lead, "title": title, "message": message, "consequence": consequence, "action": action,
        "fields": {k: v for k, v in fields.items() if v}, "button": button, "danger": danger,
        "back": _lead_url(request),
    })


def _lead_name(lead: dict[str, Any]) -> str:
    return lead.get("full_name") or f"lead {lead['meta_lead_id']}"


@page("lead.status")
async def lead_status(request: Request, caller: auth.Caller, form: FormData) -> Response:
    """Move a lead, assigning it on the way when an assignee is chosen.

    ``from_status`` (the status the page showed) must still be the lead's: a page left open while someone else
    moved the lead does not move it again. Converted and rejected ask first (``confirm=yes`` comes from the
    confirmation page). 'assigned' needs someone: from 'new' the assignment itself makes the move (one
    transaction); otherwise the status changes first and the assignment follows."""
    lead_id = api.path_id(request)
    back = _lead_url(request)
    wh = _wh(request)
    me = caller.principal
    try:
        status, note = _text(form, "status", max_length=40).strip().lower(), _text(form, "note")
        user, seen = _text(form, "user", max_length=320).strip(), _text(form, "from_status", max_length=40)
    except crm.InvalidInput as exc:
        flash(request, "error", str(exc))
        return redirect(back)
    if not status:
        flash(request, "error", "Choose where the lead moves (one of the choices under “Move to”).")
        return redirect(back)
    try:
        lead = await run_in_threadpool(lambda: crm.get_lead(wh, lead_id, actor=me))
    except crm.LeadNotFound as exc:  # as every form answers it: a message, and the lead's page says not found
        flash(request, "error", str(exc))
        return redirect(back)
    if seen and seen != lead["status"]:
        flash(request, "error", f"The lead changed meanwhile: it is now {lead['status']}. Nothing was changed; "
                                "check its timeline and choose again.")
        return redirect(back)
    assignee = None
    if user and user != lead["assigned_to"]:
        if not crm.can(me, "lead.assign"):
            return error_page(request, 403, "You may change the status but not assign leads.")
        users = await run_in_threadpool(lambda: crm.list_users(wh, actor=me, include_inactive=False))
        assignee = next((u for u in _assignable(users, lead["distributor"]) if user in (u["id"], u["email"])), None)
        if assignee is None:
            flash(request, "error", "That user cannot work this lead (not active, or not of its distributor): "
                                    "choose someone from the list.")
            return redirect(back)
    if status not in crm.allowed_transitions(lead["status"]):  # the library's refusal says where it can go
        await attempt(request, lambda: crm.change_status(wh, lead_id, status, me, note or None),
                      lambda r: f"Status changed from {r['from_status']} to {r['status']}.")
        return redirect(back)
    if status == "assigned" and assignee is None and not lead["assigned_to"]:
        flash(request, "error", "Choose who works the lead (“Assign to”) to move it to assigned.")
        return redirect(back)
    if status in present.CONFIRM_MOVES and form.get("confirm") != "yes":
        words = {"converted": ("Convert", "converted", "This is final: a converted lead cannot move again."),
                 "rejected": ("Reject", "rejected", "It leaves the work queues; it can be reopened later.")}
        verb, done, consequence = words[status]
        to = f" and assign it to {assignee['name']}" if assignee else ""
        return _confirm(request, lead, title=f"{verb} {_lead_name(lead)}?",
                        message=f"Mark {_lead_name(lead)} as {done}{to}?", consequence=consequence,
                        action=back + "/status", button=f"Yes, {verb.lower()}",
                        fields={"status": status, "note": note, "user": user, "from_status": lead["status"],
                                "confirm": "yes"}, danger=status == "rejected")
    if assignee is not None and status == "assigned":
        # The assignment moves a new lead to 'assigned' in the same transaction; from 'rejected' it is a reopen after.
        done = await attempt(request, lambda: crm.assign(wh, lead_id, assignee["id"], me),
                             lambda r: f"Assigned to {r['assigned_to_email']} (status {r['status']}).")
        if done and done["status"] != "assigned":
            await attempt(request, lambda: crm.change_status(wh, lead_id, status, me, note or None),
                          lambda r: f"Status changed from {r['from_status']} to {r['status']}.")
        elif done and note:
            await attempt(request, lambda: crm.add_note(wh, lead_id, note, me), "Note added.")
        return redirect(back)
    moved = await attempt(request, lambda: crm.change_status(wh, lead_id, status, me, note or None),
                          lambda r: f"Status changed from {r['from_status']} to {r['status']}.")
    if moved and assignee is not None:
        await attempt(request, lambda: crm.assign(wh, lead_id, assignee["id"], me),
                      lambda r: f"Assigned to {r['assigned_to_email']}.")
    return redirect(back)


@page("lead.assign")
async def lead_assign(request: Request, caller: auth.Caller, form: FormData) -> Response:
    lead_id = api.path_id(request)
    try:
        user = _text(form, "user", max_length=320)
    except crm.InvalidInput as exc:
        flash(request, "error", str(exc))
        return redirect(_lead_url(request))
    if not user.strip():
        flash(request, "error", "Choose who works the lead.")
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
    """Log a call, email or SMS (one form per kind, each offering only its own outcomes). "When" is the wall time
    of the lead's distributor, as the page shows times."""
    lead_id = api.path_id(request)
    wh = _wh(request)
    try:
        kind = _text(form, "kind", max_length=20).strip().lower()
        direction = _text(form, "direction", max_length=20) or "outbound"
        outcome = _text(form, "outcome", max_length=40)
        body = _text(form, "body") or None
        when = _text(form, "occurred_at", max_length=40).strip() or None
    except crm.InvalidInput as exc:
        flash(request, "error", str(exc))
        return redirect(_lead_url(request))
    if kind in KIND_WORDS and not outcome.strip():
        flash(request, "error", f"Choose how {KIND_WORDS[kind][0]} went (Outcome): "
                                f"{', '.join(crm.OUTCOMES[kind])}.")
        return redirect(_lead_url(request))
    if when:
        try:
            lead = await run_in_threadpool(lambda: crm.get_lead(wh, lead_id, actor=caller.principal))
        except crm.LeadNotFound as exc:
            flash(request, "error", str(exc))
            return redirect(_lead_url(request))
        when = present.parse_local(when, await run_in_threadpool(_zone_of, wh, lead["distributor"]))
    word = KIND_WORDS.get(kind, (kind, kind.capitalize()))[1]
    await attempt(request, lambda: crm.log_interaction(wh, lead_id, kind, caller.principal, direction=direction,
                                                       outcome=outcome, body=body, occurred_at=when),
                  lambda r: f"{word} logged" + (f"; status now {r['status']}." if r["status"] != r["from_status"]
                                                else "."))
    return redirect(_lead_url(request))


@page("lead.delete")
async def lead_delete(request: Request, caller: auth.Caller, form: FormData) -> Response:
    """A privacy request: asks on a confirmation page first (what is erased, what stays in files until compacted)."""
    lead_id = api.path_id(request)
    wh = _wh(request)
    try:
        reason = _text(form, "reason")
    except crm.InvalidInput as exc:
        flash(request, "error", str(exc))
        return redirect(_lead_url(request))
    if not reason.strip():
        flash(request, "error", "Give the reason for deleting (e.g. the privacy request it answers).")
        return redirect(_lead_url(request))
    if form.get("confirm") != "yes":
        try:
            lead = await run_in_threadpool(lambda: crm.get_lead(wh, lead_id, actor=caller.principal))
        except crm.LeadNotFound as exc:
            flash(request, "error", str(exc))
            return redirect(_lead_url(request))
        return _confirm(request, lead, title=f"Delete {_lead_name(lead)}?",
                        message=f"Erase {_lead_name(lead)}'s personal data from every table of the warehouse?",
                        consequence="It cannot be undone. Erased rows stay readable inside the database files until "
                                    "an operator rewrites them (`leads-pipeline privacy compact`), and in backups "
                                    "made before, until those expire (docs/privacy.md).",
                        action=_lead_url(request) + "/delete", button="Yes, delete for good",
                        fields={"reason": reason, "confirm": "yes"}, danger=True)
    done = await attempt(request, lambda: crm.delete_lead(wh, lead_id, caller.principal, reason),
                         f"Lead {lead_id} deleted; its personal data was erased.")
    return redirect("/console/leads" if done else _lead_url(request))


@page("lead.list")
async def stats_page(request: Request, caller: auth.Caller, form: FormData) -> Response:
    wh = _wh(request)

    me = caller.principal

    def load() -> list[dict[str, Any]]:
        everything = "All distributors" if me.scope is None else "All your distributors"
        with wh.session():  # one open of the warehouse for the page's reads
            rows = [{"key": None, "name": everything, **crm.stats(wh, actor=me)}]
            for d in crm.visible_distributors(wh, actor=me):
                rows.append({"key": d.key, "name": d.name, **crm.stats(wh, d.key, actor=me)})
        return rows

    return render(request, "stats.html", {"rows": await run_in_threadpool(load), "statuses": crm.STATUSES})


# ------------------------------------------------------------------------------------------------- distributors


@page("distributor.manage")
async def distributors_page(request: Request, caller: auth.Caller, form: FormData) -> Response:
    """The distributors with their sync health (state, last success, last error, leads in 24 h, next sync)."""
    wh = _wh(request)
    dists, found = await run_in_threadpool(lambda: (registry.list_all(wh), health.summaries(wh)))
    return render(request, "distributors.html",
                  {"distributors": dists, "health": {h.key: h for h in found},
                   "zones": {d.key: present.zone_for_region(d.default_region) for d in dists}})


def _token(form: FormData, name: str = "access_token") -> str:
    token = _text(form, name, max_length=4096).strip()
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
    conversions = await run_in_threadpool(capi.overview, _wh(request), d.key)
    return render(request, "distributor.html", {"d": d, "capi": conversions, "statuses": crm.STATUSES})


@page("distributor.manage")
async def distributor_save(request: Request, caller: auth.Caller, form: FormData) -> Response:
    key = api.path_id(request, "key")
    back = f"/console/distributors/{quote(str(request.path_params['key']), safe='')}"
    if form.get("section") == "conversions_api":
        return await _save_conversions(request, caller, form, key, back)
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


async def _save_conversions(request: Request, caller: auth.Caller, form: FormData, key: str, back: str) -> Response:
    """The Conversions API section of the distributor page (its own form: a bad field there never blocks saving the
    sync settings). An empty token field keeps the stored one; the checkbox goes back to the distributor's token."""
    try:
        changes: dict[str, Any] = {
            "dataset_id": _text(form, "capi_dataset_id", max_length=40).strip(),
            "crm_name": _text(form, "crm_name", max_length=100),
            "stage_events": {s: _text(form, f"stage_{s}", max_length=100).strip() or None for s in crm.STATUSES},
            "hashed_contacts": form.get("hashed_contacts") == "on",
            "test_event_code": _text(form, "test_event_code", max_length=100).strip(),
        }
        token = _token(form, "capi_access_token")
        if token:
            changes["token"] = token
        elif form.get("capi_clear_token") == "on":
            changes["token"] = None
        capi.config.validate_changes(changes)
        cipher = api.cipher_for(request) if token else None
    except Exception as exc:  # noqa: BLE001 - shown as a flash message
        flash(request, "error", api.classify(exc).message)
        return redirect(back)
    msg = "Conversions API settings saved" + (" (new token stored)." if token else ".")
    await attempt(request, lambda: capi.configure(_wh(request), key, actor=caller.id, cipher=cipher, **changes), msg)
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
        fn = lambda: api.test_distributor(request, d.key)
    else:
        fn = lambda: api.sync_distributor(request, d.key, "console")
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
