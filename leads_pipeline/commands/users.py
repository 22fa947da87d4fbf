"""``leads-pipeline users …``: the staff who work leads (roles: superadmin, staff)."""

from __future__ import annotations

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
