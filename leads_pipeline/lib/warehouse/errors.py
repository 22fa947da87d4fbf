"""The warehouse's errors: messages a person can act on, printed by every command without a traceback."""

from __future__ import annotations


class WarehouseError(RuntimeError):
    """A warehouse URL or connection problem, with a message that says what to do."""


class WarehouseBusy(WarehouseError):
    """A DuckDB open waited longer than ``LEADS_WAREHOUSE_BUSY_TIMEOUT_SECONDS`` for another process.

    The message names who waited (this command), for what (the file), who held it when known (pid and command), and
    what to do. DuckDB has one writer; the pipeline's own transactions hold the file for milliseconds, so a long wait
    means something outside them holds it: a reader on the live file, or a stuck process.
    """
