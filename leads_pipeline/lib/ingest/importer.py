"""Bulk import of leads from files, through the same parse / validate / dedupe / store path as a sync.

    leads-pipeline import PATH --distributor KEY [--format auto|jsonl|csv]

Accepted files (read by :mod:`.files`):

- **JSON lines** (``.jsonl``, ``.ndjson``, ``.json``): each line is either a Graph API page of leads
  (``{"data": [lead, …], "paging": {…}}``, as ``/{form-id}/leads`` returns it) or one lead object. Blank lines are
  skipped. A line that is not JSON at all (or a page whose ``data`` is not a list) is reported with its line number
  and skipped; a JSON value that is not a valid lead is *rejected* like any malformed lead from Meta
  (``rejected_leads``, with its reason).
- **Meta's lead CSV export** from Ads Manager / Leads Center (``.csv``, ``.tsv``; UTF-8 or UTF-16 — Meta's download
  is UTF-16 with tabs — comma, tab or semicolon separated): the columns ``id, created_time, ad_id, ad_name,
  adset_id, adset_name, campaign_id, campaign_name, form_id, form_name, is_organic, platform`` and then one column
  per question (``full_name``, ``email``, ``phone_number``, custom questions…). Each row becomes the Graph-shaped lead
  Meta would have returned (``field_data`` from the question columns; the export's ``l:``/``ag:``/``as:``/``c:``/
  ``f:`` id prefixes and ``p:`` phone prefix removed; empty answers left out).

Each lead is keyed, deduplicated (the first occurrence wins), landed in ``raw_leads`` and parsed into ``leads`` /
``rejected_leads`` by :func:`leads_pipeline.lib.ingest.bulk.prepare_batch` and :func:`~leads_pipeline.lib.ingest.bulk.store_batch`
— the parser, rules and SQL of a sync, in batches of one transaction each. A lead already landed (by a sync, a
webhook or an earlier import) is not stored again, and tombstoned (deleted) ids never come back; a lead id another
distributor already holds is not stored for this one and is reported by that distributor's name. The run is recorded
in ``sync_runs`` with trigger ``import`` (its own row, its own counts).

On DuckDB a file of Graph pages takes the SQL path (:mod:`.bulk_sql`: DuckDB reads, dedupes, lands and parses the
common lead in SQL, the rest goes through the same parser) with the same results: the work in a DuckDB of the
import's own without the warehouse's lock, the writes a chunk per transaction (:mod:`.bulk_sql_write`); any other file
(a lead per line, CSV, unreadable lines) and PostgreSQL take the streaming path below.

Streaming: the file is read in chunks of ``chunk_bytes``; memory does not grow with the file. On large files the
parsing runs in ``workers`` other processes (the warehouse writes stay in this one, in file order), so the two cores
of a small machine both work. The warehouse is held open (``Warehouse.session``) for bursts of at most
``hold_seconds``, then let go briefly so that other writers (a sync, the webhook receiver) get their turn.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from leads_pipeline.lib.ingest import codec, files, runs
from leads_pipeline.lib.ingest.files import ImportError_, csv_row_to_lead, detect_format
from leads_pipeline.lib.ingest.bulk import PreparedBatch, prepare_batch, store_batch
from leads_pipeline.lib.memory import gc_paused
from leads_pipeline.lib.warehouse import Warehouse

__all__ = ["ImportError_", "ImportResult", "import_file", "detect_format", "csv_row_to_lead"]

FORMATS = ("auto", "jsonl", "csv")
CHUNK_BYTES = 24 * 1024 * 1024  # raw text per batch (~30k leads of Meta's size); one transaction each
# DuckDB during a bulk import: its buffer pool is bounded (it would otherwise keep every block written, growing with
# the file), and it checkpoints once at the end rather than after nearly every batch (a checkpoint writes the
# primary-key indexes out whole, so one per batch makes a large import quadratic).
DUCKDB_MEMORY_LIMIT = "384MB"
DUCKDB_CHECKPOINT_EVERY = "4GB"
SUB_BATCH = 2048  # leads decoded and parsed at a time within a chunk: Python objects stay few, Arrow holds the rest
PARALLEL_MIN_BYTES = 2 * CHUNK_BYTES  # smaller files are parsed in this process (no worker start-up)
HOLD_SECONDS = 30.0
YIELD_SECONDS = 0.06
MAX_ERRORS_LISTED = 20

@dataclass
class ImportResult:
    """The seed's result object (``success, fetched, stored, errors, message``) plus the import's figures."""

    success: bool = True
    fetched: int = 0
    stored: int = 0
    errors: list[str] = field(default_factory=list)
    message: str = ""
    rejected: int = 0
    skipped_deleted: int = 0
    already_known: int = 0  # leads landed before (this file earlier, a sync, a webhook) or repeated in the file
    held_elsewhere: dict[str, int] = field(default_factory=dict)  # lead ids another distributor holds, by distributor
    bad_lines: int = 0
    sync_id: str = ""
    distributor: str = ""
    format: str = ""
    seconds: float = 0.0
    parsed_in_sql: int = 0  # leads the SQL path (bulk_sql) parsed; the rest went through the parser

    def seed_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("success", "fetched", "stored", "errors", "message")}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ----------------------------------------------------------------------------------------------------------------------
# Parsing a chunk (in this process or a worker)
# ----------------------------------------------------------------------------------------------------------------------


def _decode(line: bytes) -> Any:
    try:
        return codec.orjson_loads(line) if codec.orjson_loads is not None else _json_loads(line)
    except ValueError:
        return _json_loads(line)  # NaN, huge integers…: the standard library's reading (raises if not JSON)


def _json_loads(line: bytes) -> Any:
    import json

    return json.loads(line)


def prepare_chunk(first_line: int, lines: list[bytes], distributor: str, region: str,
                  sync_id: str) -> PreparedBatch:
    """Decode JSON lines (pages or leads) and prepare them for the warehouse; unreadable lines become errors.

    Works through the chunk ``SUB_BATCH`` leads at a time (decoded objects freed as soon as their Arrow rows
    exist), deduplicating across the whole chunk."""
    import pyarrow as pa

    errors: list[tuple[int, str]] = []
    seen: set[str] = set()
    parts: list[PreparedBatch] = []
    items: list[tuple[Any, Any]] = []
    read = 0

    def flush() -> None:
        nonlocal items, read
        if items:
            part = prepare_batch(items, distributor=distributor, default_region=region, sync_id=sync_id,
                                        seen=seen)
            read += part.read
            parts.append(part)
            items = []  # the decoded leads go now, by reference counting

    with gc_paused():
        for n, line in enumerate(lines, first_line):
            stripped = line.strip()
            if not stripped:
                continue
            try:
                obj = _decode(stripped)
            except ValueError as exc:
                errors.append((n, f"not valid JSON ({_short(str(exc))})"))
                continue
            if type(obj) is dict and "data" in obj and ("paging" in obj or type(obj.get("data")) is list):
                data = obj["data"]
                if type(data) is not list:
                    errors.append((n, "a page whose \"data\" is not a list of leads"))
                    continue
                items.extend((lead, None) for lead in data)  # each lead's text is serialised once, when prepared
            else:
                items.append((obj, stripped))  # one lead per line: its text as received
            obj = data = None
            if len(items) >= SUB_BATCH:
                flush()
        flush()
    if len(parts) == 1:
        batch = parts[0]
    else:
        empty = prepare_batch([], distributor=distributor, default_region=region, sync_id=sync_id)
        parts = parts or [empty]
        batch = PreparedBatch(pa.concat_tables([p.raw for p in parts]),
                                     pa.concat_tables([p.leads for p in parts]),
                                     pa.concat_tables([p.rejects for p in parts]), read=read)
    batch.read = read
    batch.errors = errors
    batch.lines = len(lines)
    return batch


def prepare_range(path: str, start: int, end: int, distributor: str, region: str,
                  sync_id: str) -> PreparedBatch:
    """:func:`prepare_chunk` of the lines in ``[start, end)`` of ``path``, read here (in the worker): the importing
    process neither reads nor ships the text. Line numbers in ``errors`` count from the range's first line."""
    with open(path, "rb") as f:
        f.seek(start)
        data = f.read(end - start)
    lines = data.split(b"\n")
    if lines and not lines[-1]:
        lines.pop()
    del data
    return prepare_chunk(1, lines, distributor, region, sync_id)


def _short(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _prepare_args(args: tuple) -> PreparedBatch:
    if isinstance(args[0], str):
        return prepare_range(*args)
    return prepare_chunk(*args)


# ----------------------------------------------------------------------------------------------------------------------
# The import
# ----------------------------------------------------------------------------------------------------------------------


def import_file(
    wh: Warehouse,
    path: str | os.PathLike,
    distributor: str,
    *,
    fmt: str = "auto",
    workers: int | None = None,
    chunk_bytes: int = CHUNK_BYTES,
    hold_seconds: float = HOLD_SECONDS,
    trigger: str = "import",
    on_progress: Callable[[ImportResult], None] | None = None,
    sql_path: bool = True,
) -> ImportResult:
    """Import the leads of ``path`` for ``distributor`` (see the module docstring); never loads the whole file.

    ``workers``: parsing processes (default: one per core when the file is large, else none).
    ``on_progress``: called with the running result after each stored batch (the CLI's progress line).
    ``sql_path``: on DuckDB, a file of Graph pages is imported by :mod:`.bulk_sql` (False: the streaming path).
    Raises :class:`ImportError_` when the file or the distributor cannot be used at all.
    """
    from leads_pipeline.lib.distributors import registry as distributors

    started = time.perf_counter()
    file = Path(path)
    if fmt not in FORMATS:
        raise ImportError_(f"unknown format {fmt!r}: use one of {', '.join(FORMATS)}")
    if not file.is_file():
        raise ImportError_(f"{file}: no such file")
    try:
        dist = distributors.get(wh, distributor)
    except distributors.DistributorNotFound as exc:
        raise ImportError_(f"{exc} (add it first: leads-pipeline distributors add …)") from exc
    kind = detect_format(file) if fmt == "auto" else fmt
    result = ImportResult(distributor=dist.key, format=kind)
    result.sync_id = sync_id = runs.start_run(wh, dist.key, trigger)
    line_errors: list[str] = []
    csv_errors: list[tuple[int, str]] = []
    try:
        size = file.stat().st_size
        if workers is None:
            workers = (os.cpu_count() or 1) if size >= PARALLEL_MIN_BYTES else 0
        if kind == "jsonl" and wh.backend == "duckdb" and sql_path and _import_in_sql(wh, file, dist, sync_id, result):
            jobs = iter(())  # done in SQL (lib/ingest/bulk_sql.py); a file it does not take streams below
        elif kind == "jsonl" and workers > 0:  # the workers read their own byte ranges
            jobs: Iterator[tuple] = ((str(file), start, end) for start, end in files.jsonl_ranges(file, chunk_bytes))
        else:
            jobs = (files.jsonl_chunks(file, chunk_bytes) if kind == "jsonl"
                    else files.csv_chunks(file, chunk_bytes, csv_errors))
        batches = _prepared(jobs, dist.key, dist.default_region, sync_id, workers)
        _store_all(wh, batches, dist.key, sync_id, result, line_errors, hold_seconds, workers, on_progress)
        line_errors[:0] = [f"line {n}: {msg}" for n, msg in csv_errors]
    except Exception as exc:
        result.success = False
        result.errors.append(f"import stopped: {type(exc).__name__}: {exc}")
        result.message = (f"Import failed after {result.stored} new of {result.fetched} leads read were stored: {exc}. "
                          "Run it again: leads already stored are skipped.")
        runs.finish_run(wh, result)
        raise
    result.bad_lines = len(line_errors)
    if line_errors:
        shown = line_errors[:MAX_ERRORS_LISTED]
        if len(line_errors) > len(shown):
            shown.append(f"… and {len(line_errors) - len(shown)} more unreadable lines")
        result.errors.extend(shown)
        result.success = False
    parts = [f"{result.stored} new of {result.fetched} leads read from {file.name} stored"]
    if result.rejected:
        parts.append(f"{result.rejected} rejected (see rejected_leads)")
    if result.already_known:
        parts.append(f"{result.already_known} already known")
    if result.skipped_deleted:
        parts.append(f"{result.skipped_deleted} deleted earlier, not brought back")
    for owner, n in sorted(result.held_elsewhere.items()):
        notice = (f"{n} lead{'s' if n != 1 else ''} already belong{'s' if n == 1 else ''} to distributor "
                  f"'{owner}': not stored for '{dist.key}'")
        parts.append(notice)
        result.errors.append(notice)
    if line_errors:
        parts.append(f"{len(line_errors)} unreadable line(s) skipped (see errors)")
    result.message = "; ".join(parts)
    result.seconds = round(time.perf_counter() - started, 3)
    runs.finish_run(wh, result)
    return result


def _import_in_sql(wh: Warehouse, file: Path, dist: Any, sync_id: str, result: ImportResult) -> bool:
    """The file through :func:`.bulk_sql.import_pages` (the work in the import's own DuckDB, the warehouse written in
    a chunk per transaction); False when that path does not take the file (nothing written then)."""
    from leads_pipeline.lib.ingest import bulk_sql

    done = bulk_sql.import_pages(wh, str(file), dist.key, dist.default_region, sync_id)
    if done is None:
        return False
    for name in ("fetched", "stored", "rejected", "skipped_deleted", "already_known"):
        setattr(result, name, done[name])
    result.held_elsewhere = done["held"]
    result.parsed_in_sql = done["parsed_in_sql"]
    if os.environ.get("LEADS_IMPORT_PROFILE"):
        print(json.dumps({k: done[k] for k in ("parsed_in_sql", "parsed_in_python", "seconds")}), file=sys.stderr)
    return True


def _prepared(jobs: Iterator[tuple], distributor: str, region: str, sync_id: str,
              workers: int) -> Iterator[PreparedBatch]:
    """Prepared batches in file order; with ``workers``, parsed in other processes, a few chunks ahead (bounded).

    A job is ``(first line number, lines)`` or ``(path, start, end)`` (a byte range the worker reads itself)."""
    if workers <= 0:
        for job in jobs:
            yield _prepare_args((*job, distributor, region, sync_id))
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    # fork: the workers start in milliseconds with the parser already imported, and the caller's main module is
    # not imported again (spawn would need an ``if __name__ == "__main__"`` guard in every script that imports).
    # They are forked before this process opens the warehouse, and only parse (no warehouse, no locks).
    methods = multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        pending: deque = deque()
        ahead = workers + 1  # chunks in flight: memory stays bounded whatever the file size
        for job in jobs:
            pending.append(pool.submit(_prepare_args, (*job, distributor, region, sync_id)))
            while len(pending) >= ahead:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def _bulk_settings(wh: Warehouse, workers: int, done: bool = False) -> None:
    """DuckDB, for this session: a bounded buffer pool and one checkpoint at the end (see ``DUCKDB_MEMORY_LIMIT``),
    and one thread when worker processes already keep the cores busy (DuckDB's own threads would only add
    overhead)."""
    if wh.backend != "duckdb":
        return
    with wh.transaction() as conn:
        if done:  # the checkpoint when the session closes uses every thread again
            conn.execute("RESET threads")  # (the memory limit stays: the checkpoint would otherwise load it all)
            return
        conn.execute(f"SET checkpoint_threshold = '{DUCKDB_CHECKPOINT_EVERY}'")
        conn.execute(f"SET memory_limit = '{DUCKDB_MEMORY_LIMIT}'")
        if workers > 0:
            conn.execute("SET threads = 1")


def _store_all(wh: Warehouse, batches: Iterator[PreparedBatch], distributor: str, sync_id: str,
               result: ImportResult, line_errors: list[str], hold_seconds: float, workers: int,
               on_progress: Callable[[ImportResult], None] | None = None) -> None:
    """Store batches in order, the warehouse held open for bursts of ``hold_seconds`` at most."""
    it = iter(batches)
    batch = next(it, None)
    lines_before = 0  # input lines of the batches before this one (byte-range batches number their lines from 1)
    while batch is not None:
        with wh.session():
            _bulk_settings(wh, workers)
            ends = time.monotonic() + hold_seconds
            while batch is not None:
                line_errors.extend(f"line {lines_before + n}: {msg}" for n, msg in batch.errors or ())
                lines_before += batch.lines
                done = store_batch(wh, batch, distributor=distributor, sync_id=sync_id)
                result.fetched += batch.read
                result.stored += done.stored
                result.rejected += done.rejected
                result.skipped_deleted += done.skipped_deleted
                result.already_known += batch.read - done.processed
                for owner, n in done.held_elsewhere.items():
                    result.held_elsewhere[owner] = result.held_elsewhere.get(owner, 0) + n
                if on_progress is not None:
                    on_progress(result)
                batch = next(it, None)
                if time.monotonic() >= ends:
                    break
            _bulk_settings(wh, workers, done=True)
        if batch is not None and wh.backend == "duckdb":
            time.sleep(YIELD_SECONDS)  # let another process waiting for the file take its turn
