"""The API's request and response bodies as pydantic models: FastAPI validates requests against them and
``/openapi.json`` is generated from them, so the document and the service cannot disagree.

Request bodies are strict (JSON types as written: ``"5"`` is not a number, ``1`` not a boolean) and refuse unknown
fields. A field that may be left out but not sent as null is typed without ``None`` and defaults to None (the
default is left out of the schema, so the document says exactly what is accepted). Responses keep the shapes the
API had before (the seed's where there was one); times are ISO 8601 in UTC, naive ones taken as UTC.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, StringConstraints, WithJsonSchema

from leads_pipeline.lib.crm import rules
from leads_pipeline.lib.crm.operations import MAX_TEXT
from leads_pipeline.lib.distributors.validation import MAX_KEY_LENGTH

MAX_IDS = 1000
MAX_SHORT = 200
MAX_EMAIL = 320
MAX_TOKEN = 4096
MAX_INTERVAL_MINUTES = 7 * 24 * 60
MAX_PAGE = 1_000_000
MAX_DISTRIBUTORS = 1000
TOKEN_PATTERN = "^[!-~]+$"  # Meta tokens are printable ASCII; anything else could not even be sent in a header

Status = Literal["new", "assigned", "contacted", "converted", "rejected"]
Role = Literal["superadmin", "staff"]
Kind = Literal["call", "email", "sms"]
Direction = Literal["outbound", "inbound"]
Outcome = Literal[tuple(sorted({o for outs in rules.OUTCOMES.values() for o in outs}))]  # type: ignore[valid-type]
Action = Literal[rules.ACTIONS]  # type: ignore[valid-type]
BulkAction = Literal["status", "assign", "delete"]
# Written out for readable signatures; held to the rules here, so the two cannot drift apart.
for _literal, _rule in ((Status, rules.STATUSES), (Role, rules.ROLES), (Kind, rules.CONTACT_KINDS),
                        (Direction, rules.DIRECTIONS)):
    assert _literal.__args__ == tuple(_rule), (_literal, _rule)  # type: ignore[attr-defined]

Short = Annotated[str, StringConstraints(max_length=MAX_SHORT)]
MetaId = Annotated[str, StringConstraints(pattern="^[0-9]+$", max_length=40)]
DistributorKey = Annotated[str, StringConstraints(min_length=1, max_length=MAX_KEY_LENGTH)]


def _utc_iso(value: dt.datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    return value.astimezone(dt.timezone.utc).isoformat()


UtcTime = Annotated[dt.datetime, PlainSerializer(_utc_iso, return_type=str),
                    WithJsonSchema({"type": "string", "format": "date-time"})]


def _no_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)


def _write_only(schema: dict[str, Any]) -> None:
    _no_default(schema)
    schema["writeOnly"] = True


def optional(description: str | None = None, **constraints: Any) -> Any:
    """A field that may be left out, but not sent as null."""
    return Field(default=None, description=description, json_schema_extra=_no_default, **constraints)


class Body(BaseModel):
    """A request body: strict JSON types, no unknown fields."""

    model_config = ConfigDict(strict=True, extra="forbid")

    def given(self) -> dict[str, Any]:
        """The fields the request sent (a field left out is not the same as one sent as null)."""
        return self.model_dump(exclude_unset=True)


# ------------------------------------------------------------------------------------------------- request bodies


class StatusChange(Body):
    model_config = ConfigDict(json_schema_extra={"example": {"status": "contacted",
                                                             "note": "Called; sends photos tomorrow"}})
    status: Status
    note: str | None = Field(default=None, max_length=MAX_TEXT,
                             description="Kept on the status-change interaction.")


class Assign(Body):
    model_config = ConfigDict(json_schema_extra={"example": {"user": "ayse@mshmedtour.com"}})
    user: str = Field(min_length=1, max_length=MAX_EMAIL, description="Id (usr_…) or email of an active user who "
                                                                      "may see the lead.")


class Note(Body):
    model_config = ConfigDict(json_schema_extra={"example": {"text": "Prefers WhatsApp"}})
    text: str = Field(min_length=1, max_length=MAX_TEXT)


class Interaction(Body):
    """Outcomes by kind: call: answered, no_answer, voicemail, busy, wrong_number, failed; email: sent, replied,
    bounced, received; sms: sent, delivered, replied, failed, received. An outbound contact moves a new or assigned
    lead to contacted."""

    model_config = ConfigDict(json_schema_extra={"example": {"kind": "call", "direction": "outbound",
                                                             "outcome": "no_answer"}})
    kind: Kind
    direction: Direction = optional("Default outbound.")
    outcome: Outcome
    body: str | None = Field(default=None, max_length=MAX_TEXT, description="What was said or sent.")
    occurred_at: str | None = Field(default=None, max_length=40, description="When it happened (ISO 8601; naive = "
                                                                            "UTC); default now; not in the future.")


class Delete(Body):
    model_config = ConfigDict(json_schema_extra={"example": {"reason": "privacy request 2026-06-03"}})
    reason: str = Field(min_length=1, max_length=MAX_TEXT,
                        description="Why (e.g. 'privacy request 2026-06-03'); kept, masked, on the tombstone.")


class BulkFilter(Body):
    distributor: Short = optional("Key, or comma-separated keys (within the caller's distributors).")
    status: Short = optional("Status, or comma-separated statuses.")
    search: Short = optional()
    assigned_to: str = optional("User id or email, or 'unassigned'.", max_length=MAX_EMAIL)
    created_from: str = optional(max_length=40)
    created_to: str = optional(max_length=40)


class Bulk(Body):
    """All or nothing. status needs `status` (optional `note`); assign needs `user`; delete needs `reason`.
    Targets: `ids` or a non-empty `filter`, not both."""

    model_config = ConfigDict(json_schema_extra={"example": {
        "action": "status", "filter": {"status": "new", "search": "@spam.example"}, "status": "rejected",
        "note": "spam", "dry_run": True}})
    action: BulkAction
    ids: list[Annotated[str, StringConstraints(min_length=1, max_length=64)]] = optional(min_length=1,
                                                                                          max_length=MAX_IDS)
    filter: BulkFilter = optional()
    status: Status = optional()
    note: str | None = Field(default=None, max_length=MAX_TEXT)
    user: str = optional(min_length=1, max_length=MAX_EMAIL)
    reason: str = optional(min_length=1, max_length=MAX_TEXT)
    dry_run: bool = False


StageEvent = Annotated[str, StringConstraints(max_length=100)]


class ConversionsApiUpdate(Body):
    """Meta Conversions API for CRM (docs/conversions-api.md). Only the fields given change."""

    model_config = ConfigDict(json_schema_extra={"example": {"dataset_id": "1234567890123456",
                                                             "crm_name": "MSH CRM"}})
    dataset_id: Annotated[str, StringConstraints(pattern="^[0-9]{1,40}$")] | None = Field(
        default=None, description="The CRM dataset id from Events Manager; null stops sending events.")
    access_token: Annotated[str, StringConstraints(min_length=1, max_length=MAX_TOKEN, pattern=TOKEN_PATTERN)] \
        | None = Field(default=None, description="A token for the Conversions API only; null = use the "
                       "distributor's token. Write-only: stored encrypted, never returned.",
                       json_schema_extra=_write_only)
    crm_name: str = optional("The CRM name Meta shows as the events' source (lead_event_source).", min_length=1,
                             max_length=100)
    stage_events: dict[Status, StageEvent | None] = optional(
        "Event name per status (merged into the current mapping); null or empty: that status is not sent.")
    hashed_contacts: bool = optional("Also send the lead's email and phone, SHA-256 hashed (off by default).")
    test_event_code: Annotated[str, StringConstraints(pattern="^[A-Za-z0-9_-]{1,100}$")] | None = Field(
        default=None, description="Events Manager's test event code; null removes it (never in production).")


class DistributorSettingsUpdate(Body):
    """Only the fields given change. Leave access_token out to keep the stored token."""

    model_config = ConfigDict(json_schema_extra={"example": {"form_ids": ["987654321098765"],
                                                             "interval_minutes": 10, "enabled": True}})
    name: str = optional("Display name (unique, case-insensitive).", min_length=1, max_length=MAX_SHORT)
    page_ids: list[MetaId] = optional("Facebook Page ids to read (empty: every Page the token sees).",
                                      max_length=100)
    form_ids: list[MetaId] = optional("Lead form ids to read (empty: every form of the Pages).", max_length=100)
    region: str = optional("Two-letter country whose phone numbers people type without a country code.",
                           pattern="^[A-Za-z]{2}$")
    interval_minutes: int = optional("Scheduled sync interval.", ge=1, le=MAX_INTERVAL_MINUTES)
    enabled: bool = optional("Whether the scheduler syncs it.")
    notify_email: str | None = Field(default=None, max_length=MAX_EMAIL,
                                     description="Where new-lead notifications go; null or empty clears it.")
    access_token: str = Field(default=None, min_length=1, max_length=MAX_TOKEN, pattern=TOKEN_PATTERN,
                              description="Page or system-user access token (printable ASCII, no spaces). "
                                          "Write-only: stored encrypted, never returned.",
                              json_schema_extra=_write_only)
    conversions_api: ConversionsApiUpdate = optional("Conversions API for CRM settings (only those given change).")


class DistributorCreate(DistributorSettingsUpdate):
    model_config = ConfigDict(json_schema_extra={"example": {
        "name": "MSH Med Tour", "access_token": "EAAGexampletoken0123456789", "page_ids": ["123456789012345"],
        "region": "TR", "interval_minutes": 5, "notify_email": "leads@mshmedtour.com"}})
    name: str = Field(min_length=1, max_length=MAX_SHORT, description="Display name (unique, case-insensitive).")
    access_token: str = Field(min_length=1, max_length=MAX_TOKEN, pattern=TOKEN_PATTERN,
                              description="Page or system-user access token (printable ASCII, no spaces). "
                                          "Write-only: stored encrypted, never returned.",
                              json_schema_extra={"writeOnly": True})
    key: str = optional("URL-safe key; default: a slug of the name. Keys are never reused.",
                        pattern="^[a-z0-9]+(-[a-z0-9]+)*$", max_length=MAX_KEY_LENGTH)


class UserCreate(Body):
    model_config = ConfigDict(json_schema_extra={"example": {"name": "Ayşe Kaya", "email": "ayse@mshmedtour.com",
                                                             "role": "staff", "distributors": ["msh-med-tour"]}})
    name: str = Field(min_length=1, max_length=MAX_SHORT)
    email: str = Field(min_length=3, max_length=MAX_EMAIL)
    role: Role
    distributors: list[DistributorKey] = optional("Staff only: the distributors (keys) whose leads the user "
                                                  "sees; none: no leads until some are given.",
                                                  max_length=MAX_DISTRIBUTORS)


class UserDistributors(Body):
    model_config = ConfigDict(json_schema_extra={"example": {"distributors": ["msh-med-tour"]}})
    distributors: list[DistributorKey] = Field(max_length=MAX_DISTRIBUTORS, description=(
        "Every distributor (key) the staff user sees from now on; replaces the previous ones."))


# ------------------------------------------------------------------------------------------------- responses


class Answer(BaseModel):
    """A response body; ``extra="allow"``: a field the library adds later is passed on, not dropped."""

    model_config = ConfigDict(extra="allow")


class Health(BaseModel):
    status: Literal["ok"]
    backend: Literal["duckdb", "postgres"]
    schema_version: int


class Me(BaseModel):
    id: str
    name: str | None
    email: str | None
    role: Role
    via: Literal["api_key", "session"]
    permissions: list[Action]


class Stats(BaseModel):
    """The seed's statistics object, counted live from `leads` over the caller's distributors."""

    total: int = Field(ge=0)
    new: int = Field(ge=0)
    assigned: int = Field(ge=0)
    contacted: int = Field(ge=0)
    converted: int = Field(ge=0)
    rejected: int = Field(ge=0)


class Lead(Answer):
    meta_lead_id: str = Field(description="Meta's lead id: the lead's id everywhere here.")
    distributor: str
    page_id: str | None = None
    form_id: str | None = None
    ad_id: str | None = None
    ad_name: str | None = None
    adset_id: str | None = None
    adset_name: str | None = None
    campaign_id: str | None = None
    campaign_name: str | None = None
    created_time: UtcTime
    is_organic: bool | None = None
    platform: str | None = None
    full_name: str | None
    first_name: str | None = None
    last_name: str | None = None
    email: str | None
    phone: str | None
    city: str | None = None
    country: str | None = None
    custom_fields: dict[str, Any] = Field(description="Answers to the form's own questions.")
    disclaimer_responses: list[Any] = Field(default_factory=list)
    status: Status
    assigned_to: str | None
    contact_id: str | None = None
    assigned_to_email: str | None = None
    assigned_to_name: str | None = None
    first_seen_at: UtcTime
    updated_at: UtcTime
    status_changed_at: UtcTime | None = None
    first_contacted_at: UtcTime | None = None


class TimelineEntry(Answer):
    id: int
    kind: str = Field(description=", ".join(rules.INTERACTION_KINDS))
    actor: str | None = None
    actor_email: str | None = None
    from_status: str | None = None
    to_status: str | None = None
    assigned_to: str | None = None
    assigned_to_email: str | None = None
    direction: str | None = None
    outcome: str | None = None
    body: str | None = None
    occurred_at: UtcTime
    recorded_at: UtcTime
    details: Any = Field(default=None, description="Extra facts (previous assignee, bulk_id, what caused a status "
                                                   "change…).")


class LeadDetail(Lead):
    timeline: list[TimelineEntry]


class LeadPage(BaseModel):
    items: list[Lead]
    total: int = Field(ge=0)
    page: int = Field(ge=1)
    per_page: int = Field(ge=1)
    pages: int = Field(ge=1)


class StatusResult(Answer):
    meta_lead_id: str
    from_status: Status
    status: Status
    reopen: bool
    changed_at: UtcTime


class AssignResult(Answer):
    meta_lead_id: str
    assigned_to: str
    assigned_to_email: str
    from_status: Status
    status: Status
    changed_at: UtcTime


class NoteResult(Answer):
    meta_lead_id: str
    interaction_id: int
    recorded_at: UtcTime


class InteractionResult(Answer):
    meta_lead_id: str
    interaction_id: int
    from_status: Status
    status: Status
    first_contacted_at: UtcTime | None


class DeleteResult(Answer):
    meta_lead_id: str
    distributor: str | None
    deleted_at: UtcTime
    deleted_by: str
    erased: dict[str, int] = Field(description="Rows erased, by table.")


class BulkResult(BaseModel):
    action: BulkAction
    count: int = Field(ge=0)
    ids: list[str]
    dry_run: bool


class DistributorSummary(BaseModel):
    key: str
    name: str
    enabled: bool


class ConversionEventCounts(BaseModel):
    pending: int = Field(ge=0)
    sent: int = Field(ge=0)
    failed: int = Field(ge=0)
    expired: int = Field(ge=0)
    oldest_pending_age_seconds: float | None


class ConversionsApiSettings(BaseModel):
    """Conversions API for CRM settings: the token is never returned, only whether there is one of its own."""

    dataset_id: str | None
    enabled: bool
    has_token: bool = Field(description="Whether it has a token of its own (else the distributor's is used).")
    token_fingerprint: Annotated[str, StringConstraints(pattern="^[0-9a-f]{12}$")] | None
    crm_name: str
    stage_events: dict[str, str | None]
    hashed_contacts: bool
    test_event_code: str | None
    configured_at: str | None
    last_send_at: str | None
    last_error: str | None
    events: ConversionEventCounts


class DistributorSettings(BaseModel):
    """A distributor's Meta settings. The access token is never returned: only whether there is one and its
    fingerprint (first 12 hex digits of its SHA-256)."""

    key: str
    name: str
    page_ids: list[str]
    form_ids: list[str]
    region: str
    interval_minutes: int
    enabled: bool
    notify_email: str | None
    has_token: bool
    token_fingerprint: Annotated[str, StringConstraints(pattern="^[0-9a-f]{12}$")] | None
    created_at: UtcTime | None
    updated_at: UtcTime | None
    conversions_api: ConversionsApiSettings | None = None


class TestResult(BaseModel):
    """The seed's connection-test result."""

    __test__ = False  # not a pytest test class
    success: bool
    message: str


class SyncResult(BaseModel):
    """The seed's sync result."""

    success: bool
    fetched: int = Field(ge=0)
    stored: int = Field(ge=0)
    errors: list[str]
    message: str


class User(Answer):
    id: str
    name: str
    email: str
    role: Role
    active: bool
    created_at: UtcTime | None
    distributors: list[str] | None = Field(description="The distributors (keys) a staff user sees; null for a "
                                                       "superadmin, who sees every distributor.")


class ErrorDetail(Answer):
    code: str = Field(description="For programs; more facts where useful (`allowed` statuses of an invalid "
                                  "transition, the unknown `ids` of a bulk request, the validation `errors`…).")


class Error(BaseModel):
    error: str = Field(description="What went wrong and what to do, for a person.")
    detail: ErrorDetail
