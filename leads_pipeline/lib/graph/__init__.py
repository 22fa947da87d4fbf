"""Meta Graph API client for Lead Ads: pages, forms, leads, batch reads, webhooks subscription.

``client`` holds :class:`GraphClient` (requests, retries, throttling, paging), ``errors`` the exceptions with
actionable messages, ``usage`` the rate-limit header parsing, ``redaction`` the scrubbing of secrets from text.
"""

from .client import (
    ACCOUNT_FIELDS,
    BATCH_LIMIT,
    FORM_FIELDS,
    LEAD_FIELDS,
    TIME_OPERATORS,
    GraphClient,
    GraphStats,
    LeadPage,
)
from .errors import (
    REQUIRED_PERMISSIONS,
    GraphError,
    MissingPermissionError,
    ObjectNotFoundError,
    ThrottledError,
    TokenExpiredError,
    TokenInvalidError,
    TransientGraphError,
    error_from_envelope,
)
from .redaction import redact
from .usage import Usage, parse_usage

__all__ = [
    "ACCOUNT_FIELDS",
    "BATCH_LIMIT",
    "FORM_FIELDS",
    "LEAD_FIELDS",
    "REQUIRED_PERMISSIONS",
    "TIME_OPERATORS",
    "GraphClient",
    "GraphError",
    "GraphStats",
    "LeadPage",
    "MissingPermissionError",
    "ObjectNotFoundError",
    "ThrottledError",
    "TokenExpiredError",
    "TokenInvalidError",
    "TransientGraphError",
    "Usage",
    "error_from_envelope",
    "parse_usage",
    "redact",
]
