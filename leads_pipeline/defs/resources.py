"""Resources: the warehouse and the Graph API, configured from ``LEADS_*`` settings at run time (never at import)."""


import threading

import dagster as dg

from leads_pipeline.lib.ingest.sync import ClientFactory, make_client
from leads_pipeline.lib.warehouse import Warehouse, connect
from leads_pipeline.settings import get_settings

_migrated: set[str] = set()
_migrate_lock = threading.Lock()


class WarehouseResource(dg.ConfigurableResource):
    """The leads warehouse: DuckDB (default file under data/) or PostgreSQL, from LEADS_WAREHOUSE_URL.

    The schema is migrated on first use in each process, so a new deployment needs no manual step.
    """

    url: str = ""

    def get(self) -> Warehouse:
        wh = connect(self.url or None)
        with _migrate_lock:
            if wh.url not in _migrated:
                wh.migrate()
                _migrated.add(wh.url)
        return wh


class GraphApiResource(dg.ConfigurableResource):
    """Meta's Graph API (or the built-in simulator), from LEADS_GRAPH_* settings; tokens come per distributor."""

    def client_factory(self) -> ClientFactory:
        settings = get_settings()
        return lambda token: make_client(token, settings)


@dg.definitions
def resources() -> dg.Definitions:
    return dg.Definitions(resources={"warehouse": WarehouseResource(), "graph": GraphApiResource()})
