"""Migration 11: server-side console sessions and the login limiter's counters."""

from __future__ import annotations

from ..dialect import Dialect

NAME = "console sessions and login limits"


def statements(d: Dialect) -> list[str]:
    """``web_sessions`` and ``login_attempts`` (written by ``lib/crm/credentials.py``); API keys of deactivated users
    revoked.

    Console sessions used to be signed cookies only: a cookie copied before logout kept working, and every page
    re-signed it with a fresh time, so a stolen cookie never expired. A session is now a row: the browser holds a
    random token, the warehouse its SHA-256 (``id``: reading this table does not let anyone log in), the user, and an
    absolute ``expires_at`` set at login and never moved. Logout, a new password and deactivation set ``ended_at``.

    The login limiter counted failures in the memory of each process, checked and counted in two steps (a burst of
    concurrent guesses slipped between them). ``login_attempts`` holds one counter per limited key — an (account,
    client address) pair, or a client address — in a fixed window; the key is a SHA-256, so neither the typed email
    (often a password typed in the wrong field) nor the address is stored.

    Until now, reactivating a user revived the API keys they had before deactivation; deactivation now revokes them.
    The keys of users who are deactivated today are revoked here, with an ``api_key.revoke`` audit row each.
    """
    return [
        """CREATE TABLE IF NOT EXISTS web_sessions (
            id TEXT PRIMARY KEY,
            user_id TEXT NOT NULL,
            created_at TIMESTAMPTZ NOT NULL,
            expires_at TIMESTAMPTZ NOT NULL,
            ended_at TIMESTAMPTZ,
            end_reason TEXT
        )""",
        "CREATE INDEX IF NOT EXISTS web_sessions_user ON web_sessions (user_id)",
        """CREATE TABLE IF NOT EXISTS login_attempts (
            key TEXT PRIMARY KEY,
            window_start TIMESTAMPTZ NOT NULL,
            attempts INTEGER NOT NULL
        )""",
        "INSERT INTO audit_log (occurred_at, actor, action, entity_type, entity_id, before, after) "
        "SELECT CURRENT_TIMESTAMP, 'migration', 'api_key.revoke', 'api_key', k.id, NULL, "
        f"CAST('{{\"reason\": \"user deactivated\"}}' AS {d.json}) FROM api_keys k JOIN users u ON u.id = k.user_id "
        "WHERE k.revoked_at IS NULL AND NOT u.active ORDER BY k.id",
        "UPDATE api_keys SET revoked_at = CURRENT_TIMESTAMP WHERE revoked_at IS NULL "
        "AND user_id IN (SELECT id FROM users WHERE NOT active)",
    ]
