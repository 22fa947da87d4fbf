"""Reading the files an import takes, as batches of JSON lines: JSON lines as they are, Meta's lead CSV export (UTF-16
or UTF-8; tab, comma or semicolon) turned row by row into the Graph-shaped lead Meta's API would have returned.

Kept apart from :mod:`.importer` (which parses and stores the batches) because it is the part that knows file formats,
and nothing here touches the warehouse.
"""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from leads_pipeline.lib.ingest import codec

__all__ = ["ImportError_", "csv_chunks", "csv_row_to_lead", "detect_format", "jsonl_chunks", "jsonl_ranges"]

# Columns of Meta's export that describe the lead rather than answer a question.
_META_COLUMNS = ("id", "created_time", "ad_id", "ad_name", "adset_id", "adset_name", "campaign_id", "campaign_name",
                 "form_id", "is_organic", "platform")
_EXPORT_ONLY = frozenset(("form_name", "lead_status", "inbox_url", "retailer_item_id", "partner_name", "vehicle",
                          "home_listing", "post", "is_test_lead"))
_ID_PREFIXES = {"id": "l:", "ad_id": "ag:", "adset_id": "as:", "campaign_id": "c:", "form_id": "f:"}
_PHONE_KEYS = frozenset(("phone_number", "work_phone_number"))



class ImportError_(ValueError):  # noqa: N801 - ImportError is Python's own
    """The file cannot be imported as a whole (missing, unreadable, unknown format); the message says what to do."""


def detect_format(path: Path) -> str:
    """``jsonl`` or ``csv``, from the file's extension, else from its first bytes."""
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    if suffix in (".csv", ".tsv"):
        return "csv"
    with open(path, "rb") as f:
        head = f.read(4096)
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "csv"
    text = head.lstrip(codecs.BOM_UTF8).lstrip()
    return "jsonl" if text[:1] in (b"{", b"[") else "csv"


def jsonl_chunks(path: Path, chunk_bytes: int) -> Iterator[tuple[int, list[bytes]]]:
    """(1, lines) of about ``chunk_bytes`` each, read as bytes (decoded by the parser). Line numbers in a batch
    count from its first line; the importer adds the lines of the batches before."""
    with open(path, "rb") as f:
        lines: list[bytes] = []
        size = 0
        for line in f:
            lines.append(line)
            size += len(line)
            if size >= chunk_bytes:
                yield 1, lines
                lines, size = [], 0
        if lines:
            yield 1, lines


def _text_stream(path: Path) -> io.TextIOBase:
    """The file as text: UTF-16 (Meta's export) by its BOM, else UTF-8 (a BOM dropped)."""
    with open(path, "rb") as f:
        head = f.read(4)
    encoding = "utf-16" if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) else "utf-8-sig"
    return open(path, encoding=encoding, newline="", errors="replace")


def _header_key(name: str) -> str:
    return name.strip().strip("\ufeff").strip()


def csv_row_to_lead(header: list[str], row: list[str]) -> dict[str, Any]:
    """One row of Meta's export → the Graph-shaped lead (``field_data`` from the question columns)."""
    lead: dict[str, Any] = {}
    fields: list[dict[str, Any]] = []
    for name, value in zip(header, row):
        if name in _META_COLUMNS:
            value = value.strip()
            if not value:
                continue
            prefix = _ID_PREFIXES.get(name)
            if prefix and value.startswith(prefix):
                value = value[len(prefix):]
            if name == "is_organic":
                lowered = value.lower()
                lead[name] = True if lowered == "true" else False if lowered == "false" else value
            else:
                lead[name] = value
        elif name in _EXPORT_ONLY or not name:
            continue
        else:
            if value is None or not value.strip():
                continue  # an unanswered question: Meta's API leaves it out
            if name in _PHONE_KEYS and value.startswith("p:"):
                value = value[2:]
            fields.append({"name": name, "values": [value]})
    lead["field_data"] = fields
    return lead


def csv_chunks(path: Path, chunk_bytes: int, errors: list[tuple[int, str]]) -> Iterator[tuple[int, list[bytes]]]:
    """Rows of the export as JSON lines of Graph-shaped leads (so they take the JSON-lines path from here)."""
    dumps = codec.dumps_bytes
    with _text_stream(path) as f:
        sample = f.read(65536)
        f.seek(0)
        first_line = sample.split("\n", 1)[0]
        delimiter = max(("\t", ",", ";"), key=first_line.count)
        reader = csv.reader(f, delimiter=delimiter)
        try:
            header = [_header_key(h) for h in next(reader)]
        except StopIteration:
            return
        if "id" not in header and "created_time" not in header:
            raise ImportError_(
                f"{path}: the first row is not the header of Meta's lead export (expected columns such as id, "
                f"created_time, ad_id, form_id, then the questions); found {', '.join(header[:6])}…"
            )
        lines: list[bytes] = []
        size = 0
        for row in reader:
            if not row or (len(row) == 1 and not row[0].strip()):
                lines.append(b"")  # keeps line numbers aligned; skipped as blank
                continue
            if len(row) > len(header) and any(v.strip() for v in row[len(header):]):
                errors.append((reader.line_num, f"{len(row)} fields but the header has {len(header)}"))
                lines.append(b"")
                continue
            line = dumps(csv_row_to_lead(header, row))
            lines.append(line)
            size += len(line)
            if size >= chunk_bytes:
                yield 1, lines  # generated JSON: no line of it can be unreadable
                lines, size = [], 0
        if lines:
            yield 1, lines


def jsonl_ranges(path: Path, chunk_bytes: int) -> Iterator[tuple[int, int]]:
    """Byte ranges of about ``chunk_bytes`` that end at line ends (found by seeking: the file is not read here)."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        start = 0
        while start < size:
            f.seek(min(start + chunk_bytes, size))
            f.readline()
            end = min(f.tell(), size)
            yield start, end
            start = end
