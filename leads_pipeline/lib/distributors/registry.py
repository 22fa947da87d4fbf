"""The distributor registry (table ``distributors``): who we sync, with which token, pages, forms and interval.

A distributor's ``key`` is a slug of its name (``MSH Med Tour`` → ``msh-med-tour``): lowercase ASCII letters,
digits and dashes, so it is safe as a Dagster partition key, a CLI argument and a URL segment. Keys are immutable
and never reused — not even after a removal, because Dagster keeps a removed partition's history.

Access tokens are stored only encrypted (:class:`~leads_pipeline.lib.security.TokenCipher`, ``LEADS_SECRET_KEY``),
next to a fingerprint that identifies them without revealing them. :class:`Distributor` never holds the token; only
:func:`access_token` decrypts it, for the Graph client. Every change is appended to ``audit_log`` (before/after as
JSON, never with the token).
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import phonenumbers

from leads_pipeline.lib.ingest.parse import normalise_email
from leads_pipeline.lib.security import TokenCipher, TokenDecryptError, fingerprint
from leads_pipeline.lib.warehouse import Conn, Warehouse

__all__ = [
    "Distributor",
    "DistributorError",
    "DistributorNotFound",
    "DuplicateDistributor",
    "add",
    "get",
    "list_all",
    "update",
    "remove",
    "access_token",
    "due_for_sync",
    "record_forms",
    "rotate_tokens",
    "slugify",
]

KEY_RE = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
MAX_KEY_LENGTH = 48
_ID_RE = re.compile(r"[0-9]+")
# Letters NFKD does not fold to ASCII by itself.
_FOLD = str.maketrans({"ı": "i", "İ": "I", "ß": "ss", "ø": "o", "Ø": "O", "æ": "ae", "Æ": "AE", "œ": "oe",
                       "Œ": "OE", "đ": "d", "Đ": "D", "ł": "l", "Ł": "L", "þ": "th", "Þ": "TH", "&": " and "})

_COLUMNS = ("key, name, page_ids, form_ids, token_fingerprint, token_encrypted IS NOT NULL AS has_token, "
            "default_region, sync_interval_minutes, enabled, notify_email, created_at, updated_at")


class DistributorError(ValueError):
    """A distributor operation that cannot be done as asked; the message says what to change."""


class DistributorNotFound(DistributorError):
    """No distributor has that key."""


class DuplicateDistributor(DistributorError):
    """A distributor with that name (or key) exists already."""


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
# Validation
# ----------------------------------------------------------------------------------------------------------------------


def slugify(name: str) -> str:
    """``MSH Med Tour`` → ``msh-med-tour``; ``Işık Sağlık`` → ``isik-saglik`` (ASCII letters, digits, dashes)."""
    folded = unicodedata.normalize("NFKD", name.translate(_FOLD))
    ascii_text = folded.encode("ascii", "ignore").decode().lower()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text).strip("-")
    slug = slug[:MAX_KEY_LENGTH].rstrip("-")
    return slug or "distributor"


def _clean_name(name: Any) -> str:
    if not isinstance(name, str) or not name.strip():
        raise DistributorError("A distributor needs a name, e.g. \"MSH Med Tour\".")
    name = " ".join(name.split())
    if len(name) > 200:
        raise DistributorError("The distributor name is too long (200 characters at most).")
    return name


def _clean_token(token: Any) -> str:
    if not isinstance(token, str) or not token.strip():
        raise DistributorError(
            "The access token is empty: pass a Page or system-user token (--token, --token-stdin or LEADS_NEW_TOKEN)."
        )
    token = token.strip()
    if any(ch.isspace() for ch in token):
        raise DistributorError("The access token contains spaces or line breaks: paste the token alone.")
    if not token.isascii() or not token.isprintable():
        # Meta tokens are ASCII; anything else cannot travel in an HTTP header and is a paste accident.
        raise DistributorError("The access token contains characters a Meta token never has: paste the token alone.")
    return token


def _clean_ids(values: Iterable[Any] | None, what: str) -> tuple[str, ...]:
    if values is None:
        return ()
    if isinstance(values, (str, int)):
        values = [values]
    out: list[str] = []
    for value in values:
        text = str(value).strip()
        if not _ID_RE.fullmatch(text):
            raise DistributorError(f"{what} {value!r} is not a Meta id (digits only, e.g. 123456789012345).")
        if text not in out:
            out.append(text)
    return tuple(out)


def _clean_region(region: Any) -> str:
    code = region.strip().upper() if isinstance(region, str) else ""
    if code not in phonenumbers.SUPPORTED_REGIONS:
        raise DistributorError(
            f"Unknown phone region {region!r}: use a two-letter country code such as TR, DE, GB or US "
            "(the country whose numbers people type without a country code)."
        )
    return code


def _clean_interval(interval: Any) -> int:
    if isinstance(interval, bool):
        raise DistributorError("The sync interval must be a whole number of minutes, at least 1.")
    try:
        minutes = int(interval)
    except (TypeError, ValueError):
        raise DistributorError("The sync interval must be a whole number of minutes, at least 1.") from None
    if minutes != interval and not isinstance(interval, str):
        raise DistributorError("The sync interval must be a whole number of minutes, at least 1.")
    if minutes < 1:
        raise DistributorError(f"The sync interval must be at least 1 minute (got {minutes}).")
    return minutes


def _clean_email(email: Any) -> str | None:
    if email is None or (isinstance(email, str) and not email.strip()):
        return None
    normalised = normalise_email(email)
    if normalised is None:
        raise DistributorError(f"The notification email {email!r} is not a valid address (name@example.com).")
    return normalised


def _clean_key(key: str) -> str:
    if not isinstance(key, str) or not KEY_RE.fullmatch(key) or len(key) > MAX_KEY_LENGTH:
        raise DistributorError(
            f"Key {key!r} is not usable: lowercase ASCII letters, digits and single dashes, at most "
            f"{MAX_KEY_LENGTH} characters (e.g. msh-med-tour)."
        )
    return key


# ----------------------------------------------------------------------------------------------------------------------
# Reading
# ----------------------------------------------------------------------------------------------------------------------


def _json_list(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = json.loads(value)
    return tuple(str(v) for v in value)


def _from_row(row: Mapping[str, Any]) -> Distributor:
    return Distributor(
        key=row["key"],
        name=row["name"],
        page_ids=_json_list(row["page_ids"]),
        form_ids=_json_list(row["form_ids"]),
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


def access_token(wh: Warehouse, key: str, cipher: TokenCipher | None = None) -> str:
    """The distributor's access token, decrypted (for the Graph client only: never print or log it)."""
    with wh.transaction(read_only=True) as conn:
        row = conn.query_one("SELECT token_encrypted FROM distributors WHERE key = ?", [key])
    if row is None:
        raise DistributorNotFound(
            f"No distributor with key {key!r}: see `leads-pipeline distributors list` for the keys."
        )
    if not row["token_encrypted"]:
        raise DistributorError(
            f"Distributor {key!r} has no access token: set one with "
            f"`leads-pipeline distributors update {key} --token-stdin`."
        )
    return (cipher or TokenCipher()).decrypt(row["token_encrypted"])


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
    name = _clean_name(name)
    token = _clean_token(token)
    pages = _clean_ids(page_ids, "Page id")
    forms = _clean_ids(form_ids, "Form id")
    region_code = _clean_region(region)
    minutes = _clean_interval(interval)
    email = _clean_email(notify_email)
    explicit_key = _clean_key(key) if key is not None else None
    encrypted = (cipher or TokenCipher()).encrypt(token)
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
            columns["name"] = _clean_name(value)
        elif column == "token":
            new_token = _clean_token(value)
        elif column == "page_ids":
            columns["page_ids"] = json.dumps(list(_clean_ids(value, "Page id")))
        elif column == "form_ids":
            columns["form_ids"] = json.dumps(list(_clean_ids(value, "Form id")))
        elif column == "default_region":
            columns["default_region"] = _clean_region(value)
        elif column == "sync_interval_minutes":
            columns["sync_interval_minutes"] = _clean_interval(value)
        elif column == "notify_email":
            columns["notify_email"] = _clean_email(value)
        elif column == "enabled":
            if not isinstance(value, bool):
                raise DistributorError("enabled must be true or false.")
            columns["enabled"] = value
    if new_token is not None:
        columns["token_encrypted"] = (cipher or TokenCipher()).encrypt(new_token)
        columns["token_fingerprint"] = fingerprint(new_token)
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
    return after


def remove(wh: Warehouse, key: str, *, actor: str = "system") -> Distributor:
    """Delete a distributor's configuration, discovered forms and cursors. Its leads and history stay."""
    with wh.transaction() as conn:
        before = _get(conn, key)
        conn.execute("DELETE FROM distributor_forms WHERE distributor = ?", [key])
        conn.execute("DELETE FROM sync_cursors WHERE distributor = ?", [key])
        conn.execute("DELETE FROM distributors WHERE key = ?", [key])
        _audit(conn, actor, "distributor.remove", key, before.to_dict(), None)
    return before


def rotate_tokens(wh: Warehouse, *, cipher: TokenCipher | None = None, actor: str = "system") -> int:
    """Re-encrypt every stored token with the first key of ``LEADS_SECRET_KEY``; returns how many.

    All or nothing: if one token cannot be decrypted with the configured keys, nothing changes.
    """
    cipher = cipher or TokenCipher()
    with wh.transaction() as conn:
        rows = conn.query(
            "SELECT key, token_encrypted, token_fingerprint FROM distributors WHERE token_encrypted IS NOT NULL "
            "ORDER BY key"
        )
        staged = []
        for row in rows:
            try:
                staged.append((row["key"], cipher.rotate(row["token_encrypted"])))
            except TokenDecryptError as exc:
                raise TokenDecryptError(f"Distributor {row['key']}: {exc}") from None
        if not staged:
            return 0
        conn.stage("rotated_tokens", {"key": "TEXT", "token_encrypted": "TEXT"}, staged)
        conn.execute(
            "UPDATE distributors SET token_encrypted = r.token_encrypted, updated_at = CURRENT_TIMESTAMP "
            "FROM rotated_tokens r WHERE distributors.key = r.key"
        )
        conn.execute(
            "INSERT INTO audit_log (occurred_at, actor, action, entity_type, entity_id, before, after) "
            "SELECT CURRENT_TIMESTAMP, ?, 'distributor.token_reencrypted', 'distributor', d.key, NULL, "
            "CAST(? AS " + conn.dialect.json + ") FROM rotated_tokens d",
            [actor or "system", json.dumps({"token": "re-encrypted with the first key of LEADS_SECRET_KEY"})],
        )
    return len(staged)


# ----------------------------------------------------------------------------------------------------------------------
# Used by the sync
# ----------------------------------------------------------------------------------------------------------------------


def record_forms(wh: Warehouse, key: str, forms: Iterable[Mapping[str, Any]]) -> int:
    """Upsert the lead forms discovery found (``distributor_forms``); returns how many forms were given."""
    rows: dict[str, tuple] = {}
    for form in forms:
        form_id = form.get("id")
        if form_id is None or str(form_id) == "":
            continue
        count = form.get("leads_count")
        try:
            count = int(count) if count is not None and not isinstance(count, bool) else None
        except (TypeError, ValueError):
            count = None
        rows[str(form_id)] = (key, str(form.get("page_id") or ""), str(form_id),
                              _opt_text(form.get("name")), _opt_text(form.get("status")),
                              _opt_text(form.get("locale")), count)
    if not rows:
        return 0
    with wh.transaction() as conn:
        conn.stage(
            "found_forms",
            {"distributor": "TEXT", "page_id": "TEXT", "form_id": "TEXT", "form_name": "TEXT", "status": "TEXT",
             "locale": "TEXT", "leads_count": "BIGINT"},
            list(rows.values()),
        )
        conn.execute(
            "INSERT INTO distributor_forms (distributor, page_id, form_id, form_name, status, locale, leads_count, "
            "discovered_at) SELECT distributor, page_id, form_id, form_name, status, locale, leads_count, "
            "CURRENT_TIMESTAMP FROM found_forms "
            "ON CONFLICT (distributor, form_id) DO UPDATE SET page_id = excluded.page_id, "
            "form_name = excluded.form_name, status = excluded.status, locale = excluded.locale, "
            "leads_count = excluded.leads_count"
        )
    return len(rows)


def _opt_text(value: Any) -> str | None:
    return None if value is None else str(value)


def due_for_sync(wh: Warehouse, now: datetime) -> list[str]:
    """Keys of enabled distributors whose last finished sync (successful or failed) started at least their
    interval ago, or that never finished one. Runs still going (no result yet) do not count."""
    if now.tzinfo is None:
        now = now.replace(tzinfo=timezone.utc)
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
            last = last.replace(tzinfo=timezone.utc)
        if last is None or now - last >= timedelta(minutes=int(row["sync_interval_minutes"])):
            due.append(row["key"])
    return due
