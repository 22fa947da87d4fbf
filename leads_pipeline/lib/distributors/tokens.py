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


# Every token stored encrypted, as (table, key column): the distributors' Graph tokens and the Conversions API tokens
# of their own (lib/capi). Key rotation re-encrypts them all in one transaction.
ENCRYPTED_TOKENS: tuple[tuple[str, str], ...] = (("distributors", "key"), ("capi_settings", "distributor"))


def rotate_tokens(wh: Warehouse, *, cipher: TokenCipher | None = None, actor: str = "system") -> int:
    """Re-encrypt every stored token (``ENCRYPTED_TOKENS``) with the first key of ``LEADS_SECRET_KEY``; returns how
    many. Each re-encryption is audited on its distributor.

    All or nothing: if one token cannot be decrypted with the configured keys, nothing changes.
    """
    cipher = cipher or TokenCipher()
    rotated = 0
    with wh.transaction() as conn:
        for table, key in ENCRYPTED_TOKENS:
            rows = conn.query(f"SELECT {key} AS key, token_encrypted FROM {table} WHERE token_encrypted IS NOT NULL "
                              f"ORDER BY {key}")
            what = "" if table == "distributors" else "Conversions API token of "
            staged = []
            for row in rows:
                try:
                    staged.append((row["key"], cipher.rotate(row["token_encrypted"])))
                except TokenDecryptError as exc:
                    raise TokenDecryptError(f"{what or 'Distributor '}{row['key']}: {exc}") from None
            if not staged:
                continue
            conn.stage("rotated_tokens", {"key": "TEXT", "token_encrypted": "TEXT"}, staged)
            touched = ", updated_at = CURRENT_TIMESTAMP" if table == "distributors" else ""
            conn.execute(f"UPDATE {table} SET token_encrypted = r.token_encrypted{touched} FROM rotated_tokens r "
                         f"WHERE {table}.{key} = r.key")
            conn.execute(
                "INSERT INTO audit_log (occurred_at, actor, action, entity_type, entity_id, before, after) "
                "SELECT CURRENT_TIMESTAMP, ?, 'distributor.token_reencrypted', 'distributor', r.key, NULL, "
                "CAST(? AS " + conn.dialect.json + ") FROM rotated_tokens r",
                [actor or "system",
                 json.dumps({"capi_token" if what else "token": "re-encrypted with the first key of LEADS_SECRET_KEY"})],
            )
            rotated += len(staged)
    return rotated
