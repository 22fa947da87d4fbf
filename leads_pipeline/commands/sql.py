"""``leads-pipeline sql "SELECT …"``: query the warehouse beside a running pipeline, without a DuckDB CLI.

On DuckDB it reads the readers' snapshot (``<stem>.readonly.duckdb``, published after each marts run; published now
when there is none), so a query — or an interactive session left open for hours — never holds the live file that
syncs and marts runs write. ``--refresh`` publishes a newer snapshot first; ``--live`` reads the live file instead,
under the pipeline's lock for that one query (the pipeline waits meanwhile: keep it short). On PostgreSQL it reads
the live tables in a read-only transaction. Output: a table, or ``--format csv|json`` for scripts.
"""

from __future__ import annotations

import sys
from typing import Any

import click

MAX_CELL = 60


@click.command("sql")
@click.argument("query", required=False)
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True)
@click.option("--live", is_flag=True, help="DuckDB: read the live file under the pipeline's lock, for this query "
                                           "only (instead of the snapshot).")
@click.option("--refresh", is_flag=True, help="DuckDB: publish a new snapshot of the live file first.")
def sql(query: str | None, fmt: str, live: bool, refresh: bool) -> None:
    """Run QUERY and print its rows; without QUERY, an interactive prompt (statements end with `;`, `.quit` ends).

    \b
    DuckDB (the default): reads the read-only snapshot the pipeline publishes after each marts run, so it never
    blocks a sync; stderr says how old the snapshot is. PostgreSQL: the live tables, read-only.
    Examples:
      leads-pipeline sql "SELECT * FROM conversion_funnel ORDER BY cohort_week DESC LIMIT 5"
      leads-pipeline sql --format csv "SELECT * FROM lead_daily" > daily.csv
    """
    reader = Reader(live=live)
    try:
        if refresh:
            reader.refresh()
        if query is not None:
            try:
                names, rows = reader.run(query)
            except Exception as exc:  # noqa: BLE001 - a SQL error is the user's to fix: the message, no traceback
                _sql_failed(exc)
            _print(names, rows, fmt)
            reader.note(fmt)
            return
        _interactive(reader, fmt)
    finally:
        reader.close()


class Reader:
    """Where queries go: the snapshot (kept open, reopened when a newer one is published), the live DuckDB file
    (opened per query under the lock), or PostgreSQL (a pooled connection per query)."""

    def __init__(self, live: bool):
        from leads_pipeline.lib.warehouse import connect

        self.wh = connect()
        self.live = live or self.wh.backend == "postgres"
        self._con: Any = None
        self._stamp: tuple[int, float] | None = None
        if self.wh.backend == "duckdb" and (self.wh.path is None or not self.wh.path.exists()):
            from leads_pipeline.lib.warehouse import WarehouseError

            raise WarehouseError(f"There is no DuckDB warehouse at {self.wh.path}: run `make demo`, or set "
                                 "LEADS_WAREHOUSE_URL to the warehouse to query.")

    def refresh(self) -> None:
        from leads_pipeline.lib.warehouse import snapshot

        snapshot.publish(self.wh)

    def run(self, statement: str) -> tuple[list[str], list[tuple]]:
        if self.live:
            with self.wh.transaction(read_only=True) as conn:
                if self.wh.backend == "postgres":
                    cols = conn.query_columns(statement)
                    names = list(cols)
                    return names, list(zip(*cols.values())) if names else []
                return _fetch(conn.raw.execute(statement))
        return _fetch(self._snapshot().execute(statement))

    def _snapshot(self):
        from leads_pipeline import analysts

        path = analysts.snapshot_path()
        st = path.stat()
        stamp = (st.st_ino, st.st_mtime)
        if self._con is None or stamp != self._stamp:
            self.close()
            self._con, self._stamp = analysts._open_snapshot(path), stamp
        return self._con

    def note(self, fmt: str) -> None:
        """On stderr, for a person: how old the snapshot is."""
        if self.live or fmt != "table":
            return
        from leads_pipeline.lib.warehouse import snapshot

        age = snapshot.age_seconds(snapshot.path_for(self.wh))
        if age is not None:
            click.echo(f"(snapshot published {_ago(age)} ago; --refresh for a newer one, --live for the live file)",
                       err=True)

    def close(self) -> None:
        if self._con is not None:
            self._con.close()
            self._con = None


def _fetch(cur) -> tuple[list[str], list[tuple]]:
    if cur.description is None:
        return [], []
    return [d[0] for d in cur.description], cur.fetchall()


def _interactive(reader: Reader, fmt: str) -> None:
    tty = sys.stdin.isatty()
    if tty:
        try:
            import readline  # noqa: F401 - line editing and history for input()
        except ImportError:
            pass
        where = "the live file" if reader.live else "the read-only snapshot"
        click.echo(f"{reader.wh.location} ({where}). End statements with ';'. .refresh publishes a new snapshot, "
                   ".quit ends.", err=True)
    buffer: list[str] = []
    while True:
        try:
            line = input(("sql> " if not buffer else "  -> ") if tty else "")
        except EOFError:
            break
        stripped = line.strip()
        if not buffer and stripped in (".quit", ".exit", "\\q", "exit", "quit"):
            break
        if not buffer and stripped == ".refresh":
            reader.refresh()
            continue
        if not stripped and not buffer:
            continue
        buffer.append(line)
        if not stripped.endswith(";"):
            continue
        statement, buffer = "\n".join(buffer), []
        try:
            names, rows = reader.run(statement)
        except Exception as exc:  # noqa: BLE001 - show the error, keep the session
            click.echo(f"Error: {_message(exc)}", err=True)
            continue
        _print(names, rows, fmt)
        sys.stdout.flush()
    if buffer:
        names, rows = reader.run("\n".join(buffer))
        _print(names, rows, fmt)


def _print(names: list[str], rows: list[tuple], fmt: str) -> None:
    if fmt == "json":
        import json

        click.echo(json.dumps([dict(zip(names, row)) for row in rows], ensure_ascii=False, default=str, indent=1))
    elif fmt == "csv":
        import csv

        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(names)
        writer.writerows(rows)
    elif names:
        click.echo(_table(names, rows))
        click.echo(f"({len(rows)} row{'s' if len(rows) != 1 else ''})")


def _table(names: list[str], rows: list[tuple]) -> str:
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max([len(n)] + [len(r[i]) for r in cells]) for i, n in enumerate(names)]
    right = [all(isinstance(row[i], (int, float)) or row[i] is None for row in rows) and rows for i in
             range(len(names))]

    def line(values: list[str]) -> str:
        return " | ".join(v.rjust(w) if r else v.ljust(w) for v, w, r in zip(values, widths, right)).rstrip()

    return "\n".join([line(list(names)), "-+-".join("-" * w for w in widths)] + [line(r) for r in cells])


def _cell(value: Any) -> str:
    text = "NULL" if value is None else str(value)
    text = text.replace("\n", " ")
    return text if len(text) <= MAX_CELL else text[: MAX_CELL - 1] + "…"


def _ago(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _message(exc: Exception) -> str:
    return str(exc).strip() or type(exc).__name__


def _sql_failed(exc: Exception):
    from leads_pipeline.lib.warehouse import WarehouseError

    if isinstance(exc, WarehouseError):
        raise exc
    click.echo(f"Error: {_message(exc)}", err=True)
    sys.exit(1)
