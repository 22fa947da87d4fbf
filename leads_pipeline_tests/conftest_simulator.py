"""pytest plugin: Meta Graph API simulator fixtures (registered through ``pytest_plugins`` in conftest.py).

- ``simulator``: a running ``SimulatorServer`` with a small world (2 pages × 2 forms × 60 leads, 40 more to come).
- ``simulator_factory``: ``simulator_factory(scenario=None, faults=None, **scenario_fields)`` → a started server;
  every server it made is stopped at teardown.

Also helpers for the simulator tests: ``Graph`` (a tiny client), ``independent_reason`` (docs/lead-validation.md
written again from the doc). Tokens never go into assertion messages or into URLs a failure would print: tests send
them in the Authorization header unless a test is about the query string, and compare secrets through booleans.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import pytest
import requests

from leads_pipeline.simulator import FaultConfig, Scenario, SimulatorServer

SMALL_SCENARIO = dict(seed=11, pages=2, forms_per_page=2, leads_per_form=60, extra_leads=40, malformed_rate=0.05)


@pytest.fixture
def simulator_factory() -> Iterator[Callable[..., SimulatorServer]]:
    servers: list[SimulatorServer] = []

    def make(scenario: Scenario | None = None, faults: FaultConfig | dict | None = None,
             **scenario_fields: Any) -> SimulatorServer:
        if scenario is None:
            scenario = Scenario(**{**SMALL_SCENARIO, **scenario_fields})
        elif scenario_fields:
            scenario = scenario.replace(**scenario_fields)
        server = SimulatorServer(scenario, faults=faults)
        servers.append(server)
        return server.start()

    yield make
    for server in servers:
        server.stop()


@pytest.fixture
def simulator(simulator_factory) -> SimulatorServer:
    return simulator_factory()


def independent_reason(lead: dict, region: str) -> str | None:
    """docs/lead-validation.md's quarantine reasons, written again from the doc (not the simulator's code); None for a
    lead. (``region`` is kept for the callers; quarantine does not depend on it.)"""
    lead_id = lead.get("id")
    if lead_id in (None, ""):
        return "missing_id"
    if not isinstance(lead_id, str) or not re.fullmatch(r"[0-9]+", lead_id):
        return "bad_id"
    ct = lead.get("created_time")
    try:
        if not isinstance(ct, str) or "T" not in ct:
            raise ValueError
        parsed = datetime.strptime(ct.replace("Z", "+0000").replace("+00:00", "+0000"), "%Y-%m-%dT%H:%M:%S%z")
        if parsed.tzinfo is None:
            raise ValueError
    except ValueError:
        return "bad_created_time"
    fd = lead.get("field_data")
    if not isinstance(fd, list) or any(
            not isinstance(e, dict) or not isinstance(e.get("name"), str) or not isinstance(e.get("values"), list)
            for e in fd):
        return "bad_field_data"
    return None  # a lead (a row of `leads`; its status is the contact rules' business)


class Graph:
    """A tiny client for tests: token in the Authorization header, version prefix added."""

    def __init__(self, base_url: str, token: str, version: str = "v25.0"):
        self.base_url = base_url
        self.token = token
        self.version = version
        self.session = requests.Session()

    def url(self, path: str) -> str:
        return f"{self.base_url}/{self.version}/{path.lstrip('/')}"

    def get(self, path: str, token: str | None = None, **params: Any) -> requests.Response:
        headers = {"Authorization": f"Bearer {token or self.token}"}
        return self.session.get(self.url(path), params=params, headers=headers, timeout=30)

    def get_url(self, url: str, token: str | None = None) -> requests.Response:
        return self.session.get(url, headers={"Authorization": f"Bearer {token or self.token}"}, timeout=30)

    def all_leads(self, form_id: str, token: str | None = None, **params: Any) -> list[dict]:
        """Follow ``paging.next`` to the end; returns every lead object."""
        out: list[dict] = []
        resp = self.get(f"{form_id}/leads", token, **params)
        while True:
            assert resp.status_code == 200, resp.text[:300]
            body = resp.json()
            out += body["data"]
            nxt = body.get("paging", {}).get("next")
            if not nxt:
                return out
            resp = self.get_url(nxt, token)


def all_manifest_leads(form: dict) -> tuple[set[str], int]:
    """(ids the form's leads carry on the wire, number of leads without an id)."""
    return set(form["valid_lead_ids"]) | set(form["malformed_lead_ids"]), form["malformed_without_id"]
