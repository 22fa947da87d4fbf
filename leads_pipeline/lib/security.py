"""Secrets: access tokens encrypted at rest, redaction of logs and texts, Meta webhook signatures.

Tokens at rest
    :class:`TokenCipher` wraps ``cryptography``'s ``MultiFernet`` over the keys in ``LEADS_SECRET_KEY``
    (comma-separated). The first key encrypts; every key decrypts. To rotate: put a new key first
    (``LEADS_SECRET_KEY=<new>,<old>``), run ``leads-pipeline keys rotate`` (re-encrypts every stored token with the
    new key), then drop the old key.

Redaction
    the one redaction policy is ``lib.graph.redaction.redact`` (given secrets, token-shaped strings);
    :class:`RedactingFilter` does the same to log records. Every token this process decrypts is registered with
    :func:`register_secret`, so a filter installed with :func:`install_log_redaction` masks it wherever it shows up.

Webhooks
    :func:`verify_signature` checks ``X-Hub-Signature-256: sha256=<hex HMAC of the raw body>`` in constant time;
    :func:`sign` makes the header value (for tests and the simulator's webhook emitter).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading
from collections.abc import Iterable, Sequence

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

# The one redaction policy (secrets given, registered ones, token-shaped strings) lives with the Graph client, which
# meets the most secret-bearing text; logs, errors and the webhook receiver use the same function.
from leads_pipeline.lib.graph.redaction import MIN_SECRET_LENGTH as _MIN_SECRET_LENGTH
from leads_pipeline.lib.graph.redaction import redact

__all__ = [
    "SecretKeyError",
    "MissingSecretKey",
    "TokenDecryptError",
    "TokenCipher",
    "generate_key",
    "fingerprint",
    "register_secret",
    "RedactingFilter",
    "install_log_redaction",
    "verify_signature",
    "sign",
]

SIGNATURE_PREFIX = "sha256="

GENERATE_HINT = "generate one with `leads-pipeline keys generate`"


class SecretKeyError(RuntimeError):
    """The token encryption keys are missing, malformed, or do not fit a stored token. The message says what to do."""


class MissingSecretKey(SecretKeyError):
    def __init__(self) -> None:
        super().__init__(f"No encryption key for access tokens: set LEADS_SECRET_KEY; {GENERATE_HINT}.")


class TokenDecryptError(SecretKeyError):
    """A stored token that none of the configured keys can decrypt."""


# ----------------------------------------------------------------------------------------------------------------------
# Tokens at rest
# ----------------------------------------------------------------------------------------------------------------------


def generate_key() -> str:
    """A new Fernet key (32 random bytes, url-safe base64) for ``LEADS_SECRET_KEY``."""
    return Fernet.generate_key().decode()


def _split_keys(keys: str | Sequence[str] | None) -> list[str]:
    if keys is None:
        return []
    if isinstance(keys, str):
        keys = keys.split(",")
    return [k.strip() for k in keys if k and k.strip()]


class TokenCipher:
    """Encrypts and decrypts access tokens with the keys of ``LEADS_SECRET_KEY`` (first encrypts, all decrypt).

    ``TokenCipher()`` reads the settings; ``TokenCipher("k1,k2")`` or ``TokenCipher(["k1", "k2"])`` takes keys.
    """

    def __init__(self, keys: str | Sequence[str] | None = None):
        if keys is None:
            from leads_pipeline.settings import get_settings

            secret = get_settings().secret_key
            keys = secret.get_secret_value() if secret is not None else None
        key_list = _split_keys(keys)
        if not key_list:
            raise MissingSecretKey()
        fernets = []
        for position, key in enumerate(key_list, start=1):
            try:
                fernets.append(Fernet(key.encode()))
            except (ValueError, TypeError):
                # Never echo the key itself.
                raise SecretKeyError(
                    f"LEADS_SECRET_KEY: key #{position} of {len(key_list)} is not a Fernet key (32 url-safe "
                    f"base64-encoded bytes); {GENERATE_HINT}."
                ) from None
        self._fernet = MultiFernet(fernets)
        self.key_count = len(fernets)

    def __repr__(self) -> str:
        return f"TokenCipher(<{self.key_count} key(s)>)"

    def encrypt(self, token: str) -> str:
        """The token encrypted with the first key (a Fernet token, ASCII)."""
        return self._fernet.encrypt(token.encode()).decode()

    def decrypt(self, encrypted: str) -> str:
        """The token back; a :class:`TokenDecryptError` that says what to do when no configured key fits."""
        try:
            plain = self._fernet.decrypt(encrypted.encode()).decode()
        except (InvalidToken, ValueError, TypeError, AttributeError):
            raise TokenDecryptError(
                "A stored access token cannot be decrypted with the keys in LEADS_SECRET_KEY (was the key that "
                "encrypted it removed or changed?). Put that key back in LEADS_SECRET_KEY, after the current one "
                "(comma-separated), and run `leads-pipeline keys rotate`; or store the token again with "
                "`leads-pipeline distributors update KEY --token-stdin`."
            ) from None
        register_secret(plain)
        return plain

    def rotate(self, encrypted: str) -> str:
        """The same token re-encrypted with the first key (decrypting with any configured key)."""
        try:
            return self._fernet.rotate(encrypted.encode()).decode()
        except (InvalidToken, ValueError, TypeError, AttributeError):
            raise TokenDecryptError(
                "A stored access token cannot be decrypted with any key in LEADS_SECRET_KEY, so it cannot be "
                "re-encrypted: add the key that encrypted it (after the new one) and run `leads-pipeline keys "
                "rotate` again, or store the token again with `leads-pipeline distributors update KEY "
                "--token-stdin`."
            ) from None


def fingerprint(token: str) -> str:
    """First 12 hex digits of the token's SHA-256: tells tokens apart without revealing them."""
    return hashlib.sha256(token.encode()).hexdigest()[:12]


# ----------------------------------------------------------------------------------------------------------------------
# Redaction
# ----------------------------------------------------------------------------------------------------------------------

_registered: set[str] = set()
_registered_lock = threading.Lock()


def register_secret(secret: str | None) -> None:
    """Remember a secret (e.g. a decrypted token) so that every :class:`RedactingFilter` masks it from now on."""
    if secret and len(secret) >= _MIN_SECRET_LENGTH:
        with _registered_lock:
            _registered.add(secret)


def registered_secrets() -> frozenset[str]:
    with _registered_lock:
        return frozenset(_registered)


class RedactingFilter(logging.Filter):
    """A logging filter that masks secrets in records: its own, every registered one, and Meta-shaped tokens.

    Attach it to a *handler* (a filter on a logger does not see records propagated from child loggers):
    ``handler.addFilter(RedactingFilter())`` or :func:`install_log_redaction`. It never drops a record.
    """

    def __init__(self, secrets: Iterable[str] = (), name: str = ""):
        super().__init__(name)
        self._secrets = {s for s in secrets if s and len(s) >= _MIN_SECRET_LENGTH}

    def add_secret(self, secret: str) -> None:
        if secret and len(secret) >= _MIN_SECRET_LENGTH:
            self._secrets.add(secret)

    def filter(self, record: logging.LogRecord) -> bool:
        secrets = self._secrets | registered_secrets()
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a broken format string: leave the record to the handler's own error path
            return True
        clean = redact(message, secrets)
        if clean != message:
            record.msg = clean
            record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text, secrets)
        if record.stack_info:
            record.stack_info = redact(record.stack_info, secrets)
        return True


def install_log_redaction(logger: logging.Logger | None = None) -> RedactingFilter:
    """Attach one :class:`RedactingFilter` to every handler of ``logger`` (default: the root logger)."""
    target = logger or logging.getLogger()
    for handler in target.handlers:
        for existing in handler.filters:
            if isinstance(existing, RedactingFilter):
                break
        else:
            handler.addFilter(_shared_filter)
    return _shared_filter


_shared_filter = RedactingFilter()


# ----------------------------------------------------------------------------------------------------------------------
# Webhook signatures
# ----------------------------------------------------------------------------------------------------------------------


def sign(raw_body: bytes, app_secret: str) -> str:
    """The ``X-Hub-Signature-256`` value Meta sends for ``raw_body``: ``sha256=<hex HMAC-SHA256>``."""
    return SIGNATURE_PREFIX + hmac.new(app_secret.encode(), raw_body, hashlib.sha256).hexdigest()


def verify_signature(raw_body: bytes, header_value: str | None, app_secret: str) -> bool:
    """Whether ``header_value`` is the right ``sha256=<hex>`` signature of the exact bytes received.

    False (never an exception) for a missing or malformed header or an empty secret; compared in constant time.
    """
    if not header_value or not app_secret or not isinstance(raw_body, (bytes, bytearray, memoryview)):
        return False
    value = header_value.strip()
    if value[:len(SIGNATURE_PREFIX)].lower() != SIGNATURE_PREFIX:
        return False
    try:
        given = value[len(SIGNATURE_PREFIX):].strip().lower().encode("ascii")
    except UnicodeEncodeError:
        return False
    expected = hmac.new(app_secret.encode(), bytes(raw_body), hashlib.sha256).hexdigest().encode()
    return hmac.compare_digest(given, expected)
