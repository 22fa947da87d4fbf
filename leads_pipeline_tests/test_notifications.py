"""New-lead notifications against a real local SMTP server (aiosmtpd), on DuckDB and PostgreSQL."""

from __future__ import annotations

import socket
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy

import pytest
from aiosmtpd.controller import Controller

from leads_pipeline.lib.crm.notifications import SmtpSettings, enqueue_new_leads, send_pending


class Inbox:
    """aiosmtpd handler keeping every message; refuses recipients listed in ``refuse``."""

    def __init__(self):
        self.messages = []
        self.refuse = set()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.refuse:
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.messages.append((envelope.rcpt_tos[:], message_from_bytes(envelope.content, policy=policy.default)))
        return "250 Message accepted for delivery"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def smtp_server():
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield controller, inbox
    controller.stop(no_assert=True)


def settings_for(port: int) -> SmtpSettings:
    return SmtpSettings(host="127.0.0.1", port=port, starttls=False, from_address="leads@example.com",
                        timeout_seconds=5)


NOW = datetime.now(UTC)


def add_lead(conn, lead_id, distributor="d1", status="new", created=None, **cols):
    created = created or NOW - timedelta(minutes=5)
    row = {"meta_lead_id": lead_id, "distributor": distributor, "form_id": "f1", "created_time": created,
           "status": status, "first_seen_at": created, "updated_at": created, **cols}
    conn.execute(f"INSERT INTO leads ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})", list(row.values()))


@pytest.fixture
def leads(warehouse):
    with warehouse.transaction() as conn:
        conn.execute("INSERT INTO distributors (key, name, notify_email) VALUES "
                     "('d1', 'MSH Med Tour', 'sales@msh.example, boss@msh.example'), "
                     "('d2', 'Quiet One', NULL)")
        conn.execute("INSERT INTO distributor_forms (distributor, page_id, form_id, form_name) "
                     "VALUES ('d1', 'p1', 'f1', 'Hair transplant form')")
        add_lead(conn, "N1", full_name="Ayşe Yılmaz", email="ayse@example.com", phone="+905321234567")
        add_lead(conn, "N2", first_name="Can", last_name="Demir")
        add_lead(conn, "A1", status="assigned")  # not new
        add_lead(conn, "OLD", created=NOW - timedelta(days=30))  # backlog: not notified
        add_lead(conn, "Q1", distributor="d2")  # distributor without notify_email
    return warehouse


def outbox(wh):
    with wh.transaction() as conn:
        return {(r["meta_lead_id"], r["recipient"]): r for r in conn.query("SELECT * FROM notification_outbox")}


def test_enqueue_is_set_based_and_idempotent(leads):
    assert enqueue_new_leads(leads, console_url="https://crm.example/console") == 4
    assert enqueue_new_leads(leads) == 0
    rows = outbox(leads)
    assert set(rows) == {("N1", "sales@msh.example"), ("N1", "boss@msh.example"),
                         ("N2", "sales@msh.example"), ("N2", "boss@msh.example")}
    r = rows[("N1", "sales@msh.example")]
    assert (r["status"], r["attempts"], r["distributor"]) == ("pending", 0, "d1")
    assert r["subject"] == "New lead: Ayşe Yılmaz (Hair transplant form)"
    assert "https://crm.example/console/leads/N1" in r["body"] and "MSH Med Tour" in r["body"]
    # No more personal data than staff need: no email address or phone number of the lead.
    assert "ayse@example.com" not in r["body"] and "+905321234567" not in r["body"]
    assert rows[("N2", "boss@msh.example")]["subject"].startswith("New lead: Can Demir")


def test_send_per_lead(leads, smtp_server):
    controller, inbox = smtp_server
    enqueue_new_leads(leads)
    result = send_pending(leads, settings_for(controller.port))
    assert (result.sent, result.emails, result.failed, result.pending, result.errors) == (4, 4, 0, 0, [])
    assert sorted(tuple(rcpt) for rcpt, _ in inbox.messages) == sorted(
        [("sales@msh.example",), ("boss@msh.example",)] * 2)
    msg = next(m for rcpt, m in inbox.messages if "Ayşe" in m["Subject"])
    assert msg["From"] == "leads@example.com"
    assert "Hair transplant form" in msg.get_content()
    assert all(r["status"] == "sent" and r["sent_at"] and r["attempts"] == 1 for r in outbox(leads).values())
    # Nothing left: a second call sends nothing.
    assert send_pending(leads, settings_for(controller.port)).emails == 0
    assert len(inbox.messages) == 4


def test_digest_one_email_per_distributor_and_recipient(leads, smtp_server):
    controller, inbox = smtp_server
    enqueue_new_leads(leads)
    result = send_pending(leads, settings_for(controller.port), digest=True)
    assert (result.sent, result.emails) == (4, 2)
    subjects = {m["Subject"] for _, m in inbox.messages}
    assert subjects == {"2 new leads for MSH Med Tour"}
    body = inbox.messages[0][1].get_content()
    assert "Ayşe Yılmaz" in body and "Can Demir" in body


def test_server_down_is_recorded_then_retried(leads):
    port = free_port()  # nothing listens here yet
    enqueue_new_leads(leads)
    down = send_pending(leads, settings_for(port))  # must not raise
    assert (down.sent, down.failed, down.pending) == (0, 4, 4)
    assert down.errors and "ConnectionRefusedError" in down.errors[0]
    rows = outbox(leads).values()
    assert all(r["status"] == "pending" and r["attempts"] == 1 and r["last_error"] for r in rows)

    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        up = send_pending(leads, settings_for(port))
    finally:
        controller.stop(no_assert=True)
    assert (up.sent, up.failed, up.pending, up.errors) == (4, 0, 0, [])
    assert len(inbox.messages) == 4
    rows = outbox(leads).values()
    assert all(r["status"] == "sent" and r["attempts"] == 2 and r["last_error"] is None for r in rows)


def test_refused_recipient_fails_alone_and_gives_up(leads, smtp_server):
    controller, inbox = smtp_server
    inbox.refuse.add("boss@msh.example")
    enqueue_new_leads(leads)
    first = send_pending(leads, settings_for(controller.port), max_attempts=2)
    assert (first.sent, first.failed, first.gave_up, first.pending) == (2, 2, 0, 2)
    assert "550" in outbox(leads)[("N1", "boss@msh.example")]["last_error"]
    second = send_pending(leads, settings_for(controller.port), max_attempts=2)
    assert (second.sent, second.failed, second.gave_up, second.pending) == (0, 2, 2, 0)
    rows = outbox(leads)
    assert rows[("N1", "boss@msh.example")]["status"] == "failed"
    assert rows[("N1", "boss@msh.example")]["attempts"] == 2
    # Given up: not retried any more.
    assert send_pending(leads, settings_for(controller.port), max_attempts=2).emails == 0
    assert len(inbox.messages) == 2


def test_no_smtp_host_keeps_rows_queued(leads):
    enqueue_new_leads(leads)
    result = send_pending(leads, SmtpSettings(host=""))
    assert result.pending == 4 and result.sent == 0 and "LEADS_SMTP_HOST" in result.message
    assert all(r["attempts"] == 0 for r in outbox(leads).values())


def test_broken_warehouse_never_raises(tmp_path):
    from leads_pipeline.lib.warehouse import Warehouse

    wh = Warehouse(f"duckdb:///{tmp_path / 'unmigrated.duckdb'}")  # no outbox table
    result = send_pending(wh, SmtpSettings(host="127.0.0.1", port=1))
    assert not result.success and result.errors


def test_settings_from_environment(monkeypatch):
    monkeypatch.setenv("LEADS_SMTP_HOST", "mail.example")
    monkeypatch.setenv("LEADS_SMTP_PORT", "2525")
    monkeypatch.setenv("LEADS_SMTP_USER", "bot")
    monkeypatch.setenv("LEADS_SMTP_PASSWORD", "s3cret")
    monkeypatch.setenv("LEADS_SMTP_FROM", "leads@msh.example")
    monkeypatch.setenv("LEADS_SMTP_STARTTLS", "false")
    s = SmtpSettings()
    assert (s.host, s.port, s.user, s.from_address, s.starttls) == ("mail.example", 2525, "bot",
                                                                   "leads@msh.example", False)
    assert s.password.get_secret_value() == "s3cret" and "s3cret" not in repr(s)
