"""The distributor registry (table ``distributors``): who we sync, with which token, pages, forms and interval.

A distributor's ``key`` is a slug of its name (``MSH Med Tour`` → ``msh-med-tour``): lowercase ASCII letters,
digits and dashes, so it is safe as a Dagster partition key, a CLI argument and a URL segment. Keys are immutable
and never reused — not even after a removal, because Dagster keeps a removed partition's history.

Access tokens are stored only encrypted (:class:`~leads_pipeline.lib.security.TokenCipher`, ``LEADS_SECRET_KEY``),
next to a fingerprint that identifies them without revealing them. :class:`Distributor` never holds the token; only
:func:`access_token` decrypts it, for the Graph client. Every change is appended to ``audit_log`` (before/after as
JSON, never with the token; token reading and re-encryption live in :mod:`.tokens`).

Adding or changing a distributor's ``--form-id`` / ``--page-id`` and removing it change which forms it owns
(:mod:`.ownership`) in the same transaction; a conflicting explicit claim refuses the whole change and names the
other distributor.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from leads_pipeline.lib.security import TokenCipher, fingerprint
from leads_pipeline.lib.warehouse import Conn, Warehouse, retry_conflicts
from leads_pipeline.lib.webhooks import inbox as webhook_inbox

from . import ownership
from .errors import DistributorError, DistributorNotFound, DuplicateDistributor
from .ownership import FormClaimConflict
from .tokens import access_token, rotate_tokens
from .validation import (
    KEY_RE,
    MAX_KEY_LENGTH,
    clean_email,
    clean_ids,
    clean_interval,
    clean_key,
    clean_name,
    clean_region,
    clean_token,
    json_ids,
    slugify,
)

log = logging.getLogger(__name__)

__all__ = [
    "KEY_RE",
    "MAX_KEY_LENGTH",
    "Distributor",
    "DistributorError",
    "DistributorNotFound",
    "DuplicateDistributor",
    "FormClaimConflict",
    "access_token",
    "add",
    "due_for_sync",
    "get",
    "list_all",
    "record_forms",
    "remove",
    "rotate_tokens",
    "slugify",
    "update",
]

_COLUMNS = ("key, name, page_ids, form_ids, token_fingerprint, token_encrypted IS NOT NULL AS has_token, "
            "default_region, sync_interval_minutes, enabled, notify_email, created_at, updated_at")


@dataclass(frozen=True)
class Distributor:
    """A distributor's configuration — without its token (only whether it has one, and its fingerprint)."""

    key: str
    name: str
    page_ids: tuple[str, ...]
    form_ids: tuple[str, ...]
    default_region: str
    sync_interval_minutes: int
    enabled: bool
    notify_email: str | None
    token_fingerprint: str | None
    has_token: bool
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @property
    def region(self) -> str:
        return self.default_region

    @property
    def interval(self) -> int:
        return self.sync_interval_minutes

    def to_dict(self) -> dict[str, Any]:
        """What the CLI and the API print (JSON-ready; never the token)."""
        return {
            "key": self.key,
            "name": self.name,
            "page_ids": list(self.page_ids),
            "form_ids": list(self.form_ids),
            "region": self.default_region,
            "interval_minutes": self.sync_interval_minutes,
            "enabled": self.enabled,
            "notify_email": self.notify_email,
            "has_token": self.has_token,
            "token_fingerprint": self.token_fingerprint,
            "created_at": self.created_at.isoformat() if self.created_at else None,
            "updated_at": self.updated_at.isoformat() if self.updated_at else None,
        }


# ----------------------------------------------------------------------------------------------------------------------
# Reading
# ----------------------------------------------------------------------------------------------------------------------


def _from_row(row: Mapping[str, Any]) -> Distributor:
    return Distributor(
        key=row["key"],
        name=row["name"],
        page_ids=json_ids(row["page_ids"]),
        form_ids=json_ids(row["form_ids"]),
        default_region=row["default_region"],
        sync_interval_minutes=int(row["sync_interval_minutes"]),
        enabled=bool(row["enabled"]),
        notify_email=row["notify_email"],
        token_fingerprint=row["token_fingerprint"],
        has_token=bool(row["has_token"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def _get(conn: Conn, key: str) -> Distributor:
    row = conn.query_one(f"SELECT {_COLUMNS} FROM distributors WHERE key = ?", [key])
    if row is None:
        raise DistributorNotFound(
            f"No distributor with key {key!r}: see `leads-pipeline distributors list` for the keys."
        )
    return _from_row(row)


def get(wh: Warehouse, key: str) -> Distributor:
    """The distributor with that key (:class:`DistributorNotFound` otherwise)."""
    with wh.transaction(read_only=True) as conn:
        return _get(conn, key)


def list_all(wh: Warehouse) -> list[Distributor]:
    """Every distributor, oldest first."""
    with wh.transaction(read_only=True) as conn:
        return [_from_row(r) for r in conn.query(f"SELECT {_COLUMNS} FROM distributors ORDER BY created_at, key")]


# ----------------------------------------------------------------------------------------------------------------------
# Changes (each with an audit_log entry)
# ----------------------------------------------------------------------------------------------------------------------


def _audit(conn: Conn, actor: str, action: str, key: str, before: Any, after: Any) -> None:
    conn.execute(
        "INSERT INTO audit_log (occurred_at, actor, action, entity_type, entity_id, before, after) "
        "VALUES (CURRENT_TIMESTAMP, ?, ?, 'distributor', ?, ?, ?)",
        [actor or "system", action, key,
         None if before is None else json.dumps(before, default=str),
         None if after is None else json.dumps(after, default=str)],
    )


def _check_name_free(conn: Conn, name: str, except_key: str | None = None) -> None:
    row = conn.query_one(
        "SELECT key FROM distributors WHERE lower(name) = lower(?) AND key <> ?", [name, except_key or ""]
    )
    if row is not None:
        raise DuplicateDistributor(
            f"A distributor named {name!r} exists already (key {row['key']}): choose another name, or change "
            f"that one with `leads-pipeline distributors update {row['key']}`."
        )


def _key_used(conn: Conn, key: str) -> bool:
    """Whether a distributor has (or had: see audit_log) this key; keys are never reused."""
    return bool(
        conn.scalar("SELECT count(*) FROM distributors WHERE key = ?", [key])
        or conn.scalar(
            "SELECT count(*) FROM audit_log WHERE entity_type = 'distributor' AND entity_id = ?", [key]
        )
    )


def add(
    wh: Warehouse,
    name: str,
    token: str,
    *,
    page_ids: Iterable[str] = (),
    form_ids: Iterable[str] = (),
    region: str = "TR",
    interval: int = 5,
    notify_email: str | None = None,
    key: str | None = None,
    enabled: bool = True,
    actor: str = "system",
    cipher: TokenCipher | None = None,
) -> Distributor:
    """Register a distributor; its key is a slug of the name (``-2``, ``-3``… when taken) unless ``key`` is given."""
    name = clean_name(name)
    token = clean_token(token)
    pages = clean_ids(page_ids, "Page id")
    forms = clean_ids(form_ids, "Form id")
    region_code = clean_region(region)
    minutes = clean_interval(interval)
    email = clean_email(notify_email)
    explicit_key = clean_key(key) if key is not None else None
    encrypted = (cipher or TokenCipher()).encrypt(token)

    def run() -> Distributor:
        with wh.transaction() as conn:
            _check_name_free(conn, name)
            if explicit_key is not None:
                if _key_used(conn, explicit_key):
                    raise DuplicateDistributor(
                        f"Key {explicit_key!r} is (or was) used by another distributor; keys are never reused. "
                        "Choose another key, or leave it out to derive one from the name."
                    )
                new_key = explicit_key
            else:
                base = slugify(name)
                new_key, n = base, 1
                while _key_used(conn, new_key):
                    n += 1
                    suffix = f"-{n}"
                    new_key = base[: MAX_KEY_LENGTH - len(suffix)].rstrip("-") + suffix
            conn.execute(
                "INSERT INTO distributors (key, name, page_ids, form_ids, token_encrypted, token_fingerprint, "
                "default_region, sync_interval_minutes, enabled, notify_email, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)",
                [new_key, name, json.dumps(list(pages)), json.dumps(list(forms)), encrypted, fingerprint(token),
                 region_code, minutes, bool(enabled), email],
            )
            created = _get(conn, new_key)
            _audit(conn, actor, "distributor.add", new_key, None, created.to_dict())
            _claim_configured(conn, new_key, actor)
        return created

    created = retry_conflicts(run, what="distributors add")
    _reroute_inbox(wh)
    return created


_UPDATABLE = {
    "name": "name",
    "token": "token",
    "page_ids": "page_ids",
    "form_ids": "form_ids",
    "region": "default_region",
    "default_region": "default_region",
    "interval": "sync_interval_minutes",
    "sync_interval_minutes": "sync_interval_minutes",
    "notify_email": "notify_email",
    "enabled": "enabled",
}


def update(wh: Warehouse, key: str, *, actor: str = "system", cipher: TokenCipher | None = None,
           **changes: Any) -> Distributor:
    """Change a distributor: ``name``, ``token`` (re-encrypted), ``page_ids``, ``form_ids``, ``region``,
    ``interval``, ``notify_email`` (None/"" clears it), ``enabled``. The key never changes."""
    unknown = sorted(set(changes) - set(_UPDATABLE))
    if unknown:
        raise DistributorError(
            f"Cannot change {', '.join(unknown)} of a distributor; changeable: "
            "name, token, page_ids, form_ids, region, interval, notify_email, enabled."
        )
    columns: dict[str, Any] = {}
    new_token: str | None = None
    for arg, value in changes.items():
        column = _UPDATABLE[arg]
        if column == "name":
            columns["name"] = clean_name(value)
        elif column == "token":
            new_token = clean_token(value)
        elif column == "page_ids":
            columns["page_ids"] = json.dumps(list(clean_ids(value, "Page id")))
        elif column == "form_ids":
            columns["form_ids"] = json.dumps(list(clean_ids(value, "Form id")))
        elif column == "default_region":
            columns["default_region"] = clean_region(value)
        elif column == "sync_interval_minutes":
            columns["sync_interval_minutes"] = clean_interval(value)
        elif column == "notify_email":
            columns["notify_email"] = clean_email(value)
        elif column == "enabled":
            if not isinstance(value, bool):
                raise DistributorError("enabled must be true or false.")
            columns["enabled"] = value
    if new_token is not None:
        columns["token_encrypted"] = (cipher or TokenCipher()).encrypt(new_token)
        columns["token_fingerprint"] = fingerprint(new_token)
    ownership_changes = "page_ids" in columns or "form_ids" in columns

    def run() -> Distributor:
        with wh.transaction() as conn:
            before = _get(conn, key)
            if "name" in columns:
                _check_name_free(conn, columns["name"], except_key=key)
            if columns:
                assignments = ", ".join(f"{c} = ?" for c in columns)
                conn.execute(
                    f"UPDATE distributors SET {assignments}, updated_at = CURRENT_TIMESTAMP WHERE key = ?",
                    [*columns.values(), key],
                )
            after = _get(conn, key)
            before_d, after_d = before.to_dict(), after.to_dict()
            before_d.pop("updated_at")
            after_d.pop("updated_at")
            if before_d != after_d or (new_token is not None):
                _audit(conn, actor, "distributor.update", key, before.to_dict(), after.to_dict())
            if ownership_changes:
                _claim_configured(conn, key, actor)
        return after

    after = retry_conflicts(run, what="distributors update")
    if ownership_changes:
        _reroute_inbox(wh)
    return after


def remove(wh: Warehouse, key: str, *, actor: str = "system") -> Distributor:
    """Delete a distributor's configuration, discovered forms and cursors, and release its forms (each goes to
    the oldest other distributor that discovered it, if any). Its leads and history stay under its key."""

    def run() -> Distributor:
        with wh.transaction() as conn:
            before = _get(conn, key)
            conn.execute("DELETE FROM distributor_forms WHERE distributor = ?", [key])
            conn.execute("DELETE FROM sync_cursors WHERE distributor = ?", [key])
            conn.execute("DELETE FROM distributors WHERE key = ?", [key])
            ownership.release(conn, key)
            _audit(conn, actor, "distributor.remove", key, before.to_dict(), None)
        return before

    removed = retry_conflicts(run, what="distributors remove")
    _reroute_inbox(wh)
    return removed


def _claim_configured(conn: Conn, key: str, actor: str) -> None:
    """Make the distributor's form claims follow its configuration; a form taken over from a distributor that had
    only discovered it is audited on that distributor, whose staff would otherwise see its leads stop arriving."""
    taken = ownership.follow_configuration(conn, key)
    by_owner: dict[str, list[str]] = {}
    for form_id, owner in sorted(taken.items()):
        by_owner.setdefault(owner, []).append(form_id)
    for owner, form_ids in by_owner.items():
        _audit(conn, actor, "distributor.forms_taken_over", owner, {"forms": form_ids},
               {"forms": form_ids, "claimed_by": key})


def _reroute_inbox(wh: Warehouse) -> None:
    """Route the webhook changes that waited for an owner, now that form ownership changed.

    Outside the change's transaction, and never failing it: the change is committed, and the inbox sensor retries
    the routing on its own schedule.
    """
    try:
        webhook_inbox.reroute_unrouted(wh)
    except Exception as exc:  # noqa: BLE001 - the distributor change stands; the sensor re-routes later
        log.warning("webhook inbox: re-routing after a form ownership change failed (%s); the inbox sensor will "
                    "retry it", type(exc).__name__)


# ----------------------------------------------------------------------------------------------------------------------
# Used by the sync
# ----------------------------------------------------------------------------------------------------------------------


def record_forms(wh: Warehouse, key: str, forms: Iterable[Mapping[str, Any]]) -> int:
    """Record the forms discovery found and claim the unowned ones (:func:`ownership.claim_discovered` in its own
    transaction, then re-route waiting webhook changes); returns how many distinct forms were given.

    Kept for callers that do not run discovery inside their own transaction yet; new code calls
    :func:`ownership.claim_discovered`.
    """
    forms = [dict(f) for f in forms]
    with wh.transaction() as conn:
        ownership.claim_discovered(conn, key, forms)
    _reroute_inbox(wh)
    return len({str(f["id"]) for f in forms if f.get("id") is not None and str(f["id"]) != ""})


def due_for_sync(wh: Warehouse, now: datetime) -> list[str]:
    """Keys of enabled distributors whose last finished sync (successful or failed) started at least their
    interval ago, or that never finished one. Runs still going (no result yet) do not count."""
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    with wh.transaction(read_only=True) as conn:
        rows = conn.query(
            "SELECT d.key, d.sync_interval_minutes, r.last_started FROM distributors d "
            "LEFT JOIN (SELECT distributor, max(started_at) AS last_started FROM sync_runs "
            "WHERE success IS NOT NULL GROUP BY distributor) r ON r.distributor = d.key "
            "WHERE d.enabled ORDER BY d.key"
        )
    due = []
    for row in rows:
        last = row["last_started"]
        if last is not None and last.tzinfo is None:
            last = last.replace(tzinfo=UTC)
        if last is None or now - last >= timedelta(minutes=int(row["sync_interval_minutes"])):
            due.append(row["key"])
    return due
