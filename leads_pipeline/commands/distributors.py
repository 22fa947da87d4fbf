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
    """Every distributor as JSON (tokens never shown; only their fingerprints)."""
    echo_json([d.to_dict() for d in registry.list_all(warehouse())])


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
def update(key, name, token, token_stdin, page_ids, clear_page_ids, form_ids, clear_form_ids, region, interval,
           notify_email, enabled) -> None:
    """Change a distributor; prints it as JSON."""
    changes: dict = {}
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
    if not changes:
        fail("Nothing to change: see `leads-pipeline distributors update --help` for the options.")
    try:
        changed = registry.update(warehouse(), key, actor=_actor(), **changes)
    except (registry.DistributorError, SecretKeyError) as exc:
        fail(str(exc))
    echo_json(changed.to_dict())


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
