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
              "distributor settings, over every distributor; staff: list/show/status/assign/note/log, over their "
              "distributors only.")
@click.option("--distributor", "distributors", multiple=True, metavar="KEY",
              help="A distributor whose leads this staff user works (repeat for several).")
@json_option
@as_option
@friendly
def add_cmd(name: str, email: str, role: str, distributors: tuple[str, ...], as_json: bool) -> None:
    """Add a user (the email is lower-cased and must be unique). A staff user sees only the leads of the
    distributors named with --distributor."""
    user = crm.add_user(warehouse(), name, email, role, distributors=distributors, actor=current_actor())
    if as_json:
        echo_json(plain(user))
        return
    click.echo(f"Added {user['role']} {user['name']} <{user['email']}> as {user['id']}{_scope_text(user)}")
    if user["role"] == "staff" and not user["distributors"]:
        click.echo("Note: this staff user sees no leads until you name their distributors: "
                   f"`leads-pipeline users distributors {user['email']} --add KEY`.", err=True)


def _scope_text(user: dict) -> str:
    if user["distributors"] is None:
        return " (every distributor)"
    return f" (distributors: {', '.join(user['distributors'])})" if user["distributors"] else " (no distributors)"


@users.command("distributors")
@click.argument("user")
@click.option("--add", "added", multiple=True, metavar="KEY", help="Let USER work this distributor's leads too.")
@click.option("--remove", "removed", multiple=True, metavar="KEY", help="Take this distributor away from USER.")
@click.option("--set", "replaced", multiple=True, metavar="KEY",
              help="Replace USER's distributors by these (repeat; cannot be combined with --add/--remove).")
@click.option("--clear", is_flag=True, help="Take every distributor away from USER.")
@json_option
@as_option
@friendly
def distributors_cmd(user: str, added: tuple[str, ...], removed: tuple[str, ...], replaced: tuple[str, ...],
                     clear: bool, as_json: bool) -> None:
    """Show or change the distributors a staff user works (superadmins see every distributor)."""
    wh = warehouse()
    if (replaced or clear) and (added or removed) or (replaced and clear):
        raise crm.InvalidInput("Use --set or --clear alone, or --add/--remove.")
    row = crm.get_user(wh, user, actor=current_actor())
    if replaced or clear or added or removed:
        current = row["distributors"] or []
        wanted = list(replaced) if (replaced or clear) else [k for k in [*current, *added] if k not in removed]
        row = crm.set_user_distributors(wh, row["id"], wanted, actor=current_actor())
    if as_json:
        echo_json(plain(row))
    else:
        click.echo(f"{row['email']} ({row['role']}){_scope_text(row)}")


@users.command("list")
@click.option("--active-only", is_flag=True, help="Hide deactivated users.")
@json_option
@as_option
@friendly
def list_cmd(active_only: bool, as_json: bool) -> None:
    """List users."""
    wh = warehouse()
    authorize_read(wh, "user.list")
    rows = crm.list_users(wh, actor=current_actor(), include_inactive=not active_only)
    if as_json:
        echo_json(plain(rows))
    elif not rows:
        click.echo("No users yet: add one with `leads-pipeline users add NAME EMAIL --role staff`.")
    else:
        shown = [{**r, "active": "yes" if r["active"] else "no",
                  "distributors": "(all)" if r["distributors"] is None else ", ".join(r["distributors"]) or "(none)"}
                 for r in rows]
        echo_table(shown, [("ID", "id"), ("NAME", "name"), ("EMAIL", "email"), ("ROLE", "role"),
                           ("DISTRIBUTORS", "distributors"), ("ACTIVE", "active"), ("CREATED", "created_at")])


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
    from leads_pipeline.lib.crm import credentials

    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("New password", hide_input=True, confirmation_prompt=True)
    row = credentials.set_password(warehouse(), user, password, actor=current_actor())
    click.echo(f"Password set for {row['email']}; they can log in at /login.")


# --------------------------------------------------------------------------------------------- API keys


@users.group("api-key")
def api_key() -> None:
    """API keys for the HTTP API (Authorization: Bearer lp_… or X-API-Key). A key acts as its user."""


@api_key.command("create")
@click.argument("user")
@click.option("--name", "-n", default=None, help="What the key is for (e.g. 'reporting script').")
@click.option("--quiet", "-q", is_flag=True, help="Print only the key, for scripts: KEY=$(leads-pipeline users api-key "
                                                  "create EMAIL --quiet)")
@json_option
@as_option
@friendly
def api_key_create_cmd(user: str, name: str | None, quiet: bool, as_json: bool) -> None:
    """Create an API key for USER (id or email) and print it ONCE: only its hash is stored."""
    from leads_pipeline.lib.crm import credentials

    key, row = credentials.create_api_key(warehouse(), user, name=name, actor=current_actor())
    if quiet:
        click.echo(key)
        return
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
    from leads_pipeline.lib.crm import credentials

    wh = warehouse()
    authorize_read(wh, "user.list")
    rows = credentials.list_api_keys(wh, user, include_revoked=not active_only, actor=current_actor())
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
    """Revoke the API key KEY (its id, key_…, its prefix, lp_…, or the key itself); requests with it are refused
    from now on."""
    from leads_pipeline.lib.crm import credentials

    row = credentials.revoke_api_key(warehouse(), key, actor=current_actor())
    click.echo(f"Revoked API key {row['id']} ({row['prefix']}…) of {row['user_email']}.")
