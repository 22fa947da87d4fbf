"""JSON text and clean strings that both backends accept: the encoding rules every landing and store shares.

Why a module of its own: raw landing, parse-and-store, the bulk path and the importer all serialise payloads the same
way and clean the same characters (PostgreSQL refuses NUL and unpaired surrogates); one copy of those rules.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

from leads_pipeline.lib.ingest.parse import _jsonable

try:  # orjson: the same compact JSON text as json.dumps(ensure_ascii=False), 5-10x faster
    import orjson as _orjson

    _ORJSON_OPTS = _orjson.OPT_PASSTHROUGH_DATETIME | _orjson.OPT_PASSTHROUGH_DATACLASS | _orjson.OPT_PASSTHROUGH_SUBCLASS
    orjson_dumps, orjson_loads, _OrjsonError = _orjson.dumps, _orjson.loads, _orjson.JSONDecodeError
except ImportError:  # pragma: no cover - the standard library does the same, slower
    orjson_dumps = orjson_loads = None
    _OrjsonError = ValueError


def dumps(value: Any) -> str:
    """Compact JSON text of ``value`` (non-JSON values made representable rather than failing)."""
    if orjson_dumps is not None:
        try:  # anything orjson refuses (non-str keys, huge ints, surrogates, dates, objects) takes the path below
            return orjson_dumps(value, option=_ORJSON_OPTS).decode()
        except TypeError:
            pass
    return _dumps_slow(value)


def dumps_bytes(value: Any) -> bytes:
    """:func:`dumps` as UTF-8 bytes (what Arrow takes without a copy through ``str``)."""
    if orjson_dumps is not None:
        try:
            return orjson_dumps(value, option=_ORJSON_OPTS)
        except TypeError:
            pass
    return _dumps_slow(value).encode("utf-8", "surrogatepass")


def _dumps_slow(value: Any) -> str:
    try:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError, RecursionError):
        try:
            return json.dumps(_jsonable(value), ensure_ascii=False, separators=(",", ":"))
        except RecursionError:  # a cyclic structure (never from JSON)
            return json.dumps(repr(value), ensure_ascii=False)


def loads(text: Any) -> Any:
    """A stored payload decoded (``json.loads`` semantics; orjson first); text that is not JSON stays as it is."""
    if not isinstance(text, (str, bytes)):
        return text
    if orjson_loads is not None:
        try:
            return orjson_loads(text)
        except _OrjsonError:  # NaN, huge integers, unpaired surrogates, or not JSON at all: the standard library
            pass
    try:
        return json.loads(text)
    except ValueError:
        return text


def clean_text(text: str) -> str:
    """``text`` without what PostgreSQL refuses (NUL characters, unpaired surrogates); JSON text stays valid."""
    if "\x00" in text:
        text = text.replace("\x00", "\ufffd")
    if "\\u0000" in text:
        text = text.replace("\\u0000", "\\ufffd")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "replace").decode("utf-8")
    return text


def sanitise(rows: list[list], text_columns: Sequence[int]) -> bool:
    """Clean the text columns of ``rows`` in place; whether anything changed."""
    changed = False
    for r in rows:
        for i in text_columns:
            value = r[i]
            if value is not None:
                clean = clean_text(value)
                if clean is not value and clean != value:
                    r[i] = clean
                    changed = True
    return changed


def data_errors() -> tuple[type[BaseException], ...]:
    """Errors a backend raises for text it cannot store (then the batch is cleaned and written again)."""
    errors: list[type[BaseException]] = [UnicodeError, ValueError]
    try:
        import duckdb

        errors.append(duckdb.Error)
    except ImportError:  # pragma: no cover
        pass
    try:
        import psycopg

        errors.append(psycopg.DataError)
    except ImportError:  # pragma: no cover
        pass
    return tuple(errors)


def is_duplicate_key(exc: BaseException) -> bool:
    """A plain INSERT met an existing primary key (DuckDB's ConstraintException)."""
    return type(exc).__name__ == "ConstraintException" and "duplicate key" in str(exc).lower()


def affected(count: int) -> int:
    """Rows an INSERT wrote (both backends report it; -1 would mean "unknown", never expected here)."""
    if count < 0:  # pragma: no cover - defensive
        raise RuntimeError("the backend did not report how many rows the INSERT wrote")
    return count


def now() -> datetime:
    return datetime.now(timezone.utc)
