"""DuckDB's single writer, taken in turns across processes — and a wait that says who waits for whom.

DuckDB lets one process hold the file open read-write, and then no other process may open it at all (not even
read-only). So every opening of the live file goes through a lock beside it (``<file>.lock``: this process's lock,
then a cross-process file lock), held for one transaction or one short burst. The holder writes who it is (pid,
command, since when) into the lock file, so that a process that waits can say for whom, and after
``LEADS_WAREHOUSE_BUSY_TIMEOUT_SECONDS`` it gives up with :class:`WarehouseBusy` — a message, never a hang. While it
waits it leaves a marker beside the lock, so that a holder of a long burst (a sync landing page after page) can keep
the file open — no close, no checkpoint — while nobody waits, and let go within a second when someone does
(:func:`waited_for`).

Readers beside the pipeline do not take this lock at all: they read the published snapshot (:mod:`.snapshot`).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import filelock

from leads_pipeline.settings_defaults import DEFAULT_BUSY_TIMEOUT_SECONDS  # used without a setting

from .errors import WarehouseBusy, WarehouseError
from .files import FILE_MODE, private_dir

log = logging.getLogger(__name__)

#: A wait longer than this is reported on the log (stderr for the CLI), once, naming the holder.
NOTICE_AFTER_SECONDS = 5.0

_process_locks: dict[str, threading.RLock] = {}
_process_locks_guard = threading.Lock()


def busy_timeout() -> float:
    """The longest wait for the DuckDB file, from the settings."""
    try:
        from leads_pipeline.settings import warehouse_busy_timeout_seconds

        return warehouse_busy_timeout_seconds()
    except Exception:  # noqa: BLE001 - settings without the field (or unreadable): the documented default
        return DEFAULT_BUSY_TIMEOUT_SECONDS


def this_process() -> str:
    """This process for a message: the command and its first words (never options, where secrets go)."""
    first = sys.argv[0] if sys.argv else ""
    words = [Path(first).name if first and first != "-c" else "python"]
    words += [a[:40] for a in sys.argv[1:3] if not a.startswith("-")][:2]
    return " ".join(words)


@contextmanager
def file_locked(path: Path) -> Iterator[str]:
    """Hold the warehouse's locks (this process's, then the cross-process file lock); yields the resolved path."""
    private_dir(path.parent)
    key = str(path.resolve())
    with _process_locks_guard:
        plock = _process_locks.setdefault(key, threading.RLock())
    timeout = busy_timeout()
    deadline = time.monotonic() + timeout
    if not plock.acquire(blocking=False):
        with _waiting(key):  # a holder that keeps the file open while nobody waits lets go now (:func:`waited_for`)
            if not plock.acquire(timeout=timeout):
                raise _busy(path, timeout, "another thread of this process")
    try:
        flock = filelock.FileLock(key + ".lock", thread_local=False, mode=FILE_MODE)
        try:
            flock.acquire(timeout=0)
        except filelock.Timeout:
            with _waiting(key):
                _acquire(flock, path, deadline, timeout)
        try:
            _sign(flock)
            yield key
        finally:
            flock.release()
    finally:
        plock.release()


_WAIT_MARK = ".waiting-"


@contextmanager
def _waiting(key: str) -> Iterator[None]:
    """While this thread waits for the warehouse, a marker beside the lock (``<file>.waiting-<pid>-<thread>``) says
    so: a holder that keeps the file open for a long burst while nobody waits (a sync landing page after page, which
    saves a checkpoint per release) checks :func:`waited_for` and lets go within its hold (~1 s)."""
    mark = Path(f"{key}{_WAIT_MARK}{os.getpid()}-{threading.get_ident()}")
    try:
        mark.touch(mode=FILE_MODE)
    except OSError:  # cannot say so (the lock file beside it is writable: next to impossible); a long holder still
        pass  # lets go at its longest hold
    try:
        yield
    finally:
        try:
            mark.unlink()
        except OSError:
            pass


def let_waiters_in(path: Path, within: float = 2.0) -> None:
    """After letting go of the warehouse ``path`` because someone waits (:func:`waited_for`): give the waiters their
    turn before taking it again. A waiter polls the file lock, so a holder that takes it again at once would win every
    time and the waiter would wait for the whole import or sync; each waiter removes its marker once it holds the lock,
    so wait until none is left, at most ``within`` seconds (a waiter that went away leaves no live marker)."""
    deadline = time.monotonic() + within
    while waited_for(path) and time.monotonic() < deadline:
        time.sleep(0.01)


def waited_for(path: Path) -> bool:
    """Whether another process or thread waits for the warehouse ``path`` now (its :func:`_waiting` marker; markers
    of processes that are gone are removed). Cheap (one directory listing): call it about once a second."""
    key = str(path.resolve())
    folder, prefix = os.path.dirname(key), os.path.basename(key) + _WAIT_MARK
    try:
        names = [e.name for e in os.scandir(folder) if e.name.startswith(prefix)]
    except OSError:
        return True  # cannot tell: let go, as a holder always did
    for name in names:
        try:
            pid = int(name[len(prefix):].split("-", 1)[0])
            if pid != os.getpid():
                os.kill(pid, 0)
            return True
        except ProcessLookupError:  # a waiter killed while waiting: its marker is stale
            try:
                os.unlink(os.path.join(folder, name))
            except OSError:
                pass
        except (ValueError, OSError):  # PermissionError: alive (another user); odd name: someone waits
            return True
    return False


def _acquire(flock: filelock.FileLock, path: Path, deadline: float, timeout: float) -> None:
    try:
        flock.acquire(timeout=min(NOTICE_AFTER_SECONDS, timeout))
        return
    except filelock.Timeout:
        pass
    log.warning("%s is waiting for the DuckDB warehouse %s, held by %s (gives up after %.0f s).", this_process(),
                path, holder(path) or "another process", timeout)
    try:
        flock.acquire(timeout=max(0.0, deadline - time.monotonic()))
    except filelock.Timeout:
        raise _busy(path, timeout, holder(path)) from None


def _sign(flock: filelock.FileLock) -> None:
    """Write who holds the lock into the lock file (an open descriptor already: one small write)."""
    fd = getattr(getattr(flock, "_context", None), "lock_file_fd", None)
    if fd is None:
        return
    data = json.dumps({"pid": os.getpid(), "what": this_process(), "since": time.time()}).encode()
    try:
        os.pwrite(fd, data, 0)
        os.ftruncate(fd, len(data))
    except OSError:  # informational only
        pass


def holder(path: Path) -> str | None:
    """Who holds (or last held) the lock of ``path``: "pid 123 (leads-pipeline sync) for 75 s", when known."""
    try:
        info: dict[str, Any] = json.loads(Path(str(path.resolve()) + ".lock").read_text() or "{}")
        pid = int(info["pid"])
        os.kill(pid, 0)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return f"pid {pid} ({info.get('what', '?')}) for {time.time() - float(info.get('since', time.time())):.0f} s"


def _busy(path: Path, waited: float, held_by: str | None) -> WarehouseBusy:
    return WarehouseBusy(
        f"{this_process()} waited {waited:.0f} s for the DuckDB warehouse {path}, held by "
        f"{held_by or 'another process'}. Wait for it to finish or stop it, then run this again. Notebooks and "
        "queries should read the snapshot (`leads-pipeline sql`, `leads_pipeline.analysts`), which never blocks the "
        "pipeline; for many concurrent writers use PostgreSQL (LEADS_WAREHOUSE_URL=postgresql://…). "
        "LEADS_WAREHOUSE_BUSY_TIMEOUT_SECONDS sets the wait."
    )


def connect_duckdb(duckdb: Any, path: str, read_only: bool, deadline: float | None = None):
    """Open the file (under :func:`file_locked`). A program outside the lock protocol (e.g. a DuckDB CLI or a
    notebook's own ``duckdb.connect``) may still hold it: wait for it up to the busy timeout, then explain."""
    timeout = busy_timeout()
    deadline = deadline if deadline is not None else time.monotonic() + timeout
    delay, noticed, started = 0.05, False, time.monotonic()
    while True:
        try:
            return duckdb.connect(path, read_only=read_only)
        except duckdb.IOException as exc:
            text = str(exc)
            if "lock" not in text.lower():
                raise WarehouseError(f"Could not open the DuckDB warehouse {path}: {text}") from exc
            held_by = _duckdb_holder(text)
            if time.monotonic() > deadline:
                raise _busy(Path(path), time.monotonic() - started, held_by) from None
            if not noticed and time.monotonic() - started > NOTICE_AFTER_SECONDS:
                noticed = True
                log.warning("%s is waiting for the DuckDB warehouse %s, opened outside the pipeline's lock by %s "
                            "(gives up after %.0f s).", this_process(), path, held_by, timeout)
            time.sleep(delay)
            delay = min(delay * 2, 1.0)


def _duckdb_holder(text: str) -> str:
    """DuckDB's "Conflicting lock is held in /usr/bin/python3 (PID 42)" as "/usr/bin/python3 (PID 42)"."""
    marker = "is held in "
    at = text.find(marker)
    if at < 0:
        return "a program outside the pipeline"
    rest = text[at + len(marker):]
    end = rest.find(")")
    return rest[: end + 1] if end >= 0 else rest[:80]
