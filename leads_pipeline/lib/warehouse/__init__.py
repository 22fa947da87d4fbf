"""The warehouse: one schema (``migrations``), two backends (DuckDB default, PostgreSQL), set-based writes."""

from .connection import Conn, Dialect, Warehouse, WarehouseError, connect

__all__ = ["Conn", "Dialect", "Warehouse", "WarehouseError", "connect"]
