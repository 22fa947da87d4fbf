"""A distributor's access token: decrypted only for the Graph client, re-encrypted when the secret key rotates.

Tokens are stored only encrypted (``distributors.token_encrypted``, :class:`~leads_pipeline.lib.security.TokenCipher`
with ``LEADS_SECRET_KEY``); nothing here prints, logs or returns one except :func:`access_token` to its caller.
"""

from __future__ import annotations

import json

from leads_pipeline.lib.security import TokenCipher, TokenDecryptError
from leads_pipeline.lib.warehouse import Warehouse

from .errors import DistributorError, DistributorNotFound

__all__ = ["access_token", "rotate_tokens"]


def access_token(wh: Warehouse, key: str, cipher: TokenCipher | None = None) -> str:
    """The distributor's access token, decrypted (for the Graph client only: never print or log it)."""
    with wh.transaction(read_only=True) as conn:
        row = conn.query_one("SELECT token_encrypted FROM distributors WHERE key = ?", [key])
    if row is None:
        raise DistributorNotFound(
            f"No distributor with key {key!r}: see `leads-pipeline distributors list` for the keys."
        )
    if not row["token_encrypted"]:
        raise DistributorError(
            f"Distributor {key!r} has no access token: set one with "
            f"`leads-pipeline distributors update {key} --token-stdin`."
        )
    return (cipher or TokenCipher()).decrypt(row["token_encrypted"])


def rotate_tokens(wh: Warehouse, *, cipher: TokenCipher | None = None, actor: str = "system") -> int:
    """Re-encrypt every stored token (the distributors' and their Conversions API tokens) with the first key of
    ``LEADS_SECRET_KEY``; returns how many.

    All or nothing: if one token cannot be decrypted with the configured keys, nothing changes.
    """
    cipher = cipher or TokenCipher()
    with wh.transaction() as conn:
        rows = conn.query(
            "SELECT key, token_encrypted, token_fingerprint FROM distributors WHERE token_encrypted IS NOT NULL "
            "ORDER BY key"
        )
        staged = []
        for row in rows:
            try:
                staged.append((row["key"], cipher.rotate(row["token_encrypted"])))
            except TokenDecryptError as exc:
                raise TokenDecryptError(f"Distributor {row['key']}: {exc}") from None
        # Conversions API tokens of their own (lib/capi) rotate in the same transaction: all or nothing.
        from leads_pipeline.lib.capi.config import rotate_tokens as rotate_capi_tokens

        capi_rotated = rotate_capi_tokens(conn, cipher)
        if not staged:
            return capi_rotated
        conn.stage("rotated_tokens", {"key": "TEXT", "token_encrypted": "TEXT"}, staged)
        conn.execute(
            "UPDATE distributors SET token_encrypted = r.token_encrypted, updated_at = CURRENT_TIMESTAMP "
            "FROM rotated_tokens r WHERE distributors.key = r.key"
        )
        conn.execute(
            "INSERT INTO audit_log (occurred_at, actor, action, entity_type, entity_id, before, after) "
            "SELECT CURRENT_TIMESTAMP, ?, 'distributor.token_reencrypted', 'distributor', d.key, NULL, "
            "CAST(? AS " + conn.dialect.json + ") FROM rotated_tokens d",
            [actor or "system", json.dumps({"token": "re-encrypted with the first key of LEADS_SECRET_KEY"})],
        )
    return len(staged) + capi_rotated
