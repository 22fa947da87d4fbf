"""A sync run's mutable state, shared by the sync's rules (:mod:`.sync`) and its page reading (:mod:`.reading`).

Its own module so that the two need not import each other: the sync creates a :class:`SyncRun` and hands it to the
reading threads' landing loop, which adds up what each landed page stored.
"""

from __future__ import annotations

from collections.abc import Callable

from leads_pipeline.lib.distributors import health
from leads_pipeline.lib.graph import GraphError
from leads_pipeline.lib.ingest.discovery import failure
from leads_pipeline.lib.ingest.runs import SyncResult
from leads_pipeline.lib.ingest.store import ProcessResult
from leads_pipeline.lib.warehouse import Warehouse

__all__ = ["OnPage", "SyncRun"]

OnPage = Callable[[str, int], None]


class SyncRun:
    """One sync run's mutable state: the result being built and what its store calls added up to."""

    def __init__(self, wh: Warehouse, key: str, result: SyncResult, region: str, on_page: OnPage | None):
        self.wh, self.key, self.result, self.region, self.on_page = wh, key, result, region, on_page
        self.stored = ProcessResult()
        self.ok_units = 0  # Pages listed and forms / lead batches read without failure
        self.fatal: str | None = None
        # Token/permission failures (the distributor's back-off, lib/distributors/health.py): the fatal one, or the
        # forms Meta refused for a permission (and how many forms were read through).
        self.auth_error: str | None = None
        self.forms_read = 0
        self.forms_denied: list[str] = []

    def add(self, done: ProcessResult, landed: int = 0) -> None:
        self.stored = self.stored + done
        self.result.landed += landed

    def fail(self, kind: str, object_id: str, exc: GraphError) -> None:
        if health.is_auth_failure(exc):
            self.forms_denied.append(exc.user_message)
        entry, line = failure(kind, object_id, exc)
        self.result.failures.append(entry)
        self.result.errors.append(line)
