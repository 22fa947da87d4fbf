"""The ``leads-pipeline`` command: every operation a user needs without the UI.

Each area lives in ``leads_pipeline.commands.<area>`` and exposes one click command or group; this module only
assembles them, so adding an area never touches another's code.
"""

from __future__ import annotations

import importlib
import logging

import click

# (module, attribute) of every subcommand; a module that is absent is simply not offered.
_COMMANDS = [
    ("simulator", "simulator"),
    ("distributors", "distributors"),
    ("sync", "test_connection"),
    ("sync", "sync"),
    ("stats", "stats"),
    ("demo", "demo"),
    ("demo", "dev"),
    ("leads", "lead"),
    ("leads", "leads"),
    ("users", "users"),
    ("contacts", "contacts"),
    ("importer", "import_"),
    ("serve", "serve"),
    ("webhooks", "webhooks"),
    ("keys", "keys"),
    ("warehouse", "warehouse"),
]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Log at INFO level (secrets are never logged).")
def main(verbose: bool) -> None:
    """Facebook / Instagram Lead Ads into your warehouse."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")


def _register() -> None:
    for module_name, attr in _COMMANDS:
        try:
            module = importlib.import_module(f"leads_pipeline.commands.{module_name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"leads_pipeline.commands.{module_name}":
                continue
            raise
        command = getattr(module, attr, None)
        if command is not None:
            main.add_command(command)


_register()
