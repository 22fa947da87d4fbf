"""The one retry rule for write conflicts: PostgreSQL deadlocks and serialisation failures.

Every write of the pipeline locks rows in one order (staged rows inserted ``ORDER BY`` their key, processing in id
order), so two writers of the same rows wait for each other instead of deadlocking. Some conflicts cannot be ordered
away (a concurrent ``ON CONFLICT`` on another unique index, a serialisable reader): PostgreSQL then aborts one
transaction with SQLSTATE 40P01 (deadlock) or 40001 (serialisation failure) and says the transaction may simply be
run again. :func:`retry_conflicts` does that — the whole transaction, never a statement — a few times with a short
jittered pause. DuckDB never raises these (one writer at a time), so the helper is a plain call there.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")

#: SQLSTATEs PostgreSQL documents as "retry the transaction".
RETRYABLE_SQLSTATES = frozenset({"40P01", "40001"})
MAX_ATTEMPTS = 8


def is_write_conflict(exc: BaseException) -> bool:
    """Whether ``exc`` (or what caused it) is a deadlock or serialisation failure worth running again."""
    seen = 0
    while exc is not None and seen < 5:
        if getattr(exc, "sqlstate", None) in RETRYABLE_SQLSTATES:
            return True
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False


def retry_conflicts(fn: Callable[[], T], *, attempts: int = MAX_ATTEMPTS, what: str = "write",
                    sleep: Callable[[float], None] = time.sleep) -> T:
    """``fn()`` — which must open and commit its own transaction — run again after a write conflict.

    ``fn`` is called up to ``attempts`` times; any other exception, or a conflict on the last attempt, propagates.
    """
    for attempt in range(1, attempts + 1):
        try:
            return fn()
        except Exception as exc:
            if attempt >= attempts or not is_write_conflict(exc):
                raise
            delay = random.uniform(0, min(1.0, 0.02 * 2 ** attempt))
            log.info("%s: write conflict (%s), attempt %d of %d; running it again in %.3f s", what,
                     getattr(exc, "sqlstate", type(exc).__name__), attempt, attempts, delay)
            sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover
