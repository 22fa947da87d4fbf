"""Meta Graph API client for Lead Ads: pages, forms, leads, batch reads, webhooks subscription.

``client`` holds :class:`GraphClient` (requests, retries, throttling, paging), ``errors`` the exceptions with
actionable messages, ``usage`` the rate-limit header parsing, ``redaction`` the scrubbing of secrets from text,
``factory`` the clients built from the settings and the Page-token lookup (``/me/accounts``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from leads_pipeline.lib.lazy import lazy_exports

# Names resolved on first use (PEP 562): importing ``lib.graph.redaction`` or ``lib.graph.errors`` — which the
# warehouse, the CRM and the CLI's command modules do — must not import ``requests`` (0.1 s of every CLI start-up).
_LAZY = {
    "client": ("ACCOUNT_FIELDS", "BATCH_LIMIT", "FORM_FIELDS", "LEAD_FIELDS", "TIME_OPERATORS", "GraphClient",
               "GraphStats", "LeadPage"),
    "errors": ("REQUIRED_PERMISSIONS", "GraphError", "MissingPermissionError", "ObjectNotFoundError",
               "ThrottledError", "TokenExpiredError", "TokenInvalidError", "TransientGraphError",
               "error_from_envelope", "is_call_or_token_error"),
    "factory": ("ClientFactory", "is_page_token_answer", "make_client", "page_tokens", "settings_factory"),
    "redaction": ("redact",),
    "usage": ("Usage", "parse_usage"),
}
_WHERE = {name: module for module, names in _LAZY.items() for name in names}

if TYPE_CHECKING:
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
    from .factory import ClientFactory, is_page_token_answer, make_client, page_tokens, settings_factory
    from .redaction import redact
    from .usage import Usage, parse_usage


__getattr__, __dir__ = lazy_exports(__name__, globals(), _WHERE)

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
