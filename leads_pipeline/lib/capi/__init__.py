"""Meta Conversions API for CRM: each lead's stages go back to Meta, so Lead Ads optimise for leads that convert.

``config`` holds a distributor's settings (dataset, token, CRM name, stage mapping, hashed contacts), ``events`` the
outbox (stages derived from ``leads`` and ``lead_interactions``) and the events' wire shape, ``delivery`` the upload
(batches, splitting, expiry, retries through the Graph client, the send lease), ``status`` what waits and which
distributors are due. docs/conversions-api.md says how to set it up in Meta.
"""

from .config import DEFAULT_CRM_NAME, DEFAULT_STAGE_EVENTS, CapiConfigError, CapiSettings, configure, get
from .delivery import MAX_BATCH, SendResult, send, send_all
from .events import enqueue, event_id
from .status import due, outbox_counts, overview

__all__ = [
    "DEFAULT_CRM_NAME",
    "DEFAULT_STAGE_EVENTS",
    "MAX_BATCH",
    "CapiConfigError",
    "CapiSettings",
    "SendResult",
    "configure",
    "due",
    "enqueue",
    "event_id",
    "get",
    "outbox_counts",
    "overview",
    "send",
    "send_all",
]
