"""The `lead`, `leads` and `users` commands, against a real warehouse on both backends."""

from __future__ import annotations

import json

import click
import pytest
from click.testing import CliRunner

from leads_pipeline.commands.leads import lead, leads
from leads_pipeline.commands.users import users
from leads_pipeline.lib import crm
from leads_pipeline.settings import get_settings
from leads_pipeline_tests.crm_fixtures import add_distributor_sql, insert_leads, lead_state, snapshot


@click.group()
def cli() -> None:
    """The three groups as the main CLI registers them (independent of other areas' modules)."""


for _command in (lead, leads, users):
    cli.add_command(_command)


@pytest.fixture
def run(warehouse, monkeypatch):
    monkeypatch.setenv("LEADS_WAREHOUSE_URL", warehouse.url)
    get_settings.cache_clear()
    runner = CliRunner()

    def invoke(*args: str, ok: bool = True, input: str | None = None):
        result = runner.invoke(cli, list(args), input=input)
        if ok:
            assert result.exit_code == 0, (result.output, result.exception)
        return result

    return invoke


def test_users_add_and_list(run, warehouse):
    add_distributor_sql(warehouse, "msh")
    add_distributor_sql(warehouse, "uk")
    out = run("users", "add", "Ayşe Kaya", "Ayse@MSH.example", "--role", "staff", "--distributor", "msh").output
    assert "Added staff Ayşe Kaya <ayse@msh.example>" in out and "(distributors: msh)" in out
    run("users", "add", "Admin", "admin@msh.example", "--role", "superadmin")
    listed = json.loads(run("users", "list", "--json").stdout)
    assert [(u["email"], u["role"], u["active"], u["distributors"]) for u in listed] == [
        ("ayse@msh.example", "staff", True, ["msh"]), ("admin@msh.example", "superadmin", True, None)]
    table = run("users", "list").stdout
    assert table.splitlines()[0].split() == ["ID", "NAME", "EMAIL", "ROLE", "DISTRIBUTORS", "ACTIVE", "CREATED"]
    # A typo in a distributor key is refused, not silently a user who sees nothing.
    typo = run("users", "add", "B", "b@msh.example", "--role", "staff", "--distributor", "mhs", ok=False)
    assert typo.exit_code == 1 and "No distributor 'mhs'" in typo.stderr
    # Changing a user's distributors later: add, remove, set.
    assert "(distributors: msh, uk)" in run("users", "distributors", "ayse@msh.example", "--add", "uk").stdout
    assert "(distributors: uk)" in run("users", "distributors", "ayse@msh.example", "--remove", "msh").stdout
    assert "(distributors: msh)" in run("users", "distributors", "ayse@msh.example", "--set", "msh").stdout
    denied = run("users", "distributors", "ayse@msh.example", "--add", "uk", "--as", "ayse@msh.example", ok=False)
    assert denied.exit_code == 1 and "may not add or deactivate users" in denied.stderr
    dup = run("users", "add", "X", "ayse@msh.example", "--role", "staff", ok=False)
    assert dup.exit_code == 1 and "Error: A user with email ayse@msh.example already exists." in dup.stderr
    denied = run("users", "add", "X", "x@msh.example", "--role", "staff", "--as", "ayse@msh.example", ok=False)
    assert denied.exit_code == 1 and "may not add or deactivate users" in denied.stderr
    run("users", "deactivate", "ayse@msh.example")
    assert [u["email"] for u in json.loads(run("users", "list", "--json", "--active-only").stdout)] == [
        "admin@msh.example"]


def test_list_show_and_work_a_lead(run, warehouse):
    run("users", "add", "Ayşe", "ayse@msh.example", "--role", "staff", "--distributor", add_distributor_sql(warehouse))
    ids = insert_leads(warehouse, 3, distributor="msh") + insert_leads(warehouse, 1, distributor="uk")

    table = run("lead", "list").stdout.splitlines()
    assert table[0].split()[:4] == ["ID", "CREATED", "DISTRIBUTOR", "STATUS"]
    assert [line.split()[0] for line in table[1:5]] == ids[::-1]
    assert table[-1] == "Page 1/1 · 4 leads"

    page = json.loads(run("lead", "list", "--distributor", "msh", "--per-page", "2", "--page", "2", "--json").stdout)
    assert (page["total"], page["page"], page["pages"]) == (3, 2, 2)
    assert [i["meta_lead_id"] for i in page["items"]] == [ids[0]]
    found = json.loads(run("lead", "list", "--search", "0532 12", "--distributor", "uk", "--json").stdout)
    assert [i["meta_lead_id"] for i in found["items"]] == [ids[3]]
    assert "No leads match." in run("lead", "list", "--search", "nobody").stdout

    lead_id = ids[0]
    assert "assigned to ayse@msh.example (new → assigned)" in run("lead", "assign", lead_id, "ayse@msh.example").stdout
    out = run("lead", "--as", "ayse@msh.example", "log", lead_id, "call", "--outcome", "no_answer").stdout
    assert "assigned → contacted" in out
    run("lead", "log", lead_id, "email", "--body", "price list", "--as", "ayse@msh.example")
    run("lead", "note", lead_id, "prefers WhatsApp", "--as", "ayse@msh.example")
    out = run("lead", "status", lead_id, "converted", "--note", "booked", "--json").stdout
    assert json.loads(out)["status"] == "converted"

    shown = json.loads(run("lead", "show", lead_id, "--json").stdout)
    assert shown["status"] == "converted" and shown["assigned_to_email"] == "ayse@msh.example"
    assert [(t["kind"], t.get("actor_email") or t["actor"]) for t in shown["timeline"]] == [
        ("assignment", "cli"), ("status_change", "cli"), ("call", "ayse@msh.example"),
        ("status_change", "ayse@msh.example"), ("email", "ayse@msh.example"), ("note", "ayse@msh.example"),
        ("status_change", "cli")]
    assert shown["timeline"][4]["outcome"] == "sent"  # default outcome of an outbound email
    human = run("lead", "show", lead_id).stdout
    assert "Status        converted" in human and "“prefers WhatsApp”" in human and "contacted → converted" in human

    recent = json.loads(run("leads", "recent", "--limit", "2", "--json").stdout)
    assert [r["meta_lead_id"] for r in recent] == [ids[3], ids[2]]
    assert ids[1] in run("leads", "recent", "--distributor", "msh").stdout


def test_failures_exit_1_with_a_message_and_change_nothing(run, warehouse):
    run("users", "add", "Staff", "staff@msh.example", "--role", "staff")
    lead_id = insert_leads(warehouse, 1, status="converted")[0]
    before = snapshot(warehouse)
    cases = [
        (("lead", "status", lead_id, "new"), "'converted' is final"),
        (("lead", "status", "404", "contacted"), "Lead 404 not found"),
        (("lead", "assign", lead_id, "ghost@msh.example"), "No user 'ghost@msh.example'"),
        (("lead", "show", "404"), "Lead 404 not found"),
        (("lead", "log", lead_id, "call"), "--outcome is required for a call"),
        (("lead", "log", lead_id, "sms", "--outcome", "answered"), "Outcome of an SMS"),
        (("lead", "delete", lead_id, "--reason", "r", "--yes", "--as", "staff@msh.example"), "may not delete leads"),
        (("lead", "--as", "nobody@msh.example", "list"), "Unknown acting user"),
        (("lead", "bulk", "status", "rejected"), "Say which leads"),
    ]
    for args, message in cases:
        result = run(*args, ok=False)
        assert result.exit_code == 1, args
        assert message in result.stderr, (args, result.stderr)
    assert run("lead", "delete", lead_id, "--reason", "r", ok=False, input="n\n").exit_code == 1  # not confirmed
    assert snapshot(warehouse) == before


def test_delete_and_bulk(run, warehouse):
    ids = insert_leads(warehouse, 5)
    out = run("lead", "delete", ids[0], "--reason", "privacy request", "--yes").stdout
    assert f"Lead {ids[0]} deleted" in out
    assert lead_state(warehouse, ids[0]) is None
    assert "was deleted on a privacy request" in run("lead", "show", ids[0], ok=False).stderr

    bad = run("lead", "bulk", "status", "contacted", "--ids", f"{ids[1]},{ids[0]},999", ok=False)
    assert bad.exit_code == 1
    assert f"2 of the 3 leads not found: {ids[0]}, 999 ({ids[0]} deleted earlier" in bad.stderr
    assert "Nothing was changed." in bad.stderr
    assert lead_state(warehouse, ids[1])["status"] == "new"

    dry = json.loads(run("lead", "bulk", "status", "rejected", "--status", "new", "--dry-run", "--json").stdout)
    assert dry == {"action": "status", "count": 4, "ids": ids[1:], "dry_run": True}
    done = json.loads(run("lead", "bulk", "status", "contacted", "--ids", ",".join(ids[1:3]), "--json").stdout)
    assert done["count"] == 2 and not done["dry_run"]
    assert crm.stats(warehouse, actor="cli")["contacted"] == 2

    run("users", "add", "Ayşe", "ayse@msh.example", "--role", "staff", "--distributor", add_distributor_sql(warehouse))
    out = run("lead", "bulk", "assign", "ayse@msh.example", "--status", "new").stdout
    assert out.startswith("assign: changed 2 leads")
    assert crm.stats(warehouse, actor="cli")["assigned"] == 2

    refused = run("lead", "bulk", "delete", "--status", "assigned", "--reason", "spam", "--as", "ayse@msh.example",
                  ok=False)
    assert "may not delete leads" in refused.stderr
    aborted = run("lead", "bulk", "delete", "--status", "assigned", "--reason", "spam", ok=False, input="n\n")
    assert aborted.exit_code == 1 and "Erase 2 leads" in aborted.stderr
    assert crm.stats(warehouse, actor="cli")["total"] == 4
    confirmed = run("lead", "bulk", "delete", "--status", "assigned", "--reason", "spam", input="y\n")
    assert "delete: changed 2 leads" in confirmed.stdout
    assert crm.stats(warehouse, actor="cli")["total"] == 2


def test_registered_in_the_main_cli():
    """The main command lists these groups."""
    from leads_pipeline.cli import main

    assert {"lead", "leads", "users"} <= set(main.commands)
