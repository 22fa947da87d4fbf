"""Group commit for the webhook receiver: concurrent deliveries stored together, one transaction per group.

Its own module because it is a concurrency mechanism (a thread, a queue, DuckDB bursts), not an inbox rule: the
rules — routing, re-delivery, statuses — are :func:`.inbox.store_groups`, which it calls.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future

from leads_pipeline.lib.warehouse import Warehouse

from .delivery import Change
from .inbox import StoreResult, store_groups

__all__ = ["InboxWriter"]


class InboxWriter:
    """Group commit for the receiver: concurrent deliveries are stored together, in one transaction.

    ``submit(changes)`` queues a delivery and returns a :class:`concurrent.futures.Future` that resolves with its
    :class:`StoreResult` once the transaction holding it has **committed** (or with the exception that rolled it
    back), so the HTTP answer still follows the durable write. One background thread writes; while it commits,
    new deliveries queue up and go into the next transaction.

    DuckDB: the warehouse opens the file per transaction (~25 ms of fixed cost, and the file lock shuts every other
    process out meanwhile). Under load the writer therefore keeps the file open for a short *burst* — one
    transaction per group, each committed before its requests are answered, for at most ``burst_seconds`` and
    only while deliveries keep coming (``linger_seconds``) — then closes it; after a burst that ran its full
    length it pauses ``yield_seconds`` so that other processes waiting for the file (they poll every 50 ms) get
    their turn. PostgreSQL: one transaction per group on its own connection.
    """

    def __init__(self, wh: Warehouse, *, max_changes: int = 20_000, name: str = "webhook-inbox-writer",
                 burst_seconds: float = 0.25, linger_seconds: float = 0.002, yield_seconds: float = 0.06):
        self.wh = wh
        self.max_changes = max_changes
        self.burst_seconds = burst_seconds
        self.linger_seconds = linger_seconds
        self.yield_seconds = yield_seconds
        self._name = name
        self._queue: deque[tuple[list[Change], Future]] = deque()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closed = False
        self.transactions = 0
        self.sessions = 0

    def submit(self, changes: Sequence[Change]) -> Future:
        fut: Future = Future()
        with self._cond:
            if self._closed:
                raise RuntimeError("the inbox writer is closed")
            self._queue.append((list(changes), fut))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()
            self._cond.notify()
        return fut

    def store(self, changes: Sequence[Change], timeout: float | None = None) -> StoreResult:
        """Blocking :meth:`submit`."""
        return self.submit(changes).result(timeout)

    def close(self, timeout: float = 10.0) -> None:
        """Stop after writing what is queued."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(timeout)

    def _take(self, wait: float | None) -> list[tuple[list[Change], Future]] | None:
        """What is queued (waiting up to ``wait`` seconds for something, forever when None); None once closed."""
        deadline = None if wait is None else time.monotonic() + wait
        with self._cond:
            while not self._queue:
                if self._closed:
                    return None
                if deadline is None:
                    self._cond.wait(0.5)
                    continue
                left = deadline - time.monotonic()
                if left <= 0:
                    return []
                self._cond.wait(left)
            batch: list[tuple[list[Change], Future]] = []
            total = 0
            while self._queue and (not batch or total + len(self._queue[0][0]) <= self.max_changes):
                changes, fut = self._queue.popleft()
                if fut.set_running_or_notify_cancel():  # a request that gave up waiting is not stored
                    batch.append((changes, fut))
                    total += len(changes)
            return batch

    def _commit(self, batch: list[tuple[list[Change], Future]]) -> bool:
        """Store one group in its own transaction and answer its requests; False when it failed."""
        try:
            with self.wh.transaction() as conn:
                results = store_groups(conn, [changes for changes, _ in batch])
        except BaseException as exc:  # noqa: BLE001 - every waiting request must hear about it
            for _, fut in batch:
                fut.set_exception(exc)
            return False
        self.transactions += 1
        for (_, fut), result in zip(batch, results):
            fut.set_result(result)
        return True

    def _run(self) -> None:
        bursts = self.wh.backend == "duckdb" and self.burst_seconds > 0 and hasattr(self.wh, "session")
        while True:
            batch = self._take(None)
            if batch is None:
                return
            if not batch:
                continue
            if not bursts:
                self._single(batch)
                continue
            try:
                full = self._burst(batch)
            except BaseException as exc:  # noqa: BLE001 - opening the file failed: answer, keep serving
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(exc)
                continue
            if full and self.yield_seconds > 0:
                time.sleep(self.yield_seconds)

    def _single(self, batch: list[tuple[list[Change], Future]]) -> None:
        self._commit(batch)

    def _burst(self, batch: list[tuple[list[Change], Future]]) -> bool:
        """DuckDB: one open of the file (``Warehouse.session``: the warehouse's own process and file locks held
        for the burst), one transaction per group; True when the burst ran its full length."""
        ends = time.monotonic() + self.burst_seconds
        with self.wh.session():
            self.sessions += 1
            while True:
                self._commit(batch)
                if time.monotonic() >= ends:
                    return True
                batch = self._take(self.linger_seconds)
                if not batch:
                    return False
