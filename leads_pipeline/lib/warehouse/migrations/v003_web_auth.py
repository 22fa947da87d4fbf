"""Migration 3: web auth."""

from __future__ import annotations

from ..dialect import Dialect

NAME = "web auth"


def statements(d: Dialect) -> list[str]:
    """The HTTP service's credentials: API keys (only their SHA-256 is stored) and console passwords.

    Browser sessions are signed cookies (no table): a session names the user and a fingerprint of their password
    hash, so changing the password (or deactivating the user) ends every session at once.
    """
    return [
        # scrypt$N$r$p$<salt b64>$<hash b64>; NULL = the user cannot log in to the console (API keys still work).
        "ALTER TABLE users ADD COLUMN IF NOT EXISTS password_hash TEXT",
        """CREATE TABLE IF NOT EXISTS api_keys (
            id TEXT PRIMARY KEY,
            user_id TEXT NOT NULL,
            name TEXT NOT NULL,
            prefix TEXT NOT NULL,
            key_hash TEXT NOT NULL UNIQUE,
            created_at TIMESTAMPTZ NOT NULL DEFAULT CURRENT_TIMESTAMP,
            last_used_at TIMESTAMPTZ,
            revoked_at TIMESTAMPTZ
        )""",
        "CREATE INDEX IF NOT EXISTS api_keys_user ON api_keys (user_id)",
    ]
