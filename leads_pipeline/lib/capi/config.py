"""A distributor's Conversions API settings (table ``capi_settings``): where its lead stages go, and how they are named.

Off until a dataset id is set. The token is optional: without one of its own, a distributor's events go with its sync
token (``distributors.token_encrypted``). Like that token it is write-only — stored Fernet-encrypted
(:class:`~leads_pipeline.lib.security.TokenCipher`), shown only as "there is one" and a fingerprint, re-encrypted by
``leads-pipeline keys rotate``. Every change is audited (``distributor.capi_update``, never with the token).

The stage mapping says which of our statuses become which event name in Meta's funnel. The default sends every stage,
the initial lead included (Meta wants at least two, ideally three or more, and the raw lead first); a stage mapped to
nothing is not sent. Hashed email/phone are off by default: Meta matches CRM events by its own lead id, and the hashes
only add personal data to the request.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from leads_pipeline.lib.crm.rules import STATUSES
from leads_pipeline.lib.distributors.errors import DistributorError, DistributorNotFound
from leads_pipeline.lib.distributors.tokens import access_token as distributor_token
from leads_pipeline.lib.distributors.validation import clean_token
from leads_pipeline.lib.security import TokenCipher, TokenDecryptError, fingerprint
from leads_pipeline.lib.warehouse import Conn, Warehouse, retry_conflicts

__all__ = [
    "DEFAULT_CRM_NAME",
    "DEFAULT_STAGE_EVENTS",
    "CapiConfigError",
    "CapiSettings",
    "access_token",
    "configure",
    "get",
    "load",
]

DEFAULT_CRM_NAME = "Leads Pipeline"
#: Our status → Meta event name. Every stage is sent, the initial lead first; reopenings send the stage reopened to.
DEFAULT_STAGE_EVENTS: dict[str, str] = {
    "new": "Initial Lead",
    "assigned": "Assigned",
    "contacted": "Contacted",
    "converted": "Converted",
    "rejected": "Rejected",
}
MAX_NAME = 100
_DATASET_RE = re.compile(r"[0-9]{1,40}")
_TEST_CODE_RE = re.compile(r"[A-Za-z0-9_-]{1,100}")
_CHANGEABLE = ("dataset_id", "token", "crm_name", "stage_events", "hashed_contacts", "test_event_code")
_COLUMNS = ("distributor, dataset_id, token_encrypted IS NOT NULL AS has_token, token_fingerprint, crm_name, "
            "stage_events, hashed_contacts, test_event_code, configured_at, enqueued_at, last_send_at, last_error, "
            "updated_at")


class CapiConfigError(DistributorError):
    """A Conversions API setting that cannot be stored as given; the message says what to change."""


@dataclass(frozen=True)
class CapiSettings:
    """One distributor's Conversions API settings (never the token: only whether it has one, and its fingerprint)."""

    distributor: str
    dataset_id: str | None = None
    has_token: bool = False
    token_fingerprint: str | None = None
    crm_name: str = DEFAULT_CRM_NAME
    stage_events: dict[str, str | None] = field(default_factory=lambda: dict(DEFAULT_STAGE_EVENTS))
    hashed_contacts: bool = False
    test_event_code: str | None = None
    configured_at: dt.datetime | None = None
    enqueued_at: dt.datetime | None = None
    last_send_at: dt.datetime | None = None
    last_error: str | None = None
    updated_at: dt.datetime | None = None

    @property
    def enabled(self) -> bool:
        """Whether events are collected and sent: a dataset id is set."""
        return bool(self.dataset_id)

    @property
    def sent_stages(self) -> tuple[str, ...]:
        """The statuses that become events, in the order of the statuses."""
        return tuple(s for s in STATUSES if self.stage_events.get(s))

    def to_dict(self) -> dict[str, Any]:
        """What the CLI, the API and the audit log show (JSON-ready; never the token)."""
        return {
            "dataset_id": self.dataset_id,
            "enabled": self.enabled,
            "has_token": self.has_token,
            "token_fingerprint": self.token_fingerprint,
            "crm_name": self.crm_name,
            "stage_events": {s: self.stage_events.get(s) for s in STATUSES},
            "hashed_contacts": self.hashed_contacts,
            "test_event_code": self.test_event_code,
            "configured_at": _iso(self.configured_at),
            "last_send_at": _iso(self.last_send_at),
            "last_error": self.last_error,
        }


def _iso(value: dt.datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC).isoformat()


def _mapping(value: Any) -> dict[str, str | None]:
    if isinstance(value, (str, bytes)):
        value = json.loads(value)
    stored = value if isinstance(value, dict) else {}
    return {s: (stored.get(s) or None) for s in STATUSES}


def _from_row(row: Mapping[str, Any]) -> CapiSettings:
    return CapiSettings(
        distributor=row["distributor"],
        dataset_id=row["dataset_id"],
        has_token=bool(row["has_token"]),
        token_fingerprint=row["token_fingerprint"],
        crm_name=row["crm_name"],
        stage_events=_mapping(row["stage_events"]),
        hashed_contacts=bool(row["hashed_contacts"]),
        test_event_code=row["test_event_code"],
        configured_at=row["configured_at"],
        enqueued_at=row["enqueued_at"],
        last_send_at=row["last_send_at"],
        last_error=row["last_error"],
        updated_at=row["updated_at"],
    )


def load(conn: Conn, key: str) -> CapiSettings:
    """The settings of distributor ``key`` inside the caller's transaction (defaults when never configured)."""
    if not conn.scalar("SELECT count(*) FROM distributors WHERE key = ?", [key]):
        raise DistributorNotFound(
            f"No distributor with key {key!r}: see `leads-pipeline distributors list` for the keys.")
    row = conn.query_one(f"SELECT {_COLUMNS} FROM capi_settings WHERE distributor = ?", [key])
    return _from_row(row) if row is not None else CapiSettings(distributor=key)


def get(wh: Warehouse, key: str) -> CapiSettings:
    """The settings of distributor ``key`` (``DistributorNotFound`` when there is no such distributor)."""
    with wh.transaction(read_only=True) as conn:
        return load(conn, key)


# ----------------------------------------------------------------------------------------------------------------------
# Changing
# ----------------------------------------------------------------------------------------------------------------------


def _clean_dataset(value: Any) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    text = str(value).strip() if isinstance(value, (str, int)) and not isinstance(value, bool) else None
    if text is None or not _DATASET_RE.fullmatch(text):
        raise CapiConfigError("The dataset id is the number Events Manager shows for the CRM dataset (digits only); "
                              "leave it empty to stop sending events.")
    return text


def _clean_token(value: Any) -> str:
    try:
        return clean_token(value)
    except DistributorError as exc:
        raise CapiConfigError(f"Conversions API token: {exc}") from None


def _clean_crm_name(value: Any) -> str:
    text = value.strip() if isinstance(value, str) else ""
    if not text:
        raise CapiConfigError("The CRM name is empty: it is what Meta shows as the events' source (e.g. "
                              f"{DEFAULT_CRM_NAME!r}).")
    if len(text) > MAX_NAME or not text.isprintable():
        raise CapiConfigError(f"The CRM name must be printable text of at most {MAX_NAME} characters.")
    return text


def _clean_test_code(value: Any) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    text = value.strip() if isinstance(value, str) else ""
    if not _TEST_CODE_RE.fullmatch(text):
        raise CapiConfigError("The test event code is the code Events Manager → Test Events shows (letters, digits, "
                              "'-' and '_'); leave it empty in production.")
    return text


def _clean_stage_events(value: Any, current: Mapping[str, str | None]) -> dict[str, str | None]:
    """The mapping with the given stages changed (a stage given as empty or null is not sent)."""
    if not isinstance(value, Mapping):
        raise CapiConfigError("The stage mapping is an object {status: event name}.")
    merged = dict(current)
    for stage, name in value.items():
        if stage not in STATUSES:
            raise CapiConfigError(f"Unknown stage {stage!r} in the mapping: use {', '.join(STATUSES)}.")
        if name is None or (isinstance(name, str) and not name.strip()):
            merged[stage] = None
            continue
        if not isinstance(name, str) or len(name.strip()) > MAX_NAME or not name.strip().isprintable():
            raise CapiConfigError(f"The event name of {stage!r} must be printable text of at most {MAX_NAME} "
                                  "characters (or empty: not sent).")
        merged[stage] = name.strip()
    if not any(merged.values()):
        raise CapiConfigError("Every stage would be left out: map at least one (Meta needs two or more stages); "
                              "to stop sending, clear the dataset id instead.")
    return merged


def _audit(conn: Conn, actor: str, key: str, before: Any, after: Any) -> None:
    conn.execute(
        "INSERT INTO audit_log (occurred_at, actor, action, entity_type, entity_id, before, after) "
        "VALUES (CURRENT_TIMESTAMP, ?, 'distributor.capi_update', 'distributor', ?, ?, ?)",
        [actor or "system", key, json.dumps(before, default=str), json.dumps(after, default=str)],
    )


def validate_changes(changes: Mapping[str, Any]) -> None:
    """Refuse unknown or malformed settings before anything is written (callers that also change the distributor's
    other settings check both first)."""
    unknown = sorted(set(changes) - set(_CHANGEABLE))
    if unknown:
        raise CapiConfigError(f"Cannot change {', '.join(unknown)} of the Conversions API settings; changeable: "
                              f"{', '.join(_CHANGEABLE)}.")
    for name, value in changes.items():
        if name == "dataset_id":
            _clean_dataset(value)
        elif name == "token" and value not in (None, ""):
            _clean_token(value)
        elif name == "crm_name":
            _clean_crm_name(value)
        elif name == "test_event_code":
            _clean_test_code(value)
        elif name == "stage_events":
            _clean_stage_events(value, DEFAULT_STAGE_EVENTS)
        elif name == "hashed_contacts" and not isinstance(value, bool):
            raise CapiConfigError("hashed_contacts must be true or false.")


def configure(wh: Warehouse, key: str, *, actor: str = "system", cipher: TokenCipher | None = None,
              now: dt.datetime | None = None, **changes: Any) -> CapiSettings:
    """Change a distributor's Conversions API settings; only the given ones change.

    ``dataset_id`` (None/"" turns sending off), ``token`` (None/"" = use the distributor's token), ``crm_name``,
    ``stage_events`` (merged into the current mapping; a stage mapped to None/"" is not sent), ``hashed_contacts``,
    ``test_event_code`` (None/"" removes it). Setting a dataset id where there was none starts collecting: the stages
    of the 7 days before are sent too (Meta accepts a week of backfill), older ones never. A new mapping renames the
    events still waiting, and drops those of stages no longer sent.
    """
    validate_changes(changes)
    encrypted: str | None = None
    token_given = "token" in changes
    if token_given and changes["token"] not in (None, ""):
        token = _clean_token(changes["token"])
        encrypted = (cipher or TokenCipher()).encrypt(token)
        token_print: str | None = fingerprint(token)
    else:
        token_print = None
    at = now or dt.datetime.now(dt.UTC)

    def run() -> CapiSettings:
        with wh.transaction() as conn:
            before = load(conn, key)
            if not conn.scalar("SELECT count(*) FROM capi_settings WHERE distributor = ?", [key]):
                conn.execute(
                    "INSERT INTO capi_settings (distributor, crm_name, stage_events, hashed_contacts, updated_at) "
                    "VALUES (?, ?, ?, FALSE, ?)", [key, DEFAULT_CRM_NAME, json.dumps(DEFAULT_STAGE_EVENTS), at])
            columns: dict[str, Any] = {}
            if "dataset_id" in changes:
                dataset = _clean_dataset(changes["dataset_id"])
                columns["dataset_id"] = dataset
                if dataset is None:
                    columns["configured_at"] = None
                elif before.dataset_id is None:
                    columns["configured_at"] = at
            if token_given:
                columns["token_encrypted"] = encrypted
                columns["token_fingerprint"] = token_print
            if "crm_name" in changes:
                columns["crm_name"] = _clean_crm_name(changes["crm_name"])
            if "hashed_contacts" in changes:
                columns["hashed_contacts"] = bool(changes["hashed_contacts"])
            if "test_event_code" in changes:
                columns["test_event_code"] = _clean_test_code(changes["test_event_code"])
            mapping = None
            if "stage_events" in changes:
                mapping = _clean_stage_events(changes["stage_events"], before.stage_events)
                columns["stage_events"] = json.dumps(mapping)
            if columns:
                assignments = ", ".join(f"{c} = ?" for c in columns)
                conn.execute(f"UPDATE capi_settings SET {assignments}, updated_at = ? WHERE distributor = ?",
                             [*columns.values(), at, key])
            if mapping is not None:
                _apply_mapping_to_waiting(conn, key, mapping)
            after = load(conn, key)
            if before.to_dict() != after.to_dict() or token_given:
                _audit(conn, actor, key, before.to_dict(), after.to_dict())
            return after

    return retry_conflicts(run, what="conversions api settings")


def _apply_mapping_to_waiting(conn: Conn, key: str, mapping: Mapping[str, str | None]) -> None:
    """Events not sent yet follow the new mapping: renamed, or dropped when their stage is no longer sent."""
    dropped = [s for s in STATUSES if not mapping.get(s)]
    if dropped:
        marks = ", ".join("?" for _ in dropped)
        conn.execute(f"DELETE FROM conversion_events WHERE distributor = ? AND status = 'pending' "
                     f"AND stage IN ({marks})", [key, *dropped])
    for stage in STATUSES:
        if mapping.get(stage):
            conn.execute("UPDATE conversion_events SET event_name = ? WHERE distributor = ? AND status = 'pending' "
                         "AND stage = ? AND event_name <> ?", [mapping[stage], key, stage, mapping[stage]])


# ----------------------------------------------------------------------------------------------------------------------
# Tokens
# ----------------------------------------------------------------------------------------------------------------------


def access_token(wh: Warehouse, key: str, cipher: TokenCipher | None = None) -> str:
    """The token events go with: the distributor's own Conversions API token, else its sync token (decrypted, for the
    Graph client only: never print or log it)."""
    with wh.transaction(read_only=True) as conn:
        row = conn.query_one("SELECT token_encrypted FROM capi_settings WHERE distributor = ?", [key])
    if row is None or not row["token_encrypted"]:
        return distributor_token(wh, key, cipher)
    try:
        return (cipher or TokenCipher()).decrypt(row["token_encrypted"])
    except TokenDecryptError as exc:
        raise TokenDecryptError(f"{exc} (This is the Conversions API token of {key}: store it again with "
                                f"`leads-pipeline distributors update {key} --capi-token-stdin`.)") from None
