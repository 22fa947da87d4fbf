"""Migration 5: DuckDB: raw_leads.payload compressed with ZSTD."""

from __future__ import annotations

from ..dialect import Dialect

NAME = "DuckDB: raw_leads.payload compressed with ZSTD"


def statements(d: Dialect) -> list[str]:
    """DuckDB: ``raw_leads.payload`` — by far the largest column — compressed with ZSTD.

    DuckDB otherwise analyses every compression method for it at each checkpoint; ZSTD halves the file and makes a
    bulk load's commits about a third cheaper. A column's compression is set when the table is created, so the
    table is rebuilt (same columns, key, sequence and rows). PostgreSQL compresses large values itself (TOAST).
    """
    if d.name != "duckdb":
        return []
    cols = "id, distributor, raw_key, sync_id, page_id, form_id, meta_lead_id, payload, fetched_at, processed_at"
    return [
        """CREATE TABLE raw_leads_v4 (
            id BIGINT NOT NULL DEFAULT nextval('raw_leads_id_seq'),
            distributor TEXT NOT NULL,
            raw_key TEXT NOT NULL,
            sync_id TEXT NOT NULL,
            page_id TEXT,
            form_id TEXT,
            meta_lead_id TEXT,
            payload JSON USING COMPRESSION zstd,
            fetched_at TIMESTAMPTZ NOT NULL,
            processed_at TIMESTAMPTZ,
            PRIMARY KEY (distributor, raw_key)
        )""",
        f"INSERT INTO raw_leads_v4 ({cols}) SELECT {cols} FROM raw_leads ORDER BY id",
        "DROP TABLE raw_leads",
        "ALTER TABLE raw_leads_v4 RENAME TO raw_leads",
    ]
