"""Ending a user's access: their console sessions and API keys, inside the caller's transaction.

Its own module because both sides need it: ``users`` ends everything when a user is deactivated, ``credentials``
ends sessions when a password changes, and neither should import the other for it.
"""

from __future__ import annotations

import datetime as dt

from leads_pipeline.lib.warehouse import Conn

from ._db import audit


def end_sessions(conn: Conn, user_id: str, *, at: dt.datetime, reason: str) -> int:
    """End every open session of ``user_id`` (new password, deactivation)."""
    return conn.execute("UPDATE web_sessions SET ended_at = ?, end_reason = ? WHERE user_id = ? AND ended_at IS NULL",
                        [at, reason, user_id])


def end_credentials(conn: Conn, user_id: str, *, at: dt.datetime, actor: str) -> None:
    """A user was deactivated: revoke their API keys (audited) and end their sessions, in the caller's transaction.

    Reactivating the user later gives back the account, never these keys.
    """
    keys = conn.query("SELECT id, prefix FROM api_keys WHERE user_id = ? AND revoked_at IS NULL ORDER BY id",
                      [user_id])
    for k in keys:
        conn.execute("UPDATE api_keys SET revoked_at = ? WHERE id = ?", [at, k["id"]])
        audit(conn, actor=actor, action="api_key.revoke", entity_type="api_key", entity_id=k["id"], before=None,
              after={"user_id": user_id, "prefix": k["prefix"], "reason": "user deactivated"}, at=at)
    end_sessions(conn, user_id, at=at, reason="deactivated")
