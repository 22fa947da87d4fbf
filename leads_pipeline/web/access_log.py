"""The HTTP access log without query strings.

Query strings carry what people search for (emails, phones: ``/api/leads?search=…``, the console's filters and its
``/login?next=…``), Meta's ``hub.verify_token`` on ``/webhooks/meta``, and whatever a client puts there. uvicorn's
access log writes the whole request target, so every line of it is cut at the ``?``: the path, method and status
stay (enough to follow traffic and errors), the query is replaced by a marker. One rule for every route, so a route
added later cannot leak by being forgotten in a list.
"""

from __future__ import annotations

import logging

from leads_pipeline.lib.graph.redaction import redact
from leads_pipeline.lib.security import registered_secrets

ACCESS_LOGGER = "uvicorn.access"
OMITTED = "?[query omitted]"


def without_query(target: str) -> str:
    """``/api/leads?search=x`` → ``/api/leads?[query omitted]``; a target without a query is unchanged."""
    path, sep, _ = target.partition("?")
    return path + OMITTED if sep else target


class OmitQueryStrings(logging.Filter):
    """Rewrites uvicorn's access records (``client, method, target, http version, status``) before any handler.

    The target is also passed through the redaction policy here, argument by argument: the handlers' redacting
    filter would otherwise flatten a record whose text it changes into a message without arguments, which uvicorn's
    access formatter cannot print (a "Logging error" with a traceback instead of the line).
    """

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) == 5 and isinstance(args[2], str):
            target = redact(without_query(args[2]), registered_secrets())
            record.args = (args[0], args[1], target, args[3], args[4])
        return True


def omit_query_strings(logger: logging.Logger | None = None) -> OmitQueryStrings:
    """Install the filter on uvicorn's access logger (once)."""
    target = logger or logging.getLogger(ACCESS_LOGGER)
    for existing in target.filters:
        if isinstance(existing, OmitQueryStrings):
            return existing
    installed = OmitQueryStrings()
    target.addFilter(installed)
    return installed
