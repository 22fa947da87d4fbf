"""The seed's connection test: token valid, forms visible, leads readable — and what Meta no longer serves.

Apart from the sync (:mod:`.sync`) because it reads one page and stores nothing; it shares discovery with it, so
what ``test-connection`` says readable is what a sync reads.
"""

from __future__ import annotations

from typing import Any

from leads_pipeline.lib.distributors import health, ownership
from leads_pipeline.lib.distributors import registry as distributor_registry
from leads_pipeline.lib.distributors.forms import form_limit_warnings
from leads_pipeline.lib.graph import ClientFactory, GraphError, settings_factory
from leads_pipeline.lib.ingest.discovery import (
    DistributorFailure,
    choose_forms,
    list_pages,
    route_waiting,
)
from leads_pipeline.lib.security import SecretKeyError
from leads_pipeline.lib.warehouse import Warehouse
from leads_pipeline.settings import Settings, get_settings

__all__ = ["test_connection"]


def test_connection(wh: Warehouse, key: str, *, settings: Settings | None = None,
                    client_factory: ClientFactory | None = None) -> dict[str, Any]:
    """The seed's connection test ``{"success","message"}``: token valid, forms visible, leads readable; forms
    whose old leads are out of Meta's reach are named (with what to do)."""
    s = settings or get_settings()
    factory = client_factory or settings_factory(s)
    with wh.session():
        dist = distributor_registry.get(wh, key)
        try:
            token = distributor_registry.access_token(wh, key)
        except (SecretKeyError, distributor_registry.DistributorError) as exc:
            return {"success": False, "message": str(exc)}
        with wh.transaction(read_only=True) as conn:
            owned = ownership.owned_forms(conn, key)
    client = factory(token)
    try:
        info = client.debug_token()
        listing = list_pages(client, tuple(dist.page_ids), tuple(dist.form_ids), owned)
        with wh.transaction() as conn:
            forms, _ = choose_forms(conn, key, token, bool(dist.form_ids), listing, {})
            warnings = form_limit_warnings(conn, key, [f.form_id for f in forms])
        route_waiting(wh, owned, forms)
        for source in forms[:1]:
            reader = client.with_token(source.token) if source.derived else client
            next(iter(reader.iter_lead_pages(source.form_id, limit=1)), None)
    except (GraphError, DistributorFailure) as exc:
        return {"success": False, "message": exc.user_message}
    finally:
        client.close()
    expires = info.get("expires_at")
    expiry = "never expires" if not expires else f"expires at unix time {expires}"
    message = f"Connection OK: token valid ({expiry}); {len(forms)} lead form(s) readable."
    if listing.errors:
        message += " Not readable: " + "; ".join(listing.errors) + "."
    if warnings:
        message += " " + "; ".join(warnings) + "."
    if health.clear(wh, key, by="connection test"):  # the token works again: scheduled syncs resume
        message += " Scheduled syncs resume (they were backing off or paused after token/permission failures)."
    return {"success": True, "message": message}
