"""Analytics marts: ``lead_stats``, ``conversion_funnel``, ``lead_daily``, ``lead_scores``, ``person_links``.

A mart is a table rebuilt whole from ``leads`` and ``lead_interactions``. Three are plain SQL: one ``SELECT`` each in
``sql/<mart>.sql`` (``lead_stats``, ``conversion_funnel``, ``lead_daily``), so an analyst reads, runs and changes
them as SQL, and adds a mart the same way (a ``.sql`` file and a ``defs.yaml``: ``leads_pipeline.components.sql_mart``).
:func:`replace_from_sql` is the one runner: it replaces the table's rows with the query's result in one transaction
(DELETE + INSERT … SELECT), so readers never see a half-built mart; the old contents stay visible until it commits.
The same file runs on DuckDB and PostgreSQL: both accept ``FILTER``, ``GROUPING SETS``, ``percentile_cont … WITHIN
GROUP``, ``generate_series`` and ``date ± integer``, so there is no per-backend file.

Two marts keep Python where SQL alone would be worse: ``lead_scores`` (free-text budget and travel answers are read
in Python, staged, then scored by one SQL statement generated from the rules in ``scores.py``) and ``person_links``
(leads joined by a shared email or phone, transitively: a union-find in one pass, where a recursive SQL closure would
grow with the square of a group's size).

Definitions (also in ``docs/analytics.md``; the SQL says them too):

- Stage rank: new/other 0, assigned 1, contacted 2, converted 3 (rejected is an outcome, not a stage).
- A lead *reached* a stage when its current status, or any ``to_status``/``from_status`` recorded in its
  interactions (status changes, reopens), ranks at or beyond it.
- ``converted`` / ``rejected`` count the lead's *current* status.
- First contact: ``leads.first_contacted_at``, else the earliest outbound (or direction not given) call, email or
  SMS interaction. Hours to first contact = that minus ``created_time``, never below 0.
- Stages reported to Meta: ``conversion_events`` rows with status ``sent``, joined on the lead id.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

from leads_pipeline.lib.crm.rules import STATUSES
from leads_pipeline.lib.warehouse import Conn, Warehouse

ALL_DISTRIBUTORS = "__all__"
SQL_DIR = Path(__file__).parent / "sql"
#: The built-in marts written by a ``.sql`` file of :data:`SQL_DIR` alone.
SQL_MARTS = ("lead_stats", "conversion_funnel", "lead_daily")
#: Every built-in mart (their tables are created by the migrations, so their columns are fixed).
BUILTIN_MARTS = (*SQL_MARTS, "lead_scores", "person_links")

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_LEADING_COMMENTS = re.compile(r"^(\s+|--[^\n]*(\n|$)|/\*.*?\*/)*", re.DOTALL)


class MartSqlError(ValueError):
    """A mart's SQL cannot be run: the message names the mart's file and says what is wrong."""


# ------------------------------------------------------------------------------------------------- the runner

def builtin_sql_path(name: str) -> Path:
    return SQL_DIR / f"{name}.sql"


def read_sql(path: Path | str) -> str:
    """The ``SELECT`` of a mart file, without a trailing ``;``; a clear error when the file is missing, empty or not
    one query."""
    path = Path(path)
    try:
        text = path.read_text("utf-8")
    except OSError as exc:
        raise MartSqlError(f"mart SQL file {path}: cannot be read ({exc.strerror or exc})") from exc
    sql = text.rstrip().rstrip(";").rstrip()  # leading lines kept: a database's "LINE n" is the file's line n
    body = _LEADING_COMMENTS.sub("", sql, count=1)
    if not re.match(r"(SELECT|WITH)\b|\(", body, re.IGNORECASE):
        what = "is empty" if not body else f"starts with {body.split(None, 1)[0][:20]!r}"
        raise MartSqlError(f"mart SQL file {path} {what}: a mart file is one SELECT (WITH … allowed), whose result "
                           "becomes the table's rows")
    return sql


@cache
def _pipeline_tables() -> frozenset[str]:
    """Tables the migrations create that are not marts: a mart may never replace them (a mart named ``leads`` would
    otherwise empty the leads)."""
    from leads_pipeline.lib.warehouse.dialect import Dialect
    from leads_pipeline.lib.warehouse.migrations import MIGRATIONS

    created = re.compile(r"CREATE\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?(\w+)", re.IGNORECASE)
    names = {"schema_migrations"}
    for _, _, build in MIGRATIONS:
        for dialect in (Dialect("duckdb"), Dialect("postgres")):
            for stmt in build(dialect):
                names.update(m.lower() for m in created.findall(stmt))
    return frozenset(names - set(BUILTIN_MARTS))


def _table_columns(conn: Conn, table: str) -> list[str]:
    rows = conn.query(
        "SELECT column_name FROM information_schema.columns WHERE table_name = ? AND table_schema = current_schema() "
        "AND table_catalog = current_database() ORDER BY ordinal_position",
        [table],
    )
    return [r["column_name"] for r in rows]


def _db_message(exc: Exception) -> str:
    return " ".join(str(exc).split())[:500]


def check_mart_name(name: str, where: str | None = None) -> None:
    """A mart's name is its table's: a lower-case SQL name, and never one of the pipeline's own tables."""
    where = where or f"mart {name!r}"
    if not _NAME.match(name):
        raise MartSqlError(f"{where}: a mart name is a lower-case SQL name (letters, digits, _), not {name!r}")
    if name in _pipeline_tables():
        raise MartSqlError(f"{where}: {name!r} is one of the pipeline's own tables (docs/schema.md); a mart may not "
                           "replace it — choose another name")


def replace_from_sql(wh: Warehouse, table: str, select_sql: str, *, source: str | Path | None = None) -> int:
    """Replace ``table``'s rows with the result of ``select_sql`` in one transaction; returns the rows written.

    The query's columns are matched to the table's by name. A table that does not exist yet is created from the
    query (``CREATE TABLE … AS``); a mart table of an analyst whose query changed its columns is recreated. A
    built-in mart's table belongs to the migrations: a query naming a column it lacks is an error, as is a mart
    named like one of the pipeline's own tables. Errors name ``source`` (the mart's file)."""
    where = f"mart {table!r} ({source})" if source else f"mart {table!r}"
    check_mart_name(table, where)
    query = f"SELECT * FROM ({select_sql}\n) AS mart_query"  # same line numbers as the file
    with wh.transaction() as conn:
        try:
            columns = list(conn.query_columns(query + " LIMIT 0"))
        except Exception as exc:  # noqa: BLE001 - any database error: say which file, and why
            raise MartSqlError(f"{where}: the query fails: {_db_message(exc)}") from exc
        if len(set(columns)) != len(columns):
            dupes = sorted({c for c in columns if columns.count(c) > 1})
            raise MartSqlError(f"{where}: the query returns the column(s) {', '.join(dupes)} more than once; give "
                               "each column its own name (AS …)")
        existing = _table_columns(conn, table)
        try:
            if existing and set(columns) != set(existing) and table not in BUILTIN_MARTS:
                conn.execute(f"DROP TABLE {table}")  # an analyst's mart whose columns changed
                existing = []
            if not existing:
                conn.execute(f"CREATE TABLE {table} AS {query}")
            else:
                unknown = [c for c in columns if c not in existing]
                if unknown:
                    raise MartSqlError(f"{where}: {', '.join(unknown)} not column(s) of the table {table} (it has "
                                       f"{', '.join(existing)}); its columns change with a migration")
                conn.execute(f"DELETE FROM {table}")
                conn.execute(f"INSERT INTO {table} ({', '.join(columns)}) {query}")
        except MartSqlError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise MartSqlError(f"{where}: writing the table failed: {_db_message(exc)}") from exc
        return int(conn.scalar(f"SELECT count(*) FROM {table}"))


def refresh_sql_file(wh: Warehouse, table: str, path: Path | str) -> int:
    """Rebuild ``table`` from the mart file ``path`` (see :func:`replace_from_sql`)."""
    return replace_from_sql(wh, table, read_sql(path), source=path)


def __getattr__(name: str) -> str:
    """``LEAD_STATS_SQL``, ``CONVERSION_FUNNEL_SQL``, ``LEAD_DAILY_SQL``: the refresh of a built-in SQL mart as one
    DuckDB statement (``INSERT … BY NAME``), for ``benchmarks/marts.py``'s run of the same SQL bare."""
    mart = name.removesuffix("_SQL").lower()
    if name.endswith("_SQL") and mart in SQL_MARTS:
        return f"INSERT INTO {mart} BY NAME SELECT * FROM ({read_sql(builtin_sql_path(mart))}\n) AS mart_query"
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# --------------------------------------------------------------------------------------------------- lead_stats

def _status_counts() -> str:
    counts = [f"count(*) FILTER (WHERE status = '{s}') AS {s}" for s in STATUSES]
    return ",\n       ".join(["count(*) AS total", *counts])


LIVE_STATS_SQL = f"SELECT {_status_counts()}\nFROM leads"


def live_stats(conn: Conn, distributor: str | None = None) -> dict[str, int]:
    """The seed's ``{"total","new","assigned","contacted","converted","rejected"}`` computed now from ``leads``."""
    if distributor is None:
        row = conn.query_one(LIVE_STATS_SQL)
    else:
        row = conn.query_one(LIVE_STATS_SQL + " WHERE distributor = ?", [distributor])
    assert row is not None
    return {k: int(row[k] or 0) for k in ("total", *STATUSES)}


def refresh_lead_stats(wh: Warehouse) -> int:
    """Rebuild ``lead_stats`` (``sql/lead_stats.sql``): one row per distributor plus ``'__all__'`` (always present,
    zeros when empty)."""
    return refresh_sql_file(wh, "lead_stats", builtin_sql_path("lead_stats"))


def refresh_conversion_funnel(wh: Warehouse) -> int:
    """Rebuild ``conversion_funnel`` (``sql/conversion_funnel.sql``): one row per distributor, form, campaign and
    weekly cohort (Monday, UTC), with the stages Meta accepted for those leads (``stages_reported_to_meta``)."""
    return refresh_sql_file(wh, "conversion_funnel", builtin_sql_path("conversion_funnel"))


def refresh_lead_daily(wh: Warehouse) -> int:
    """Rebuild ``lead_daily`` (``sql/lead_daily.sql``): per distributor and UTC day, from its first lead to today
    (zeros on quiet days), leads created / first contacted / now converted or rejected."""
    return refresh_sql_file(wh, "lead_daily", builtin_sql_path("lead_daily"))


# -------------------------------------------------------------------------------------------------- lead_scores

# The scores live in their own module (rules calibrated on the demo and benchmark data; answers read in Python).
from .scores import (  # noqa: E402, F401
    GRADE_BANDS,
    QUALIFYING_QUESTIONS,
    SCORE_RULES,
    ScoreRule,
    refresh_lead_scores,
)

# ------------------------------------------------------------------------------------------------- person_links

# Only leads whose email or phone is shared with another lead take part; everything else is a person of one.
PERSON_CANDIDATES_SQL = """
WITH c AS (
    SELECT meta_lead_id, distributor, form_id, NULLIF(lower(trim(email)), '') AS email, NULLIF(trim(phone), '') AS phone
    FROM leads
),
de AS (SELECT email FROM c WHERE email IS NOT NULL GROUP BY email HAVING count(*) > 1),
dp AS (SELECT phone FROM c WHERE phone IS NOT NULL GROUP BY phone HAVING count(*) > 1)
SELECT c.meta_lead_id, c.distributor, c.form_id, de.email, dp.phone
FROM c
LEFT JOIN de ON de.email = c.email
LEFT JOIN dp ON dp.phone = c.phone
WHERE de.email IS NOT NULL OR dp.phone IS NOT NULL"""


def _components(rows: list[dict]) -> dict[str, str]:
    """Union-find over leads joined by a shared email or phone: lead id → person id (the group's smallest lead id)."""
    parent = list(range(len(rows)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first_with: dict[tuple[str, str], int] = {}
    for i, r in enumerate(rows):
        for key in (("e", r["email"]), ("p", r["phone"])):
            if key[1] is None:
                continue
            j = first_with.setdefault(key, i)
            if j != i:
                a, b = find(i), find(j)
                if a != b:
                    parent[a] = b
    smallest: dict[int, str] = {}
    for i, r in enumerate(rows):
        root = find(i)
        if root not in smallest or r["meta_lead_id"] < smallest[root]:
            smallest[root] = r["meta_lead_id"]
    return {r["meta_lead_id"]: smallest[find(i)] for i, r in enumerate(rows)}


def refresh_person_links(wh: Warehouse) -> int:
    """Rebuild ``person_links``: leads sharing a normalised email or phone (across forms and distributors, also
    transitively) get one ``person_id`` (the smallest ``meta_lead_id`` of the group); ``match_on`` is ``email`` when
    the lead's email is shared, else ``phone``."""
    with wh.transaction() as conn:
        rows = conn.query(PERSON_CANDIDATES_SQL)
        person = _components(rows)
        conn.stage(
            "person_links_stage",
            {"person_id": "TEXT", "meta_lead_id": "TEXT", "distributor": "TEXT", "form_id": "TEXT", "match_on": "TEXT"},
            [
                (person[r["meta_lead_id"]], r["meta_lead_id"], r["distributor"], r["form_id"],
                 "email" if r["email"] is not None else "phone")
                for r in rows
            ],
        )
        conn.execute("DELETE FROM person_links")
        conn.execute(
            "INSERT INTO person_links (person_id, meta_lead_id, distributor, form_id, match_on, linked_at) "
            "SELECT person_id, meta_lead_id, distributor, form_id, match_on, CURRENT_TIMESTAMP FROM person_links_stage"
        )
        return len(rows)


# ---------------------------------------------------------------------------------------------------- all marts

REFRESHERS = {
    "lead_stats": refresh_lead_stats,
    "conversion_funnel": refresh_conversion_funnel,
    "lead_daily": refresh_lead_daily,
    "lead_scores": refresh_lead_scores,
    "person_links": refresh_person_links,
}


def refresh_all(wh: Warehouse) -> dict[str, int]:
    """Every mart, each in its own transaction; returns rows written per table."""
    return {name: fn(wh) for name, fn in REFRESHERS.items()}
