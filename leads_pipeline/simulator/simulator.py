"""``Simulator``: the world + the clock + faults + statistics + webhooks, without any transport."""

from __future__ import annotations

import hashlib
import base64
import json
import secrets
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import requests

from leads_pipeline.simulator.faults import FaultConfig, FaultEngine
from leads_pipeline.simulator.graph import GraphApp
from leads_pipeline.simulator.messages import GraphRequest, GraphResponse
from leads_pipeline.simulator.scenario import Scenario
from leads_pipeline.simulator.webhooks import WebhookConfig, WebhookEmitter
from leads_pipeline.simulator.world import Lead, World

PLATFORM_THROTTLES = (4, 17, 32, 613)


class Simulator:
    """Holds the simulated Meta world. Thread-safe; serve it with ``SimulatorServer``."""

    def __init__(self, scenario: Scenario | None = None, faults: FaultConfig | dict | None = None):
        self.scenario = scenario or Scenario()
        self.world = World(self.scenario)
        self.faults = FaultEngine(_faults(faults))
        self.app = GraphApp(self)
        self._lock = threading.Lock()
        self._in_flight = 0
        self._trace_seq = 0
        self.webhooks: WebhookEmitter | None = None
        self._webhooks_from_subscription = False
        self._realtime: threading.Thread | None = None
        self._realtime_stop = threading.Event()
        # The Conversions API's clock (its 7-day limit): real time, as CRMs stamp their events. Replaceable in tests.
        self.wall_clock: Callable[[], float] = time.time
        self.reset_stats()

    # ------------------------------------------------------------------------------------------------- control --

    def manifest(self) -> dict[str, Any]:
        """Ground truth: app credentials, pages (+tokens, default region), per form the valid/malformed lead ids."""
        return self.world.manifest()

    def advance(self, seconds: float | None = None, leads: int | None = None) -> list[str]:
        """Move the simulated clock (by ``seconds``, or until ``leads`` more leads exist); returns the new lead ids
        (leads without an id are not listed; the manifest counts them)."""
        new = self.world.advance(seconds=seconds, leads=leads)
        self._announce(new)
        return [lead.id for lead in new if lead.id is not None]

    def datasets(self, *, events: bool = True) -> list[dict[str, Any]]:
        """Conversions API datasets and what each accepted (``events=False``: counts only)."""
        return self.world.datasets.summaries(events=events)

    def create_dataset(self, name: str = "CRM dataset", page_id: str | None = None) -> str:
        """A new dataset (``page_id``: only that page's token, or the user token, may post to it); its id."""
        if page_id is not None and not any(p.id == page_id for p in self.world.pages):
            raise ValueError(f"unknown page {page_id}")
        return self.world.datasets.create(name, page_id).id

    def dataset_events(self, dataset_id: str, since: int = 0) -> list[dict[str, Any]]:
        """Every event a dataset accepted after sequence number ``since``, each with the event as received."""
        ds = self.world.datasets.get(dataset_id)
        if ds is None:
            raise LookupError(f"unknown dataset {dataset_id}")
        return self.world.datasets.records(ds, since)

    def clear_dataset(self, dataset_id: str) -> None:
        ds = self.world.datasets.get(dataset_id)
        if ds is None:
            raise LookupError(f"unknown dataset {dataset_id}")
        self.world.datasets.clear(ds)

    def wall_time(self) -> float:
        return self.wall_clock()

    def set_faults(self, config: FaultConfig | dict | None) -> None:
        """Replace the fault configuration (``None`` / ``{}`` = no faults); request numbering restarts at 1."""
        self.faults.configure(_faults(config))

    def stats(self) -> dict[str, Any]:
        with self._lock:
            out = json.loads(json.dumps(self._stats))
        out["faults_injected"] = dict(self.faults.injected)
        out["now"] = self.world.now
        out["webhooks"] = self.webhooks.stats() if self.webhooks else None
        return out

    def reset_stats(self) -> None:
        with self._lock:
            self._stats: dict[str, Any] = {"requests": 0, "by_route": {}, "by_status": {}, "leads_served": 0,
                                           "batch_items": 0, "control_requests": 0, "page_calls": {},
                                           "peak_in_flight": 0}

    def state(self) -> dict[str, Any]:
        """What cannot be re-derived from the seed: the clock and the subscriptions (JSON-able, holds no secret).
        ``Simulator.from_state(state)`` rebuilds the same world at the same moment (e.g. across demo runs)."""
        w = self.world
        # An anchored world's start is pinned to the moment it was built: the same world again, not one of later.
        return {"scenario": dict(self.scenario.to_dict(), start_time=w.start_time), "now": w.now,
                "installed": {p.id: p.installed_fields for p in w.pages if p.installed_fields is not None},
                "app_subscriptions": w.app_subscriptions}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Simulator:
        sim = cls(Scenario.from_dict(state["scenario"]))
        if state.get("now", sim.world.now) > sim.world.now:
            sim.world.set_now(int(state["now"]))
        for page in sim.world.pages:
            if page.id in state.get("installed", {}):
                page.installed_fields = list(state["installed"][page.id])
        sim.world.app_subscriptions.update(state.get("app_subscriptions", {}))
        return sim

    # --------------------------------------------------------------------------------------------- accounting --

    def record(self, route: str, status: int, leads_served: int, page_id: str | None) -> None:
        with self._lock:
            s = self._stats
            s["requests"] += 1
            s["by_route"][route] = s["by_route"].get(route, 0) + 1
            key = str(status)
            s["by_status"][key] = s["by_status"].get(key, 0) + 1
            s["leads_served"] += leads_served
            if page_id:
                s["page_calls"][page_id] = s["page_calls"].get(page_id, 0) + 1

    @contextmanager
    def in_flight(self) -> Iterator[None]:
        """A Graph request being answered, from its arrival to its last byte: ``peak_in_flight`` in :meth:`stats` is
        the most requests that overlapped (how many a client read in parallel)."""
        with self._lock:
            self._in_flight += 1
            self._stats["peak_in_flight"] = max(self._stats["peak_in_flight"], self._in_flight)
        try:
            yield
        finally:
            with self._lock:
                self._in_flight -= 1

    def record_control(self) -> None:
        with self._lock:
            self._stats["control_requests"] += 1

    def count_batch_item(self, resp: GraphResponse) -> None:
        with self._lock:
            self._stats["batch_items"] += 1

    def next_trace_id(self) -> str:
        with self._lock:
            self._trace_seq += 1
            seq = self._trace_seq
        digest = hashlib.sha1(f"{self.scenario.seed}:{seq}".encode()).digest()
        return base64.urlsafe_b64encode(digest[:12]).decode().rstrip("=")[:16]

    def usage_headers(self, resp: GraphResponse) -> list[tuple[str, str]]:
        budget = max(1, self.scenario.usage_calls_per_hour)
        with self._lock:
            app_calls = self._stats["requests"]
            page_calls = self._stats["page_calls"]
            page_id = resp.page_id or (self.world.pages[0].id if self.world.pages else "0")
            calls = page_calls.get(page_id, 0)
        app_pct = min(100, app_calls * 100 // budget)
        page_pct = min(100, calls * 100 // budget)
        regain = 0
        throttle_code = None
        if resp.throttle is not None:
            throttle_code, regain = resp.throttle
        else:
            regain = self.faults.throttled_now()
        if regain:
            page_pct = max(page_pct, 100)
            if throttle_code in PLATFORM_THROTTLES:
                app_pct = 100
        app = {"call_count": app_pct, "total_cputime": app_pct // 3, "total_time": app_pct // 2}
        entry = {"type": "leadgen", "call_count": page_pct, "total_cputime": page_pct // 3,
                 "total_time": page_pct // 2, "estimated_time_to_regain_access": regain}
        buc = {page_id: [entry]}
        if throttle_code == 80001:
            buc[page_id].append(dict(entry, type="pages"))
        return [("x-app-usage", json.dumps(app, separators=(",", ":"))),
                ("x-business-use-case-usage", json.dumps(buc, separators=(",", ":")))]

    def handle(self, req: GraphRequest) -> tuple[GraphResponse, Any]:
        """One Graph request through faults and the Graph app (the transport applies slow/reset/truncation)."""
        route = self.app.route_of(req.method, req.path)
        decision = self.faults.decide(route)
        resp = self.app.handle(req, decision)
        self.record(route, resp.status, resp.leads_served, resp.page_id)
        return resp, decision

    # ------------------------------------------------------------------------------------------------ webhooks --

    def start_webhooks(self, url: str, **options: Any) -> WebhookEmitter:
        """Deliver ``leadgen`` webhooks to ``url`` from now on (replaces any emitter)."""
        self.stop_webhooks()
        self.webhooks = WebhookEmitter(WebhookConfig(url=url, **options), self.world.app_secret,
                                       clock=lambda: self.world.now)
        self._webhooks_from_subscription = False
        return self.webhooks

    def stop_webhooks(self) -> None:
        if self.webhooks is not None:
            self.webhooks.stop()
            self.webhooks = None

    def flush_webhooks(self, timeout: float = 10.0) -> bool:
        return self.webhooks.flush(timeout) if self.webhooks else True

    def verify_callback(self, url: str, verify_token: str) -> str | None:
        """Meta's subscription handshake: GET hub.mode/hub.challenge/hub.verify_token; the body must echo it."""
        challenge = str(secrets.randbelow(10**9) + 10**8)
        query = urllib.parse.urlencode({"hub.mode": "subscribe", "hub.challenge": challenge,
                                        "hub.verify_token": verify_token})
        sep = "&" if "?" in url else "?"
        try:
            resp = requests.get(f"{url}{sep}{query}", timeout=5)
        except requests.RequestException as exc:
            return f"couldn't connect to the callback URL ({type(exc).__name__})"
        if resp.status_code != 200 or resp.text.strip() != challenge:
            return f"the callback URL answered HTTP {resp.status_code} without echoing the challenge"
        return None

    def on_subscription(self, obj: str, callback: str | None) -> None:
        if obj not in ("page", "*"):
            return
        if callback is None:
            if self._webhooks_from_subscription:
                self.stop_webhooks()
            return
        if self.webhooks is not None and not self._webhooks_from_subscription:
            return  # an explicitly configured emitter wins
        self.stop_webhooks()
        self.webhooks = WebhookEmitter(WebhookConfig(url=callback, require_page_install=True), self.world.app_secret,
                                       clock=lambda: self.world.now)
        self._webhooks_from_subscription = True

    def _announce(self, leads: list[Lead]) -> None:
        emitter = self.webhooks
        if emitter is None or not leads:
            return
        changes = []
        for lead in leads:
            if lead.id is None:
                continue  # Meta cannot announce a lead without an id
            page = lead.form.page
            installed = page.installed_fields is not None and "leadgen" in page.installed_fields
            if emitter.config.require_page_install and not installed:
                continue
            value: dict[str, Any] = {"leadgen_id": lead.id, "page_id": page.id, "form_id": lead.form.id}
            if lead.ad is not None:
                value["adgroup_id"] = lead.ad.id
                value["ad_id"] = lead.ad.id
            value["created_time"] = lead.ct
            changes.append((page.id, value))
        emitter.enqueue(changes)

    # ------------------------------------------------------------------------------------------------ realtime --

    def start_realtime(self, speed: float = 1.0, tick: float = 0.25) -> None:
        """Advance the simulated clock with wall time (``speed`` simulated seconds per second).

        A world anchored to now (``Scenario(start_time=None)``) at ``speed`` 1 follows the wall clock itself: a lead
        that arrives is dated the moment it arrives, however long the world took to build or was left waiting. A
        world on a fixed clock moves forward from its own "now" by the wall time elapsed.
        """
        if self._realtime is not None:
            return
        self._realtime_stop.clear()
        base_now = self.world.now
        t0 = time.monotonic()
        wall = self.scenario.anchored_to_now and speed == 1.0

        def target() -> int:
            return int(time.time()) if wall else base_now + int((time.monotonic() - t0) * speed)

        def run() -> None:
            while True:
                now = target()
                if now > self.world.now:
                    self.advance(seconds=now - self.world.now)
                if self._realtime_stop.wait(tick):
                    return

        self._realtime = threading.Thread(target=run, name="simulator-clock", daemon=True)
        self._realtime.start()

    def stop_realtime(self) -> None:
        if self._realtime is not None:
            self._realtime_stop.set()
            self._realtime.join(5)
            self._realtime = None

    def close(self) -> None:
        self.stop_realtime()
        self.stop_webhooks()


def _faults(config: FaultConfig | dict | None) -> FaultConfig:
    if config is None:
        return FaultConfig()
    if isinstance(config, FaultConfig):
        return config
    return FaultConfig.from_dict(config)
