"""Memory helpers shared by the ingest path and the warehouse (a leaf module: it imports neither).

Python's cyclic garbage collector runs every 700 allocations of container objects and walks every young object
still alive each time. A sync or an import makes many small objects that all live on for a while (decoded pages in
the queue, parsed rows, rows staged for the warehouse) and almost no cycles: the collector walks them again and
again and finds nothing. So automatic collection is off while such work runs, process-wide and counted: it comes
back on when the last block of any thread ends (if it was on when the first began).
"""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["COLLECT_EVERY_SECONDS", "gc_paused"]

#: While blocks overlap without end (a service whose syncs always overlap), a full collection runs when one of
#: them ends at most this often, so that the few cycles made meanwhile are still freed.
COLLECT_EVERY_SECONDS = 60.0

_lock = threading.Lock()
_holders = 0  # blocks of every thread that keep automatic collection off
_was_enabled = False  # whether it was on when the first of them began
_collected_at = time.monotonic()


def _hold() -> None:
    global _holders, _was_enabled
    with _lock:
        if _holders == 0:
            _was_enabled = gc.isenabled()
            gc.disable()
        _holders += 1


def _release() -> None:
    global _holders, _collected_at
    with _lock:
        _holders -= 1
        if _holders == 0:
            if _was_enabled:
                gc.enable()  # the young objects of the blocks are collected at the next threshold crossed
            return
        overdue = _was_enabled and time.monotonic() - _collected_at >= COLLECT_EVERY_SECONDS
        if overdue:
            _collected_at = time.monotonic()
    if overdue:
        gc.collect()


@contextmanager
def gc_paused() -> Iterator[None]:
    """No automatic collection while the block runs: a batch that builds many small objects that all live on (a
    page of leads, parsed rows, rows staged for the warehouse), or a whole stream of them (a sync's read).

    Why a sync pauses for its whole read, not for each batch: objects made while collection is paused are still
    counted, so the collection at the end of each batch walked everything alive — the pages waiting in the queue
    included. A sync of 100k leads spent 13 % of the time it held the GIL collecting (py-spy) and freed ~570
    objects in all (issue #14, P7); paused for the whole read, it took 6.4 s instead of 7.0 s (4 alternating pairs,
    every pair faster).
    """
    _hold()
    try:
        yield
    finally:
        _release()
