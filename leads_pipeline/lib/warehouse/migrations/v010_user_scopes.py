"""Migration 10: the distributors each staff user may see."""

from __future__ import annotations

from ..dialect import Dialect

NAME = "user scopes: the distributors of each staff user"


def statements(d: Dialect) -> list[str]:
    """``user_distributors`` links a staff user to the distributors whose leads they may see and work.

    Superadmins see every distributor and have no rows here. Before this migration nothing linked a user to a
    distributor, so every staff user saw every lead. Granting every existing staff user every distributor would keep
    that hole open silently, so the backfill is done only where it is unambiguous: on an installation with exactly
    one distributor, its staff keep seeing it. Elsewhere staff see nothing until a superadmin names their
    distributors (``leads-pipeline users distributors USER --add KEY``); ``users list`` shows who has none.
    """
    return [
        "CREATE TABLE IF NOT EXISTS user_distributors (user_id TEXT NOT NULL, distributor TEXT NOT NULL, "
        "granted_at TIMESTAMPTZ NOT NULL DEFAULT CURRENT_TIMESTAMP, granted_by TEXT, "
        "PRIMARY KEY (user_id, distributor))",
        "CREATE INDEX IF NOT EXISTS user_distributors_distributor ON user_distributors (distributor)",
        "INSERT INTO user_distributors (user_id, distributor, granted_by) "
        "SELECT u.id, d.key, 'migration' FROM users u CROSS JOIN distributors d "
        "WHERE u.role = 'staff' AND (SELECT count(*) FROM distributors) = 1",
    ]
