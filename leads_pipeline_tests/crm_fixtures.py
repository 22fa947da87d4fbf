"""Test helpers for the CRM tests: leads and users inserted straight with SQL (ingest is tested elsewhere)."""

from __future__ import annotations

import datetime as dt
import itertools
import json
from typing import Any

from leads_pipeline.lib.warehouse import Warehouse

T0 = dt.datetime(2026, 6, 1, 9, 0, tzinfo=dt.timezone.utc)
_seq = itertools.count(1)

_COLUMNS = ("meta_lead_id", "distributor", "page_id", "form_id", "created_time", "full_name", "email", "phone",
            "city", "custom_fields", "status", "assigned_to", "first_seen_at", "updated_at", "status_changed_at",
            "first_contacted_at")


def lead_row(i: int | None = None, **over: Any) -> dict[str, Any]:
    i = next(_seq) if i is None else i
    row = {
        "meta_lead_id": f"{100000000000000 + i}",
        "distributor": "msh",
        "page_id": "1001",
        "form_id": "f1",
        "created_time": T0 + dt.timedelta(hours=i),
        "full_name": f"Lead Person {i}",
        "email": f"person{i}@example.com",
        "phone": f"+9053212{i:05d}",
        "city": "Istanbul",
        "custom_fields": json.dumps({"treatment": ["hair"]}),
        "status": "new",
        "assigned_to": None,
        "first_seen_at": T0,
        "updated_at": T0,
        "status_changed_at": None,
        "first_contacted_at": None,
    }
    row.update(over)
    return row


def insert_leads(wh: Warehouse, n: int = 1, **over: Any) -> list[str]:
    """Insert ``n`` leads (each with ``over`` applied) and return their Meta lead ids."""
    rows = [lead_row(**over) for _ in range(n)]
    insert_rows(wh, rows)
    return [r["meta_lead_id"] for r in rows]


def insert_rows(wh: Warehouse, rows: list[dict[str, Any]]) -> None:
    cols = ", ".join(_COLUMNS)
    marks = ", ".join("?" for _ in _COLUMNS)
    with wh.transaction() as conn:
        for r in rows:
            conn.execute(f"INSERT INTO leads ({cols}) VALUES ({marks})", [r[c] for c in _COLUMNS])


def add_user_sql(wh: Warehouse, user_id: str, email: str, role: str = "staff", active: bool = True,
                 distributors: tuple[str, ...] = ("msh",)) -> str:
    """A user inserted with SQL; a staff user works ``distributors`` (default: the one of ``lead_row``)."""
    with wh.transaction() as conn:
        conn.execute("INSERT INTO users (id, name, email, role, active) VALUES (?, ?, ?, ?, ?)",
                     [user_id, user_id.title(), email, role, active])
        if role == "staff":
            for key in distributors:
                conn.execute("INSERT INTO user_distributors (user_id, distributor) VALUES (?, ?)", [user_id, key])
    return user_id


def add_distributor_sql(wh: Warehouse, key: str = "msh", name: str | None = None) -> str:
    """A bare distributor row (no token, no Pages): enough for users to be given it."""
    with wh.transaction() as conn:
        conn.execute("INSERT INTO distributors (key, name) VALUES (?, ?)", [key, name or key.upper()])
    return key


def lead_state(wh: Warehouse, lead_id: str) -> dict[str, Any] | None:
    with wh.transaction() as conn:
        return conn.query_one("SELECT status, assigned_to, status_changed_at, first_contacted_at, updated_at "
                              "FROM leads WHERE meta_lead_id = ?", [lead_id])


def snapshot(wh: Warehouse) -> dict[str, list]:
    """Every row of the tables an operation may write, to prove a refused operation changed nothing."""
    out = {}
    with wh.transaction() as conn:
        for table, order in (("leads", "meta_lead_id"), ("lead_interactions", "id"), ("audit_log", "id"),
                             ("lead_tombstones", "meta_lead_id"), ("users", "id")):
            out[table] = [tuple(r.values()) for r in conn.query(f"SELECT * FROM {table} ORDER BY {order}")]
    return out


def count(wh: Warehouse, sql: str, params: list | None = None) -> int:
    with wh.transaction() as conn:
        return int(conn.scalar(sql, params or []))
