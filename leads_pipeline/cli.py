"""The ``leads-pipeline`` command: every operation a user needs without the UI.

Each area lives in ``leads_pipeline.commands.<area>`` and exposes click commands or groups; this module only
assembles them — lazily. ``COMMANDS`` names each command, where it lives and its one-line help, so that
``leads-pipeline --help`` imports no command module and ``leads-pipeline stats`` imports only ``commands.stats``:
start-up stays near Python's own (issue #14, P6: ≤ 0.3 s), whatever the other commands import. A test checks that
each line of help here is the command's own (leads_pipeline_tests/test_cli_startup.py).
"""

from __future__ import annotations

import importlib
import logging

import click

#: name → (module under leads_pipeline.commands, attribute, the command's short help as its docstring starts).
COMMANDS: dict[str, tuple[str, str, str]] = {
    "simulator": ("simulator", "simulator",
                  "The Meta Graph API (Lead Ads) simulator: a local, deterministic sandbox with fake pages, forms and "
                  "leads."),
    "distributors": ("distributors", "distributors",
                     "Manage distributors (a token, Facebook Pages / lead forms, phone region, sync interval)."),
    "test-connection": ("sync", "test_connection",
                        "Check a distributor's token, forms and lead access; prints {\"success\", \"message\"}."),
    "sync": ("sync", "sync",
             "Sync one distributor now; prints {\"success\", \"fetched\", \"stored\", \"errors\", \"message\"}."),
    "stats": ("stats", "stats",
              "Lead counts by status, as JSON: {\"total\",\"new\",\"assigned\",\"contacted\",\"converted\","
              "\"rejected\"}."),
    "demo": ("demo", "demo",
             "Run the pipeline end to end on DuckDB + the built-in Graph API simulator, through Dagster."),
    "dev": ("demo", "dev",
            "Open the Dagster UI over the local instance (starting the sandbox simulator when the settings use it)."),
    "lead": ("leads", "lead",
             "Work leads: list, show, change status, assign, note, log calls/emails/SMS, delete, bulk."),
    "leads": ("leads", "leads", "Lead overviews (see also `lead list`)."),
    "users": ("users", "users", "Add, list and deactivate users (superadmins manage users; staff may list them)."),
    "contacts": ("contacts", "contacts",
                 "CRM contacts: import them from a CSV export, and link leads to them by email or phone."),
    "import": ("importer", "import_",
               "Import leads from PATH for a distributor; prints {\"success\", \"fetched\", \"stored\", \"errors\", "
               "\"message\"}."),
    "serve": ("serve", "serve",
              "Serve the JSON API (/api, /openapi.json), the staff console (/login) and Meta webhooks "
              "(/webhooks/meta)."),
    "webhooks": ("webhooks", "webhooks",
                 "Real-time leads through Meta's leadgen webhooks: subscribe Pages, inspect and process the inbox."),
    "keys": ("keys", "keys", "Create and rotate the key(s) that encrypt stored access tokens (LEADS_SECRET_KEY)."),
    "privacy": ("privacy", "privacy",
                "Privacy requests: find a person's records; rewrite the warehouse files after erasing them."),
    "rejected": ("rejected", "rejected",
                 "The quarantine: records that cannot be a lead (no usable id, no created_time, answers not a list)."),
    "capi": ("capi", "capi",
             "Meta Conversions API for CRM: report each lead's stages back to Meta (see docs/conversions-api.md)."),
    "sql": ("sql", "sql",
            "Run QUERY and print its rows; without QUERY, an interactive prompt (statements end with `;`, `.quit` "
            "ends)."),
}


def load(name: str) -> click.Command:
    """Import the module of command ``name`` and return the command (what running or ``NAME --help`` needs)."""
    module, attribute, _ = COMMANDS[name]
    return getattr(importlib.import_module(f"leads_pipeline.commands.{module}"), attribute)


class _Commands(dict):
    """``main.commands``: every name is there from the start; a command module is imported when its command is
    first looked up (``commands[name]``, ``.get``, ``.values``, ``.items``), never to list names."""

    def __init__(self) -> None:
        super().__init__(dict.fromkeys(COMMANDS))

    def __getitem__(self, name: str) -> click.Command:
        command = super().__getitem__(name)
        if command is None:
            command = load(name)
            super().__setitem__(name, command)
        return command

    def get(self, name: str, default=None):  # type: ignore[override]
        return self[name] if name in self else default

    def values(self):  # type: ignore[override]
        return [self[name] for name in self]

    def items(self):  # type: ignore[override]
        return [(name, self[name]) for name in self]

    def loaded(self, name: str) -> click.Command | None:
        return super().get(name)


class _LazyGroup(click.Group):
    def invoke(self, ctx: click.Context):
        """Every command's warehouse errors (a busy DuckDB file, an unreachable PostgreSQL) end as the command's
        own error message or JSON, without a traceback: one place, ``commands.common.warehouse_failed``."""
        try:
            return super().invoke(ctx)
        except Exception as exc:
            from leads_pipeline.lib.warehouse.errors import WarehouseError

            if not isinstance(exc, WarehouseError):
                raise
            from leads_pipeline.commands.common import warehouse_failed

            warehouse_failed(ctx.invoked_subcommand, exc)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """Like click's, with the short help of a command not imported yet taken from ``COMMANDS``."""
        rows = []
        names = self.list_commands(ctx)
        limit = formatter.width - 6 - max((len(n) for n in names), default=0)
        for name in names:
            command = self.commands.loaded(name) if isinstance(self.commands, _Commands) else self.commands[name]
            if command is None:
                command = click.Command(name, help=COMMANDS[name][2])
            if command.hidden:
                continue
            rows.append((name, command.get_short_help_str(limit)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Log at INFO level (secrets are never logged).")
def main(verbose: bool) -> None:
    """Facebook / Instagram Lead Ads into your warehouse."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")


main.commands = _Commands()
