"""PostgreSQL under the wrapper, through SQLAlchemy: the URL, a connection pool, and readable connect errors.

SQLAlchemy parses the URL (``make_url``: user, password, host, port, query options such as ``options=-csearch_path``)
and renders it without its password for every message. Connections come from one SQLAlchemy engine per URL and
process (``QueuePool``, pre-pinged), so a transaction or a session checks out a warm connection instead of opening a
new one (a TCP + authentication round trip each time). The SQL itself still goes straight to psycopg with server-side
``$n`` parameters (:mod:`.placeholders`), and batches still go through ``COPY`` (:mod:`.staging`): that fast path
stays hand-written.

Engines are kept for the few most recently used URLs (a test suite uses a schema per test) and forgotten in a forked
child, which must not share its parent's sockets.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from typing import Any

from .errors import WarehouseError

#: Connections kept open per engine, and how many more may be opened under load (returned connections beyond
#: ``POOL_SIZE`` are closed).
POOL_SIZE, MAX_OVERFLOW = 4, 16
#: Engines kept per process (least recently used disposed first).
MAX_ENGINES = 4

_engines: OrderedDict[str, Any] = OrderedDict()
_engines_guard = threading.Lock()


def parse(url: str):
    """The ``sqlalchemy.engine.URL`` of a ``postgresql://`` / ``postgres://`` URL (any ``+driver`` becomes psycopg)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        raise WarehouseError(f"LEADS_WAREHOUSE_URL is not a valid URL ({hidden(url)}): write "
                             "postgresql://user:password@host:port/database") from None
    if parsed.drivername.split("+")[0] not in ("postgresql", "postgres"):
        raise WarehouseError(f"Not a PostgreSQL URL: {parsed.render_as_string(hide_password=True)}")
    return parsed.set(drivername="postgresql+psycopg")


def hidden(url: str) -> str:
    """``url`` without its password, also when it does not parse."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - a malformed URL: cut out what may be the password
        head, sep, tail = url.rpartition("@")
        if not sep:
            return url
        scheme, _, userinfo = head.partition("://")
        return f"{scheme}://{userinfo.split(':', 1)[0]}:***@{tail}"


def dsn(parsed) -> str:
    """A libpq connection string for psycopg (password included: never print it)."""
    return parsed.set(drivername="postgresql").render_as_string(hide_password=False)


def engine(url: str):
    """The process's SQLAlchemy engine for ``url`` (created on first use; its pool shared by every caller)."""
    with _engines_guard:
        found = _engines.get(url)
        if found is not None:
            _engines.move_to_end(url)
            return found
    made = _create(url)
    with _engines_guard:
        found = _engines.setdefault(url, made)
        _engines.move_to_end(url)
        evicted = [_engines.popitem(last=False)[1] for _ in range(max(0, len(_engines) - MAX_ENGINES))]
    for old in evicted + ([made] if found is not made else []):
        old.dispose()
    return found


def _create(url: str):
    from sqlalchemy import create_engine, event

    eng = create_engine(parse(url), pool_size=POOL_SIZE, max_overflow=MAX_OVERFLOW, pool_pre_ping=True,
                        pool_recycle=1800, pool_timeout=60)
    event.listen(eng, "connect", _configure)
    return eng


def _configure(raw: Any, _record: Any) -> None:
    """Each new server connection: strings fill JSONB/TIMESTAMPTZ columns, JSON comes back as text (as from DuckDB),
    times are UTC."""
    from psycopg.types.json import set_json_loads
    from psycopg.types.string import StrDumperUnknown

    raw.adapters.register_dumper(str, StrDumperUnknown)
    set_json_loads(_json_as_text, raw)
    autocommit = raw.autocommit
    raw.autocommit = True
    raw.execute("SET TIME ZONE 'UTC'")
    raw.autocommit = autocommit


def _json_as_text(data: bytes | str) -> str:
    return data.decode() if isinstance(data, (bytes, bytearray, memoryview)) else data


def checkout(url: str, location: str):
    """A pooled connection: ``(proxy, psycopg connection)``; ``proxy.close()`` returns it to the pool."""
    import psycopg
    from sqlalchemy.exc import DBAPIError, TimeoutError as PoolTimeout

    try:
        proxy = engine(url).raw_connection()
    except (DBAPIError, psycopg.Error) as exc:
        reason = " ".join(str(getattr(exc, "orig", None) or exc).split())
        raise WarehouseError(f"Could not connect to the PostgreSQL warehouse {location}: {_scrub(reason, url)} "
                             "(the URL is LEADS_WAREHOUSE_URL)") from None
    except PoolTimeout:
        raise WarehouseError(f"All {POOL_SIZE + MAX_OVERFLOW} pooled connections to {location} stayed busy for "
                             "60 s: a transaction is stuck, or this process runs too many at once.") from None
    return proxy, proxy.driver_connection


def _scrub(text: str, url: str) -> str:
    password = parse(url).password
    return text.replace(password, "***") if password else text


def _forget_engines() -> None:
    global _engines_guard
    _engines_guard = threading.Lock()  # another thread of the parent may have held it at the fork
    for eng in _engines.values():
        eng.dispose(close=False)  # the parent's sockets are the parent's
    _engines.clear()


os.register_at_fork(after_in_child=_forget_engines)
