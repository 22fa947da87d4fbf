"""Meta Graph API client for Lead Ads: pages, forms, leads, batch reads, webhooks subscription.

``client`` holds :class:`GraphClient` (requests, retries, throttling, paging), ``errors`` the exceptions with
actionable messages, ``usage`` the rate-limit header parsing, ``redaction`` the scrubbing of secrets from text,
``factory`` the clients built from the settings and the Page-token lookup (``/me/accounts``).
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
    is_call_or_token_error,
)
from .factory import (
    ClientFactory,
    is_page_token_answer,
    make_client,
    page_tokens,
    settings_factory,
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
    "ClientFactory",
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
    "is_call_or_token_error",
    "is_page_token_answer",
    "make_client",
    "page_tokens",
    "parse_usage",
    "redact",
    "settings_factory",
]
