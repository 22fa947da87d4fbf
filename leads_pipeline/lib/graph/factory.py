"""Graph clients from the settings, and the Page tokens a distributor's token gives access to.

Why here and not in the sync: the CLI's webhook commands, Dagster's resource, the HTTP API and the sync all build
clients the same way, and the question "is this a user token (list its Pages) or a Page token (use it as it is)?"
must be answered by one rule.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from .client import GraphClient
from .errors import (
    GraphError,
    MissingPermissionError,
    ThrottledError,
    TransientGraphError,
)

if TYPE_CHECKING:
    from leads_pipeline.settings import Settings

log = logging.getLogger(__name__)

#: What the sync takes to build clients: token → client (tests pass one aimed at a fake server).
ClientFactory = Callable[[str], GraphClient]


def make_client(token: str, settings: Settings | None = None) -> GraphClient:
    """A Graph client configured from the settings (base URL, version, app secret, limits)."""
    from leads_pipeline.settings import get_settings

    s = settings or get_settings()
    return GraphClient(
        token,
        base_url=s.graph_base_url,
        api_version=s.graph_api_version,
        app_secret=s.app_secret.get_secret_value() if s.app_secret else None,
        page_limit=s.graph_page_limit,
        timeout=s.graph_timeout_seconds,
        max_retries=s.graph_max_retries,
        max_throttle_wait=s.graph_max_throttle_wait_seconds,
    )


def settings_factory(settings: Settings | None = None) -> ClientFactory:
    """A :data:`ClientFactory` for :func:`make_client` with ``settings``."""
    return lambda token: make_client(token, settings)


def is_page_token_answer(exc: GraphError) -> bool:
    """Whether ``exc`` is Meta's answer to ``/me/accounts`` for a *Page* token.

    Meta says "(#100) Tried accessing nonexisting field (accounts) on node type (Page)": code 100 without the
    subcode 33 of a missing object, naming the Page node type. Nothing else means "Page token": a throttle or a
    transient failure says nothing about the token, and reading it as a Page token would send a user token to the
    Pages' endpoints and fail with a wrong, final message.
    """
    if exc.code != 100 or exc.subcode == 33 or isinstance(exc, (ThrottledError, TransientGraphError)):
        return False
    text = exc.message.lower()
    return "accounts" in text and "(page)" in text.replace(" ", "")


def page_tokens(client: GraphClient) -> dict[str, str] | None:
    """``{page_id: page token}`` for the Pages a user token manages (``/me/accounts``), or None for a Page token.

    Throttling and transient failures are retried by the client and then raised (the caller reports them and the
    next run tries again); token errors are raised (final for the distributor). A permission error (no
    ``pages_show_list``) is logged and answered with ``{}``: the token is then used as it is on the configured
    Pages, where each Page's own failure says what is missing.
    """
    try:
        accounts = client.me_accounts()
    except MissingPermissionError as exc:
        log.info("/me/accounts not permitted (%s): using the token as it is on the configured Pages", exc.code)
        return {}
    except GraphError as exc:
        if is_page_token_answer(exc):
            return None
        raise
    tokens: dict[str, str] = {}
    for page in accounts:
        if isinstance(page, dict) and page.get("id") and page.get("access_token"):
            tokens[str(page["id"])] = str(page["access_token"])
    return tokens
