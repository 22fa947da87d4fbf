"""A Meta Graph API (Lead Ads) simulator: a real HTTP server, deterministic from a seed, wire-compatible with Meta.

    from leads_pipeline.simulator import Scenario, SimulatorServer, FaultConfig

    with SimulatorServer(Scenario(seed=7, leads_per_form=50)) as sim:
        manifest = sim.manifest()          # app id/secret, tokens, pages, forms, ground-truth lead ids
        sim.base_url                       # http://127.0.0.1:<port>  →  GET {base_url}/v25.0/{form_id}/leads
        sim.advance(leads=10)              # ten more leads become visible (newest first on the wire)
        sim.set_faults(FaultConfig(transient_rate=0.1))

Control endpoints (never faulted): ``GET /__simulator/manifest``, ``POST /__simulator/advance``,
``GET|POST /__simulator/faults``, ``GET /__simulator/stats``, ``POST /__simulator/stats/reset``,
``GET|POST|DELETE /__simulator/webhooks``, ``GET /__simulator/scenario``, ``GET|POST /__simulator/datasets``,
``GET|DELETE /__simulator/datasets/{id}/events`` (the Conversions API's datasets and what they accepted).
"""

from leads_pipeline.simulator.faults import FaultConfig
from leads_pipeline.simulator.scenario import Scenario
from leads_pipeline.simulator.server import SimulatorServer
from leads_pipeline.simulator.simulator import Simulator
from leads_pipeline.simulator.validation import classify_lead, email_is_valid, phone_is_valid
from leads_pipeline.simulator.webhooks import WebhookConfig, WebhookEmitter, sign

__all__ = [
    "FaultConfig",
    "Scenario",
    "Simulator",
    "SimulatorServer",
    "WebhookConfig",
    "WebhookEmitter",
    "classify_lead",
    "email_is_valid",
    "phone_is_valid",
    "sign",
]
