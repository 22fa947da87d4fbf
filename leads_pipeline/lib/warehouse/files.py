"""The DuckDB warehouse's files on disk: private to their owner.

The file holds personal (and health-related) data. Under the usual umask 022 DuckDB creates it 0644 in a 0755
directory, readable by every user of the machine. So a directory the warehouse creates for it (and its missing
parents) is ``0700``, and a new database file, its lock file and its write-ahead log are ``0600``, whatever the
umask. An existing directory is left as it is (it may be shared on purpose, like ``/tmp``); an existing database file
that others may read is reported once (a warning naming the ``chmod`` to run), not changed behind anyone's back.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

__all__ = ["DIR_MODE", "FILE_MODE", "private_dir", "tighten", "warn_if_readable"]

#: Modes of what the warehouse creates for a DuckDB file: a directory, and the database, lock and WAL files.
DIR_MODE = 0o700
FILE_MODE = 0o600

log = logging.getLogger(__name__)
_warned_open: set[str] = set()


def private_dir(path: Path) -> None:
    """Create ``path`` and its missing parents with mode 0700 (``mkdir``'s mode is masked by the umask, and
    ``parents=True`` ignores it for the parents, hence one directory at a time and a ``chmod``). Existing
    directories are left as they are."""
    missing: list[Path] = []
    p = path
    while not p.exists() and p != p.parent:
        missing.append(p)
        p = p.parent
    for d in reversed(missing):
        try:
            d.mkdir(mode=DIR_MODE)
        except FileExistsError:  # another process made it meanwhile: theirs to decide
            continue
        os.chmod(d, DIR_MODE)


def tighten(path: Path) -> None:
    """``path`` (a file the warehouse just created, or DuckDB's WAL) to 0600 when others may read it."""
    try:
        mode = os.stat(path).st_mode
        if mode & 0o077:
            os.chmod(path, FILE_MODE)
    except FileNotFoundError:  # the WAL is removed at each checkpoint
        pass


def warn_if_readable(path: Path) -> None:
    """Warn once per process about an existing database file that other users may read."""
    key = str(path)
    if key in _warned_open:
        return
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        return
    if mode & 0o077:
        _warned_open.add(key)
        log.warning("The DuckDB warehouse %s can be read by other users (mode %o) and holds personal data: "
                    "`chmod 600 %s` (and `chmod 700` its directory).", path, mode, path)
