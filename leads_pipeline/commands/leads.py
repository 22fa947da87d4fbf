"""``leads-pipeline lead …`` (work one lead, or many with ``lead bulk``) and ``leads-pipeline leads recent``.

Lead ids are Meta lead ids. Every command acts as the CLI operator (``cli``, superadmin-equivalent) unless
``--as EMAIL`` (or ``LEADS_ACTOR``) names a user, whose role then applies. Tables for people, ``--json`` for
scripts; on failure the message goes to stderr and the exit status is 1.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import click

from leads_pipeline.commands.common import echo_json, fail, warehouse
from leads_pipeline.lib import crm
from leads_pipeline.lib.crm.privacy import PrivacyConfigError
from leads_pipeline.lib.warehouse import Warehouse, WarehouseError

_ACTOR_KEY = "leads_pipeline.actor"

# --------------------------------------------------------------------------------------------- shared CLI helpers


def _store_actor(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    if value:
        ctx.meta[_ACTOR_KEY] = value.strip()


def as_option(f: Callable) -> Callable:
    """``--as EMAIL``: act as that user (their role applies). Allowed on the group and on each subcommand."""
    return click.option("--as", "as_", metavar="EMAIL", expose_value=False, callback=_store_actor,
                        is_eager=True, help="Act as this user (id or email); default: the CLI operator.")(f)


def group_as_option(f: Callable) -> Callable:
    return click.option("--as", "as_", metavar="EMAIL", envvar="LEADS_ACTOR", expose_value=False,
                        callback=_store_actor, help="Act as this user (id or email) for every subcommand; "
                        "default: the CLI operator (superadmin-equivalent). Env: LEADS_ACTOR.")(f)


def current_actor() -> str:
    return click.get_current_context().meta.get(_ACTOR_KEY) or "cli"


def friendly(f: Callable) -> Callable:
    """Turn refusals and warehouse errors into ``Error: <message>`` on stderr and exit status 1."""

    @functools.wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return f(*args, **kwargs)
        except (crm.CrmError, WarehouseError, PrivacyConfigError) as exc:
            fail(str(exc))

    return wrapper


def authorize_read(wh: Warehouse, action: str) -> None:
    with wh.transaction(read_only=True) as conn:
        crm.authorize(crm.resolve_actor(conn, current_actor()), action)


def plain(value: Any) -> Any:
    """JSON-ready: datetimes as ISO-8601 strings, dataclasses/tuples as dicts/lists."""
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def fmt_time(value: Any) -> str:
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M")
    return "" if value is None else str(value)


def _cell(value: Any, width: int = 36) -> str:
    text = fmt_time(value) if isinstance(value, dt.datetime) else ("" if value is None else str(value))
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def echo_table(rows: Iterable[Mapping[str, Any]], columns: list[tuple[str, str]]) -> None:
    """A plain text table: ``columns`` are (header, key)."""
    cells = [[_cell(r.get(key)) for _, key in columns] for r in rows]
    headers = [h for h, _ in columns]
    widths = [max([len(h)] + [len(c[i]) for c in cells]) for i, h in enumerate(headers)]
    click.echo("  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip())
    for c in cells:
        click.echo("  ".join(v.ljust(w) for v, w in zip(c, widths)).rstrip())


def json_option(f: Callable) -> Callable:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON (for scripts).")(f)


_LIST_COLUMNS = [("ID", "meta_lead_id"), ("CREATED", "created_time"), ("DISTRIBUTOR", "distributor"),
                 ("STATUS", "status"), ("NAME", "full_name"), ("EMAIL", "email"), ("PHONE", "phone"),
                 ("ASSIGNED", "assigned_to_email")]


def filter_options(f: Callable) -> Callable:
    """The filters of ``lead list`` (and of ``lead bulk`` without --ids)."""
    for opt in reversed([
        click.option("--distributor", "-d", help="Distributor key (comma-separate several)."),
        click.option("--status", "-s", help=f"Status (comma-separate several): {', '.join(crm.STATUSES)}."),
        click.option("--search", "-q", help="Name, email or phone contains this (case-insensitive; digits match "
                     "phones in any format)."),
        click.option("--assigned-to", help="User id or email, or 'unassigned'."),
        click.option("--from", "created_from", metavar="DATE", help="Created on or after (YYYY-MM-DD or ISO)."),
        click.option("--to", "created_to", metavar="DATE", help="Created before; a bare date includes that day."),
    ]):
        f = opt(f)
    return f


def _filters(**kwargs: Any) -> dict[str, Any]:
    return {k: v for k, v in kwargs.items() if k in crm.FILTER_KEYS and v not in (None, "")}


# --------------------------------------------------------------------------------------------- lead


@click.group("lead")
@group_as_option
def lead() -> None:
    """Work leads: list, show, change status, assign, note, log calls/emails/SMS, delete, bulk."""


@lead.command("list")
@filter_options
@click.option("--sort", default="-created_time", show_default=True,
              help=f"One of {', '.join(crm.SORTS)}; prefix '-' for descending.")
@click.option("--page", default=1, show_default=True, type=click.IntRange(min=1))
@click.option("--per-page", default=50, show_default=True, type=click.IntRange(1, 500))
@json_option
@as_option
@friendly
def list_cmd(sort: str, page: int, per_page: int, as_json: bool, **filters: Any) -> None:
    """List leads, newest first, with filters and pages."""
    wh = warehouse()
    authorize_read(wh, "lead.list")
    result = crm.list_leads(wh, actor=current_actor(), **_filters(**filters), sort=sort, page=page,
                            per_page=per_page)
    if as_json:
        echo_json(plain(result.to_dict()))
        return
    if not result.items:
        click.echo("No leads match." if result.total == 0 else f"Page {page} is past the last page ({result.pages}).")
        return
    echo_table(result.items, _LIST_COLUMNS)
    click.echo(f"\nPage {result.page}/{result.pages} · {result.total} lead{'s' if result.total != 1 else ''}")


def _describe_interaction(i: Mapping[str, Any]) -> str:
    kind = i["kind"]
    if kind in ("status_change", "reopen"):
        text = f"{i['from_status']} → {i['to_status']}"
    elif kind == "assignment":
        text = f"→ {i.get('assigned_to_email') or i.get('assigned_to')}"
    elif kind in crm.CONTACT_KINDS:
        text = " · ".join(v for v in (i.get("direction"), i.get("outcome")) if v)
    else:
        text = ""
    if i.get("body"):
        text = (text + "  " if text else "") + f"“{' '.join(str(i['body']).split())}”"
    return text


@lead.command("show")
@click.argument("lead_id")
@json_option
@as_option
@friendly
def show_cmd(lead_id: str, as_json: bool) -> None:
    """Show one lead with its timeline."""
    wh = warehouse()
    authorize_read(wh, "lead.show")
    item = crm.get_lead(wh, lead_id, actor=current_actor())
    if as_json:
        echo_json(plain(item))
        return
    click.echo(f"Lead {item['meta_lead_id']}  ({item['distributor']} · form {item.get('form_id') or '-'} · "
               f"created {fmt_time(item['created_time'])})")
    fields = [
        ("Name", item.get("full_name")), ("Email", item.get("email")), ("Phone", item.get("phone")),
        ("City", ", ".join(v for v in (item.get("city"), item.get("country")) if v)),
        ("Status", f"{item['status']}" + (f" (since {fmt_time(item['status_changed_at'])})"
                                          if item.get("status_changed_at") else "")),
        ("Assigned", item.get("assigned_to_email") or item.get("assigned_to") or "-"),
        ("First contact", fmt_time(item.get("first_contacted_at")) or "-"),
        ("Campaign", item.get("campaign_name") or item.get("campaign_id")),
        ("Ad", item.get("ad_name") or item.get("ad_id")),
        ("Platform", item.get("platform")),
    ]
    for label, value in fields:
        if value:
            click.echo(f"  {label:<14}{value}")
    answers = item.get("custom_fields") or {}
    if isinstance(answers, dict):
        for key, value in answers.items():
            shown = ", ".join(map(str, value)) if isinstance(value, list) else str(value)
            click.echo(f"  {key + ':':<14}{shown}")
    click.echo("Timeline" + ("" if item["timeline"] else ": nothing yet"))
    for i in item["timeline"]:
        who = i.get("actor_email") or i.get("actor") or ""
        click.echo(f"  {fmt_time(i['occurred_at'])}  {i['kind']:<13} {who:<24} {_describe_interaction(i)}".rstrip())


def _done(as_json: bool, data: Mapping[str, Any], message: str) -> None:
    if as_json:
        echo_json(plain(data))
    else:
        click.echo(message)


@lead.command("status")
@click.argument("lead_id")
@click.argument("status", type=click.Choice(crm.STATUSES, case_sensitive=False))
@click.option("--note", help="A note kept with the status change.")
@json_option
@as_option
@friendly
def status_cmd(lead_id: str, status: str, note: str | None, as_json: bool) -> None:
    """Change a lead's status (new → assigned → contacted → converted | rejected; rejected can be reopened)."""
    r = crm.change_status(warehouse(), lead_id, status, current_actor(), note=note)
    verb = "reopened" if r["reopen"] else "moved"
    _done(as_json, r, f"Lead {lead_id} {verb}: {r['from_status']} → {r['status']}")


@lead.command("assign")
@click.argument("lead_id")
@click.argument("user")
@json_option
@as_option
@friendly
def assign_cmd(lead_id: str, user: str, as_json: bool) -> None:
    """Assign a lead to an active user (id or email); a new lead becomes 'assigned'."""
    r = crm.assign(warehouse(), lead_id, user, current_actor())
    moved = f" ({r['from_status']} → {r['status']})" if r["from_status"] != r["status"] else ""
    _done(as_json, r, f"Lead {lead_id} assigned to {r['assigned_to_email']}{moved}")


@lead.command("note")
@click.argument("lead_id")
@click.argument("text")
@json_option
@as_option
@friendly
def note_cmd(lead_id: str, text: str, as_json: bool) -> None:
    """Add a note to a lead's timeline."""
    r = crm.add_note(warehouse(), lead_id, text, current_actor())
    _done(as_json, r, f"Note added to lead {lead_id}")


@lead.command("log")
@click.argument("lead_id")
@click.argument("kind", type=click.Choice(crm.CONTACT_KINDS, case_sensitive=False))
@click.option("--direction", type=click.Choice(crm.DIRECTIONS), default="outbound", show_default=True)
@click.option("--outcome", help="call: " + ", ".join(crm.OUTCOMES["call"]) + "; email: "
              + ", ".join(crm.OUTCOMES["email"]) + "; sms: " + ", ".join(crm.OUTCOMES["sms"])
              + ". Default: 'sent' for outbound email/SMS, 'received' for inbound; required for calls.")
@click.option("--body", help="What was said or written.")
@click.option("--at", "occurred_at", metavar="DATETIME", help="When it happened (ISO; default now).")
@json_option
@as_option
@friendly
def log_cmd(lead_id: str, kind: str, direction: str, outcome: str | None, body: str | None,
            occurred_at: str | None, as_json: bool) -> None:
    """Log a call, email or SMS. An outbound one on a new/assigned lead moves it to 'contacted'."""
    kind = kind.lower()
    if outcome is None:
        if kind == "call":
            fail("--outcome is required for a call: " + ", ".join(crm.OUTCOMES["call"]) + ".")
        outcome = "sent" if direction == "outbound" else "received"
    r = crm.log_interaction(warehouse(), lead_id, kind, current_actor(), direction, outcome, body=body,
                            occurred_at=occurred_at)
    moved = f"; {r['from_status']} → {r['status']}" if r["from_status"] != r["status"] else ""
    _done(as_json, r, f"Logged {direction} {kind} ({outcome}) on lead {lead_id}{moved}")


@lead.command("delete")
@click.argument("lead_id")
@click.option("--reason", required=True, help="Why (e.g. 'privacy request by email 2026-06-01'). Kept in the "
              "tombstone and audit log: don't type the person's contact data here.")
@click.option("--yes", is_flag=True, help="Don't ask for confirmation.")
@json_option
@as_option
@friendly
def delete_cmd(lead_id: str, reason: str, yes: bool, as_json: bool) -> None:
    """Erase a lead's personal data from every table and keep a tombstone so it never comes back (superadmin).

    LEAD_ID is a Meta lead id, or the handle `leads-pipeline privacy find` shows for a record without a usable id.
    The erased bytes stay in the database files until `leads-pipeline privacy compact` rewrites them."""
    if not yes:
        click.confirm(f"Erase lead {lead_id} and all its personal data? This cannot be undone", abort=True,
                      err=True)
    r = crm.delete_lead(warehouse(), lead_id, current_actor(), reason)
    _done(as_json, r, f"Lead {lead_id} deleted; tombstone kept (deleted by {r['deleted_by']}). The database files "
          "keep the erased bytes until `leads-pipeline privacy compact` rewrites them.")


# --------------------------------------------------------------------------------------------- lead bulk


@lead.group("bulk")
def bulk_group() -> None:
    """One action on many leads (--ids a,b,c or filters), all or nothing."""


def bulk_target_options(f: Callable) -> Callable:
    f = filter_options(f)
    f = click.option("--ids", help="Comma-separated Meta lead ids (instead of filters).")(f)
    f = click.option("--dry-run", is_flag=True, help="Validate and show which leads would change; change none.")(f)
    return f


def _run_bulk(action: str, ids: str | None, filters: dict[str, Any], dry_run: bool, as_json: bool,
              confirm: str | None = None, **args: Any) -> None:
    wh = warehouse()
    filt = _filters(**filters)
    if ids and filt:
        fail("Give either --ids or filters, not both.")
    if not ids and not filt:
        fail("Say which leads: --ids a,b,c, or at least one filter (--status, --distributor, --search, …).")
    target = {"ids": ids} if ids else {"filter": filt}
    if confirm and not dry_run:
        preview = crm.bulk(wh, action, **target, actor=current_actor(), dry_run=True, **args)
        if preview.count == 0:
            _bulk_done(preview, as_json)
            return
        click.confirm(confirm.format(n=preview.count), abort=True, err=True)
        target = {"ids": preview.ids}
    result = crm.bulk(wh, action, **target, actor=current_actor(), dry_run=dry_run, **args)
    _bulk_done(result, as_json)


def _bulk_done(result: crm.BulkResult, as_json: bool) -> None:
    if as_json:
        echo_json(result.to_dict())
        return
    verb = "would change" if result.dry_run else "changed"
    click.echo(f"{result.action}: {verb} {result.count} lead{'s' if result.count != 1 else ''}")
    if result.ids:
        click.echo("  " + ", ".join(result.ids[:50]) + (" …" if len(result.ids) > 50 else ""))


@bulk_group.command("status")
@click.argument("new_status", metavar="STATUS", type=click.Choice(crm.STATUSES, case_sensitive=False))
@bulk_target_options
@click.option("--note", help="A note kept with each status change.")
@json_option
@as_option
@friendly
def bulk_status_cmd(new_status: str, ids: str | None, dry_run: bool, note: str | None, as_json: bool,
                    **filters: Any) -> None:
    """Move many leads to STATUS (refused as a whole if any lead can't make the move)."""
    _run_bulk("status", ids, filters, dry_run, as_json, status=new_status, note=note)


@bulk_group.command("assign")
@click.argument("user")
@bulk_target_options
@json_option
@as_option
@friendly
def bulk_assign_cmd(user: str, ids: str | None, dry_run: bool, as_json: bool, **filters: Any) -> None:
    """Assign many leads to USER (new ones become 'assigned')."""
    _run_bulk("assign", ids, filters, dry_run, as_json, user=user)


@bulk_group.command("delete")
@bulk_target_options
@click.option("--reason", required=True, help="Why; kept in each tombstone and audit row.")
@click.option("--yes", is_flag=True, help="Don't ask for confirmation.")
@json_option
@as_option
@friendly
def bulk_delete_cmd(ids: str | None, dry_run: bool, reason: str, yes: bool, as_json: bool, **filters: Any) -> None:
    """Erase many leads (privacy requests), leaving tombstones (superadmin)."""
    confirm = None if yes else "Erase {n} leads and all their personal data? This cannot be undone"
    _run_bulk("delete", ids, filters, dry_run, as_json, confirm=confirm, reason=reason)


# --------------------------------------------------------------------------------------------- leads


@click.group("leads")
@group_as_option
def leads() -> None:
    """Lead overviews (see also `lead list`)."""


@leads.command("recent")
@click.option("--limit", "-n", default=10, show_default=True, type=click.IntRange(1, 1000))
@click.option("--distributor", "-d", help="Only this distributor.")
@json_option
@as_option
@friendly
def recent_cmd(limit: int, distributor: str | None, as_json: bool) -> None:
    """The newest leads."""
    wh = warehouse()
    authorize_read(wh, "lead.list")
    items = crm.recent_leads(wh, limit=limit, distributor=distributor, actor=current_actor())
    if as_json:
        echo_json(plain(items))
    elif not items:
        click.echo("No leads yet.")
    else:
        echo_table(items, _LIST_COLUMNS)
