"""Helpers for pipeline-level tests: a sandbox (simulator + distributors) and what the manifest says should land."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from leads_pipeline.lib.distributors import registry as distributors
from leads_pipeline.lib.security import generate_key
from leads_pipeline.simulator import SimulatorServer
from leads_pipeline.lib.warehouse import Warehouse
from leads_pipeline_tests.conftest import premigrated
from leads_pipeline.settings import get_settings


@dataclass
class Sandbox:
    sim: SimulatorServer
    wh: Warehouse
    keys: list[str]

    def manifest(self) -> dict:
        return self.sim.manifest()

    def expected(self) -> tuple[set[str], set[str], int]:
        """(valid lead ids, malformed ids that carry an id, number of malformed leads without an id)."""
        forms = [f for p in self.manifest()["pages"] for f in p["forms"]]
        return (
            {i for f in forms for i in f["valid_lead_ids"]},
            {i for f in forms for i in f["malformed_lead_ids"]},
            sum(f["malformed_without_id"] for f in forms),
        )

    def stored(self) -> tuple[set[str], set[str], int]:
        """What the warehouse holds, in the same shape as ``expected``."""
        with self.wh.transaction(read_only=True) as conn:
            leads = {r["meta_lead_id"] for r in conn.query("SELECT meta_lead_id FROM leads")}
            rejected = conn.query("SELECT meta_lead_id, reject_key FROM rejected_leads")
        with_id = {r["meta_lead_id"] for r in rejected if r["meta_lead_id"] is not None}
        return leads, with_id, sum(1 for r in rejected if r["meta_lead_id"] is None)


def make_sandbox(monkeypatch, sim: SimulatorServer, warehouse_url: str) -> Sandbox:
    """Point the settings at ``sim`` and register one distributor per simulated page (with its page token)."""
    monkeypatch.setenv("LEADS_GRAPH_BASE_URL", sim.base_url)
    monkeypatch.setenv("LEADS_SECRET_KEY", generate_key())
    monkeypatch.setenv("LEADS_WAREHOUSE_URL", warehouse_url)
    monkeypatch.setenv("LEADS_GRAPH_MAX_RETRIES", "8")
    get_settings.cache_clear()
    wh = Warehouse(premigrated(warehouse_url))
    wh.migrate()
    keys = []
    for page in sim.manifest()["pages"]:
        d = distributors.add(wh, page["name"], page["access_token"], page_ids=[page["id"]], region=page["default_region"])
        keys.append(d.key)
    return Sandbox(sim, wh, keys)


@pytest.fixture
def sandbox(monkeypatch, simulator_factory, warehouse_url) -> Sandbox:
    """A small simulated world with its distributors registered, on each warehouse backend."""
    return make_sandbox(monkeypatch, simulator_factory(), warehouse_url)
