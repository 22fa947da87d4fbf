"""``?`` placeholders to PostgreSQL's own ``$1, $2, …``, read the way the server reads SQL.

The project writes one SQL for both backends with ``?`` placeholders (DuckDB's native style). PostgreSQL receives
``$n`` placeholders through psycopg's raw cursor, which binds parameters on the server and never parses ``%`` — so a
``LIKE '100%'`` or a ``'?'`` inside a literal stays as written. What is not a placeholder is skipped as the server
would: string literals (``'…'`` with ``''``, ``E'…'`` with backslash escapes, ``$tag$…$tag$``), quoted identifiers,
``--`` and (nested) ``/* */`` comments. The earlier textual ``?``→``%s`` rewrite broke on exactly those.
"""

from __future__ import annotations

import re

__all__ = ["numbered"]

_DOLLAR_TAG = re.compile(r"\$([A-Za-z_][A-Za-z_0-9]*)?\$")


def numbered(sql: str) -> tuple[str, int]:
    """``sql`` with each placeholder ``?`` outside literals, identifiers and comments replaced by ``$1, $2, …``;
    and how many there were."""
    out: list[str] = []
    i, n, count, start = 0, len(sql), 0, 0
    while i < n:
        c = sql[i]
        if c == "?":
            count += 1
            out.append(sql[start:i])
            out.append(f"${count}")
            i += 1
            start = i
        elif c == "'":
            backslashes = i > 0 and sql[i - 1] in "eE" and (i < 2 or not (sql[i - 2].isalnum() or sql[i - 2] == "_"))
            i = _skip_quoted(sql, i, "'", backslashes)
        elif c == '"':
            i = _skip_quoted(sql, i, '"', False)
        elif c == "-" and sql.startswith("--", i):
            j = sql.find("\n", i)
            i = n if j < 0 else j + 1
        elif c == "/" and sql.startswith("/*", i):
            i = _skip_block_comment(sql, i)
        elif c == "$" and (i == 0 or not (sql[i - 1].isalnum() or sql[i - 1] == "_")):
            m = _DOLLAR_TAG.match(sql, i)
            if m:
                j = sql.find(m.group(0), m.end())
                i = n if j < 0 else j + len(m.group(0))
            else:
                i += 1
        else:
            i += 1
    out.append(sql[start:])
    return "".join(out), count


def _skip_quoted(sql: str, i: int, quote: str, backslashes: bool) -> int:
    """The index after the literal or identifier opening at ``i`` (doubled quotes, and backslashes in E'…')."""
    i += 1
    n = len(sql)
    while i < n:
        c = sql[i]
        if backslashes and c == "\\":
            i += 2
            continue
        if c == quote:
            if i + 1 < n and sql[i + 1] == quote:
                i += 2
                continue
            return i + 1
        i += 1
    return n


def _skip_block_comment(sql: str, i: int) -> int:
    depth, i, n = 1, i + 2, len(sql)
    while i < n and depth:
        if sql.startswith("/*", i):
            depth, i = depth + 1, i + 2
        elif sql.startswith("*/", i):
            depth, i = depth - 1, i + 2
        else:
            i += 1
    return i
