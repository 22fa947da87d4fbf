"""New-lead notifications by email, through a durable outbox.

1. ``enqueue_new_leads(wh)`` adds one ``notification_outbox`` row per new lead and recipient, for distributors with a
   ``notify_email`` (one address, or several separated by commas/semicolons). Set-based and idempotent: a lead
   already in the outbox is never queued again (unique per lead + recipient). Only leads created within
   ``max_age_hours`` are queued, so switching notifications on for a distributor with a backlog, or a historical
   import, does not flood anyone's inbox.
2. ``send_pending(wh, smtp)`` delivers the queued rows, one email per lead or (``digest=True``) one per distributor
   and recipient. Every outcome is written back (``attempts``, ``last_error``, ``sent_at``); a failed row stays
   ``pending`` and is retried by the next call until ``max_attempts``, then becomes ``failed``. It never raises: any
   problem (SMTP down, warehouse busy) ends up in the returned ``SendResult``. SMTP runs outside any warehouse
   transaction, so a slow mail server never holds the DuckDB writer lock.

Run ``send_pending`` from one process at a time (a schedule, or the CLI): two concurrent senders could both send a
row before either records it.

The email carries what staff need to pick the lead up — name, form, created time and a link to the console
(``LEADS_CONSOLE_URL``) — and no email address, phone number or answers.

The same outbox carries operator notices (``kind``): a distributor's token/permission failure (once per failure
episode, :mod:`leads_pipeline.lib.distributors.health`) and the daily speed-to-lead digest
(:mod:`leads_pipeline.lib.distributors.speed_to_lead`). They are queued with :func:`enqueue_notice` under a key of
their own in ``meta_lead_id`` (``sync-failure:…``, ``speed-to-lead:…``; never a lead id), so the unique
``(meta_lead_id, recipient)`` sends each notice once however often it is queued, and they are always sent alone,
never folded into a digest of new leads.

Settings (environment variables, or ``.env``): ``LEADS_SMTP_HOST`` (empty: nothing is sent, rows stay queued),
``LEADS_SMTP_PORT`` (587; 465 means implicit TLS), ``LEADS_SMTP_USER``, ``LEADS_SMTP_PASSWORD`` (secret),
``LEADS_SMTP_FROM``, ``LEADS_SMTP_STARTTLS`` (true), ``LEADS_SMTP_TIMEOUT_SECONDS`` (20), ``LEADS_CONSOLE_URL``.
"""

from __future__ import annotations

import logging
import re
import smtplib
import ssl
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from leads_pipeline.lib.warehouse import Warehouse

log = logging.getLogger(__name__)

MAX_ERROR_LENGTH = 500


class SmtpSettings(BaseSettings):
    """The mail server, from ``LEADS_SMTP_*``. The password is a ``SecretStr``: printing the settings hides it."""

    model_config = SettingsConfigDict(env_prefix="LEADS_SMTP_", env_file=".env", extra="ignore", populate_by_name=True)

    host: str = Field("", description="SMTP server; empty disables sending (rows stay queued).")
    port: int = Field(587, description="587 (submission, STARTTLS) by default; 465 means implicit TLS.")
    user: str | None = Field(None, description="Login user; no login when unset.")
    password: SecretStr | None = Field(None, description="Login password.")
    from_address: str = Field(
        "leads@localhost",
        validation_alias=AliasChoices("LEADS_SMTP_FROM", "from_address"),
        description="The From: address.",
    )
    starttls: bool = Field(True, description="Upgrade the connection with STARTTLS (fails if the server can't).")
    timeout_seconds: float = Field(20.0, description="Connect and command timeout.")


class ConsoleSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LEADS_", env_file=".env", extra="ignore")

    console_url: str = Field("http://localhost:8000/console",
                             description="Base URL of the staff console (its /console path included), for email links.")


@dataclass
class SendResult:
    """``sent``: outbox rows delivered; ``emails``: messages handed to the server (a digest covers several rows);
    ``failed``: rows whose attempt failed now (retried later unless ``gave_up``); ``gave_up``: rows now ``failed``."""

    sent: int = 0
    emails: int = 0
    failed: int = 0
    gave_up: int = 0
    pending: int = 0
    errors: list[str] = field(default_factory=list)
    message: str = ""

    @property
    def success(self) -> bool:
        return not self.errors

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "success": self.success}


# ---------------------------------------------------------------------------------------------------- enqueue

_CANDIDATES_SQL = """
SELECT l.meta_lead_id, l.distributor, d.name AS distributor_name, d.notify_email,
       l.full_name, l.first_name, l.last_name, l.form_id, f.form_name, l.created_time
FROM leads l
JOIN distributors d ON d.key = l.distributor
LEFT JOIN distributor_forms f ON f.distributor = l.distributor AND f.form_id = l.form_id
WHERE d.notify_email IS NOT NULL AND trim(d.notify_email) <> ''
  AND l.status = 'new'
  AND l.created_time >= ?
  AND NOT EXISTS (SELECT 1 FROM notification_outbox o WHERE o.meta_lead_id = l.meta_lead_id)"""


#: ``notification_outbox.kind`` of a new-lead email; every other kind is an operator notice, sent on its own.
NEW_LEAD = "new_lead"


def recipients(notify_email: str | None) -> list[str]:
    """The addresses of a ``notify_email`` (one, or several separated by commas, semicolons or spaces)."""
    return [a for a in re.split(r"[,;\s]+", (notify_email or "").strip()) if "@" in a]


_recipients = recipients


def _lead_name(r: dict[str, Any]) -> str:
    name = (r.get("full_name") or " ".join(p for p in (r.get("first_name"), r.get("last_name")) if p)).strip()
    return name or "(no name given)"


def _as_utc(ts: Any) -> str:
    if isinstance(ts, datetime):
        ts = ts.astimezone(UTC) if ts.tzinfo else ts.replace(tzinfo=UTC)
        return ts.strftime("%Y-%m-%d %H:%M UTC")
    return str(ts)


def compose(r: dict[str, Any], console_url: str) -> tuple[str, str]:
    """Subject and body of one lead's notification (no contact details, no answers)."""
    name = _lead_name(r)
    form = r.get("form_name") or (f"form {r['form_id']}" if r.get("form_id") else "unknown form")
    link = f"{console_url.rstrip('/')}/leads/{r['meta_lead_id']}"
    subject = f"New lead: {name} ({form})"
    body = (
        f"A new lead arrived for {r.get('distributor_name') or r['distributor']}.\n\n"
        f"Name:    {name}\n"
        f"Form:    {form}\n"
        f"Created: {_as_utc(r['created_time'])}\n"
        f"Open:    {link}\n\n"
        "Contact details are in the console; they are not sent by email.\n"
    )
    return subject, body


def enqueue_new_leads(wh: Warehouse, *, max_age_hours: float = 72.0, console_url: str | None = None) -> int:
    """Queue one notification per new lead (status ``new``, created within ``max_age_hours``) and recipient of
    its distributor's ``notify_email``; returns the rows added (0 when everything is already queued)."""
    base = console_url or ConsoleSettings().console_url
    since = datetime.now(UTC) - timedelta(hours=max_age_hours)
    with wh.transaction() as conn:
        candidates = conn.query(_CANDIDATES_SQL, [since])
        rows = []
        for r in candidates:
            subject, body = compose(r, base)
            for recipient in _recipients(r["notify_email"]):
                rows.append((r["meta_lead_id"], r["distributor"], recipient, subject, body))
        if not rows:
            return 0
        conn.stage(
            "outbox_stage",
            {"meta_lead_id": "TEXT", "distributor": "TEXT", "recipient": "TEXT", "subject": "TEXT", "body": "TEXT"},
            rows,
        )
        before = conn.scalar("SELECT count(*) FROM notification_outbox")
        conn.execute(
            """INSERT INTO notification_outbox (meta_lead_id, distributor, recipient, subject, body, status, attempts,
                                                created_at)
               SELECT meta_lead_id, distributor, recipient, subject, body, 'pending', 0, CURRENT_TIMESTAMP
               FROM outbox_stage
               ON CONFLICT (meta_lead_id, recipient) DO NOTHING"""
        )
        added = int(conn.scalar("SELECT count(*) FROM notification_outbox")) - int(before)
    log.info("queued %d new-lead notifications", added)
    return added


def enqueue_notice(conn: Any, *, key: str, kind: str, distributor: str, notify_email: str | None, subject: str,
                   body: str) -> int:
    """Queue an operator notice (``kind`` other than ``new_lead``) to each address of ``notify_email``, in the
    caller's transaction; ``key`` makes it once-only (a notice already queued under that key to an address is not
    queued again). Returns the rows added. The body must hold no contact data of any lead."""
    if kind == NEW_LEAD:
        raise ValueError("enqueue_notice is for operator notices; new-lead emails come from enqueue_new_leads")
    added = 0
    for recipient in recipients(notify_email):
        added += max(0, int(conn.execute(
            "INSERT INTO notification_outbox (meta_lead_id, distributor, recipient, subject, body, status, attempts, "
            "created_at, kind) VALUES (?, ?, ?, ?, ?, 'pending', 0, CURRENT_TIMESTAMP, ?) "
            "ON CONFLICT (meta_lead_id, recipient) DO NOTHING",
            [key, distributor, recipient, subject, body, kind],
        ) or 0))
    return added


# ------------------------------------------------------------------------------------------------------- send


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:MAX_ERROR_LENGTH]


def _connect(smtp: SmtpSettings) -> smtplib.SMTP:
    if smtp.port == 465:
        client: smtplib.SMTP = smtplib.SMTP_SSL(
            smtp.host, smtp.port, timeout=smtp.timeout_seconds, context=ssl.create_default_context()
        )
    else:
        client = smtplib.SMTP(smtp.host, smtp.port, timeout=smtp.timeout_seconds)
        if smtp.starttls:
            client.starttls(context=ssl.create_default_context())
    try:
        if smtp.user:
            client.login(smtp.user, smtp.password.get_secret_value() if smtp.password else "")
    except BaseException:
        client.close()
        raise
    return client


def _message(smtp: SmtpSettings, recipient: str, subject: str, body: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = smtp.from_address
    msg["To"] = recipient
    msg["Subject"] = subject
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = make_msgid(domain=smtp.from_address.rpartition("@")[2] or None)
    msg.set_content(body)
    return msg


def _digest(rows: list[dict[str, Any]]) -> tuple[str, str]:
    name = rows[0].get("distributor_name") or rows[0]["distributor"]
    subject = f"{len(rows)} new lead{'s' if len(rows) != 1 else ''} for {name}"
    parts = [f"{i}. {r['subject']}\n\n{r['body']}" for i, r in enumerate(rows, start=1)]
    return subject, f"{subject}.\n\n" + "\n----------------------------------------\n\n".join(parts)


def _deliver(smtp: SmtpSettings, rows: list[dict[str, Any]], digest: bool, result: SendResult) -> dict[int, str | None]:
    """Send; returns outbox id → error text (``None`` when delivered). Never raises."""
    outcomes: dict[int, str | None] = {}
    try:
        client = _connect(smtp)
    except Exception as exc:  # noqa: BLE001 - recorded on every row, retried next time
        err = _describe(exc)
        result.errors.append(f"SMTP {smtp.host}:{smtp.port}: {err}")
        return {r["id"]: err for r in rows}
    try:
        alone = [r for r in rows if not digest or r.get("kind", NEW_LEAD) != NEW_LEAD]  # notices: never digested
        batches = [(r["recipient"], r["subject"], r["body"], [r]) for r in alone]
        if digest:
            groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
            for r in rows:
                if r.get("kind", NEW_LEAD) == NEW_LEAD:
                    groups[(r["distributor"], r["recipient"])].append(r)
            batches += [(g[0]["recipient"], *_digest(g), g) for g in groups.values()]
        for recipient, subject, body, members in batches:
            try:
                client.send_message(_message(smtp, recipient, subject, body))
                result.emails += 1
                err = None
            except Exception as exc:  # noqa: BLE001 - one refused message must not stop the others
                err = _describe(exc)
            for r in members:
                outcomes[r["id"]] = err
    finally:
        try:
            client.quit()
        except Exception:  # noqa: BLE001 - the server may already be gone
            client.close()
    return outcomes


def send_pending(
    wh: Warehouse,
    smtp: SmtpSettings | None = None,
    *,
    digest: bool = False,
    max_attempts: int = 5,
    limit: int = 1000,
) -> SendResult:
    """Deliver up to ``limit`` pending notifications (oldest first); never raises. ``smtp`` defaults to the
    ``LEADS_SMTP_*`` settings."""
    result = SendResult()
    try:
        smtp = smtp or SmtpSettings()
        with wh.transaction() as conn:
            # Rows that already used their attempts (e.g. max_attempts was lowered) are given up on.
            result.gave_up += max(
                0,
                conn.execute(
                    "UPDATE notification_outbox SET status = 'failed' WHERE status = 'pending' AND attempts >= ?",
                    [max_attempts],
                ),
            )
            rows = conn.query(
                """SELECT o.id, o.meta_lead_id, o.distributor, d.name AS distributor_name, o.recipient, o.subject,
                          o.body, o.attempts, o.kind
                   FROM notification_outbox o LEFT JOIN distributors d ON d.key = o.distributor
                   WHERE o.status = 'pending'
                   ORDER BY o.id
                   LIMIT ?""",
                [limit],
            )
        if not rows:
            return result
        if not smtp.host:
            result.pending = len(rows)
            result.message = "LEADS_SMTP_HOST is not set: notifications stay queued until a mail server is configured."
            return result

        outcomes = _deliver(smtp, rows, digest, result)

        with wh.transaction() as conn:
            conn.stage("outbox_outcomes", {"id": "BIGINT", "error": "TEXT"}, list(outcomes.items()))
            conn.execute(
                """UPDATE notification_outbox SET
                       attempts = notification_outbox.attempts + 1,
                       last_attempt_at = CURRENT_TIMESTAMP,
                       last_error = s.error,
                       status = CASE WHEN s.error IS NULL THEN 'sent'
                                     WHEN notification_outbox.attempts + 1 >= ? THEN 'failed'
                                     ELSE 'pending' END,
                       sent_at = CASE WHEN s.error IS NULL THEN CURRENT_TIMESTAMP ELSE notification_outbox.sent_at END
                   FROM outbox_outcomes s
                   WHERE notification_outbox.id = s.id""",
                [max_attempts],
            )
            result.pending = int(conn.scalar("SELECT count(*) FROM notification_outbox WHERE status = 'pending'"))
        attempts = {r["id"]: r["attempts"] for r in rows}
        for oid, err in outcomes.items():
            if err is None:
                result.sent += 1
            else:
                result.failed += 1
                if attempts[oid] + 1 >= max_attempts:
                    result.gave_up += 1
        distinct = sorted({e for e in outcomes.values() if e})
        if distinct and not result.errors:
            result.errors.extend(distinct[:5])
        result.message = f"{result.sent} sent, {result.failed} failed, {result.pending} pending"
    except Exception as exc:  # noqa: BLE001 - notifications never break the caller (ingestion, a schedule)
        result.errors.append(_describe(exc))
        result.message = "sending notifications failed; they stay queued and are retried next time"
    if result.errors:
        log.warning("notifications: %s (%s)", result.message, "; ".join(result.errors))
    return result


def notify_new_leads(wh: Warehouse, smtp: SmtpSettings | None = None, *, digest: bool = False) -> SendResult:
    """Queue the new leads, then send what is pending; for a sync or a schedule to call. Never raises."""
    try:
        enqueue_new_leads(wh)
    except Exception as exc:  # noqa: BLE001
        result = SendResult(errors=[_describe(exc)], message="queueing notifications failed")
        log.warning("notifications: %s", result.errors[0])
        return result
    return send_pending(wh, smtp, digest=digest)
