"""The OpenAPI 3.1 document of the JSON API (served at ``/openapi.json``), written by hand.

The request-body schemas below are also what the API validates bodies against (``api.read_json``), so the document
and the service cannot disagree about what is accepted; the response schemas are held to the service by the
schemathesis test (``leads_pipeline_tests/test_web_schemathesis.py``).
"""

from __future__ import annotations

import copy
from typing import Any

from leads_pipeline.lib.crm import rules
from leads_pipeline.lib.crm.operations import MAX_TEXT
from leads_pipeline.lib.crm.queries import MAX_PER_PAGE, SORTS

API_VERSION = "1.0.0"
MAX_IDS = 1000
MAX_SHORT = 200
MAX_TOKEN = 4096
MAX_INTERVAL_MINUTES = 7 * 24 * 60
MAX_PAGE = 1_000_000
TOKEN_PATTERN = "^[!-~]+$"  # Meta tokens are printable ASCII; anything else could not even be sent in a header


def _n(t: str, **extra: Any) -> dict[str, Any]:
    """A nullable type."""
    return {"type": [t, "null"], **extra}


def _s(max_length: int = MAX_SHORT, **extra: Any) -> dict[str, Any]:
    return {"type": "string", "maxLength": max_length, **extra}


_META_ID = {"type": "string", "pattern": "^[0-9]+$", "maxLength": 40}
_ID_LIST = {"type": "array", "items": _META_ID, "maxItems": 100}
_TS = {"type": "string", "format": "date-time"}
_TS_N = _n("string", format="date-time")
_STATUS = {"type": "string", "enum": list(rules.STATUSES)}

# ------------------------------------------------------------------------------------------------- request bodies

DISTRIBUTOR_SETTINGS_FIELDS: dict[str, Any] = {
    "name": _s(minLength=1, description="Display name (unique, case-insensitive)."),
    "page_ids": {**_ID_LIST, "description": "Facebook Page ids to read (empty: every Page the token sees)."},
    "form_ids": {**_ID_LIST, "description": "Lead form ids to read (empty: every form of the Pages)."},
    "region": {"type": "string", "pattern": "^[A-Za-z]{2}$",
               "description": "Two-letter country whose phone numbers people type without a country code."},
    "interval_minutes": {"type": "integer", "minimum": 1, "maximum": MAX_INTERVAL_MINUTES,
                         "description": "Scheduled sync interval."},
    "enabled": {"type": "boolean", "description": "Whether the scheduler syncs it."},
    "notify_email": {**_n("string"), "maxLength": 320,
                     "description": "Where new-lead notifications go; null or empty clears it."},
    "access_token": {"type": "string", "minLength": 1, "maxLength": MAX_TOKEN, "pattern": TOKEN_PATTERN,
                     "writeOnly": True,
                     "description": "Page or system-user access token (printable ASCII, no spaces). Write-only: "
                                    "stored encrypted, never returned."},
}

DISTRIBUTOR_CREATE = {
    "type": "object",
    "example": {"name": "MSH Med Tour", "access_token": "EAAGexampletoken0123456789", "page_ids": ["123456789012345"],
                "region": "TR", "interval_minutes": 5, "notify_email": "leads@mshmedtour.com"},
    "additionalProperties": False,
    "required": ["name", "access_token"],
    "properties": {
        **DISTRIBUTOR_SETTINGS_FIELDS,
        "key": {"type": "string", "pattern": "^[a-z0-9]+(-[a-z0-9]+)*$", "maxLength": 48,
                "description": "URL-safe key; default: a slug of the name. Keys are never reused."},
    },
}

DISTRIBUTOR_UPDATE = {
    "type": "object",
    "example": {"form_ids": ["987654321098765"], "interval_minutes": 10, "enabled": True},
    "additionalProperties": False,
    "description": "Only the fields given change. Leave access_token out to keep the stored token.",
    "properties": DISTRIBUTOR_SETTINGS_FIELDS,
}

STATUS_CHANGE = {
    "type": "object",
    "example": {"status": "contacted", "note": "Called; sends photos tomorrow"},
    "additionalProperties": False,
    "required": ["status"],
    "properties": {
        "status": _STATUS,
        "note": {**_n("string"), "maxLength": MAX_TEXT, "description": "Kept on the status-change interaction."},
    },
}

ASSIGN = {
    "type": "object",
    "example": {"user": "ayse@mshmedtour.com"},
    "additionalProperties": False,
    "required": ["user"],
    "properties": {"user": _s(320, minLength=1, description="Id (usr_…) or email of an active user.")},
}

NOTE = {
    "type": "object",
    "example": {"text": "Prefers WhatsApp"},
    "additionalProperties": False,
    "required": ["text"],
    "properties": {"text": {"type": "string", "minLength": 1, "maxLength": MAX_TEXT}},
}

_OUTCOMES = sorted({o for outs in rules.OUTCOMES.values() for o in outs})
INTERACTION = {
    "type": "object",
    "example": {"kind": "call", "direction": "outbound", "outcome": "no_answer"},
    "additionalProperties": False,
    "required": ["kind", "outcome"],
    "description": "Outcomes by kind: " + "; ".join(f"{k}: {', '.join(v)}" for k, v in rules.OUTCOMES.items())
                   + ". An outbound contact moves a new or assigned lead to contacted.",
    "properties": {
        "kind": {"type": "string", "enum": list(rules.CONTACT_KINDS)},
        "direction": {"type": "string", "enum": list(rules.DIRECTIONS), "default": "outbound"},
        "outcome": {"type": "string", "enum": _OUTCOMES},
        "body": {**_n("string"), "maxLength": MAX_TEXT, "description": "What was said or sent."},
        "occurred_at": {**_n("string"), "maxLength": 40,
                        "description": "When it happened (ISO 8601; naive = UTC); default now; not in the future."},
    },
}

DELETE = {
    "type": "object",
    "example": {"reason": "privacy request 2026-06-03"},
    "additionalProperties": False,
    "required": ["reason"],
    "properties": {"reason": {"type": "string", "minLength": 1, "maxLength": MAX_TEXT,
                              "description": "Why (e.g. 'privacy request 2026-06-03'); kept on the tombstone."}},
}

BULK_FILTER = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "distributor": _s(description="Key, or comma-separated keys."),
        "status": _s(description="Status, or comma-separated statuses."),
        "search": _s(),
        "assigned_to": _s(320, description="User id or email, or 'unassigned'."),
        "created_from": _s(40),
        "created_to": _s(40),
    },
}

BULK = {
    "type": "object",
    "example": {"action": "status", "filter": {"status": "new", "search": "@spam.example"}, "status": "rejected",
                "note": "spam", "dry_run": True},
    "additionalProperties": False,
    "required": ["action"],
    "description": "All or nothing. status needs `status` (optional `note`); assign needs `user`; delete needs "
                   "`reason`. Targets: `ids` or a non-empty `filter`, not both.",
    "properties": {
        "action": {"type": "string", "enum": ["status", "assign", "delete"]},
        "ids": {"type": "array", "items": _s(64, minLength=1), "minItems": 1, "maxItems": MAX_IDS},
        "filter": BULK_FILTER,
        "status": _STATUS,
        "note": {**_n("string"), "maxLength": MAX_TEXT},
        "user": _s(320, minLength=1),
        "reason": {"type": "string", "minLength": 1, "maxLength": MAX_TEXT},
        "dry_run": {"type": "boolean", "default": False},
    },
}

USER_CREATE = {
    "type": "object",
    "example": {"name": "Ayşe Kaya", "email": "ayse@mshmedtour.com", "role": "staff"},
    "additionalProperties": False,
    "required": ["name", "email", "role"],
    "properties": {
        "name": _s(minLength=1),
        "email": _s(320, minLength=3),
        "role": {"type": "string", "enum": list(rules.ROLES)},
    },
}

REQUEST_SCHEMAS: dict[str, dict[str, Any]] = {
    "DistributorCreate": DISTRIBUTOR_CREATE,
    "DistributorSettingsUpdate": DISTRIBUTOR_UPDATE,
    "StatusChange": STATUS_CHANGE,
    "Assign": ASSIGN,
    "Note": NOTE,
    "Interaction": INTERACTION,
    "Delete": DELETE,
    "Bulk": BULK,
    "UserCreate": USER_CREATE,
}

# ------------------------------------------------------------------------------------------------- responses

_LEAD_TEXT = ("page_id", "form_id", "ad_id", "ad_name", "adset_id", "adset_name", "campaign_id", "campaign_name",
              "platform", "full_name", "first_name", "last_name", "email", "phone", "city", "country", "assigned_to",
              "contact_id", "assigned_to_email", "assigned_to_name")

LEAD = {
    "type": "object",
    "required": ["meta_lead_id", "distributor", "created_time", "status", "assigned_to", "full_name", "email",
                 "phone", "custom_fields", "first_seen_at", "updated_at"],
    "properties": {
        "meta_lead_id": {"type": "string", "description": "Meta's lead id: the lead's id everywhere here."},
        "distributor": {"type": "string"},
        **{c: _n("string") for c in _LEAD_TEXT},
        "created_time": _TS,
        "is_organic": _n("boolean"),
        "custom_fields": {"type": "object", "description": "Answers to the form's own questions."},
        "disclaimer_responses": {"type": "array"},
        "status": _STATUS,
        "first_seen_at": _TS,
        "updated_at": _TS,
        "status_changed_at": _TS_N,
        "first_contacted_at": _TS_N,
    },
}

TIMELINE_ENTRY = {
    "type": "object",
    "required": ["id", "kind", "occurred_at", "recorded_at"],
    "properties": {
        "id": {"type": "integer"},
        "kind": {"type": "string", "description": ", ".join(rules.INTERACTION_KINDS)},
        **{c: _n("string") for c in ("actor", "actor_email", "from_status", "to_status", "assigned_to",
                                      "assigned_to_email", "direction", "outcome", "body")},
        "occurred_at": _TS,
        "recorded_at": _TS,
        "details": {"description": "Extra facts (previous assignee, bulk_id, what caused a status change…)."},
    },
}

LEAD_DETAIL = {"allOf": [{"$ref": "#/components/schemas/Lead"},
                         {"type": "object", "required": ["timeline"],
                          "properties": {"timeline": {"type": "array",
                                                      "items": {"$ref": "#/components/schemas/TimelineEntry"}}}}]}

LEAD_PAGE = {
    "type": "object",
    "required": ["items", "total", "page", "per_page", "pages"],
    "additionalProperties": False,
    "properties": {
        "items": {"type": "array", "items": {"$ref": "#/components/schemas/Lead"}},
        "total": {"type": "integer", "minimum": 0},
        "page": {"type": "integer", "minimum": 1},
        "per_page": {"type": "integer", "minimum": 1},
        "pages": {"type": "integer", "minimum": 1},
    },
}

STATS = {
    "type": "object",
    "description": "The seed's statistics object, counted live from `leads`.",
    "additionalProperties": False,
    "required": ["total", *rules.STATUSES],
    "properties": {k: {"type": "integer", "minimum": 0} for k in ("total", *rules.STATUSES)},
}

SYNC_RESULT = {
    "type": "object",
    "description": "The seed's sync result.",
    "additionalProperties": False,
    "required": ["success", "fetched", "stored", "errors", "message"],
    "properties": {
        "success": {"type": "boolean"},
        "fetched": {"type": "integer", "minimum": 0},
        "stored": {"type": "integer", "minimum": 0},
        "errors": {"type": "array", "items": {"type": "string"}},
        "message": {"type": "string"},
    },
}

TEST_RESULT = {
    "type": "object",
    "description": "The seed's connection-test result.",
    "additionalProperties": False,
    "required": ["success", "message"],
    "properties": {"success": {"type": "boolean"}, "message": {"type": "string"}},
}

DISTRIBUTOR = {
    "type": "object",
    "description": "A distributor's Meta settings. The access token is never returned: only whether there is one "
                   "and its fingerprint (first 12 hex digits of its SHA-256).",
    "additionalProperties": False,
    "required": ["key", "name", "page_ids", "form_ids", "region", "interval_minutes", "enabled", "notify_email",
                 "has_token", "token_fingerprint", "created_at", "updated_at"],
    "properties": {
        "key": {"type": "string"},
        "name": {"type": "string"},
        "page_ids": {"type": "array", "items": {"type": "string"}},
        "form_ids": {"type": "array", "items": {"type": "string"}},
        "region": {"type": "string"},
        "interval_minutes": {"type": "integer"},
        "enabled": {"type": "boolean"},
        "notify_email": _n("string"),
        "has_token": {"type": "boolean"},
        "token_fingerprint": _n("string", pattern="^[0-9a-f]{12}$"),
        "created_at": _TS_N,
        "updated_at": _TS_N,
    },
}

DISTRIBUTOR_SUMMARY = {
    "type": "object",
    "additionalProperties": False,
    "required": ["key", "name", "enabled"],
    "properties": {"key": {"type": "string"}, "name": {"type": "string"}, "enabled": {"type": "boolean"}},
}

USER = {
    "type": "object",
    "additionalProperties": False,
    "required": ["id", "name", "email", "role", "active", "created_at"],
    "properties": {
        "id": {"type": "string"},
        "name": {"type": "string"},
        "email": {"type": "string"},
        "role": {"type": "string", "enum": list(rules.ROLES)},
        "active": {"type": "boolean"},
        "created_at": _TS_N,
    },
}

ME = {
    "type": "object",
    "additionalProperties": False,
    "required": ["id", "name", "email", "role", "via", "permissions"],
    "properties": {
        "id": {"type": "string"},
        "name": _n("string"),
        "email": _n("string"),
        "role": {"type": "string", "enum": list(rules.ROLES)},
        "via": {"type": "string", "enum": ["api_key", "session"]},
        "permissions": {"type": "array", "items": {"type": "string", "enum": list(rules.ACTIONS)}},
    },
}

STATUS_RESULT = {
    "type": "object",
    "required": ["meta_lead_id", "from_status", "status", "reopen", "changed_at"],
    "properties": {"meta_lead_id": {"type": "string"}, "from_status": _STATUS, "status": _STATUS,
                   "reopen": {"type": "boolean"}, "changed_at": _TS},
}

ASSIGN_RESULT = {
    "type": "object",
    "required": ["meta_lead_id", "assigned_to", "assigned_to_email", "from_status", "status", "changed_at"],
    "properties": {"meta_lead_id": {"type": "string"}, "assigned_to": {"type": "string"},
                   "assigned_to_email": {"type": "string"}, "from_status": _STATUS, "status": _STATUS,
                   "changed_at": _TS},
}

NOTE_RESULT = {
    "type": "object",
    "required": ["meta_lead_id", "interaction_id", "recorded_at"],
    "properties": {"meta_lead_id": {"type": "string"}, "interaction_id": {"type": "integer"}, "recorded_at": _TS},
}

INTERACTION_RESULT = {
    "type": "object",
    "required": ["meta_lead_id", "interaction_id", "from_status", "status", "first_contacted_at"],
    "properties": {"meta_lead_id": {"type": "string"}, "interaction_id": {"type": "integer"},
                   "from_status": _STATUS, "status": _STATUS, "first_contacted_at": _TS_N},
}

DELETE_RESULT = {
    "type": "object",
    "required": ["meta_lead_id", "distributor", "deleted_at", "deleted_by", "erased"],
    "properties": {"meta_lead_id": {"type": "string"}, "distributor": _n("string"), "deleted_at": _TS,
                   "deleted_by": {"type": "string"},
                   "erased": {"type": "object", "additionalProperties": {"type": "integer"},
                              "description": "Rows erased, by table."}},
}

BULK_RESULT = {
    "type": "object",
    "additionalProperties": False,
    "required": ["action", "count", "ids", "dry_run"],
    "properties": {"action": {"type": "string", "enum": ["status", "assign", "delete"]},
                   "count": {"type": "integer", "minimum": 0},
                   "ids": {"type": "array", "items": {"type": "string"}},
                   "dry_run": {"type": "boolean"}},
}

HEALTH = {
    "type": "object",
    "additionalProperties": False,
    "required": ["status", "backend", "schema_version"],
    "properties": {"status": {"type": "string", "enum": ["ok"]},
                   "backend": {"type": "string", "enum": ["duckdb", "postgres"]},
                   "schema_version": {"type": "integer"}},
}

ERROR = {
    "type": "object",
    "required": ["error", "detail"],
    "properties": {
        "error": {"type": "string", "description": "What went wrong and what to do, for a person."},
        "detail": {
            "type": ["object", "null"],
            "description": "For programs: `code` always; more where useful (`allowed` statuses of an invalid "
                           "transition, the unknown `ids` of a bulk request, the validation `errors`…).",
            "required": ["code"],
            "properties": {"code": {"type": "string"}},
        },
    },
}

RESPONSE_SCHEMAS: dict[str, dict[str, Any]] = {
    "Lead": LEAD, "TimelineEntry": TIMELINE_ENTRY, "LeadDetail": LEAD_DETAIL, "LeadPage": LEAD_PAGE,
    "Stats": STATS, "SyncResult": SYNC_RESULT, "TestResult": TEST_RESULT, "DistributorSettings": DISTRIBUTOR,
    "DistributorSummary": DISTRIBUTOR_SUMMARY, "User": USER, "Me": ME, "StatusResult": STATUS_RESULT,
    "AssignResult": ASSIGN_RESULT, "NoteResult": NOTE_RESULT, "InteractionResult": INTERACTION_RESULT,
    "DeleteResult": DELETE_RESULT, "BulkResult": BULK_RESULT, "Health": HEALTH, "Error": ERROR,
}

# ------------------------------------------------------------------------------------------------- operations

_ERRORS = {
    400: "Bad input: the message says what to change (an invalid status move names the allowed ones).",
    401: "No credentials, or an unknown / revoked API key.",
    403: "The caller's role may not do this (or, for a browser session, the CSRF token is missing or wrong).",
    404: "No such lead / distributor / user.",
    409: "Conflicts with the current state (duplicate, already running, no token yet…).",
    413: "Request body larger than 1 MiB.",
    415: "Request body is not JSON (send Content-Type: application/json).",
    503: "The service is not configured for this (e.g. LEADS_SECRET_KEY missing) or the warehouse is unreachable.",
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _ok(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _op(op_id: str, summary: str, tag: str, ok: dict[str, Any], *, codes: tuple[int, ...] = (),
        status: int = 200, body: str | None = None, params: list[dict[str, Any]] | None = None,
        public: bool = False, description: str | None = None) -> dict[str, Any]:
    op: dict[str, Any] = {"operationId": op_id, "summary": summary, "tags": [tag]}
    if description:
        op["description"] = description
    if params:
        op["parameters"] = params
    if body:
        op["requestBody"] = {"required": True,
                             "content": {"application/json": {"schema": _ref(body)}}}
    responses: dict[str, Any] = {str(status): ok}
    all_codes = set(codes)
    if not public:
        all_codes |= {401, 403}
    if body:
        all_codes |= {400, 413, 415}
    for code in sorted(all_codes):
        responses[str(code)] = {"$ref": f"#/components/responses/E{code}"}
    op["responses"] = responses
    if public:
        op["security"] = []
    return op


def _path(name: str, description: str, example: str | None = None) -> dict[str, Any]:
    p = {"name": name, "in": "path", "required": True, "description": description, "schema": {"type": "string"}}
    if example:
        p["example"] = example
    return p


def _query(name: str, schema: dict[str, Any], description: str, required: bool = False) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": required, "description": description, "schema": schema}


def build_openapi(examples: dict[str, str] | None = None) -> dict[str, Any]:
    """The document. ``examples`` may give example path values (``lead_id``, ``distributor``, ``user_id``)."""
    ex = examples or {}
    lead_id = _path("id", "Meta lead id.", ex.get("lead_id"))
    key = _path("key", "Distributor key (e.g. msh-med-tour).", ex.get("distributor"))
    user_id = _path("id", "User id (usr_…) or email.", ex.get("user_id"))
    dist_q = _query("distributor", _s(), "Only this distributor (key; comma-separate several for lists).")
    page_q = [
        _query("page", {"type": "integer", "minimum": 1, "maximum": MAX_PAGE, "default": 1}, "Page, from 1."),
        _query("per_page", {"type": "integer", "minimum": 1, "maximum": MAX_PER_PAGE, "default": 50},
               "Leads per page."),
    ]
    list_filters = [
        dist_q,
        _query("status", _s(), f"Status, or comma-separated statuses: {', '.join(rules.STATUSES)}."),
        _query("search", _s(), "Name, email or phone contains this (case-insensitive; digits match phones in any "
                               "format)."),
        _query("assigned_to", _s(320), "User id or email, or 'unassigned'."),
        _query("created_from", _s(40), "Created on or after (YYYY-MM-DD or ISO 8601)."),
        _query("created_to", _s(40), "Created before; a bare date includes that whole day."),
        _query("sort", _s(40, default="-created_time"),
               f"One of {', '.join(SORTS)}; prefix '-' for descending."),
        *page_q,
    ]
    lead_codes = (404,)
    paths: dict[str, Any] = {
        "/api/health": {"get": _op("health", "Liveness and warehouse check", "service",
                                   _ok(_ref("Health"), "The service and its warehouse answer."), codes=(503,),
                                   public=True)},
        "/api/me": {"get": _op("me", "Who am I (the caller's user, role and permissions)", "service",
                               _ok(_ref("Me"), "The caller."))},
        "/api/stats": {"get": _op("stats", "Lead counts by status (the seed's stats)", "leads",
                                  _ok(_ref("Stats"), "Counts."), params=[dist_q], codes=(400,))},
        "/api/leads": {"get": _op("listLeads", "List leads with filters, search and pagination", "leads",
                                  _ok(_ref("LeadPage"), "One page of leads."), params=list_filters, codes=(400,))},
        "/api/leads/recent": {"get": _op(
            "recentLeads", "The newest leads (the seed's recent leads)", "leads",
            _ok({"type": "array", "items": _ref("Lead")}, "Newest first."), codes=(400,),
            params=[_query("limit", {"type": "integer", "minimum": 1, "maximum": 1000, "default": 10},
                           "How many."), dist_q])},
        "/api/leads/bulk": {"post": _op(
            "bulkLeads", "One action on many leads, all or nothing", "leads", _ok(_ref("BulkResult"), "Done "
            "(or, with dry_run, what would be done)."), body="Bulk", codes=(404,),
            description="Needs the permission of its action: lead.status, lead.assign, or lead.delete (superadmin). "
                        "Unknown ids answer 404 naming them; a status move some lead cannot make answers 400 "
                        "naming the leads by why. Either way nothing changes.")},
        "/api/leads/{id}": {
            "get": _op("getLead", "One lead with its timeline", "leads", _ok(_ref("LeadDetail"), "The lead."),
                       params=[lead_id], codes=lead_codes),
            "delete": _op("deleteLead", "Delete a lead (privacy request; superadmin)", "leads",
                          _ok(_ref("DeleteResult"), "Erased; a tombstone keeps it from coming back."),
                          params=[lead_id, _query("reason", {"type": "string", "minLength": 1, "maxLength": MAX_TEXT},
                                                  "Why it is deleted.", required=True)], codes=(400, 404)),
        },
        "/api/leads/{id}/status": {"post": _op(
            "changeStatus", "Change a lead's status", "leads", _ok(_ref("StatusResult"), "Changed."),
            params=[lead_id], body="StatusChange", codes=lead_codes,
            description="Allowed moves: " + "; ".join(f"{f} → {', '.join(t) or '(final)'}"
                                                      for f, t in rules.TRANSITIONS.items()) + ".")},
        "/api/leads/{id}/assign": {"post": _op(
            "assignLead", "Assign a lead to a user", "leads", _ok(_ref("AssignResult"), "Assigned."),
            params=[lead_id], body="Assign", codes=lead_codes)},
        "/api/leads/{id}/note": {"post": _op(
            "addNote", "Add a note", "leads", _ok(_ref("NoteResult"), "Added."), params=[lead_id], body="Note",
            codes=lead_codes)},
        "/api/leads/{id}/interactions": {"post": _op(
            "logInteraction", "Log a call, email or SMS", "leads", _ok(_ref("InteractionResult"), "Logged."),
            params=[lead_id], body="Interaction", codes=lead_codes)},
        "/api/leads/{id}/delete": {"post": _op(
            "deleteLeadPost", "Delete a lead (the seed's POST form; superadmin)", "leads",
            _ok(_ref("DeleteResult"), "Erased."), params=[lead_id], body="Delete", codes=lead_codes)},
        "/api/distributors": {
            "get": _op("listDistributors", "Distributors (key, name, enabled)", "distributors",
                       _ok({"type": "array", "items": _ref("DistributorSummary")}, "Every distributor.")),
            "post": _op("createDistributor", "Add a distributor (superadmin)", "distributors",
                        _ok(_ref("DistributorSettings"), "Created."), status=201, body="DistributorCreate",
                        codes=(409, 503)),
        },
        "/api/distributors/{key}/meta-settings": {
            "get": _op("getMetaSettings", "A distributor's Meta settings (superadmin)", "distributors",
                       _ok(_ref("DistributorSettings"), "The settings, without the token."), params=[key],
                       codes=(404,)),
            "put": _op("putMetaSettings", "Change a distributor's Meta settings (superadmin)", "distributors",
                       _ok(_ref("DistributorSettings"), "The settings now."), params=[key],
                       body="DistributorSettingsUpdate", codes=(404, 409, 503)),
        },
        "/api/distributors/{key}/test": {"post": _op(
            "testConnection", "Test the token, forms and lead access (superadmin)", "distributors",
            _ok(_ref("TestResult"), "The test ran: `success` says how it went."), params=[key],
            codes=(404, 409, 503))},
        "/api/distributors/{key}/sync": {"post": _op(
            "syncNow", "Sync the distributor now (superadmin)", "distributors",
            _ok(_ref("SyncResult"), "The sync ran: `success` says how it went."), params=[key],
            codes=(404, 409, 503))},
        "/api/users": {
            "get": _op("listUsers", "Users", "users", _ok({"type": "array", "items": _ref("User")}, "Users."),
                       params=[_query("active_only", {"type": "boolean", "default": False},
                                      "Hide deactivated users.")], codes=(400,)),
            "post": _op("createUser", "Add a user (superadmin)", "users", _ok(_ref("User"), "Created."),
                        status=201, body="UserCreate", codes=(409,)),
        },
        "/api/users/{id}/deactivate": {"post": _op(
            "deactivateUser", "Deactivate a user (superadmin)", "users", _ok(_ref("User"), "Deactivated."),
            params=[user_id], codes=(404, 409))},
        "/api/users/{id}/reactivate": {"post": _op(
            "reactivateUser", "Reactivate a user (superadmin)", "users", _ok(_ref("User"), "Reactivated."),
            params=[user_id], codes=(404,))},
    }
    responses = {
        f"E{code}": {"description": text, "content": {"application/json": {"schema": _ref("Error")}}}
        for code, text in _ERRORS.items()
    }
    responses["E401"]["headers"] = {"WWW-Authenticate": {"schema": {"type": "string"}}}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "leads_pipeline API",
            "version": API_VERSION,
            "description": "Facebook/Instagram Lead Ads leads: work them (status, assignment, notes, calls/emails/"
                           "SMS, privacy deletes), read the seed's stats, manage distributors' Meta settings, test "
                           "and sync. Authenticate with an API key (`Authorization: Bearer lp_…` or `X-API-Key`; "
                           "create one with `leads-pipeline users api-key create EMAIL`). Roles: superadmin "
                           "(everything) and staff (lead work). See docs/http-api.md.",
        },
        "security": [{"bearerAuth": []}, {"apiKeyHeader": []}, {"sessionCookie": []}],
        "paths": paths,
        "components": {
            "schemas": {**copy.deepcopy(REQUEST_SCHEMAS), **copy.deepcopy(RESPONSE_SCHEMAS)},
            "responses": responses,
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "lp_… API key"},
                "apiKeyHeader": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
                "sessionCookie": {"type": "apiKey", "in": "cookie", "name": "lp_session",
                                  "description": "The console's session; unsafe methods then also need the "
                                                 "X-CSRF-Token header."},
            },
        },
    }
