"""The warehouse: one schema (``migrations``), two backends (DuckDB default, PostgreSQL), set-based writes."""

from .connection import Conn, Dialect, Warehouse, WarehouseError, connect
from .retry import is_write_conflict, retry_conflicts

__all__ = ["Conn", "Dialect", "Warehouse", "WarehouseError", "connect", "is_write_conflict", "retry_conflicts"]
