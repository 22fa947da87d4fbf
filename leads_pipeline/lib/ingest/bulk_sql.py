"""The DuckDB fast path of an import of Graph API pages: DuckDB reads, unnests, keys, dedupes, lands and parses the
common lead in SQL (vectorised, on every core); Python parses only what SQL should not decide.

Why: the Python path (:mod:`.bulk`) decodes every lead into Python objects and back into Arrow — about 45 µs of CPU
a lead, against DuckDB reading and validating the same JSON in C++ on both cores. Here each lead's JSON text goes
from ``read_json`` straight into ``raw_leads`` (no Python round trip), and the common lead — a digit id, Meta's own
``created_time`` shape, well-formed ``field_data`` of plain text answers, a first e-mail answer that is an address
as typed (trimmed, lower-cased), a first phone answer that ``normalise_phone`` accepts — becomes its ``leads`` row in
SQL. Every other lead (odd ids, odd times, answers needing repairs, quarantine) is decoded and run through the one
parser, :func:`leads_pipeline.lib.ingest.parse.parse_lead_row`, and stored by :func:`.store.store_parsed`: the rules
stay one. The phone check itself is the parser's (``normalise_phone`` in the lead's regions), run in Python over one
Arrow column of first phone answers (``_phones``; a Python UDF called from SQL cost several times more per value).

The SQL verdicts only ever take the parser's *common* branch: where the parser would repair, fall back or quarantine,
the lead goes to the parser (``test_import.py::test_the_sql_path_gives_the_parsers_leads_rejects_and_phones``
compares both paths row for row on generated tricky leads).

Where: the reading, dedupe, checks, transforms and phones run in a DuckDB of the import's own (in memory, spilling
beyond ``WORK_MEMORY_LIMIT`` to a private folder beside the warehouse), holding no warehouse lock; the warehouse is
then written by :mod:`.bulk_sql_write` (attached to this DuckDB, a transaction per chunk), which checks what
it already holds at that moment. The leads left to the parser are parsed in a thread meanwhile: the writes run in
DuckDB, which lets go of the GIL, mostly on one core (1M leads: 32.5 s vs 33.8 s, the parser's 1.6 s hidden).
Per-step seconds come back in the result (``seconds``); ``LEADS_IMPORT_PROFILE=1`` prints them, with the CPU seconds of
each step beside them (``<step>_cpu``: the SQL steps use every core, the Python ones one).

Only whole files of pages (``{"data": [...], "paging": {...}}`` on every line) take this path; anything else (a line
that is not JSON, a lead per line, a page whose ``data`` is not a list) returns ``None`` before anything is written
and the import takes the streaming Python path, which reports such lines by number.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from leads_pipeline.lib.ingest import codec
from leads_pipeline.lib.ingest.parse import lead_key, sent_id
from leads_pipeline.lib.ingest.store import form_locales, parse_rows

__all__ = ["import_pages"]

_WS = "".join(c for c in map(chr, range(0x3001)) if c.isspace())  # what Python's str.strip() takes
_EMAIL_CHAR = r"[\x{00}-\x{08}\x{0e}-\x{1f}\x{21}-\x{3f}\x{41}-\x{7f}]"  # ASCII, neither "@" nor Python's \s
_META_TIME = r"[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]\+0000"
_CONTACT = ("email", "work_email", "phone_number", "work_phone_number")
_COLUMN_KEYS = ("full_name", "first_name", "last_name", "city", "country") + _CONTACT
_AD = ("ad_id", "ad_name", "adset_id", "adset_name", "campaign_id", "campaign_name", "platform")
_STRUCTURE = json.dumps({k: "JSON" for k in ("id", "created_time", *_AD, "form_id", "is_organic", "field_data",
                                               "custom_disclaimer_responses")})
_ANSWERS = '[{"name": "VARCHAR", "values": ["VARCHAR"]}]'
PHONE_BATCH = 65536
PARSE_SLICE = 4096  # leads decoded at once by the parser's thread
# The import's own DuckDB: its pool (it spills beyond it), beside the warehouse's while writing (whole tree <= 1 GB).
WORK_MEMORY_LIMIT = "400MB"

# The leads of every page, in file order (``rowid``), each with its id when that is a string of digits (the key).
READ = """
CREATE OR REPLACE TEMP TABLE bulk_src AS
SELECT j, id ->> '$' AS id_text,  -- id: NULL when j is not an object (one parse of the lead for both)
       coalesce(json_type(id) = 'VARCHAR' AND regexp_full_match(id ->> '$', '[0-9]+'), false) AS digit_id
FROM (SELECT j, j -> '$.id' AS id
      FROM (SELECT unnest(coalesce(data, [NULL::JSON])) AS j
            FROM read_json(?, records = true, format = 'newline_delimited',
                           columns = {'data': 'JSON[]', 'paging': 'JSON'})))
"""


def _vals(name: str) -> str:
    return f"fd[list_position(names, '{name}')].\"values\""


def _strip(v: str) -> str:
    """Python's ``str.strip()``: an ASCII text of a plain lead can only hold spaces (control characters would have
    been escaped), so the cheap ``trim`` serves; other text is trimmed of every Unicode whitespace."""
    return f"CASE WHEN strlen({v}) = length({v}) THEN trim({v}) ELSE trim({v}, '{_WS}') END"


def _first_text(name: str) -> str:
    """The parser's ``_first_text``: the first value with something in it, trimmed (usually the first value)."""
    first = _strip(f"{_vals(name)}[1]")
    return (f"CASE WHEN {first} <> '' THEN {first} "
            f"ELSE trim(list_filter({_vals(name)}, lambda v: trim(v, '{_WS}') <> '')[1], '{_WS}') END")


def _contact(a: str, b: str) -> str:
    """The answer the parser tries first: the values of ``a`` when it has any, else those of ``b``."""
    return f"CASE WHEN len({_vals(a)}) > 0 THEN {_vals(a)} WHEN len({_vals(b)}) > 0 THEN {_vals(b)} END"


def _contact_key(a: str, b: str) -> str:
    return f"CASE WHEN len({_vals(a)}) > 0 THEN '{a}' WHEN len({_vals(b)}) > 0 THEN '{b}' END"


# The common lead, parsed in SQL; ``simple`` false: the parser decides (see the module docstring).
# Materialised in steps: DuckDB would otherwise evaluate the JSON transforms again under every expression that
# reads the struct.
TRANSFORM = f"""
CREATE OR REPLACE TEMP TABLE bulk_shaped AS
WITH t AS (
    SELECT n.ord, n.raw_key, json_transform(s.j, '{_STRUCTURE}') AS l, NOT contains(CAST(s.j AS VARCHAR), '\\') AS plain
    FROM bulk_new n JOIN bulk_src s ON s.rowid = n.ord
    WHERE n.digit_id
)
SELECT ord, raw_key, l, plain, json_type(l.field_data) = 'ARRAY' AS fd_list,
       CASE WHEN json_type(l.field_data) = 'ARRAY' THEN json_transform(l.field_data, '{_ANSWERS}') END AS fd,
       list_transform(fd, lambda f: f.name) AS names
FROM t
"""

# ``field_data`` as the parser reads it without question: its text (DuckDB writes JSON without spaces) is a list of
# objects of exactly "name" then "values", every name and value a JSON string. The lead has no escapes at all, so no
# string holds a quote and the typed form (``fd``) holds the same strings. One regular expression without captures
# (RE2 runs it as a DFA): rebuilding the text from ``fd`` with a list lambda and comparing cost three times as much.
_FD_ENTRY = r'\{"name":"[^"]*","values":\[(?:"[^"]*"(?:,"[^"]*")*)?\]\}'
_FD_PLAIN = f"regexp_full_match(CAST(l.field_data AS VARCHAR), '\\[(?:{_FD_ENTRY}(?:,{_FD_ENTRY})*)?\\]')"

ANSWER = f"""
CREATE OR REPLACE TEMP TABLE bulk_answered AS
WITH typed AS (
    SELECT *,
           plain AND fd_list AND coalesce({_FD_PLAIN}, false)
           AND len(list_distinct(names)) = len(fd)
           AND json_type(l.created_time) = 'VARCHAR' AND regexp_full_match(l.created_time ->> '$', '{_META_TIME}')
           AND NOT starts_with(l.created_time ->> '$', '0000')
           AND coalesce(json_type(l.is_organic) IN ('BOOLEAN', 'NULL'), true)
           AND coalesce(json_type(l.form_id) IN ('VARCHAR', 'NULL'), true)
           AND {" AND ".join(f"coalesce(json_type(l.{c}) IN ('VARCHAR', 'NULL'), true)" for c in _AD)}
           AND (l.custom_disclaimer_responses IS NULL
                OR json_type(l.custom_disclaimer_responses) = 'NULL'
                OR json_type(l.custom_disclaimer_responses) = 'ARRAY'  -- no float (orjson writes those its own way)
                   AND NOT regexp_matches(CAST(l.custom_disclaimer_responses AS VARCHAR), '[:\\[,]-?[0-9]+[.eE]'))
           AS shape_ok
    FROM bulk_shaped
)
SELECT ord, raw_key, l.form_id ->> '$' AS form_id, ({_contact('email', 'work_email')})[1] AS e_first,
       {_contact_key('email', 'work_email')} AS e_key,
       ({_contact('phone_number', 'work_phone_number')})[1] AS p_first,
       {_contact_key('phone_number', 'work_phone_number')} AS p_key,
       {_first_text('country')} AS country,
       TRY_CAST(l.created_time ->> '$' AS TIMESTAMPTZ) AS created_time
FROM typed
WHERE shape_ok AND (l.form_id IS NULL OR json_type(l.form_id) = 'NULL'
                    OR l.form_id ->> '$' NOT IN (SELECT form_id FROM bulk_locales))
"""

# Narrow tables from here on (the structs stay in bulk_shaped): copying nested columns costs more than the rules.
PARSE = f"""
CREATE OR REPLACE TEMP TABLE bulk_parsed AS
SELECT a.ord, a.raw_key, a.form_id, a.e_key, a.p_key, a.country, a.created_time,
       lower({_strip('a.e_first')}) AS email, ph.phone,
       a.created_time IS NOT NULL
       AND (a.e_key IS NULL OR (strlen(a.e_first) = length(a.e_first)
                                AND regexp_full_match(lower({_strip('a.e_first')}),
                                                      '{_EMAIL_CHAR}+@{_EMAIL_CHAR}+\\.{_EMAIL_CHAR}+')))
       AND (a.p_key IS NULL OR ph.phone IS NOT NULL) AS simple
FROM bulk_answered a LEFT JOIN bulk_phones ph USING (ord)
"""

# custom_fields from field_data's own text (checked plain and equal to its typed form, see ``_FD_PLAIN``): the
# entries no column shows are rewritten `{"name":"k","values":[…]}` → `"k":[…]` and the others removed, by regular
# expressions (list lambdas cost several times more). An entry is removed, as the parser leaves it out, when its
# question fills a column and it has at most one value: a name question always, a contact question when its answer
# is blank or the one a column shows (``e_key``/``p_key``: one expression per combination, so patterns stay constant).
_STR = '"[^"]*"'
_ENTRY = r'\{"name":"(?:%s)","values":\[%s\]\},?'


def _drop(names: tuple[str, ...], value: str) -> str:
    return _ENTRY % ("|".join(names), f"(?:{value})?")


def _custom_kept() -> str:
    """``field_data``'s text without the entries a column shows (see above)."""
    blank = f'"[{_WS}]*"'
    fixed = f"{_drop(_COLUMN_KEYS[:5], _STR)}|{_drop(_CONTACT, blank)}"
    cases = []
    for e in ("email", "work_email", None):
        for p in ("phone_number", "work_phone_number", None):
            shown = tuple(k for k in (e, p) if k)
            pattern = fixed + (f"|{_drop(shown, _STR)}" if shown else "")
            cond = " AND ".join(f"{col} IS NULL" if k is None else f"{col} = '{k}'" for col, k in (("e_key", e),
                                                                                                  ("p_key", p)))
            cases.append(f"WHEN {cond} THEN regexp_replace(fd_text, '{pattern}', '', 'g')")
    return f"CASE {' '.join(cases)} END"


_CUSTOM_KEPT = _custom_kept()
# The kept entries rewritten `{"name":"k","values":[…]}` → `"k":[…]`, still inside field_data's brackets:
# "[k:[…],…]". No value holds a quote (the text has no escapes), so `{"name":` and `,"values":` only ever start
# and split an entry; when `]}` is found only at the entries' ends (no value holds it: nearly every lead), three
# plain replaces do it, else a regular expression with captures (several times slower).
_CUSTOM_PAIRS = (
    "CASE WHEN length(fd_text) - length(replace(fd_text, ']}', '')) = 2 * len(fd) "
    "THEN replace(replace(replace(custom_kept, '{\"name\":', ''), ',\"values\":', ':'), ']}', ']') "
    f"ELSE regexp_replace(custom_kept, '\\{{\"name\":({_STR}),\"values\":(\\[(?:{_STR}(?:,{_STR})*)?\\])\\}}', "
    "'\\1:\\2', 'g') END")
_CUSTOM_JSON = "'{' || rtrim(substr(custom_pairs, 2, length(custom_pairs) - 2), ',') || '}'"

# The leads rows of the common leads, computed in the import's own DuckDB; the warehouse only receives them
# (:mod:`.bulk_sql_write`, which adds the distributor, the run and the times, and skips what it holds already).
ROWS = f"""
CREATE OR REPLACE TEMP TABLE bulk_rows AS
SELECT ord, raw_key AS meta_lead_id, NULLIF(l.form_id ->> '$', '') AS form_id,
       {", ".join(f"l.{c} ->> '$' AS {c}" for c in _AD[:6])}, created_time,
       CAST(l.is_organic ->> '$' AS BOOLEAN) AS is_organic, l.platform ->> '$' AS platform,
       coalesce({_first_text('full_name')},
                NULLIF(concat_ws(' ', {_first_text('first_name')}, {_first_text('last_name')}), '')) AS full_name,
       {_first_text('first_name')} AS first_name, {_first_text('last_name')} AS last_name, email, phone,
       {_first_text('city')} AS city, country, {_CUSTOM_JSON} AS custom_fields,
       CASE WHEN l.custom_disclaimer_responses IS NULL OR json_type(l.custom_disclaimer_responses) = 'NULL'
                 OR CAST(l.custom_disclaimer_responses AS VARCHAR) = '[]' THEN '[]'
            ELSE CAST(l.custom_disclaimer_responses AS VARCHAR) END AS disclaimer_responses,
       CASE WHEN email IS NULL AND phone IS NULL THEN 'rejected' ELSE 'new' END AS status,
       CASE WHEN email IS NULL AND phone IS NULL THEN 'no valid contact' END AS status_reason
FROM (SELECT *, {_CUSTOM_PAIRS} AS custom_pairs
      FROM (SELECT *, {_CUSTOM_KEPT} AS custom_kept
            FROM (SELECT p.*, s.l, s.fd, s.names, CAST(s.l.field_data AS VARCHAR) AS fd_text
                  FROM bulk_parsed p JOIN bulk_shaped s USING (ord) WHERE p.simple)))
"""


def _phones(conn: Any, region: str) -> None:
    """``bulk_phones``: the parser's phone rule (``normalise_phone`` in the lead's regions: its country answer, then
    the distributor's region; a lead whose form has a locale is left to the parser) for the first phone answer of
    each lead, in one pass over Arrow columns (a Python UDF called from SQL costs far more per value)."""
    import pyarrow as pa

    from leads_pipeline.lib.ingest.parse import _default_regions
    from leads_pipeline.lib.memory import gc_paused
    from leads_pipeline.lib.normalise import normalise_phone, phone_regions

    default = _default_regions(region)
    cache: dict[Any, tuple[str, ...]] = {None: default}
    ords, phones = [], []
    # In Arrow batches: the Python objects of one batch at a time (memory stays flat in the file size).
    reader = conn.raw.sql("SELECT ord, p_first, country FROM bulk_answered WHERE p_first IS NOT NULL"
                          ).to_arrow_reader(PHONE_BATCH)
    with gc_paused():
        for batch in reader:
            out: list[str | None] = []
            append = out.append
            for v, country in zip(batch.column(1).to_pylist(), batch.column(2).to_pylist()):
                regions = cache.get(country)
                if regions is None:
                    regions = cache[country] = phone_regions(country, None, region)
                phone = None
                for r in regions:
                    phone = normalise_phone(v, r)
                    if phone is not None:
                        break
                append(phone)
            ords.append(batch.column(0))
            phones.append(pa.array(out, type=pa.string()))
    table = pa.Table.from_arrays([pa.chunked_array(ords, type=pa.int64()),
                                  pa.chunked_array(phones, type=pa.string())], names=["ord", "phone"])
    conn.stage("bulk_phones", {"ord": "BIGINT", "phone": "TEXT"}, data=table)


@dataclass
class Prepared:
    """What the import's own DuckDB (``work``) made of the file: ``bulk_new`` (the first occurrence of each key,
    ``ord``/``raw_key``/``meta_lead_id``), ``bulk_src`` (the leads' text) and ``bulk_rows`` (the common leads' rows)
    stay in ``work``; the leads SQL left to the parser are parsed in a thread (``parsing``) while the warehouse is
    written: :meth:`parsed` waits for them."""

    fetched: int
    simple: int
    parsing: Future
    waited: float = 0.0

    def parsed(self) -> Parsed:
        """The parser's rows (waits for the thread; its error, if any, is raised here)."""
        t = time.perf_counter()
        try:
            return self.parsing.result()
        finally:
            self.waited += time.perf_counter() - t


@dataclass
class Parsed:
    """The parser's verdicts on the leads SQL did not take: rows for ``leads`` and ``rejected_leads`` by the
    ``ord`` of their lead, and the seconds the parsing took (in its thread)."""

    leads: dict[int, list]
    rejects: dict[int, list]
    seconds: float


def import_pages(wh: Any, path: str, distributor: str, region: str, sync_id: str) -> dict[str, Any] | None:
    """Import a file of Graph pages; None (nothing written) when the file is not one this path takes. Returns the
    figures of :class:`~.importer.ImportResult` it fills.

    The reading, dedupe, checks, transforms and phones run in a DuckDB of the import's own (in memory, spilling to
    a private folder beside the warehouse), with no warehouse lock held; :mod:`.bulk_sql_write` then writes into the
    warehouse a chunk per transaction, checking what the warehouse already holds at that moment."""
    import duckdb

    from leads_pipeline.lib.ingest import bulk_sql_write
    from leads_pipeline.lib.warehouse.connection import Conn
    from leads_pipeline.lib.warehouse.dialect import Dialect
    from leads_pipeline.lib.warehouse.files import private_dir

    steps: dict[str, float] = {}
    clock = [time.perf_counter(), time.process_time()]
    cpu_too = bool(os.environ.get("LEADS_IMPORT_PROFILE"))  # CPU beside wall: which steps use both cores

    def step(name: str) -> None:  # seconds per step, in the result: the profile behind the figure
        now_, cpu = time.perf_counter(), time.process_time()
        steps[name] = round(now_ - clock[0], 3)
        if cpu_too:
            steps[name + "_cpu"] = round(cpu - clock[1], 3)
        clock[0], clock[1] = now_, cpu

    with wh.transaction(read_only=True) as conn:  # one short read: the forms whose locale decides their phones
        locales = form_locales(conn)
    spill = Path(wh.path).parent / f".import-{os.getpid()}-{sync_id[:8]}.tmp"
    private_dir(spill)  # spilled pages hold personal data: the warehouse's own permissions
    work = duckdb.connect(":memory:", config={"memory_limit": WORK_MEMORY_LIMIT, "temp_directory": str(spill)})
    try:
        work.execute("SET TimeZone = 'UTC'")
        work.execute("SET enable_progress_bar = false")  # DuckDB's own bar would draw over the CLI's output
        prepared = _prepare(Conn(work, Dialect("duckdb")), path, region, locales, sync_id, distributor, step)
        if prepared is None:
            return None
        done = bulk_sql_write.write_all(wh, work, prepared, distributor, sync_id, step)
    finally:
        work.close()
        shutil.rmtree(spill, ignore_errors=True)
    done.pop("_t", None)
    steps.update({k: round(done.pop(k), 3) for k in [k for k in done if k.endswith("_s")]})  # the writes' profile
    steps["warehouse_holds"] = done.pop("holds")
    parsed = prepared.parsed()
    steps["parse_python_thread"] = round(parsed.seconds, 3)
    steps["parse_python_waited"] = round(prepared.waited, 3)
    return {**done, "fetched": prepared.fetched, "already_known": prepared.fetched - done["landed"],
            "parsed_in_sql": prepared.simple, "parsed_in_python": len(parsed.leads) + len(parsed.rejects),
            "seconds": steps}


def _prepare(conn: Any, path: str, region: str, locales: dict, sync_id: str, distributor: str,
             step: Any) -> Prepared | None:
    """Everything that does not need the warehouse, in the import's DuckDB ``conn`` (see :func:`import_pages`)."""
    import duckdb

    raw = conn.raw
    try:
        _run(raw, READ, [path])
    except (duckdb.InvalidInputException, duckdb.ConversionException):
        return None  # a line that is not JSON, or not a page of leads: the streaming path says which
    # Only bulk_src needs the file's order (its rowid is the order of the leads); every later table carries ``ord``,
    # so DuckDB may write them in parallel.
    _run(raw, "SET preserve_insertion_order = false")
    step("read")
    if raw.execute("SELECT count(*) FROM bulk_src WHERE j IS NULL").fetchall()[0][0]:
        return None
    fetched = raw.execute("SELECT count(*) FROM bulk_src").fetchall()[0][0]
    # Records without a digit id (rare): keyed by the parser's own rule (a hash of the canonical JSON).
    odd = conn.query_columns("SELECT rowid AS ord, CAST(j AS VARCHAR) AS j FROM bulk_src WHERE NOT digit_id")
    payloads = [codec.loads(t) for t in odd.get("j") or []]
    conn.stage("bulk_odd", {"ord": "BIGINT", "raw_key": "TEXT", "meta_lead_id": "TEXT"},
               data={"ord": odd.get("ord") or [], "raw_key": [lead_key(p) for p in payloads],
                     "meta_lead_id": [sent_id(p) for p in payloads]})
    del payloads
    step("odd_keys")
    # The first occurrence of each key (what the warehouse holds already is left out when writing).
    _run(raw, """
        CREATE OR REPLACE TEMP TABLE bulk_new AS
        WITH keyed AS (
            SELECT k.ord, k.digit_id, coalesce(o.raw_key, k.id_text) AS raw_key,
                   CASE WHEN k.digit_id THEN k.id_text ELSE o.meta_lead_id END AS meta_lead_id
            FROM (SELECT rowid AS ord, id_text, digit_id FROM bulk_src) k LEFT JOIN bulk_odd o USING (ord)
        )
        SELECT * FROM keyed WHERE ord IN (SELECT min(ord) FROM keyed GROUP BY raw_key)
    """)
    step("dedupe")
    conn.stage("bulk_locales", {"form_id": "TEXT"}, data={"form_id": list(locales)})
    _run(raw, TRANSFORM)
    step("transform")
    _run(raw, ANSWER)
    step("answer_sql")
    _phones(conn, region)
    step("phones_python")
    _run(raw, PARSE)
    _run(raw, ROWS)
    for table in ("bulk_shaped", "bulk_answered", "bulk_phones", "bulk_parsed", "bulk_odd"):
        _run(raw, f"DROP TABLE IF EXISTS {table}")
    simple = raw.execute("SELECT count(*) FROM bulk_rows").fetchall()[0][0]
    step("rows_sql")
    # Every lead SQL did not take: the parser's verdict, in a thread while the warehouse is written (the writes run
    # in DuckDB, which lets go of the GIL, mostly on one core: the parser takes the other).
    rest = conn.query_columns(
        "SELECT n.ord, CAST(s.j AS VARCHAR) AS j FROM bulk_new n JOIN bulk_src s ON s.rowid = n.ord "
        "WHERE n.ord NOT IN (SELECT ord FROM bulk_rows) ORDER BY n.ord")
    texts, ords = rest.get("j") or [], rest.get("ord") or []
    pool = ThreadPoolExecutor(1, thread_name_prefix="import-parser")
    parsing = pool.submit(_parse, texts, ords, distributor, region, sync_id, locales)
    pool.shutdown(wait=False)  # the thread ends with the parsing
    step("parse_python_started")
    return Prepared(fetched, simple, parsing)


def _parse(texts: list, ords: list, distributor: str, region: str, sync_id: str, locales: dict) -> Parsed:
    """:func:`~.store.parse_rows` over the texts, a slice at a time (only a slice's decoded leads at once: the
    thread runs while the warehouse's DuckDB holds its write buffers)."""
    start = time.perf_counter()
    out = Parsed({}, {}, 0.0)
    for at in range(0, len(texts), PARSE_SLICE):
        part, part_ords = texts[at:at + PARSE_SLICE], ords[at:at + PARSE_SLICE]
        n = len(part)
        leads, rejects, valid_at = parse_rows(distributor, region, [codec.loads(text) for text in part], part,
                                              [None] * n, [None] * n, [sync_id] * n, locales)
        valid = set(valid_at)
        out.leads.update(zip((part_ords[i] for i in valid_at), leads))
        out.rejects.update(zip((o for i, o in enumerate(part_ords) if i not in valid), rejects))
    out.seconds = time.perf_counter() - start
    return out


def _run(raw: Any, sql: str, params: Any = None) -> None:
    """One statement, its result consumed (DuckDB refuses other work on a connection with a pending result)."""
    raw.execute(sql, params or []).fetchall()


