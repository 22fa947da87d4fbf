"""Credentials: migration 3 (api_keys, users.password_hash), API keys shown once and stored as hashes, scrypt
passwords, and the ``users api-key …`` / ``users set-password`` / ``serve`` commands."""

from __future__ import annotations

import json
import re

import pytest
from click.testing import CliRunner

from leads_pipeline.cli import main
from leads_pipeline.lib import crm
from leads_pipeline.lib.warehouse import Warehouse
from leads_pipeline.web import auth


def test_migration_3_adds_api_keys_and_password_hash(warehouse):
    with warehouse.transaction(read_only=True) as conn:
        assert conn.scalar("SELECT max(version) FROM schema_migrations") >= 3  # migration 3 applied (later ones may follow)
        conn.query("SELECT id, user_id, name, prefix, key_hash, created_at, last_used_at, revoked_at FROM api_keys")
        conn.query("SELECT password_hash FROM users")


def test_api_key_lifecycle(warehouse):
    user = crm.add_user(warehouse, "Ayşe Kaya", "ayse@example.com", "staff")
    key, row = auth.create_api_key(warehouse, "ayse@example.com", name="reports")
    assert re.fullmatch(r"lp_[A-Za-z0-9_-]{43}", key) and row["prefix"] == key[:11]
    caller = auth.authenticate_api_key(warehouse, key)
    assert (caller.id, caller.role, caller.via) == (user["id"], "staff", "api_key")
    assert auth.list_api_keys(warehouse)[0]["last_used_at"] is not None
    with pytest.raises(auth.AuthError, match="Unknown API key"):
        auth.authenticate_api_key(warehouse, key[:-1] + ("A" if key[-1] != "A" else "B"))
    with pytest.raises(auth.AuthError, match="Malformed"):
        auth.authenticate_api_key(warehouse, "sk_live_123")
    # Staff may not make keys for others, nor revoke theirs.
    other, _ = auth.create_api_key(warehouse, "ayse@example.com")
    crm.add_user(warehouse, "Bob", "bob@example.com", "staff")
    with pytest.raises(crm.PermissionDenied):
        auth.create_api_key(warehouse, "ayse@example.com", actor="bob@example.com")
    with pytest.raises(crm.PermissionDenied):
        auth.revoke_api_key(warehouse, row["id"], actor="bob@example.com")
    auth.revoke_api_key(warehouse, row["id"], actor="ayse@example.com")  # your own: fine
    with pytest.raises(auth.AuthError, match="revoked"):
        auth.authenticate_api_key(warehouse, key)
    assert auth.authenticate_api_key(warehouse, other).id == user["id"]
    actions = [r["action"] for r in _audit(warehouse) if r["entity_type"] == "api_key"]
    assert actions == ["api_key.create", "api_key.create", "api_key.revoke"]
    assert key not in json.dumps(_audit(warehouse), default=str)


def _audit(wh: Warehouse) -> list[dict]:
    with wh.transaction(read_only=True) as conn:
        return conn.query("SELECT actor, action, entity_type, entity_id, after FROM audit_log ORDER BY id")


def test_passwords_are_salted_scrypt():
    a, b = auth.hash_password("correct horse battery"), auth.hash_password("correct horse battery")
    assert a != b and a.startswith("scrypt$16384$8$1$")
    assert auth.verify_password("correct horse battery", a)
    assert not auth.verify_password("correct horse batterY", a)
    assert not auth.verify_password("x", "garbage") and not auth.verify_password("x", None)
    with pytest.raises(crm.InvalidInput, match="at least 10"):
        auth.check_password_rules("short")


def test_password_login_and_rules(warehouse):
    crm.add_user(warehouse, "Ayşe Kaya", "ayse@example.com", "staff")
    assert auth.authenticate_password(warehouse, "ayse@example.com", "anything at all") is None  # no password yet
    auth.set_password(warehouse, "ayse@example.com", "a long enough password")
    principal, fp = auth.authenticate_password(warehouse, " AYSE@example.com ", "a long enough password")
    assert principal.email == "ayse@example.com" and auth.session_caller(warehouse, principal.id, fp) is not None
    assert auth.authenticate_password(warehouse, "ayse@example.com", "a wrong password") is None
    with warehouse.transaction(read_only=True) as conn:
        stored = conn.scalar("SELECT password_hash FROM users WHERE email = 'ayse@example.com'")
    assert "a long enough password" not in stored
    assert [r["after"] for r in _audit(warehouse) if r["action"] == "user.password"]


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
    done = runner.invoke(main, ["users", "set-password", "staff@example.com"],
                         input="a long enough password\na long enough password\n")
    assert done.exit_code == 0 and "Password set for staff@example.com" in done.output
    assert "a long enough password" not in done.output.replace("Password: ", "")
    wh = Warehouse(cli_env)
    assert auth.authenticate_password(wh, "staff@example.com", "a long enough password") is not None
    piped = runner.invoke(main, ["users", "set-password", "admin@example.com", "--password-stdin"],
                          input="another long password\n")
    assert piped.exit_code == 0
    assert auth.authenticate_password(wh, "admin@example.com", "another long password") is not None


def test_serve_command_is_registered():
    result = CliRunner().invoke(main, ["serve", "--help"])
    assert result.exit_code == 0 and "--host" in result.output and "--port" in result.output
