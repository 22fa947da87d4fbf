"""Memory helpers shared by the ingest path and the warehouse (a leaf module: it imports neither)."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["gc_paused"]


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
