"""The distributor registry and the `distributors` command, on DuckDB and PostgreSQL."""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from click.testing import CliRunner

from leads_pipeline.lib.distributors import registry as distributors
from leads_pipeline.lib.distributors.registry import DistributorError, DistributorNotFound, DuplicateDistributor
from leads_pipeline.lib.security import generate_key

TOKEN = "EAAGm0PX4ZCpsBAKZCZAZBmS7wUl9sPq4ZBdYzZC7Q8ZDZD"
TOKEN2 = "EAAGm0PX4ZCpsBAsecondTokenValue0123456789ZZ"


@pytest.fixture(autouse=True)
def secret_key(monkeypatch):
    from leads_pipeline.settings import get_settings

    key = generate_key()
    monkeypatch.setenv("LEADS_SECRET_KEY", key)
    get_settings.cache_clear()
    return key


@pytest.fixture
def cli_env(warehouse, monkeypatch):
    from leads_pipeline.settings import get_settings

    monkeypatch.setenv("LEADS_WAREHOUSE_URL", warehouse.url)
    get_settings.cache_clear()
    return warehouse


def all_text(wh, table):
    with wh.transaction(read_only=True) as conn:
        return json.dumps(conn.query(f"SELECT * FROM {table}"), default=str)


def audit(wh):
    with wh.transaction(read_only=True) as conn:
        return conn.query("SELECT actor, action, entity_type, entity_id, before, after FROM audit_log ORDER BY id")


def test_add_get_list(warehouse):
    d = distributors.add(warehouse, "MSH Med Tour", TOKEN, page_ids=["111", 222], form_ids=["333"], region="tr",
                         interval=10, notify_email=" Sales@MSH.example.com ", actor="ayse")
    assert d.key == "msh-med-tour"
    assert d.page_ids == ("111", "222") and d.form_ids == ("333",)
    assert (d.default_region, d.sync_interval_minutes, d.enabled) == ("TR", 10, True)
    assert d.notify_email == "sales@msh.example.com"
    assert d.has_token and d.token_fingerprint and len(d.token_fingerprint) == 12
    assert d.created_at is not None
    assert distributors.get(warehouse, "msh-med-tour") == d
    assert [x.key for x in distributors.list_all(warehouse)] == ["msh-med-tour"]
    printed = d.to_dict()
    assert printed["key"] == "msh-med-tour" and printed["region"] == "TR" and printed["interval_minutes"] == 10
    assert TOKEN not in json.dumps(printed)
    assert distributors.access_token(warehouse, "msh-med-tour") == TOKEN


@pytest.mark.parametrize(
    "name, key",
    [("MSH Med Tour", "msh-med-tour"), ("Işık Sağlık Turizmi", "isik-saglik-turizmi"),
     ("  Dr. Öz & Partners GmbH ", "dr-oz-and-partners-gmbh"), ("診療所", "distributor"),
     ("Çağla--Estetik!!", "cagla-estetik")],
)
def test_keys_are_partition_safe_slugs(warehouse, name, key):
    d = distributors.add(warehouse, name, TOKEN)
    assert d.key == key
    assert distributors.KEY_RE.fullmatch(d.key)


def test_duplicate_name_and_key_collisions(warehouse):
    distributors.add(warehouse, "MSH Med Tour", TOKEN)
    with pytest.raises(DuplicateDistributor, match="exists already"):
        distributors.add(warehouse, "msh med tour", TOKEN)
    other = distributors.add(warehouse, "MSH Med-Tour", TOKEN)  # a different name with the same slug
    assert other.key == "msh-med-tour-2"
    with pytest.raises(DuplicateDistributor):
        distributors.add(warehouse, "Another", TOKEN, key="msh-med-tour")
    explicit = distributors.add(warehouse, "Another", TOKEN, key="another-one")
    assert explicit.key == "another-one"


def test_removed_keys_are_never_reused(warehouse):
    distributors.add(warehouse, "MSH Med Tour", TOKEN)
    distributors.remove(warehouse, "msh-med-tour")
    again = distributors.add(warehouse, "MSH Med Tour", TOKEN)
    assert again.key == "msh-med-tour-2"


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"region": "XX"}, "Unknown phone region"),
        ({"region": "Turkey"}, "Unknown phone region"),
        ({"interval": 0}, "at least 1 minute"),
        ({"interval": -5}, "at least 1 minute"),
        ({"interval": 2.5}, "whole number"),
        ({"page_ids": ["12ab"]}, "not a Meta id"),
        ({"form_ids": ["https://facebook.com/x"]}, "not a Meta id"),
        ({"notify_email": "not-an-email"}, "not a valid address"),
        ({"key": "Bad Key"}, "not usable"),
    ],
)
def test_invalid_settings_are_refused_clearly(warehouse, kwargs, message):
    with pytest.raises(DistributorError, match=message):
        distributors.add(warehouse, "MSH Med Tour", TOKEN, **kwargs)
    assert distributors.list_all(warehouse) == []


@pytest.mark.parametrize("name, token", [("", TOKEN), ("   ", TOKEN), ("MSH", ""), ("MSH", "two words")])
def test_name_and_token_required(warehouse, name, token):
    with pytest.raises(DistributorError):
        distributors.add(warehouse, name, token)


def test_unknown_key_is_a_clear_error(warehouse):
    for call in (lambda: distributors.get(warehouse, "nope"), lambda: distributors.remove(warehouse, "nope"),
                 lambda: distributors.update(warehouse, "nope", interval=3),
                 lambda: distributors.access_token(warehouse, "nope")):
        with pytest.raises(DistributorNotFound, match="distributors list"):
            call()


def test_update_reencrypts_token_and_audits_without_it(warehouse):
    before = distributors.add(warehouse, "MSH Med Tour", TOKEN, actor="ayse")
    after = distributors.update(warehouse, "msh-med-tour", token=TOKEN2, interval=15, region="DE",
                                page_ids=["999"], enabled=False, actor="mehmet")
    assert after.key == before.key
    assert after.token_fingerprint != before.token_fingerprint
    assert (after.sync_interval_minutes, after.default_region, after.page_ids, after.enabled) == (15, "DE", ("999",),
                                                                                                 False)
    assert distributors.access_token(warehouse, "msh-med-tour") == TOKEN2
    renamed = distributors.update(warehouse, "msh-med-tour", name="MSH Medical", notify_email="")
    assert renamed.name == "MSH Medical" and renamed.key == "msh-med-tour" and renamed.notify_email is None
    distributors.remove(warehouse, "msh-med-tour", actor="admin")
    entries = audit(warehouse)
    assert [(e["actor"], e["action"]) for e in entries] == [
        ("ayse", "distributor.add"), ("mehmet", "distributor.update"), ("system", "distributor.update"),
        ("admin", "distributor.remove")]
    assert all(e["entity_type"] == "distributor" and e["entity_id"] == "msh-med-tour" for e in entries)
    update_after = json.loads(entries[1]["after"])
    assert update_after["interval_minutes"] == 15 and update_after["token_fingerprint"] == after.token_fingerprint
    assert entries[3]["after"] is None and json.loads(entries[3]["before"])["name"] == "MSH Medical"
    text = all_text(warehouse, "audit_log") + all_text(warehouse, "distributors")
    assert TOKEN not in text and TOKEN2 not in text


def test_update_refuses_unknown_fields_and_bad_values(warehouse):
    distributors.add(warehouse, "MSH Med Tour", TOKEN)
    with pytest.raises(DistributorError, match="Cannot change token_encrypted"):
        distributors.update(warehouse, "msh-med-tour", token_encrypted="x")
    with pytest.raises(DistributorError, match="at least 1"):
        distributors.update(warehouse, "msh-med-tour", interval=0)
    distributors.add(warehouse, "Anatolia Health", TOKEN)
    with pytest.raises(DuplicateDistributor):
        distributors.update(warehouse, "anatolia-health", name="MSH MED TOUR")
    assert distributors.get(warehouse, "msh-med-tour").sync_interval_minutes == 5


def test_token_is_stored_encrypted_only(warehouse, tmp_path):
    distributors.add(warehouse, "MSH Med Tour", TOKEN)
    distributors.update(warehouse, "msh-med-tour", token=TOKEN2)
    with warehouse.transaction(read_only=True) as conn:
        row = conn.query_one("SELECT * FROM distributors")
    assert row["token_encrypted"] and TOKEN2 not in json.dumps(row, default=str)
    assert TOKEN not in all_text(warehouse, "distributors")
    if warehouse.backend == "duckdb":  # the bytes on disk, database and write-ahead log
        for path in Path(warehouse.path).parent.glob(Path(warehouse.path).name + "*"):
            data = path.read_bytes()
            assert TOKEN.encode() not in data and TOKEN2.encode() not in data, path


def test_no_token_in_logs(warehouse, caplog):
    caplog.set_level(logging.DEBUG)
    distributors.add(warehouse, "MSH Med Tour", TOKEN)
    distributors.update(warehouse, "msh-med-tour", token=TOKEN2)
    distributors.access_token(warehouse, "msh-med-tour")
    distributors.list_all(warehouse)
    with pytest.raises(DistributorError):
        distributors.update(warehouse, "msh-med-tour", token="bad token with spaces")
    assert TOKEN not in caplog.text and TOKEN2 not in caplog.text


def test_missing_secret_key_is_explained(warehouse, monkeypatch):
    from leads_pipeline.settings import get_settings

    monkeypatch.delenv("LEADS_SECRET_KEY")
    get_settings.cache_clear()
    with pytest.raises(Exception, match="set LEADS_SECRET_KEY"):
        distributors.add(warehouse, "MSH Med Tour", TOKEN)


def _sync_run(wh, key, started, success):
    with wh.transaction() as conn:
        conn.execute(
            "INSERT INTO sync_runs (sync_id, distributor, trigger, started_at, finished_at, success) "
            "VALUES (?, ?, 'test', ?, ?, ?)",
            [f"{key}-{started.isoformat()}", key, started, started if success is not None else None, success],
        )


def test_due_for_sync(warehouse):
    now = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)
    for name in ("Never Synced", "Recent Ok", "Old Failed", "Disabled", "Only Running"):
        distributors.add(warehouse, name, TOKEN, interval=5)
    distributors.update(warehouse, "disabled", enabled=False)
    _sync_run(warehouse, "recent-ok", now - timedelta(minutes=20), True)
    _sync_run(warehouse, "recent-ok", now - timedelta(minutes=2), True)
    _sync_run(warehouse, "old-failed", now - timedelta(minutes=5), False)
    _sync_run(warehouse, "only-running", now - timedelta(minutes=1), None)
    assert distributors.due_for_sync(warehouse, now) == ["never-synced", "old-failed", "only-running"]
    assert "recent-ok" in distributors.due_for_sync(warehouse, now + timedelta(minutes=3))
    assert "recent-ok" in distributors.due_for_sync(warehouse, (now + timedelta(minutes=3)).replace(tzinfo=None))


def test_record_forms_upserts(warehouse):
    distributors.add(warehouse, "MSH Med Tour", TOKEN)
    forms = [{"id": "333", "name": "Hair", "status": "ACTIVE", "locale": "en_US", "leads_count": 12, "page_id": "1"},
             {"id": "444", "name": "Dental", "status": "ACTIVE", "page_id": "1"}]
    assert distributors.record_forms(warehouse, "msh-med-tour", forms + [forms[0]]) == 2
    distributors.record_forms(warehouse, "msh-med-tour", [{**forms[0], "status": "ARCHIVED", "leads_count": "15"}])
    with warehouse.transaction(read_only=True) as conn:
        rows = conn.query("SELECT form_id, form_name, status, leads_count FROM distributor_forms ORDER BY form_id")
    assert [(r["form_id"], r["status"], r["leads_count"]) for r in rows] == [("333", "ARCHIVED", 15),
                                                                             ("444", "ACTIVE", None)]


def test_remove_keeps_leads_but_drops_configuration(warehouse):
    distributors.add(warehouse, "MSH Med Tour", TOKEN)
    distributors.record_forms(warehouse, "msh-med-tour", [{"id": "333", "page_id": "1"}])
    with warehouse.transaction(read_only=True) as conn:
        assert conn.scalar("SELECT distributor FROM form_owners WHERE form_id = '333'") == "msh-med-tour"
    with warehouse.transaction() as conn:
        conn.execute("INSERT INTO sync_cursors VALUES ('msh-med-tour', '333', 1, CURRENT_TIMESTAMP)")
        conn.execute("INSERT INTO leads (meta_lead_id, distributor, created_time, first_seen_at, updated_at) "
                     "VALUES ('1', 'msh-med-tour', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)")
    removed = distributors.remove(warehouse, "msh-med-tour")
    assert removed.key == "msh-med-tour"
    with warehouse.transaction(read_only=True) as conn:
        assert conn.scalar("SELECT count(*) FROM distributor_forms") == 0
        assert conn.scalar("SELECT count(*) FROM form_owners") == 0  # its discovered form is released
        assert conn.scalar("SELECT count(*) FROM sync_cursors") == 0
        assert conn.scalar("SELECT count(*) FROM leads") == 1
    with pytest.raises(DistributorNotFound):
        distributors.get(warehouse, "msh-med-tour")


def test_rotate_tokens_all_or_nothing(warehouse, secret_key):
    from leads_pipeline.lib.security import TokenCipher, TokenDecryptError

    distributors.add(warehouse, "MSH Med Tour", TOKEN)
    distributors.add(warehouse, "Foreign Key", TOKEN2, cipher=TokenCipher(generate_key()))
    new = generate_key()
    with pytest.raises(TokenDecryptError, match="foreign-key"):
        distributors.rotate_tokens(warehouse, cipher=TokenCipher(f"{new},{secret_key}"))
    assert distributors.access_token(warehouse, "msh-med-tour", cipher=TokenCipher(secret_key)) == TOKEN


# ----------------------------------------------------------------------------------------------------------------------
# `leads-pipeline distributors`
# ----------------------------------------------------------------------------------------------------------------------


def run(*args, input=None, env=None):
    from leads_pipeline.commands.distributors import distributors as group

    return CliRunner().invoke(group, list(args), input=input, env=env)


def test_cli_add_from_stdin_prints_json_without_token(cli_env):
    result = run("add", "MSH Med Tour", "--token-stdin", "--page-id", "111", "--page-id", "222", "--interval", "10",
                 input=TOKEN + "\n")
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    assert printed["key"] == "msh-med-tour" and printed["page_ids"] == ["111", "222"]
    assert printed["interval_minutes"] == 10 and printed["has_token"] is True
    assert TOKEN not in result.output
    assert distributors.access_token(cli_env, "msh-med-tour") == TOKEN
    assert json.loads(audit(cli_env)[0]["after"])["key"] == "msh-med-tour"
    assert audit(cli_env)[0]["actor"].startswith("cli")


def test_cli_add_from_env_and_list_update_remove(cli_env):
    result = run("add", "Anatolia Health", "--region", "DE", env={"LEADS_NEW_TOKEN": TOKEN})
    assert result.exit_code == 0, result.output
    assert distributors.access_token(cli_env, "anatolia-health") == TOKEN

    listed = run("list")
    assert listed.exit_code == 0
    assert [d["key"] for d in json.loads(listed.stdout)] == ["anatolia-health"]
    assert TOKEN not in listed.output

    updated = run("update", "anatolia-health", "--interval", "30", "--disable", "--token-stdin", input=TOKEN2)
    assert updated.exit_code == 0, updated.output
    body = json.loads(updated.stdout)
    assert body["interval_minutes"] == 30 and body["enabled"] is False
    assert TOKEN2 not in updated.output
    assert distributors.access_token(cli_env, "anatolia-health") == TOKEN2

    removed = run("remove", "anatolia-health")
    assert removed.exit_code == 0 and json.loads(removed.stdout)["removed"] == "anatolia-health"
    assert json.loads(run("list").stdout) == []


@pytest.mark.parametrize(
    "args, message",
    [
        (["add", "MSH"], "An access token is needed"),
        (["add", "MSH", "--token", "x", "--token-stdin"], "not both"),
        (["add", "MSH", "--token", "EAAx", "--region", "ZZ"], "Unknown phone region"),
        (["add", "MSH", "--token", "EAAx", "--interval", "0"], "at least 1 minute"),
        (["update", "nope", "--interval", "3"], "No distributor with key"),
        (["update", "nope"], "Nothing to change"),
        (["remove", "nope"], "No distributor with key"),
    ],
)
def test_cli_errors_exit_1_with_message(cli_env, args, message):
    result = run(*args)
    assert result.exit_code == 1
    assert message in result.output


def test_cli_add_duplicate_fails(cli_env):
    assert run("add", "MSH", "--token", TOKEN).exit_code == 0
    result = run("add", "msh", "--token", TOKEN)
    assert result.exit_code == 1 and "exists already" in result.output and TOKEN not in result.output


def test_main_cli_registers_the_groups():
    from leads_pipeline.cli import main

    assert "distributors" in main.commands and "keys" in main.commands


def test_a_token_with_non_ascii_characters_is_refused_before_it_is_stored(warehouse):
    with pytest.raises(distributors.DistributorError, match="never has"):
        distributors.add(warehouse, "Unicode Clinic", "EAAtokén", page_ids=["1"])
    assert distributors.list_all(warehouse) == []
