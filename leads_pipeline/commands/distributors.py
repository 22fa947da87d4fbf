"""``leads-pipeline distributors``: add, list, change and remove the distributors whose leads are synced.

A form belongs to one distributor at a time: ``--form-id`` claims it, and ``add``/``update`` refuse (exit 1, naming
the other distributor) a form another distributor claims with ``--form-id``; ``forms KEY`` shows what a distributor
owns. A token should not be typed on the command line (shell history, process list): pipe it with
``--token-stdin``, or put it in ``LEADS_NEW_TOKEN`` for ``add``. Output is JSON; the token is never printed (only its fingerprint).
"""

from __future__ import annotations

import os
import sys

import click

from leads_pipeline.commands.common import echo_json, fail, warehouse
from leads_pipeline.lib.distributors import registry
from leads_pipeline.lib.security import SecretKeyError

NEW_TOKEN_ENV = "LEADS_NEW_TOKEN"


def _read_token(token: str | None, token_stdin: bool, env: bool) -> str | None:
    if token is not None and token_stdin:
        fail("Give the token once: --token or --token-stdin, not both.")
    if token_stdin:
        value = sys.stdin.read().strip()
        if not value:
            fail("--token-stdin: nothing was read from standard input.")
        return value
    if token is not None:
        return token
    if env:
        return os.environ.get(NEW_TOKEN_ENV) or None
    return None


def _actor() -> str:
    try:
        import getpass

        return f"cli:{getpass.getuser()}"
    except Exception:  # noqa: BLE001 - no user name in some containers
        return "cli"


@click.group("distributors")
def distributors() -> None:
    """Manage distributors (a token, Facebook Pages / lead forms, phone region, sync interval)."""


@distributors.command("add")
@click.argument("name")
@click.option("--token", help=f"Access token (prefer --token-stdin or {NEW_TOKEN_ENV}: shell history keeps this).")
@click.option("--token-stdin", is_flag=True, help="Read the access token from standard input.")
@click.option("--page-id", "page_ids", multiple=True, help="A Facebook Page id to read (repeatable; default: "
              "every Page the token manages).")
@click.option("--form-id", "form_ids", multiple=True, help="A lead form id this distributor owns (repeatable; "
              "default: every form of its Pages that no other distributor claims with --form-id).")
@click.option("--region", default="TR", show_default=True, help="Country of phone numbers typed without +code.")
@click.option("--interval", default=5, show_default=True, type=int, help="Minutes between scheduled syncs.")
@click.option("--notify-email", help="Where to send new-lead notifications.")
@click.option("--key", help="The partition key to use instead of a slug of the name.")
def add(name, token, token_stdin, page_ids, form_ids, region, interval, notify_email, key) -> None:
    """Add a distributor; prints it as JSON (with its key)."""
    value = _read_token(token, token_stdin, env=True)
    if value is None:
        fail(f"An access token is needed: --token-stdin (e.g. `pbpaste | leads-pipeline distributors add NAME "
             f"--token-stdin`), the {NEW_TOKEN_ENV} environment variable, or --token.")
    try:
        created = registry.add(warehouse(), name, value, page_ids=page_ids, form_ids=form_ids, region=region,
                               interval=interval, notify_email=notify_email, key=key, actor=_actor())
    except (registry.DistributorError, SecretKeyError) as exc:
        fail(str(exc))
    echo_json(created.to_dict())


@distributors.command("list")
def list_() -> None:
    """Every distributor as JSON with its health: state, last success, last error, leads in 24 h, next sync (tokens
    never shown; only their fingerprints)."""
    from leads_pipeline.lib.distributors import health

    wh = warehouse()
    found = {h.key: h for h in health.summaries(wh)}
    out = []
    for d in registry.list_all(wh):
        h = found.get(d.key)
        row = d.to_dict()
        if h is not None:
            row["speed_to_lead_minutes"] = h.speed_to_lead_minutes
            row["health"] = {k: v for k, v in h.to_dict().items()
                             if k not in ("key", "name", "enabled", "speed_to_lead_minutes")}
        out.append(row)
    echo_json(out)


@distributors.command("update")
@click.argument("key")
@click.option("--name", help="New display name (the key stays).")
@click.option("--token", help="New access token (prefer --token-stdin).")
@click.option("--token-stdin", is_flag=True, help="Read the new access token from standard input.")
@click.option("--page-id", "page_ids", multiple=True, help="Replace the Page ids (repeatable).")
@click.option("--clear-page-ids", is_flag=True, help="Read every Page the token manages.")
@click.option("--form-id", "form_ids", multiple=True, help="Replace the form ids (repeatable); forms left out are "
              "released.")
@click.option("--clear-form-ids", is_flag=True, help="Read every form of the Pages no other distributor claims.")
@click.option("--region", help="Country of phone numbers typed without +code.")
@click.option("--interval", type=int, help="Minutes between scheduled syncs.")
@click.option("--notify-email", help="Notification address ('' removes it).")
@click.option("--enable/--disable", "enabled", default=None, help="Include in (or leave out of) scheduled syncs.")
@click.option("--speed-to-lead", "speed_to_lead", metavar="MINUTES|off",
              help="Target minutes from a lead's arrival to its first contact (default 60; 'off': no target).")
@click.option("--capi-dataset-id", help="Conversions API for CRM: the CRM dataset id from Events Manager; lead "
              "stages go there ('' stops sending). See docs/conversions-api.md.")
@click.option("--capi-token-stdin", is_flag=True, help="Read a token for the Conversions API from standard input "
              "(default: the distributor's token).")
@click.option("--clear-capi-token", is_flag=True, help="Send the events with the distributor's token again.")
@click.option("--crm-name", help="The CRM name Meta shows as the events' source (lead_event_source).")
@click.option("--capi-stage", "capi_stages", multiple=True, metavar="STATUS=EVENT",
              help="Name the event of a status, e.g. converted=Purchase (repeatable; 'rejected=' does not send it).")
@click.option("--capi-hashed-contacts/--no-capi-hashed-contacts", default=None,
              help="Also send the lead's email and phone, SHA-256 hashed (off by default).")
@click.option("--capi-test-event-code", help="Events Manager's test event code ('' removes it; never in production).")
def update(key, name, token, token_stdin, page_ids, clear_page_ids, form_ids, clear_form_ids, region, interval,
           notify_email, enabled, speed_to_lead, capi_dataset_id, capi_token_stdin, clear_capi_token, crm_name,
           capi_stages, capi_hashed_contacts, capi_test_event_code) -> None:
    """Change a distributor; prints it as JSON."""
    changes: dict = {}
    capi_changes = _capi_changes(token_stdin, capi_dataset_id, capi_token_stdin, clear_capi_token, crm_name,
                                 capi_stages, capi_hashed_contacts, capi_test_event_code)
    value = _read_token(token, token_stdin, env=False)
    if value is not None:
        changes["token"] = value
    if name is not None:
        changes["name"] = name
    if page_ids and clear_page_ids:
        fail("Give --page-id or --clear-page-ids, not both.")
    if page_ids or clear_page_ids:
        changes["page_ids"] = list(page_ids)
    if form_ids and clear_form_ids:
        fail("Give --form-id or --clear-form-ids, not both.")
    if form_ids or clear_form_ids:
        changes["form_ids"] = list(form_ids)
    if region is not None:
        changes["region"] = region
    if interval is not None:
        changes["interval"] = interval
    if notify_email is not None:
        changes["notify_email"] = notify_email
    if enabled is not None:
        changes["enabled"] = enabled
    if not changes and speed_to_lead is None and not capi_changes:
        fail("Nothing to change: see `leads-pipeline distributors update --help` for the options.")
    from leads_pipeline.lib.distributors import speed_to_lead as speed

    wh = warehouse()
    try:
        target = speed.clean_target(speed_to_lead) if speed_to_lead is not None else None
        changed = registry.update(wh, key, actor=_actor(), **changes) if changes else registry.get(wh, key)
        if speed_to_lead is not None:
            target = speed.set_target(wh, key, target, actor=_actor())
        else:
            target = speed.speed_to_lead_targets(wh).get(key)
        conversions = _configure_capi(wh, key, capi_changes) if capi_changes else None
    except (registry.DistributorError, SecretKeyError) as exc:
        fail(str(exc))
    echo_json({**changed.to_dict(), "speed_to_lead_minutes": target,
               **({"conversions_api": conversions} if conversions is not None else {})})


def _capi_changes(token_stdin: bool, dataset_id: str | None, capi_token_stdin: bool, clear_capi_token: bool,
                  crm_name: str | None, stages: tuple[str, ...], hashed: bool | None, test_code: str | None) -> dict:
    """The Conversions API settings the options change (lib/capi), checked before anything is written."""
    from leads_pipeline.lib.capi import config as capi_config

    changes: dict = {}
    if capi_token_stdin and (token_stdin or clear_capi_token):
        fail("--capi-token-stdin reads standard input alone: not with --token-stdin or --clear-capi-token.")
    if capi_token_stdin:
        value = sys.stdin.read().strip()
        if not value:
            fail("--capi-token-stdin: nothing was read from standard input.")
        changes["token"] = value
    elif clear_capi_token:
        changes["token"] = None
    if dataset_id is not None:
        changes["dataset_id"] = dataset_id
    if crm_name is not None:
        changes["crm_name"] = crm_name
    if stages:
        mapping = {}
        for item in stages:
            status, sep, event = item.partition("=")
            if not sep:
                fail(f"--capi-stage {item!r}: write STATUS=EVENT, e.g. converted=Converted ('rejected=' to leave "
                     "it out).")
            mapping[status.strip().lower()] = event.strip() or None
        changes["stage_events"] = mapping
    if hashed is not None:
        changes["hashed_contacts"] = hashed
    if test_code is not None:
        changes["test_event_code"] = test_code
    try:
        capi_config.validate_changes(changes)
    except capi_config.CapiConfigError as exc:
        fail(str(exc))
    return changes


def _configure_capi(wh, key: str, changes: dict) -> dict:
    from leads_pipeline.lib.capi import config as capi_config

    return capi_config.configure(wh, key, actor=_actor(), **changes).to_dict()


@distributors.command("remove")
@click.argument("key")
def remove(key) -> None:
    """Remove a distributor's configuration (its leads stay in the warehouse); prints what was removed."""
    try:
        removed = registry.remove(warehouse(), key, actor=_actor())
    except registry.DistributorError as exc:
        fail(str(exc))
    echo_json({"removed": removed.key, "distributor": removed.to_dict(),
               "message": f"Distributor {removed.key} removed; its leads stay. Its key is not reused."})


@distributors.command("forms")
@click.argument("key")
def forms_(key) -> None:
    """The lead forms a distributor owns (explicit = --form-id, discovered = seen on its Pages), with Meta's counts
    and the forms whose oldest leads Meta no longer serves (import those from the Ads Manager export)."""
    from leads_pipeline.lib.distributors import forms

    wh = warehouse()
    try:
        registry.get(wh, key)
    except registry.DistributorError as exc:
        fail(str(exc))
    with wh.transaction(read_only=True) as conn:
        owned = forms.owned_form_details(conn, key)
        warnings = forms.form_limit_warnings(conn, key)
    echo_json({"key": key, "forms": owned, "warnings": warnings})
