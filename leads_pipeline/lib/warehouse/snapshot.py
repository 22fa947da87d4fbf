"""The readers' snapshot: a read-only copy of the DuckDB warehouse, published atomically, for notebooks and queries.

DuckDB lets one process write the file, and while any process has it open — even read-only — no other may open it
for writing. An analyst's notebook that keeps a connection open therefore stalls every sync and marts run, and a
read-only open fails outright while a writer holds the file. Measured on this project's demo warehouse (17.6 MB,
docs/analytics.md "Reading the warehouse while the pipeline runs"): plain read-only opens during syncs failed 20 of
35 times, ``ATTACH … (READ_ONLY)`` 16 of 35; a reader holding the live file for 5 s held a write back 5.8 s.

So readers read a copy instead. :func:`publish` copies the file under the warehouse's lock (after folding any
write-ahead log into it) to a temporary file, fsyncs it and renames it over ``<stem>.readonly.duckdb`` beside the
warehouse: a reader opens either the previous copy or the new one, never half of one, and a reader that holds the
old copy open keeps reading it (the rename does not disturb an open file). Any number of processes may open the copy
read-only for as long as they like; the pipeline never waits for them. The pipeline publishes after each marts run
(the ``analytics_snapshot`` asset); ``leads-pipeline sql --refresh`` and :func:`leads_pipeline.analysts.refresh`
publish on demand. PostgreSQL needs none of this (MVCC): ``publish`` is a no-op there.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from .connection import Warehouse
from .files import FILE_MODE
from .locking import connect_duckdb

__all__ = ["SUFFIX", "age_seconds", "path_for", "publish"]

SUFFIX = ".readonly.duckdb"


def path_for(wh: Warehouse) -> Path | None:
    """Where the readers' snapshot of ``wh`` is (whether or not it exists yet); None on PostgreSQL."""
    if wh.backend != "duckdb" or wh.path is None:
        return None
    return wh.path.with_name(wh.path.stem + SUFFIX)


def publish(wh: Warehouse) -> Path | None:
    """Copy the warehouse to its snapshot atomically; returns the snapshot's path (None on PostgreSQL, or when the
    warehouse file does not exist yet). Holds the warehouse's lock for the copy only (tens of milliseconds for the
    demo's file: the copy runs in the kernel, into the page cache; the fsync and the rename come after the lock)."""
    target = path_for(wh)
    if target is None or wh.path is None or not wh.path.exists():
        return None
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        if wh.in_session:  # this thread holds the file open: fold the WAL in through that connection, then copy
            wh._local().session.execute("CHECKPOINT")
            _copy(Path(str(wh.path.resolve())), tmp)
            _fsync(tmp)
        else:
            with wh.file_locked() as key:
                if Path(key + ".wal").exists():  # an unfinished checkpoint: a copy of the file alone would miss it
                    import duckdb

                    raw = connect_duckdb(duckdb, key, read_only=False)
                    try:
                        raw.execute("CHECKPOINT")
                    finally:
                        raw.close()
                _copy(Path(key), tmp)
        _fsync(tmp)  # outside the lock: the copy is complete, only the disk has to catch up
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync(target.parent)
    return target


def age_seconds(path: Path) -> float | None:
    """How old the snapshot at ``path`` is (seconds since it was published), or None when there is none."""
    try:
        return max(0.0, time.time() - path.stat().st_mtime)
    except FileNotFoundError:
        return None


def _copy(source: Path, dest: Path) -> None:
    """``source`` to a new private file ``dest``, in the kernel (``copy_file_range``)."""
    import shutil

    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)  # private before a byte is in it
    try:
        with open(source, "rb") as src, os.fdopen(fd, "wb", closefd=False) as out:
            shutil.copyfileobj(src, out) if not hasattr(os, "copy_file_range") else _copy_range(src, out)
            out.flush()
    finally:
        os.close(fd)
    os.utime(dest)  # its time is the publication's, which readers show as the snapshot's age


def _copy_range(src, out) -> None:
    size = os.fstat(src.fileno()).st_size
    done = 0
    while done < size:
        n = os.copy_file_range(src.fileno(), out.fileno(), size - done, done, done)
        if n == 0:
            break
        done += n


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
