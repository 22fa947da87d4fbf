"""Tokens at rest, redaction, webhook signatures, and the `keys` command."""

from __future__ import annotations

import io
import json
import logging

import pytest
from click.testing import CliRunner
from cryptography.fernet import Fernet

from leads_pipeline.lib import security
from leads_pipeline.lib.graph.redaction import REDACTED, redact
from leads_pipeline.lib.security import (
    MissingSecretKey,
    RedactingFilter,
    SecretKeyError,
    TokenCipher,
    TokenDecryptError,
    fingerprint,
    generate_key,
    register_secret,
    sign,
    verify_signature,
)

TOKEN = "EAAGm0PX4ZCpsBAKZCZAZBmS7wUl9sPq4ZBdYzZC7Q8ZDZD"


def test_encrypt_decrypt_round_trip_without_the_token_in_the_ciphertext():
    cipher = TokenCipher(generate_key())
    encrypted = cipher.encrypt(TOKEN)
    assert TOKEN not in encrypted
    assert cipher.encrypt(TOKEN) != encrypted  # fresh IV each time
    assert cipher.decrypt(encrypted) == TOKEN


def test_cipher_reads_keys_from_settings(monkeypatch):
    from leads_pipeline.settings import get_settings

    key = generate_key()
    monkeypatch.setenv("LEADS_SECRET_KEY", key)
    get_settings.cache_clear()
    assert TokenCipher().decrypt(TokenCipher(key).encrypt(TOKEN)) == TOKEN


def test_no_key_configured_says_what_to_do():
    with pytest.raises(MissingSecretKey) as info:
        TokenCipher()
    message = str(info.value)
    assert "set LEADS_SECRET_KEY" in message
    assert "leads-pipeline keys generate" in message
    with pytest.raises(MissingSecretKey):
        TokenCipher(" , ")


def test_malformed_key_is_named_by_position_not_echoed():
    good = generate_key()
    with pytest.raises(SecretKeyError) as info:
        TokenCipher(f"{good},not-a-real-key-123")
    assert "#2" in str(info.value)
    assert "not-a-real-key-123" not in str(info.value)
    assert good not in str(info.value)


def test_key_rotation():
    old, new = generate_key(), generate_key()
    stored = TokenCipher(old).encrypt(TOKEN)
    both = TokenCipher(f"{new},{old}")
    assert both.decrypt(stored) == TOKEN  # the old key still decrypts
    rotated = both.rotate(stored)
    assert rotated != stored
    assert TokenCipher(new).decrypt(rotated) == TOKEN  # now under the new key alone
    with pytest.raises(TokenDecryptError) as info:
        TokenCipher(new).decrypt(stored)  # the old ciphertext with the old key gone
    message = str(info.value)
    assert "LEADS_SECRET_KEY" in message and "keys rotate" in message
    assert TOKEN not in message
    with pytest.raises(TokenDecryptError):
        TokenCipher(old).decrypt(rotated)


@pytest.mark.parametrize("garbage", ["", "not a fernet token", "gAAAAABgarbage"])
def test_decrypting_garbage_is_a_clear_error(garbage):
    with pytest.raises(TokenDecryptError):
        TokenCipher(generate_key()).decrypt(garbage)


def test_generated_key_is_a_fernet_key():
    key = generate_key()
    assert Fernet(key.encode())
    assert key != generate_key()


def test_fingerprint_identifies_without_revealing():
    fp = fingerprint(TOKEN)
    assert len(fp) == 12 and all(c in "0123456789abcdef" for c in fp)
    assert fp == fingerprint(TOKEN)
    assert fp != fingerprint(TOKEN + "x")
    assert fp not in TOKEN and TOKEN not in fp


def test_redact_masks_given_secrets_and_meta_tokens():
    text = f"calling with {TOKEN} and app secret s3cr3t-app and EAAshort"
    clean = redact(text, ["s3cr3t-app"])
    assert TOKEN not in clean and "s3cr3t-app" not in clean
    assert clean.count(REDACTED) == 2
    assert "EAAshort" in clean  # too short to be a token
    assert redact("nothing secret here", ["s3cr3t-app"]) == "nothing secret here"
    other = "EAAB" + "z" * 40
    assert other not in redact(f"token={other}")


def _logger_with_filter(name, flt):
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    handler.addFilter(flt)
    logger = logging.getLogger(name)
    logger.handlers = [handler]
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    return logger, stream


def test_redacting_filter_masks_messages_args_and_tracebacks():
    logger, stream = _logger_with_filter("test.redaction.a", RedactingFilter(["hunter2-secret"]))
    logger.info("token %s for page %s", TOKEN, "123")
    logger.warning("password is hunter2-secret")
    try:
        raise RuntimeError(f"Graph said: invalid token {TOKEN}")
    except RuntimeError:
        logger.exception("request failed")
    out = stream.getvalue()
    assert TOKEN not in out and "hunter2-secret" not in out
    assert "page 123" in out and "request failed" in out and "RuntimeError" in out


def test_registered_secrets_are_masked_everywhere():
    logger, stream = _logger_with_filter("test.redaction.b", RedactingFilter())
    secret = "page-token-opaque-9f8e7d6c"  # not shaped like EAA…: only registration can catch it
    register_secret(secret)
    logger.error("got %s back", secret)
    assert secret not in stream.getvalue()


def test_decrypted_tokens_are_registered_for_redaction():
    cipher = TokenCipher(generate_key())
    opaque = "system-user-token-1a2b3c4d5e"
    cipher.decrypt(cipher.encrypt(opaque))
    logger, stream = _logger_with_filter("test.redaction.c", RedactingFilter())
    logger.warning("using %s", opaque)
    assert opaque not in stream.getvalue()


def test_install_log_redaction_on_root_handlers():
    root = logging.getLogger()
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    root.addHandler(handler)
    try:
        security.install_log_redaction()
        security.install_log_redaction()  # idempotent
        assert sum(isinstance(f, RedactingFilter) for f in handler.filters) == 1
        logging.getLogger("some.child").warning("leaked %s", TOKEN)
        assert TOKEN not in stream.getvalue() and REDACTED in stream.getvalue()
    finally:
        root.removeHandler(handler)


BODY = b'{"object":"page","entry":[{"id":"123","changes":[{"field":"leadgen"}]}]}'


def test_signature_round_trip():
    header = sign(BODY, "app-secret")
    assert header.startswith("sha256=") and len(header) == len("sha256=") + 64
    assert verify_signature(BODY, header, "app-secret")
    assert verify_signature(BODY, header.upper().replace("SHA256=", "sha256="), "app-secret")
    assert verify_signature(BODY, f"  {header} ", "app-secret")


@pytest.mark.parametrize(
    "body, header, secret",
    [
        (BODY, sign(BODY, "other-secret"), "app-secret"),
        (BODY + b" ", sign(BODY, "app-secret"), "app-secret"),
        (BODY, None, "app-secret"),
        (BODY, "", "app-secret"),
        (BODY, sign(BODY, "app-secret")[len("sha256="):], "app-secret"),
        (BODY, "sha1=" + sign(BODY, "app-secret")[len("sha256="):], "app-secret"),
        (BODY, "sha256=zz", "app-secret"),
        (BODY, "sha256=ünïcode", "app-secret"),
        (BODY, sign(BODY, ""), ""),
    ],
)
def test_signature_rejections(body, header, secret):
    assert verify_signature(body, header, secret) is False


# ----------------------------------------------------------------------------------------------------------------------
# `leads-pipeline keys`
# ----------------------------------------------------------------------------------------------------------------------


def test_keys_generate_prints_a_usable_key():
    from leads_pipeline.commands.keys import keys

    result = CliRunner().invoke(keys, ["generate"])
    assert result.exit_code == 0
    key = result.stdout.strip().splitlines()[0]
    assert Fernet(key.encode())
    assert "LEADS_SECRET_KEY" in result.output and "keys rotate" in result.output


def test_keys_rotate_reencrypts_every_token(warehouse, monkeypatch):
    from leads_pipeline.commands.keys import keys
    from leads_pipeline.lib.distributors import registry as distributors
    from leads_pipeline.settings import get_settings

    old, new = generate_key(), generate_key()
    monkeypatch.setenv("LEADS_WAREHOUSE_URL", warehouse.url)
    monkeypatch.setenv("LEADS_SECRET_KEY", old)
    get_settings.cache_clear()
    distributors.add(warehouse, "MSH Med Tour", TOKEN)
    distributors.add(warehouse, "Anatolia Health", TOKEN + "2")

    monkeypatch.setenv("LEADS_SECRET_KEY", f"{new},{old}")
    get_settings.cache_clear()
    result = CliRunner().invoke(keys, ["rotate"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["rotated"] == 2
    assert TOKEN not in result.output

    monkeypatch.setenv("LEADS_SECRET_KEY", new)  # the old key is gone: tokens still readable
    get_settings.cache_clear()
    assert distributors.access_token(warehouse, "msh-med-tour") == TOKEN
    assert distributors.access_token(warehouse, "anatolia-health") == TOKEN + "2"

    monkeypatch.setenv("LEADS_SECRET_KEY", old)  # only the old key: a clear failure
    get_settings.cache_clear()
    with pytest.raises(TokenDecryptError, match="LEADS_SECRET_KEY"):
        distributors.access_token(warehouse, "msh-med-tour")
    result = CliRunner().invoke(keys, ["rotate"])
    assert result.exit_code == 1
    assert "cannot be decrypted" in result.output and TOKEN not in result.output


def test_keys_rotate_without_key_fails_with_instructions(warehouse, monkeypatch):
    from leads_pipeline.commands.keys import keys

    monkeypatch.setenv("LEADS_WAREHOUSE_URL", warehouse.url)
    result = CliRunner().invoke(keys, ["rotate"])
    assert result.exit_code == 1
    assert "set LEADS_SECRET_KEY" in result.output
