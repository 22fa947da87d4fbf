"""The ``leads-pipeline`` command: every operation a user needs without the UI.

Each area lives in ``leads_pipeline.commands.<area>`` and exposes click commands or groups; this module only
assembles them.
"""

from __future__ import annotations

import logging

import click


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Log at INFO level (secrets are never logged).")
def main(verbose: bool) -> None:
    """Facebook / Instagram Lead Ads into your warehouse."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")


def _register() -> None:
    # Imported here, after ``main`` exists, with plain imports: what the CLI offers is what this list names.
    from leads_pipeline.commands import (
        capi,
        contacts,
        demo,
        distributors,
        importer,
        keys,
        leads,
        privacy,
        rejected,
        serve,
        simulator,
        stats,
        sync,
        users,
        webhooks,
    )

    for command in (simulator.simulator, distributors.distributors, sync.test_connection, sync.sync, stats.stats,
                    demo.demo, demo.dev, leads.lead, leads.leads, users.users, contacts.contacts, importer.import_,
                    serve.serve, webhooks.webhooks, keys.keys, privacy.privacy, rejected.rejected, capi.capi):
        main.add_command(command)


_register()
