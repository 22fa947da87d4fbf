"""The warehouse: one schema (``migrations``), two backends (DuckDB default, PostgreSQL), set-based writes."""

from .connection import Conn, Dialect, Warehouse, connect
from .errors import WarehouseBusy, WarehouseError
from .retry import is_write_conflict, retry_conflicts

__all__ = ["Conn", "Dialect", "Warehouse", "WarehouseBusy", "WarehouseError", "connect", "is_write_conflict",
           "retry_conflicts"]
