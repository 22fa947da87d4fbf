"""``leads-pipeline users …``: the staff who work leads (roles: superadmin, staff)."""

from __future__ import annotations

import sys

import click

from leads_pipeline.commands.common import echo_json, warehouse
from leads_pipeline.commands.leads import (
    as_option,
    authorize_read,
    current_actor,
    echo_table,
    friendly,
    group_as_option,
    json_option,
    plain,
)
from leads_pipeline.lib import crm


@click.group("users")
@group_as_option
def users() -> None:
    """Add, list and deactivate users (superadmins manage users; staff may list them)."""


@users.command("add")
@click.argument("name")
@click.argument("email")
@click.option("--role", type=click.Choice(crm.ROLES), required=True, help="superadmin: everything incl. delete and "
              "distributor settings; staff: list/show/status/assign/note/log.")
@json_option
@as_option
@friendly
def add_cmd(name: str, email: str, role: str, as_json: bool) -> None:
    """Add a user (the email is lower-cased and must be unique)."""
    user = crm.add_user(warehouse(), name, email, role, actor=current_actor())
    if as_json:
        echo_json(plain(user))
    else:
        click.echo(f"Added {user['role']} {user['name']} <{user['email']}> as {user['id']}")


@users.command("list")
@click.option("--active-only", is_flag=True, help="Hide deactivated users.")
@json_option
@as_option
@friendly
def list_cmd(active_only: bool, as_json: bool) -> None:
    """List users."""
    wh = warehouse()
    authorize_read(wh, "user.list")
    rows = crm.list_users(wh, include_inactive=not active_only)
    if as_json:
        echo_json(plain(rows))
    elif not rows:
        click.echo("No users yet: add one with `leads-pipeline users add NAME EMAIL --role staff`.")
    else:
        shown = [{**r, "active": "yes" if r["active"] else "no"} for r in rows]
        echo_table(shown, [("ID", "id"), ("NAME", "name"), ("EMAIL", "email"), ("ROLE", "role"),
                           ("ACTIVE", "active"), ("CREATED", "created_at")])


@users.command("deactivate")
@click.argument("user")
@as_option
@friendly
def deactivate_cmd(user: str) -> None:
    """Deactivate a user: they can no longer act or be assigned (their history stays)."""
    row = crm.deactivate_user(warehouse(), user, actor=current_actor())
    click.echo(f"Deactivated {row['email']}")


@users.command("reactivate")
@click.argument("user")
@as_option
@friendly
def reactivate_cmd(user: str) -> None:
    """Reactivate a deactivated user."""
    row = crm.reactivate_user(warehouse(), user, actor=current_actor())
    click.echo(f"Reactivated {row['email']}")


# --------------------------------------------------------------------------------------------- console password


@users.command("set-password")
@click.argument("user")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input (for scripts) instead "
              "of prompting.")
@as_option
@friendly
def set_password_cmd(user: str, password_stdin: bool) -> None:
    """Set USER's console password (prompted, hidden; at least 10 characters). Ends their console sessions."""
    from leads_pipeline.web import auth

    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("New password", hide_input=True, confirmation_prompt=True)
    row = auth.set_password(warehouse(), user, password, actor=current_actor())
    click.echo(f"Password set for {row['email']}; they can log in at /login.")


# --------------------------------------------------------------------------------------------- API keys


@users.group("api-key")
def api_key() -> None:
    """API keys for the HTTP API (Authorization: Bearer lp_… or X-API-Key). A key acts as its user."""


@api_key.command("create")
@click.argument("user")
@click.option("--name", "-n", default=None, help="What the key is for (e.g. 'reporting script').")
@json_option
@as_option
@friendly
def api_key_create_cmd(user: str, name: str | None, as_json: bool) -> None:
    """Create an API key for USER (id or email) and print it ONCE: only its hash is stored."""
    from leads_pipeline.web import auth

    key, row = auth.create_api_key(warehouse(), user, name=name, actor=current_actor())
    if as_json:
        echo_json(plain({**row, "key": key}))
        return
    click.echo(f"API key {row['id']} ({row['name']}) for {row['user_email']}:")
    click.echo("")
    click.echo(f"    {key}")
    click.echo("")
    click.echo("Store it now: it is not shown again. Send it as `Authorization: Bearer <key>` or `X-API-Key: <key>`.",
               err=True)


@api_key.command("list")
@click.argument("user", required=False)
@click.option("--active-only", is_flag=True, help="Hide revoked keys.")
@json_option
@as_option
@friendly
def api_key_list_cmd(user: str | None, active_only: bool, as_json: bool) -> None:
    """List API keys (id, owner, name, prefix, created, last used, revoked) — never the keys themselves."""
    from leads_pipeline.web import auth

    wh = warehouse()
    authorize_read(wh, "user.list")
    rows = auth.list_api_keys(wh, user, include_revoked=not active_only)
    if as_json:
        echo_json(plain(rows))
    elif not rows:
        click.echo("No API keys: create one with `leads-pipeline users api-key create EMAIL`.")
    else:
        echo_table(rows, [("ID", "id"), ("USER", "user_email"), ("NAME", "name"), ("PREFIX", "prefix"),
                          ("CREATED", "created_at"), ("LAST USED", "last_used_at"), ("REVOKED", "revoked_at")])


@api_key.command("revoke")
@click.argument("key")
@as_option
@friendly
def api_key_revoke_cmd(key: str) -> None:
    """Revoke the API key KEY (its id, key_…, or its prefix, lp_…); requests with it are refused from now on."""
    from leads_pipeline.web import auth

    row = auth.revoke_api_key(warehouse(), key, actor=current_actor())
    click.echo(f"Revoked API key {row['id']} ({row['prefix']}…) of {row['user_email']}.")
