"""What passes between the simulator's HTTP server, its Graph API and the simulator that hosts it.

In a module of their own so that the Graph API (``graph.py``) needs nothing of ``simulator.py``: it talks to its host
through :class:`GraphHost`, and ``simulator.py`` (which builds the Graph API) and ``server.py`` import these types
from here — no import cycle between them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from leads_pipeline.simulator.faults import FaultEngine
    from leads_pipeline.simulator.scenario import Scenario
    from leads_pipeline.simulator.world import World

JSON_CT = "application/json; charset=UTF-8"


@dataclass
class GraphRequest:
    method: str
    path: str
    query: list[tuple[str, str]]
    params: dict[str, str]
    token: str | None
    token_in_query: bool
    host: str
    in_batch: bool = False


@dataclass
class GraphResponse:
    status: int
    body: bytes
    route: str
    headers: list[tuple[str, str]] = field(default_factory=list)
    content_type: str = JSON_CT
    page_id: str | None = None
    leads_served: int = 0
    version: str | None = None
    throttle: tuple[int, int] | None = None
    trace_id: str = ""


class GraphHost(Protocol):
    """What the Graph API needs of the simulator running it (``Simulator`` is one)."""

    world: World
    scenario: Scenario
    faults: FaultEngine

    def next_trace_id(self) -> str: ...

    def wall_time(self) -> float: ...

    def count_batch_item(self, resp: GraphResponse) -> None: ...

    def verify_callback(self, url: str, verify_token: str) -> str | None: ...

    def on_subscription(self, obj: str, callback: str | None) -> None: ...
