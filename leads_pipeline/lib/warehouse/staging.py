"""Batches as tables, the hand-written fast path: DuckDB reads Arrow in place; PostgreSQL receives ``COPY`` rows."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

__all__ = ["arrow_table", "arrow_type", "duck_type", "pg_rows", "pg_type"]


def pg_rows(names: list[str], rows: Sequence[Sequence[Any]] | None, data: Any) -> Iterator[Sequence[Any]]:
    if data is None:
        yield from rows or ()
        return
    if hasattr(data, "column_names"):  # a pyarrow.Table
        cols = [data.column(c).to_pylist() for c in names]
    else:
        cols = [data[c] for c in names]
    for row in zip(*cols):
        yield [v.decode() if type(v) is bytes else v for v in row]


def arrow_table(columns: Mapping[str, str], rows: Sequence[Sequence[Any]] | None, data: Any):
    import pyarrow as pa

    names = list(columns)
    if data is not None and hasattr(data, "column_names"):
        return data.select(names)
    if data is not None:
        cols = [data[c] for c in names]
    elif rows:
        cols = list(zip(*rows))  # one C-level transposition instead of a list comprehension per column
    else:
        cols = [()] * len(names)
    arrays = [pa.array(col, type=arrow_type(columns[c])) for col, c in zip(cols, names)]
    return pa.Table.from_arrays(arrays, names=names)


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
