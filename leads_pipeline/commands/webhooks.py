"""``leads-pipeline webhooks``: subscribe a distributor's Pages to leadgen webhooks, inspect and process the inbox."""

from __future__ import annotations

from typing import Any

import click

from leads_pipeline.commands.common import echo_json, fail, warehouse
from leads_pipeline.lib.distributors import registry as distributors
from leads_pipeline.lib.graph import REQUIRED_PERMISSIONS, GraphError, make_client
from leads_pipeline.lib.graph.errors import TokenExpiredError, TokenInvalidError
from leads_pipeline.lib.webhooks import WEBHOOK_PATH, inbox
from leads_pipeline.lib.webhooks import process as inbox_process
from leads_pipeline.settings import get_settings

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
@click.argument("key", required=False)
@click.option("--public-url", default=None, help="The service's public base URL, to print the exact callback URL.")
@click.option("--callback-url", default=None,
              help="Also subscribe the app itself to the Page object's leadgen field with this callback URL "
                   "(POST /{app-id}/subscriptions, what the App Dashboard's Webhooks page does), verified at once "
                   "with LEADS_WEBHOOK_VERIFY_TOKEN; needs LEADS_APP_SECRET. With the sandbox simulator: "
                   "http://127.0.0.1:8000/webhooks/meta.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def subscribe(key: str | None, public_url: str | None, callback_url: str | None, as_json: bool) -> None:
    """Install the app's leadgen webhooks on each Page of distributor KEY (POST /{page-id}/subscribed_apps); without
    KEY, of every enabled distributor."""
    wh = warehouse()
    if callback_url:
        _app_credentials()  # before anything changes at Meta
    if key is not None:
        keys = [_known(wh, key).key]
    else:
        keys = [d.key for d in distributors.list_all(wh) if d.enabled]
        if not keys:
            fail("No enabled distributor: add one with `leads-pipeline distributors add`.")
    results = [_subscribe_pages(wh, k) for k in keys]
    app = _subscribe_app(wh, keys[0], callback_url) if callback_url else None
    ok = all(r["success"] for r in results)
    if as_json:
        if key is not None:
            echo_json({**results[0], "app_subscription": app})
        else:
            echo_json({"success": ok, "distributors": results, "app_subscription": app})
    else:
        for result in results:
            if key is None:
                click.echo(f"{result['distributor']}:")
            for p in result["pages"]:
                state = "subscribed (leadgen)" if p["subscribed"] else f"FAILED: {p['error']}"
                click.echo(f"{'' if key else '  '}Page {p['page_id']}: {state}")
        click.echo("")
        if app:
            click.echo(f"App {app['app_id']} subscribed: Page object, field leadgen, callback {app['callback_url']} "
                       "(verified with LEADS_WEBHOOK_VERIFY_TOKEN).")
            click.echo("New leads of these Pages are now POSTed there, signed with the app secret; see them with "
                       "`leads-pipeline webhooks inbox`.")
        else:
            for line in _instructions(public_url):
                click.echo(line)
    if not ok:
        fail("Some Pages could not be subscribed: the token needs "
             f"{', '.join(sorted(set(WEBHOOK_PERMISSIONS) | set(REQUIRED_PERMISSIONS)))} and a role on the Page.")


def _subscribe_pages(wh, key: str) -> dict[str, Any]:
    """Install the app's leadgen webhooks on each Page of one distributor; what happened per Page."""
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
    return {"success": all(p["subscribed"] for p in pages), "distributor": key, "pages": pages,
            "callback_path": WEBHOOK_PATH, "permissions": list(WEBHOOK_PERMISSIONS)}


def _app_credentials() -> tuple[str, str]:
    """(app secret, verify token) for subscribing the app, or a failure naming the setting that is missing."""
    settings = get_settings()
    if settings.app_secret is None:
        fail("--callback-url needs LEADS_APP_SECRET: the app token is made with it, and `serve` checks the "
             "signature of every delivery with it.")
    if settings.webhook_verify_token is None:
        fail("--callback-url needs LEADS_WEBHOOK_VERIFY_TOKEN: Meta sends it to the callback URL, which must know it "
             "to answer the handshake.")
    return settings.app_secret.get_secret_value(), settings.webhook_verify_token.get_secret_value()


def _subscribe_app(wh, key: str, callback_url: str) -> dict[str, Any]:
    """Subscribe the app to the Page object's leadgen field at ``callback_url`` (Meta verifies it right away).

    The app id comes from Meta's view of a distributor's token (``debug_token``); the app token is
    ``{app_id}|{LEADS_APP_SECRET}``, the same secret ``serve`` checks every delivery's signature with."""
    app_secret, verify_token = _app_credentials()
    try:
        client = make_client(distributors.access_token(wh, key))
    except distributors.DistributorError as exc:
        fail(str(exc))
    try:
        app_id = str(client.debug_token().get("app_id") or "")
        if not app_id:
            fail(f"Meta did not say which app the token of {key} belongs to (debug_token without app_id).")
        client.with_token(f"{app_id}|{app_secret}").subscribe_app(app_id, callback_url, verify_token)
    except GraphError as exc:
        fail(f"The app could not be subscribed to {callback_url}: {exc.user_message} (is `leads-pipeline serve` "
             "answering there, with the same LEADS_WEBHOOK_VERIFY_TOKEN and LEADS_APP_SECRET?)")
    return {"app_id": app_id, "object": "page", "fields": ["leadgen"], "callback_url": callback_url}


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
