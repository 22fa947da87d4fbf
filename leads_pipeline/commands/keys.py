"""``leads-pipeline keys``: the Fernet key(s) that encrypt access tokens at rest (``LEADS_SECRET_KEY``)."""

from __future__ import annotations

import click

from leads_pipeline.commands.common import echo_json, fail, warehouse
from leads_pipeline.lib.distributors import registry as distributors
from leads_pipeline.lib.security import SecretKeyError, TokenCipher, generate_key


@click.group("keys")
def keys() -> None:
    """Create and rotate the key(s) that encrypt stored access tokens (LEADS_SECRET_KEY)."""


@keys.command("generate")
@click.option("--quiet", "-q", is_flag=True,
              help="Print only the key, for scripts: export LEADS_SECRET_KEY=$(leads-pipeline keys generate --quiet)")
def generate(quiet: bool) -> None:
    """Print a new key, and how to use it (first setup, or rotation). The key alone goes to standard output."""
    key = generate_key()
    click.echo(key)
    if quiet:
        return
    click.echo(
        "\nFirst setup: put it in the environment (or the .env file) of every process of the pipeline:\n"
        f"  LEADS_SECRET_KEY={key}\n"
        "To rotate: put the new key first and keep the old one after it, then re-encrypt the stored tokens:\n"
        f"  LEADS_SECRET_KEY={key},<old key>\n"
        "  leads-pipeline keys rotate\n"
        "then remove the old key. Keep the key secret: it decrypts every stored token.",
        err=True,
    )


@keys.command("rotate")
@click.option("--actor", default="cli", show_default=True, help="Who rotates (recorded in audit_log).")
def rotate(actor: str) -> None:
    """Re-encrypt every stored token with the first key of LEADS_SECRET_KEY."""
    try:
        cipher = TokenCipher()
        wh = warehouse()
        count = distributors.rotate_tokens(wh, cipher=cipher, actor=actor)
    except SecretKeyError as exc:
        fail(str(exc))
    echo_json({
        "rotated": count,
        "message": f"Re-encrypted {count} stored token(s) with the first key of LEADS_SECRET_KEY; "
                   "the other key(s) can now be removed from LEADS_SECRET_KEY.",
    })
