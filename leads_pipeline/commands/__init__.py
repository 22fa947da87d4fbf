"""Subcommands of the ``leads-pipeline`` CLI, one module per area (each exposes a click command or group)."""
