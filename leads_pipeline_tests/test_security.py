"""Tokens at rest, redaction, webhook signatures, and the `keys` command."""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import io
import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography.fernet import Fernet

from leads_pipeline.lib import security
from leads_pipeline.lib.crm import credentials
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
REPO_ROOT = Path(__file__).resolve().parent.parent


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


def test_keys_generate_quiet_prints_only_the_key():
    from leads_pipeline.commands.keys import keys

    result = CliRunner().invoke(keys, ["generate", "--quiet"])
    assert result.exit_code == 0, result.output
    assert result.stderr == "" and Fernet(result.stdout.strip().encode())
    assert result.stdout.count("\n") == 1


def test_readme_secret_key_line_sets_a_real_key(tmp_path):
    """Finding: the README's `export LEADS_SECRET_KEY=$(leads-pipeline keys generate --quiet)` set an empty key (no
    --quiet). The line is taken from the README and run by bash as written."""
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    lines = re.findall(r"export LEADS_SECRET_KEY=\$\((leads-pipeline [^)]*)\)", readme)
    assert lines, "the README no longer shows how to set LEADS_SECRET_KEY"
    for command in lines:
        script = (f'leads-pipeline() {{ "{sys.executable}" -c "from leads_pipeline.cli import main; main()" "$@"; }}\n'
                  f"export LEADS_SECRET_KEY=$({command})\n"
                  'printf %s "$LEADS_SECRET_KEY"')
        done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, cwd=tmp_path, timeout=120,
                              env={**os.environ, "LEADS_ENV_FILE": ""})
        assert done.returncode == 0, done.stderr
        assert TokenCipher(done.stdout).decrypt(TokenCipher(done.stdout).encrypt(TOKEN)) == TOKEN


# ----------------------------------------------------------------------------------------------------------------------
# The HTTP service: logins, sessions, headers, the access log (issue 11's findings, each failing on the code before)
# ----------------------------------------------------------------------------------------------------------------------

ADMIN = "admin@example.com"
ADMIN_PASSWORD = "admin-password-123"


def _service(url: str):
    """A migrated warehouse with a superadmin who has a console password, and settings for the service."""
    from leads_pipeline.lib import crm
    from leads_pipeline.lib.warehouse import Warehouse
    from leads_pipeline.settings import Settings

    wh = Warehouse(url)
    wh.migrate()
    crm.add_user(wh, "Admin Person", ADMIN, "superadmin")
    credentials.set_password(wh, ADMIN, ADMIN_PASSWORD)

    def settings(**extra):
        return Settings(warehouse_url=wh.url, secret_key=generate_key(), **extra)

    return wh, settings


@pytest.fixture
def service(warehouse_url):
    """On each backend."""
    return _service(warehouse_url)


@pytest.fixture
def service_duckdb(duckdb_url):
    """DuckDB only, for the slow tests of rules that do not depend on the backend (the limiter's atomicity on both
    backends is in test_web_auth.py)."""
    return _service(duckdb_url)


def _client(app, **kwargs):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from starlette.testclient import TestClient
    return TestClient(app, follow_redirects=False, **kwargs)


def _csrf(page: str) -> str:
    from leads_pipeline_tests.test_web_support import csrf_from

    return csrf_from(page)


def _attempt(c, password: str, email: str = ADMIN) -> tuple[int, float]:
    token = _csrf(c.get("/login").text)
    started = time.monotonic()
    r = c.post("/login", data={"email": email, "password": password, "csrf_token": token})
    return r.status_code, time.monotonic() - started


def test_strangers_cannot_lock_a_user_out(service_duckdb):
    """Finding: 10 bad attempts for an email locked it for everyone, and behind the documented proxy every client
    had the proxy's address. Now: per (account, client) and per client, the client told by trusted proxies only."""
    from leads_pipeline.web import auth
    from leads_pipeline.web.app import create_app

    wh, settings = service_duckdb
    app = create_app(settings(trusted_proxies="127.0.0.1"), wh)
    stranger = _client(app, client=("127.0.0.1", 40001), headers={"X-Forwarded-For": "203.0.113.66"})
    owner = _client(app, client=("127.0.0.1", 40002), headers={"X-Forwarded-For": "198.51.100.20"})
    assert [_attempt(stranger, f"guess {i}")[0] for i in range(10)] == [401] * 10
    assert _attempt(owner, ADMIN_PASSWORD)[0] == 303  # the owner, from their own address, is not locked out
    status, took = _attempt(stranger, ADMIN_PASSWORD)
    assert status == 429 and took >= auth.LOGIN_MIN_SECONDS  # the stranger is, and is answered no quicker for it
    # A client that is not a trusted proxy cannot choose its address with the header.
    forger = _client(app, client=("192.0.2.99", 40003))
    codes = [forger.post("/login", headers={"X-Forwarded-For": f"10.9.8.{i}"},
                         data={"email": ADMIN, "password": f"guess {i}",
                               "csrf_token": _csrf(forger.get("/login").text)}).status_code for i in range(11)]
    assert codes == [401] * 10 + [429]
    unknown_status, unknown_took = _attempt(forger, "whatever it is", email="nobody@example.com")
    assert unknown_status == 401 and unknown_took >= auth.LOGIN_MIN_SECONDS


@contextlib.contextmanager
def _serving(app):
    """The app on a real uvicorn server in this process (a thread), on a free loopback port."""
    import threading

    import uvicorn

    from leads_pipeline_tests.test_web_support import free_port

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           limit_concurrency=1000, backlog=1024))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def test_200_concurrent_wrong_logins_check_at_most_the_limit(service_duckdb):
    """Finding: of 200 concurrent wrong passwords 108 were checked (limit 10)."""
    from concurrent.futures import ThreadPoolExecutor

    import requests

    from leads_pipeline.web.app import create_app

    wh, settings = service_duckdb
    with _serving(create_app(settings(), wh)) as base:
        page = requests.get(base + "/login", timeout=30)
        cookie, token = page.cookies["lp_session"], _csrf(page.text)

        def guess(i: int) -> int:
            return requests.post(base + "/login", cookies={"lp_session": cookie}, allow_redirects=False, timeout=120,
                                 data={"email": ADMIN, "password": f"wrong guess {i}", "csrf_token": token}).status_code

        with ThreadPoolExecutor(max_workers=200) as pool:
            codes = list(pool.map(guess, range(200)))
    assert set(codes) <= {401, 429} and 1 <= codes.count(401) <= 10, {c: codes.count(c) for c in set(codes)}


def _cookie_data(cookie: str) -> dict:
    payload = cookie.split(".")[0]
    return json.loads(base64.b64decode(payload + "=" * (-len(payload) % 4)))


def test_a_cookie_saved_before_logout_is_refused_after(service):
    """Finding: logout only emptied this browser's cookie; a copy made before kept working."""
    from leads_pipeline.web.app import create_app

    wh, settings = service
    app = create_app(settings(), wh)
    c = _client(app)
    assert _attempt(c, ADMIN_PASSWORD)[0] == 303
    saved = c.cookies["lp_session"]
    assert c.get("/login").status_code == 303  # logged in: /login sends you on
    assert _client(app, cookies={"lp_session": saved}).get("/api/me").status_code == 200
    assert c.post("/logout", data={"csrf_token": _logged_in_csrf(c)}).status_code == 303
    thief = _client(app, cookies={"lp_session": saved})
    assert thief.get("/api/me").status_code == 401
    assert thief.get("/login").status_code == 200  # the login form: not logged in
    assert set(_cookie_data(saved)) <= {"sid", "csrf", "flash"}  # a session token, no user id or password trace


def test_logging_in_again_ends_the_browsers_previous_session(service):
    from leads_pipeline.web.app import create_app

    wh, settings = service
    app = create_app(settings(), wh)
    c = _client(app)
    assert _attempt(c, ADMIN_PASSWORD)[0] == 303
    first = c.cookies["lp_session"]
    again = c.post("/login", data={"email": ADMIN, "password": ADMIN_PASSWORD, "csrf_token": _logged_in_csrf(c)})
    assert again.status_code == 303 and c.get("/api/me").status_code == 200
    assert _client(app, cookies={"lp_session": first}).get("/api/me").status_code == 401
    with wh.transaction(read_only=True) as conn:
        assert conn.scalar("SELECT count(*) FROM web_sessions WHERE ended_at IS NULL") == 1


def _logged_in_csrf(c) -> str:
    """The session's CSRF token, from the signed cookie the client holds (no page needed)."""
    return _cookie_data(c.cookies["lp_session"])["csrf"]


def test_reissued_cookies_do_not_extend_a_session(service):
    """Finding: a page that touches the session re-issues the cookie signed with a new time, so a stolen cookie,
    kept fresh, lived forever. The session has an absolute lifetime in the warehouse that nothing moves."""
    import itsdangerous

    from leads_pipeline.web import auth
    from leads_pipeline.web.app import create_app

    wh, settings = service
    config = settings()
    app = create_app(config, wh)
    c = _client(app)
    assert _attempt(c, ADMIN_PASSWORD)[0] == 303
    with wh.transaction(read_only=True) as conn:
        before = conn.query("SELECT created_at, expires_at FROM web_sessions WHERE ended_at IS NULL")
    lifetime = dt.timedelta(seconds=auth.SESSION_MAX_AGE)
    assert len(before) == 1 and before[0]["expires_at"] - before[0]["created_at"] == lifetime
    for _ in range(3):
        assert c.get("/api/me").status_code == 200
    with wh.transaction() as conn:
        assert conn.query("SELECT created_at, expires_at FROM web_sessions WHERE ended_at IS NULL") == before
        conn.execute("UPDATE web_sessions SET created_at = created_at - INTERVAL '8 hours', "
                     "expires_at = expires_at - INTERVAL '8 hours'")  # the login was eight hours ago
    # The cookie as the service re-issues it — same content, signed just now — is refused all the same.
    signer = itsdangerous.TimestampSigner(auth.session_secret(config.secret_key.get_secret_value()))
    fresh = signer.sign(c.cookies["lp_session"].split(".")[0].encode()).decode()
    assert _client(app, cookies={"lp_session": fresh}).get("/api/me").status_code == 401


def test_hsts_and_permissions_policy_with_secure_cookies(service):
    """Finding: no HSTS and no Permissions-Policy with --secure-cookies."""
    from leads_pipeline.web.app import create_app

    wh, settings = service
    secure = _client(create_app(settings(), wh, https_only=True), base_url="https://testserver").get("/login")
    assert secure.headers["strict-transport-security"] == "max-age=31536000"
    assert "camera=()" in secure.headers["permissions-policy"] and "geolocation=()" in secure.headers[
        "permissions-policy"]
    assert "secure" in secure.headers["set-cookie"].lower()
    plain = _client(create_app(settings(), wh)).get("/login")
    assert "strict-transport-security" not in plain.headers  # meaningless (and ignored) over plain HTTP
    assert "camera=()" in plain.headers["permissions-policy"]


def test_access_log_holds_no_query_strings(duckdb_url, tmp_path):
    """Finding: the access log held search terms (emails, phones), `?reason=` and Meta's `hub.verify_token`.
    `leads-pipeline serve` itself runs here, with its access log on."""
    import requests

    from leads_pipeline_tests.test_web_support import free_port

    port = free_port()
    env = {**os.environ, "LEADS_WAREHOUSE_URL": duckdb_url, "LEADS_WEBHOOK_VERIFY_TOKEN": "verify-me-7f3a9c",
           "LEADS_DATA_DIR": str(tmp_path / "data"), "LEADS_ENV_FILE": ""}
    log_path = tmp_path / "serve.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-c", "from leads_pipeline.cli import main; main()", "serve",
                                 "--host", "127.0.0.1", "--port", str(port), "--log-level", "info"],
                                env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 60
            while True:
                assert proc.poll() is None, log_path.read_text()[-3000:]
                try:
                    if requests.get(base + "/api/health", timeout=2).status_code == 200:
                        break
                except requests.RequestException:
                    pass
                assert time.monotonic() < deadline, log_path.read_text()[-3000:]
                time.sleep(0.2)
            for target in ["/api/leads?search=x@y.com", "/api/leads?search=%2B90%20555%20123%204567&page=2",
                           "/api/leads/123?reason=asked+by+ayse@example.com",
                           "/webhooks/meta?hub.mode=subscribe&hub.verify_token=verify-me-7f3a9c&hub.challenge=42",
                           "/console/leads?search=x@y.com", "/login?next=/console/leads%3Fsearch%3Dx@y.com",
                           f"/api/leads/{TOKEN}"]:
                requests.get(base + target, allow_redirects=False, timeout=10)
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
    out = log_path.read_text()
    assert '"GET /api/leads?[query omitted] HTTP/1.1" 401' in out, out[-3000:]  # the line is there, cut at '?'
    assert '"GET /webhooks/meta?[query omitted] HTTP/1.1"' in out and "/console/leads?[query omitted]" in out
    assert '"GET /api/leads/[REDACTED] HTTP/1.1" 401' in out and TOKEN not in out  # a token in a path is masked
    assert "Logging error" not in out and "Traceback" not in out
    for leaked in ["x@y.com", "x%40y.com", "%2B90", "ayse", "verify-me-7f3a9c", "search=", "reason=", "hub.", "next="]:
        assert leaked not in out, leaked


def test_reactivation_does_not_revive_old_api_keys(warehouse):
    """Finding: deactivating then reactivating a user gave back every API key they had."""
    from leads_pipeline.lib import crm
    from leads_pipeline.web import auth

    crm.add_user(warehouse, "Staff Person", "staff@example.com", "staff")
    key, _ = credentials.create_api_key(warehouse, "staff@example.com", name="laptop")
    assert auth.authenticate_api_key(warehouse, key).principal.email == "staff@example.com"
    crm.deactivate_user(warehouse, "staff@example.com")
    crm.reactivate_user(warehouse, "staff@example.com")
    with pytest.raises(auth.AuthError):
        auth.authenticate_api_key(warehouse, key)


def test_passwords_are_stored_with_scrypt_n_2_17(warehouse):
    """Finding: scrypt N=2¹⁴; OWASP asks 2¹⁷ (r=8, p=1)."""
    from leads_pipeline.lib import crm

    crm.add_user(warehouse, "Staff Person", "staff@example.com", "staff")
    credentials.set_password(warehouse, "staff@example.com", ADMIN_PASSWORD)
    with warehouse.transaction(read_only=True) as conn:
        stored = conn.scalar("SELECT password_hash FROM users WHERE email = 'staff@example.com'")
    assert stored.startswith(f"scrypt${2**17}$8$1$")
