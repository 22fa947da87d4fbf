"""Credentials (``lib/crm/credentials.py``, ``web/auth.py``): migrations 3 and 11, API keys shown once and stored as
hashes, scrypt passwords (old parameters upgraded at login), server-side sessions, the login limiter in the
warehouse, and the ``users api-key …`` / ``users set-password`` / ``serve`` commands."""

from __future__ import annotations

import datetime as dt
import json
import re
from concurrent.futures import ThreadPoolExecutor

import pytest
from click.testing import CliRunner

from leads_pipeline.cli import main
from leads_pipeline.lib import crm
from leads_pipeline.lib.crm import credentials
from leads_pipeline.lib.crm.credentials import LoginLimits
from leads_pipeline.lib.warehouse import Warehouse
from leads_pipeline.lib.warehouse.migrations import v011_sessions_and_logins
from leads_pipeline.web import auth

PASSWORD = "a long enough password"


def test_migration_3_adds_api_keys_and_password_hash(warehouse):
    with warehouse.transaction(read_only=True) as conn:
        assert conn.scalar("SELECT max(version) FROM schema_migrations") >= 3  # 3 applied (later ones may follow)
        conn.query("SELECT id, user_id, name, prefix, key_hash, created_at, last_used_at, revoked_at FROM api_keys")
        conn.query("SELECT password_hash FROM users")


def test_api_key_lifecycle(warehouse):
    user = crm.add_user(warehouse, "Ayşe Kaya", "ayse@example.com", "staff")
    key, row = credentials.create_api_key(warehouse, "ayse@example.com", name="reports")
    assert re.fullmatch(r"lp_[A-Za-z0-9_-]{43}", key) and row["prefix"] == key[:11]
    caller = auth.authenticate_api_key(warehouse, key)
    assert (caller.id, caller.role, caller.via) == (user["id"], "staff", "api_key")
    assert credentials.list_api_keys(warehouse)[0]["last_used_at"] is not None
    with pytest.raises(auth.AuthError, match="Unknown API key"):
        auth.authenticate_api_key(warehouse, key[:-1] + ("A" if key[-1] != "A" else "B"))
    with pytest.raises(auth.AuthError, match="Malformed"):
        auth.authenticate_api_key(warehouse, "sk_live_123")
    # Staff may not make keys for others, nor revoke theirs.
    other, _ = credentials.create_api_key(warehouse, "ayse@example.com")
    crm.add_user(warehouse, "Bob", "bob@example.com", "staff")
    with pytest.raises(crm.PermissionDenied):
        credentials.create_api_key(warehouse, "ayse@example.com", actor="bob@example.com")
    with pytest.raises(crm.PermissionDenied):
        credentials.revoke_api_key(warehouse, row["id"], actor="bob@example.com")
    # ...nor list them: a staff user sees only their own keys.
    assert credentials.list_api_keys(warehouse, actor="bob@example.com") == []
    assert len(credentials.list_api_keys(warehouse, actor="ayse@example.com")) == 2
    credentials.revoke_api_key(warehouse, row["id"], actor="ayse@example.com")  # your own: fine
    with pytest.raises(auth.AuthError, match="revoked"):
        auth.authenticate_api_key(warehouse, key)
    assert auth.authenticate_api_key(warehouse, other).id == user["id"]
    actions = [r["action"] for r in _audit(warehouse) if r["entity_type"] == "api_key"]
    assert actions == ["api_key.create", "api_key.create", "api_key.revoke"]
    assert key not in json.dumps(_audit(warehouse), default=str)


def _audit(wh: Warehouse) -> list[dict]:
    with wh.transaction(read_only=True) as conn:
        return conn.query("SELECT actor, action, entity_type, entity_id, after FROM audit_log ORDER BY id")


def test_reactivating_a_user_does_not_revive_their_keys_or_sessions(warehouse):
    """Finding: deactivate + reactivate gave back every API key the user had (one may have leaked meanwhile)."""
    crm.add_user(warehouse, "Ayşe Kaya", "ayse@example.com", "staff")
    key, row = credentials.create_api_key(warehouse, "ayse@example.com", name="reports")
    credentials.set_password(warehouse, "ayse@example.com", PASSWORD)
    session = credentials.log_in(warehouse, "ayse@example.com", PASSWORD, client="192.0.2.1").token
    assert auth.authenticate_api_key(warehouse, key) and credentials.session_principal(warehouse, session)
    crm.deactivate_user(warehouse, "ayse@example.com")
    crm.reactivate_user(warehouse, "ayse@example.com")
    with pytest.raises(auth.AuthError, match="revoked"):
        auth.authenticate_api_key(warehouse, key)
    assert credentials.session_principal(warehouse, session) is None
    revoked = [r for r in _audit(warehouse) if r["action"] == "api_key.revoke"]
    assert [r["entity_id"] for r in revoked] == [row["id"]] and "deactivated" in revoked[0]["after"]
    # The user is back: a new key and a new login work.
    new_key, _ = credentials.create_api_key(warehouse, "ayse@example.com")
    assert auth.authenticate_api_key(warehouse, new_key).principal.email == "ayse@example.com"
    assert credentials.log_in(warehouse, "ayse@example.com", PASSWORD, client="192.0.2.1").principal


def test_migration_11_revokes_the_keys_of_users_deactivated_before_it(warehouse):
    crm.add_user(warehouse, "Gone", "gone@example.com", "staff")
    crm.add_user(warehouse, "Here", "here@example.com", "staff")
    gone_key, gone = credentials.create_api_key(warehouse, "gone@example.com")
    here_key, _ = credentials.create_api_key(warehouse, "here@example.com")
    with warehouse.transaction() as conn:  # as before migration 11: deactivated, key still live
        conn.execute("UPDATE users SET active = FALSE WHERE email = 'gone@example.com'")
    with warehouse.transaction() as conn:
        for stmt in v011_sessions_and_logins.statements(warehouse.dialect):
            conn.execute(stmt)
    crm.reactivate_user(warehouse, "gone@example.com")
    with pytest.raises(auth.AuthError, match="revoked"):
        auth.authenticate_api_key(warehouse, gone_key)
    assert auth.authenticate_api_key(warehouse, here_key)
    assert [(r["actor"], r["entity_id"]) for r in _audit(warehouse) if r["action"] == "api_key.revoke"] == [
        ("migration", gone["id"])]


def test_passwords_are_salted_scrypt_at_2_17():
    a, b = credentials.hash_password("correct horse battery"), credentials.hash_password("correct horse battery")
    assert a != b and a.startswith("scrypt$131072$8$1$")
    assert credentials.verify_password("correct horse battery", a)
    assert not credentials.verify_password("correct horse batterY", a)
    assert not credentials.verify_password("x", "garbage") and not credentials.verify_password("x", None)
    assert not credentials.verify_password("x", "scrypt$4194304$8$1$AAAA$AAAA")  # absurd cost: not one of ours
    with pytest.raises(crm.InvalidInput, match="at least 10"):
        credentials.check_password_rules("short")


def _old_hash(password: str) -> str:
    """A hash as the first version made them (scrypt N=2¹⁴)."""
    import base64
    import hashlib

    salt = b"0123456789abcdef"
    digest = hashlib.scrypt(password.encode(), salt=salt, n=2**14, r=8, p=1, dklen=32)
    return f"scrypt$16384$8$1${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def test_old_hashes_still_log_in_and_are_upgraded(warehouse):
    user = crm.add_user(warehouse, "Ayşe Kaya", "ayse@example.com", "staff")
    with warehouse.transaction() as conn:
        conn.execute("UPDATE users SET password_hash = ? WHERE id = ?", [_old_hash(PASSWORD), user["id"]])
    assert credentials.log_in(warehouse, "ayse@example.com", "not the password", client="192.0.2.1").principal is None
    with warehouse.transaction(read_only=True) as conn:
        assert conn.scalar("SELECT password_hash FROM users WHERE id = ?", [user["id"]]).startswith("scrypt$16384$")
    assert credentials.log_in(warehouse, "ayse@example.com", PASSWORD, client="192.0.2.1").principal.id == user["id"]
    with warehouse.transaction(read_only=True) as conn:
        stored = conn.scalar("SELECT password_hash FROM users WHERE id = ?", [user["id"]])
    assert stored.startswith("scrypt$131072$8$1$") and credentials.verify_password(PASSWORD, stored)
    assert credentials.log_in(warehouse, "ayse@example.com", PASSWORD, client="192.0.2.1").principal is not None


def test_password_login_and_rules(warehouse):
    crm.add_user(warehouse, "Ayşe Kaya", "ayse@example.com", "staff")
    assert credentials.log_in(warehouse, "ayse@example.com", "anything at all", client="192.0.2.1").principal is None
    credentials.set_password(warehouse, "ayse@example.com", PASSWORD)
    result = credentials.log_in(warehouse, " AYSE@example.com ", PASSWORD, client="192.0.2.1")
    assert result.principal.email == "ayse@example.com"
    assert credentials.session_principal(warehouse, result.token).email == "ayse@example.com"
    assert credentials.log_in(warehouse, "ayse@example.com", "a wrong password", client="192.0.2.1").principal is None
    with warehouse.transaction(read_only=True) as conn:
        stored = conn.scalar("SELECT password_hash FROM users WHERE email = 'ayse@example.com'")
        sessions = conn.query("SELECT id, user_id, created_at, expires_at FROM web_sessions")
        limited = conn.query("SELECT key FROM login_attempts")
    assert PASSWORD not in stored
    assert [r["after"] for r in _audit(warehouse) if r["action"] == "user.password"]
    # The warehouse keeps the session token's hash, never the token; and no typed email or address in the counters.
    assert len(sessions) == 1 and sessions[0]["id"] != result.token and result.token not in json.dumps(
        sessions, default=str)
    assert sessions[0]["expires_at"] - sessions[0]["created_at"] == credentials.SESSION_LIFETIME
    assert limited and not any("@" in r["key"] or "192.0.2.1" in r["key"] for r in limited)


def test_sessions_end_at_logout_on_a_new_password_and_at_their_lifetime(warehouse):
    crm.add_user(warehouse, "Ayşe Kaya", "ayse@example.com", "staff")
    credentials.set_password(warehouse, "ayse@example.com", PASSWORD)
    first = credentials.log_in(warehouse, "ayse@example.com", PASSWORD, client="192.0.2.1").token
    second = credentials.log_in(warehouse, "ayse@example.com", PASSWORD, client="192.0.2.2").token
    assert credentials.end_session(warehouse, first) and not credentials.end_session(warehouse, first)
    assert credentials.session_principal(warehouse, first) is None
    assert credentials.session_principal(warehouse, second) is not None  # logout ends only that session
    credentials.set_password(warehouse, "ayse@example.com", "another long password")
    assert credentials.session_principal(warehouse, second) is None
    third = credentials.log_in(warehouse, "ayse@example.com", "another long password", client="192.0.2.1").token
    with warehouse.transaction() as conn:  # eight hours later
        conn.execute("UPDATE web_sessions SET expires_at = ? WHERE ended_at IS NULL",
                     [dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=1)])
    assert credentials.session_principal(warehouse, third) is None
    with warehouse.transaction(read_only=True) as conn:
        ends = sorted(r["end_reason"] for r in conn.query("SELECT end_reason FROM web_sessions"
                                                          " WHERE end_reason IS NOT NULL"))
    assert ends == ["logout", "password"]


def test_concurrent_wrong_passwords_are_checked_at_most_the_limit(warehouse):
    """The check and the count are one statement: of 100 concurrent wrong passwords at most the limit are checked,
    on each backend (the finding's 200 through the HTTP service: test_security.py)."""
    crm.add_user(warehouse, "Admin", "admin@example.com", "superadmin")
    credentials.set_password(warehouse, "admin@example.com", PASSWORD)
    limits = LoginLimits(per_account_client=10, per_client=1000)

    def guess(i: int) -> credentials.LoginResult:
        return credentials.log_in(warehouse, "admin@example.com", f"guess number {i}", client="203.0.113.9",
                                  limits=limits)

    with ThreadPoolExecutor(max_workers=32) as pool:
        results = list(pool.map(guess, range(100)))
    checked = [r for r in results if not r.throttled]
    assert 1 <= len(checked) <= 10 and not any(r.principal for r in results)
    # The right password from that client is refused too (the limit is on attempts, not on wrong ones)...
    assert credentials.log_in(warehouse, "admin@example.com", PASSWORD, client="203.0.113.9", limits=limits).throttled
    # ...but not from another client: the guesser did not lock the account.
    assert credentials.log_in(warehouse, "admin@example.com", PASSWORD, client="198.51.100.4", limits=limits).principal


def test_per_client_limit_stops_spraying_many_accounts(warehouse):
    limits = LoginLimits(per_account_client=10, per_client=5)
    results = [credentials.log_in(warehouse, f"user{i}@example.com", "a wrong password", client="203.0.113.9",
                                  limits=limits) for i in range(8)]
    assert [r.throttled for r in results] == [False] * 5 + [True] * 3
    assert not credentials.log_in(warehouse, "user0@example.com", "x", client="203.0.113.10", limits=limits).throttled


def test_a_login_window_ends(warehouse):
    limits = LoginLimits(per_account_client=2, per_client=100)
    for _ in range(3):
        credentials.log_in(warehouse, "a@example.com", "wrong", client="192.0.2.1", limits=limits)
    assert credentials.log_in(warehouse, "a@example.com", "wrong", client="192.0.2.1", limits=limits).throttled
    with warehouse.transaction() as conn:  # fifteen minutes later
        conn.execute("UPDATE login_attempts SET window_start = window_start - INTERVAL '16 minutes'")
    assert not credentials.log_in(warehouse, "a@example.com", "wrong", client="192.0.2.1", limits=limits).throttled


@pytest.mark.parametrize("peer, forwarded, trusted, expected", [
    ("198.51.100.7", ["203.0.113.1"], "", "198.51.100.7"),  # no trusted proxy: the header is anyone's to forge
    ("198.51.100.7", ["203.0.113.1"], "10.0.0.0/8", "198.51.100.7"),  # peer not a trusted proxy
    ("10.0.0.2", ["203.0.113.1"], "10.0.0.0/8", "203.0.113.1"),
    ("10.0.0.2", ["1.1.1.1, 203.0.113.1"], "10.0.0.0/8", "203.0.113.1"),  # the client forged the leftmost entry
    ("10.0.0.2", ["203.0.113.1, 10.0.0.5"], "10.0.0.0/8", "203.0.113.1"),  # two proxies
    ("10.0.0.2", ["203.0.113.1", "10.0.0.5"], "10.0.0.0/8", "203.0.113.1"),  # the header twice
    ("10.0.0.2", [], "10.0.0.0/8", "10.0.0.2"),
    ("10.0.0.2", ["not-an-ip, 10.0.0.5"], "10.0.0.0/8", "10.0.0.5"),
    ("10.0.0.2", ["203.0.113.1:4711"], "10.0.0.0/8", "203.0.113.1"),
    ("::1", ["2001:db8:1:2:aaaa::1"], "::1", "2001:db8:1:2::/64"),  # one IPv6 host owns its /64
    ("2001:db8:1:2::9", [], "", "2001:db8:1:2::/64"),
    ("::ffff:192.0.2.5", [], "", "192.0.2.5"),
    ("testclient", [], "", "testclient"),
])
def test_client_address(peer, forwarded, trusted, expected):
    assert auth.client_address(peer, forwarded, auth.trusted_networks(trusted)) == expected


def test_trusted_proxies_setting_is_checked():
    from pydantic import ValidationError

    from leads_pipeline.settings import Settings

    assert Settings(trusted_proxies="127.0.0.1, 10.0.0.0/8,::1").trusted_proxies
    with pytest.raises(ValidationError, match="not an IP address"):
        Settings(trusted_proxies="127.0.0.1,proxy.example.com")


@pytest.fixture
def cli_env(monkeypatch, duckdb_url) -> str:
    monkeypatch.setenv("LEADS_WAREHOUSE_URL", duckdb_url)
    from leads_pipeline.settings import get_settings

    get_settings.cache_clear()
    return duckdb_url


def test_cli_api_keys_and_passwords(cli_env):
    runner = CliRunner()
    ok = runner.invoke(main, ["users", "add", "Admin", "admin@example.com", "--role", "superadmin"])
    assert ok.exit_code == 0, ok.output
    runner.invoke(main, ["users", "add", "Staff", "staff@example.com", "--role", "staff"])
    created = runner.invoke(main, ["users", "api-key", "create", "staff@example.com", "--name", "reports"])
    assert created.exit_code == 0, created.output
    key = re.search(r"lp_[A-Za-z0-9_-]{43}", created.output).group(0)
    assert "not shown again" in created.output
    listed = runner.invoke(main, ["users", "api-key", "list", "--json"])
    rows = json.loads(listed.output)
    assert key not in listed.output and rows[0]["prefix"] == key[:11] and rows[0]["name"] == "reports"
    assert "key_hash" not in rows[0]
    # Staff cannot make a key for someone else.
    refused = runner.invoke(main, ["users", "--as", "staff@example.com", "api-key", "create", "admin@example.com"])
    assert refused.exit_code == 1 and "may not" in refused.output
    revoked = runner.invoke(main, ["users", "api-key", "revoke", key[:11]])
    assert revoked.exit_code == 0 and "Revoked" in revoked.output
    listed = json.loads(runner.invoke(main, ["users", "api-key", "list", "staff@example.com", "--json"]).output)
    assert listed[0]["revoked_at"] is not None
    assert json.loads(runner.invoke(main, ["users", "api-key", "list", "--active-only", "--json"]).output) == []
    # set-password: prompted twice, hidden; too short is refused.
    short = runner.invoke(main, ["users", "set-password", "staff@example.com"], input="short\nshort\n")
    assert short.exit_code == 1 and "at least 10" in short.output
    done = runner.invoke(main, ["users", "set-password", "staff@example.com"], input=f"{PASSWORD}\n{PASSWORD}\n")
    assert done.exit_code == 0 and "Password set for staff@example.com" in done.output
    assert PASSWORD not in done.output.replace("Password: ", "")
    wh = Warehouse(cli_env)
    assert credentials.log_in(wh, "staff@example.com", PASSWORD, client="192.0.2.1").principal is not None
    piped = runner.invoke(main, ["users", "set-password", "admin@example.com", "--password-stdin"],
                          input="another long password\n")
    assert piped.exit_code == 0
    assert credentials.log_in(wh, "admin@example.com", "another long password", client="192.0.2.1").principal


def test_cli_api_key_quiet_for_scripts_and_revoke_by_the_key_itself(cli_env):
    """`KEY=$(users api-key create EMAIL --quiet)` holds only the key (docs/http-api.md's examples use it), and whoever
    holds a key can revoke it by the key itself; an unknown key is never echoed back whole."""
    runner = CliRunner()
    runner.invoke(main, ["users", "add", "Staff", "staff@example.com", "--role", "staff"])
    quiet = runner.invoke(main, ["users", "api-key", "create", "staff@example.com", "--quiet"])
    key = quiet.stdout.strip()
    assert quiet.exit_code == 0 and re.fullmatch(r"lp_[A-Za-z0-9_-]{43}", key), quiet.output
    wh = Warehouse(cli_env)
    assert credentials.authenticate_api_key(wh, key)[0].email == "staff@example.com"
    revoked = runner.invoke(main, ["users", "api-key", "revoke", key])
    assert revoked.exit_code == 0 and "Revoked" in revoked.output and key not in revoked.output
    with pytest.raises(credentials.AuthError, match="revoked"):
        credentials.authenticate_api_key(wh, key)
    unknown = "lp_" + "x" * 43
    missing = runner.invoke(main, ["users", "api-key", "revoke", unknown])
    assert missing.exit_code == 1 and "No API key 'lp_xxxxxxxx…'" in missing.output and unknown not in missing.output


def test_serve_command_is_registered():
    result = CliRunner().invoke(main, ["serve", "--help"])
    assert result.exit_code == 0 and "--host" in result.output and "--port" in result.output
