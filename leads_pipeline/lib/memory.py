"""Memory helpers shared by the ingest path and the warehouse (a leaf module: it imports neither)."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["RELAXED_THRESHOLD", "gc_paused", "gc_relaxed"]

#: Allocations between two young-generation collections while :func:`gc_relaxed` holds (Python's default: 700).
RELAXED_THRESHOLD = 10_000

_relaxed_lock = threading.Lock()
_relaxed_users = 0
_relaxed_saved: tuple[int, ...] | None = None


@contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic garbage collection while a batch builds many small objects that all live on (no cycles are made).

    Why: a batch (a page of leads, parsed rows, rows staged for the warehouse) is many small objects, and each
    allocation threshold crossed starts another collector pass over the whole growing batch — a third of the time
    or more. Collection resumes (if it was enabled) when the block ends.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@contextmanager
def gc_relaxed() -> Iterator[None]:
    """Collect garbage less often while a stream of batches passes through (a sync: pages decoded, parsed, landed).

    Why: at the default threshold a collection runs every 700 allocations, and every tenth one goes through the
    pages waiting in the queue; decoding a page of 100 leads allocates thousands of objects. A sync of 100k leads
    spent about 1.8 s of its 11 s of CPU collecting, nearly all of it found nothing (issue #14, P7). Collection
    still runs, so a cycle made meanwhile is freed. Process-wide, so counted: the thresholds come back when the
    last of several concurrent users leaves (syncs in threads of one process).
    """
    global _relaxed_users, _relaxed_saved
    with _relaxed_lock:
        if _relaxed_users == 0:
            _relaxed_saved = gc.get_threshold()
            gc.set_threshold(max(RELAXED_THRESHOLD, _relaxed_saved[0]), *_relaxed_saved[1:])
        _relaxed_users += 1
    try:
        yield
    finally:
        with _relaxed_lock:
            _relaxed_users -= 1
            if _relaxed_users == 0 and _relaxed_saved is not None:
                gc.set_threshold(*_relaxed_saved)
                _relaxed_saved = None
