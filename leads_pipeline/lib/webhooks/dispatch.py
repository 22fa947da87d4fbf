"""The inbox processed in the service: a webhook's lead lands seconds after the POST, not after a sensor tick and a
Dagster run.

Why: the production path through Dagster (the daemon's ``webhook_inbox_sensor`` every ~5 s, then a run launched
in a new process that loads the code location) costs 10-20 s per lead on a small machine (issue #14, P4 measures
both; docs/performance.md). By default (``LEADS_WEBHOOK_PROCESS=service``) the receiver hands the distributors of the rows
it just stored to an :class:`InboxDispatcher`, whose single background thread — never the request's — waits
``DEBOUNCE_SECONDS`` for more deliveries of the same burst and then runs
:func:`~leads_pipeline.lib.webhooks.process.process_all` for each: the same rows, the same sync path, the same
``sync_runs`` rows as the sensor's job. The sensor stays the safety net: what the service did not finish (the
service stopped, Meta not serving the lead yet, a failure) is still ``pending`` and the next tick takes it. Two
processors of one distributor at once are harmless (rows are re-read as ``pending`` and landing is idempotent),
and the dispatcher runs one distributor at a time.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

from leads_pipeline.lib.graph.redaction import redact
from leads_pipeline.lib.warehouse import Warehouse

log = logging.getLogger(__name__)

__all__ = ["DEBOUNCE_SECONDS", "ENV", "InboxDispatcher", "enabled"]

#: Deliveries arriving within this window after the first are processed by the same run.
DEBOUNCE_SECONDS = 0.3
#: The setting (``Settings.webhook_process``): ``service`` (the default) — the receiver processes its inbox itself and
#: the sensor is the safety net; ``sensor`` — only the sensor's runs.
ENV = "LEADS_WEBHOOK_PROCESS"


def enabled() -> bool:
    from leads_pipeline.settings import get_settings

    return get_settings().webhook_process == "service"


class InboxDispatcher:
    """One background thread processing the inbox of the distributors it is told about (see the module docstring)."""

    def __init__(self, wh: Warehouse, *, client_factory: Callable[[str], Any] | None = None,
                 debounce: float = DEBOUNCE_SECONDS, process: Callable[..., Any] | None = None):
        self.wh = wh
        self._factory = client_factory
        self._debounce = debounce
        self._process = process
        self._due: set[str] = set()
        self._cond = threading.Condition()
        self._closed = False
        self.rounds = 0
        self._thread = threading.Thread(target=self._run, name="webhook-inbox-dispatcher", daemon=True)
        self._thread.start()

    def notify(self, keys: Iterable[str]) -> None:
        """Distributors with new pending rows (called from the receiver after the commit; never blocks)."""
        keys = [k for k in keys if k]
        if not keys:
            return
        with self._cond:
            self._due.update(keys)
            self._cond.notify()

    def close(self, timeout: float = 10.0) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._due and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
            self._cond_wait(self._debounce)
            with self._cond:
                keys, self._due = sorted(self._due), set()
            for key in keys:
                self._one(key)

    def _cond_wait(self, seconds: float) -> None:
        with self._cond:
            if not self._closed:
                self._cond.wait_for(lambda: self._closed, timeout=seconds)

    def _one(self, key: str) -> None:
        try:
            if self._process is not None:
                self._process(self.wh, key)
                return
            from leads_pipeline.lib.webhooks.process import process_all

            result = process_all(self.wh, key, self._factory)
            self.rounds += 1
            log.info("webhook inbox %s processed in the service: %d selected, %d stored, %d retrying", key,
                     result.selected, result.stored, result.retrying)
        except Exception as exc:  # noqa: BLE001 - the sensor takes the rows left pending; the service goes on
            log.warning("webhook inbox %s: processing in the service failed (%s); the sensor will retry", key,
                        redact(f"{type(exc).__name__}: {exc}")[:300])
