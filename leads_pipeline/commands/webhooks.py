"""``leads-pipeline webhooks``: subscribe a distributor's Pages to leadgen webhooks, inspect and process the inbox."""

from __future__ import annotations

from typing import Any

import click

from leads_pipeline.commands.common import echo_json, fail, warehouse
from leads_pipeline.lib.distributors import registry as distributors
from leads_pipeline.lib.graph import REQUIRED_PERMISSIONS, GraphError, make_client
from leads_pipeline.lib.graph.errors import TokenExpiredError, TokenInvalidError
from leads_pipeline.lib.webhooks import inbox
from leads_pipeline.lib.webhooks import process as inbox_process
from leads_pipeline.settings import get_settings
from leads_pipeline.web.webhooks import WEBHOOK_PATH

#: What Meta's "Webhooks for Leadgen" page asks the token to hold.
WEBHOOK_PERMISSIONS = ("leads_retrieval", "pages_manage_metadata", "pages_show_list", "pages_read_engagement",
                       "ads_management")


@click.group("webhooks")
def webhooks() -> None:
    """Real-time leads through Meta's leadgen webhooks: subscribe Pages, inspect and process the inbox."""


def _known(wh, key: str) -> distributors.Distributor:
    try:
        return distributors.get(wh, key)
    except distributors.DistributorNotFound as exc:
        fail(str(exc))


def _instructions(public_url: str | None) -> list[str]:
    settings = get_settings()
    callback = f"{public_url.rstrip('/')}{WEBHOOK_PATH}" if public_url else f"https://<your host>{WEBHOOK_PATH}"
    verify = "set" if settings.webhook_verify_token is not None else "NOT SET: set it before verifying"
    secret = "set" if settings.app_secret is not None else "NOT SET: deliveries are refused (503) until it is"
    return [
        "In the Meta App Dashboard → Webhooks, choose the Page object and subscribe:",
        f"  Callback URL:  {callback}   (public HTTPS; `leads-pipeline serve` answers it)",
        f"  Verify token:  the value of LEADS_WEBHOOK_VERIFY_TOKEN ({verify})",
        "  Field:         leadgen   (Page object)",
        f"  App secret:    LEADS_APP_SECRET checks X-Hub-Signature-256 ({secret})",
        f"  Permissions the token needs: {', '.join(WEBHOOK_PERMISSIONS)}",
        "  The app must be Live (in Development mode Meta only sends leads of people with a role on the app).",
        "Test with https://developers.facebook.com/tools/lead-ads-testing, then `leads-pipeline webhooks inbox`.",
    ]


@webhooks.command("subscribe")
@click.argument("key")
@click.option("--public-url", default=None, help="The service's public base URL, to print the exact callback URL.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def subscribe(key: str, public_url: str | None, as_json: bool) -> None:
    """Install the app's leadgen webhooks on each Page of distributor KEY (POST /{page-id}/subscribed_apps)."""
    wh = warehouse()
    dist = _known(wh, key)
    try:
        token = distributors.access_token(wh, key)
    except distributors.DistributorError as exc:
        fail(str(exc))
    client = make_client(token)
    page_tokens: dict[str, str] = {}
    try:
        for page in client.me_accounts():
            if page.get("id"):
                page_tokens[str(page["id"])] = page.get("access_token") or token
    except (TokenExpiredError, TokenInvalidError) as exc:
        fail(exc.user_message)
    except GraphError:
        pass  # a page token: it subscribes its own Page
    page_ids = list(dist.page_ids) or sorted(page_tokens)
    if not page_ids:
        fail(f"Distributor {key} has no Page: add one with `leads-pipeline distributors update {key} --page-id ID`, "
             "or use a user token that manages the Page (pages_show_list).")
    pages: list[dict[str, Any]] = []
    for page_id in page_ids:
        page_client = client.with_token(page_tokens.get(page_id, token))
        entry: dict[str, Any] = {"page_id": page_id, "subscribed": False, "fields": [], "error": None}
        try:
            page_client.subscribe_page(page_id, ("leadgen",))
            apps = page_client.subscribed_apps(page_id)
            fields = sorted({f for app in apps for f in (app.get("subscribed_fields") or [])})
            entry["fields"] = fields
            entry["subscribed"] = "leadgen" in fields or (bool(apps) and not fields)
            if not entry["subscribed"]:
                entry["error"] = "the app is not listed with the leadgen field after subscribing"
        except GraphError as exc:
            entry["error"] = exc.user_message
        pages.append(entry)
    ok = all(p["subscribed"] for p in pages)
    result = {"success": ok, "distributor": key, "pages": pages, "callback_path": WEBHOOK_PATH,
              "permissions": list(WEBHOOK_PERMISSIONS)}
    if as_json:
        echo_json(result)
    else:
        for p in pages:
            state = "subscribed (leadgen)" if p["subscribed"] else f"FAILED: {p['error']}"
            click.echo(f"Page {p['page_id']}: {state}")
        click.echo("")
        for line in _instructions(public_url):
            click.echo(line)
    if not ok:
        fail("Some Pages could not be subscribed: the token needs "
             f"{', '.join(sorted(set(WEBHOOK_PERMISSIONS) | set(REQUIRED_PERMISSIONS)))} and a role on the Page.")


@webhooks.command("inbox")
@click.option("--status", type=click.Choice(inbox.STATUSES), default=None, help="Only rows with this status.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def inbox_cmd(status: str | None, as_json: bool) -> None:
    """Webhook inbox: rows per status and distributor, unrouted Page ids, recent errors."""
    wh = warehouse()
    data = inbox.summary(wh, status)
    if as_json:
        echo_json(data)
        return
    if not data["total"]:
        click.echo("The webhook inbox is empty" + (f" for status {status}." if status else "."))
        return
    click.echo(f"{data['total']} inbox row(s): " + ", ".join(f"{k} {v}" for k, v in data["by_status"].items()))
    for row in data["by_distributor"]:
        who = row["distributor"] or "(no distributor)"
        extra = ""
        if row["status"] == "pending" and row.get("next_attempt_at"):
            extra = f"  next attempt {row['next_attempt_at']} (up to {row['max_attempts']} failed so far)"
        click.echo(f"  {row['status']:<14} {who:<30} {row['rows']:>8} row(s)  {row['deliveries']:>8} deliveries  "
                   f"last {row['last_received_at']}{extra}")
    if data["unrouted"]:
        click.echo("Unrouted (no distributor owns the form; claim it with `distributors add|update --form-id`, or let "
                   "the sync of the distributor with that Page discover it — they are routed then):")
        for row in data["unrouted"]:
            click.echo(f"  page {row['page_id'] or '-'} form {row['form_id'] or '-'}: {row['rows']} row(s), "
                       f"last {row['last_received_at']}")
    if data["recent_errors"]:
        click.echo("Recent errors:")
        for row in data["recent_errors"]:
            when = f", attempt {row['attempts']}, next {row['next_attempt_at']}" if row["status"] == "pending" else ""
            click.echo(f"  {row['leadgen_id']} ({row['distributor']}, {row['status']}{when}): {row['error']}")


@webhooks.command("process")
@click.argument("key", required=False)
@click.option("--limit", default=500, show_default=True, help="Leads per round (Graph batches of 50).")
def process(key: str | None, limit: int) -> None:
    """Fetch and store the due webhook leads now (of KEY, or of every distributor), without Dagster.

    Each round is a sync run (``sync_runs``, trigger ``webhook``); leads Meta cannot serve yet wait for their next
    attempt (``webhooks inbox`` shows when)."""
    wh = warehouse()
    rerouted = inbox.reroute_unrouted(wh)
    if key is not None:
        _known(wh, key)
        keys = [key]
    else:
        keys = sorted(inbox.overview(wh).pending)  # enabled distributors with rows due now
    settings = get_settings()
    results = [inbox_process.process_all(wh, k, lambda token: make_client(token, settings), limit=limit,
                                         settings=settings).to_dict()
               for k in keys]
    echo_json({"rerouted": rerouted, "distributors": results})
    fatal = [r for r in results if r["fatal"]]
    if fatal:
        fail("; ".join(f"{r['distributor']}: {r['fatal']}" for r in fatal))
