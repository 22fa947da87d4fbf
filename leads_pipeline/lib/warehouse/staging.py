"""Batches as tables, the hand-written fast path: DuckDB reads Arrow in place, or Python rows as NumPy object
columns; PostgreSQL receives ``COPY`` rows.

Why two ways for Python rows on DuckDB: pyarrow imports pandas the first time it converts a Python list (0.3 s once
per process; a fresh process that syncs one page took 2.98 s with it, 2.45 s without), while DuckDB scans NumPy object
columns without pandas. Per batch, though, Arrow is cheaper: a few milliseconds less for a small batch (DuckDB
analyses every object column), 12 µs a lead instead of 20 for 5,000 ``leads`` rows queried in place. So a process's
first Python batches are scanned as NumPy columns (:data:`NUMPY_FIRST_BATCHES`: a one-page sync, a CLI command, a
Dagster run never imports pandas), and a process that stages more — a long sync, the webhook service — pays the import
once and goes through Arrow; so do large batches that are only read (:data:`ARROW_IN_PLACE_ROWS`) and every batch once
pandas is loaded anyway. :func:`objects_first` decides.
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

__all__ = ["ARROW_IN_PLACE_ROWS", "NUMPY_FIRST_BATCHES", "TEXT_TYPES", "arrow_table", "arrow_type", "batch_rows",
           "duck_cast", "duck_type", "object_columns", "objects_first", "pg_rows", "pg_type", "text_column"]

#: Python batches of at least this many rows that are only read (``Conn.stage(copy=False)``) go through Arrow,
#: queried in place (module docstring).
ARROW_IN_PLACE_ROWS = 1000
#: A process's first Python batches, up to this many, are scanned as NumPy object columns (module docstring).
NUMPY_FIRST_BATCHES = 32

_batches = itertools.count()


def objects_first(rows: int, copy: bool) -> bool:
    """Whether a Python batch of ``rows`` rows is scanned as NumPy object columns rather than converted to Arrow:
    while pandas is not loaded, for a process's first :data:`NUMPY_FIRST_BATCHES` batches, unless the batch is a
    large one only read (module docstring)."""
    if "pandas" in sys.modules or (not copy and rows >= ARROW_IN_PLACE_ROWS):
        return False
    return next(_batches) < NUMPY_FIRST_BATCHES


#: Staged types whose values are text (where ``bytes`` are UTF-8, see :func:`text_column`).
TEXT_TYPES = ("TEXT", "JSON", "VARCHAR")


def pg_rows(names: list[str], rows: Sequence[Sequence[Any]] | None, data: Any) -> Iterator[Sequence[Any]]:
    if data is None:
        yield from rows or ()
        return
    if hasattr(data, "column_names"):  # a pyarrow.Table
        cols = [data.column(c).to_pylist() for c in names]
    else:
        cols = _columns(names, None, data)
    for row in zip(*cols):
        yield [v.decode() if type(v) is bytes else v for v in row]


def arrow_table(columns: Mapping[str, str], rows: Sequence[Sequence[Any]] | None,
                data: Mapping[str, Sequence[Any]] | None):
    """Python rows (or column lists) as a ``pyarrow.Table`` of the staged types."""
    import pyarrow as pa

    names = list(columns)
    arrays = [pa.array(col, type=arrow_type(columns[c])) for col, c in zip(_columns(names, rows, data), names)]
    return pa.Table.from_arrays(arrays, names=names)


def _columns(names: list[str], rows: Sequence[Sequence[Any]] | None,
             data: Mapping[str, Sequence[Any]] | None) -> list[Sequence[Any]]:
    """A Python batch's values column by column, in ``names`` order: column data as given, rows transposed in one
    C-level ``zip`` (not a list comprehension per column)."""
    if data is not None:
        return [data[c] for c in names]
    return list(zip(*rows)) if rows else [()] * len(names)


def batch_rows(rows: Sequence[Sequence[Any]] | None, data: Mapping[str, Sequence[Any]] | None) -> int:
    """How many rows a Python batch holds (``rows``, or column lists of one length)."""
    if data is not None:
        return len(next(iter(data.values()), ()))
    return len(rows or ())


def object_columns(columns: Mapping[str, str], rows: Sequence[Sequence[Any]] | None,
                   data: Mapping[str, Sequence[Any]] | None) -> dict[str, Any]:
    """Python rows (or column lists) as NumPy object arrays, one per column, for DuckDB to scan: the values are
    handed over as they are (no pandas, no conversion in Python); :func:`duck_cast` gives them the staged types."""
    import numpy as np

    names = list(columns)
    # fromiter, not np.array: a value that is itself a list must stay one value, not become a second dimension.
    return {c: np.fromiter(col, dtype=object, count=len(col)) for c, col in zip(names, _columns(names, rows, data))}


def duck_cast(column: str, staged: str, scanned: str) -> str:
    """The expression giving a scanned object column (DuckDB's type for it: ``scanned``) its staged type: a
    timestamp without a zone is UTC (as Arrow took it)."""
    target = duck_type(staged)
    if scanned == "TIMESTAMP" and target.upper() == "TIMESTAMPTZ":
        return f'timezone(\'UTC\', "{column}")'
    return f'CAST("{column}" AS {target})'


def text_column(values: Any) -> Any:
    """An object column of text with ``bytes`` among its values (UTF-8, as JSON is passed in column data) as one of
    ``str``: DuckDB scans such a column as BLOB and would not take the strings among them back as text."""
    import numpy as np

    return np.fromiter((v.decode() if type(v) is bytes else v for v in values), dtype=object, count=len(values))


def duck_type(t: str) -> str:
    return {"JSON": "JSON"}.get(t.upper(), t)


def pg_type(t: str) -> str:
    return {"JSON": "JSONB"}.get(t.upper(), t)


def arrow_type(t: str):
    import pyarrow as pa

    return {
        "TEXT": pa.string(),
        "JSON": pa.string(),
        "BIGINT": pa.int64(),
        "INTEGER": pa.int64(),
        "DOUBLE": pa.float64(),
        "BOOLEAN": pa.bool_(),
        "TIMESTAMPTZ": pa.timestamp("us", tz="UTC"),
    }[t.upper()]
