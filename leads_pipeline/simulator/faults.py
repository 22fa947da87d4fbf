"""Fault injection: each fault by rate (seeded RNG, 0..1) and/or by schedule (explicit Graph request numbers).

Request numbers count Graph API requests (never ``/__simulator/*``) from 1, starting again at every ``set_faults``;
with ``count_routes_only`` only the requests of ``routes`` are counted (e.g. ``routes=["dataset_events"],
transient_at=[1, 2]``: the next two Conversions API uploads fail, whatever else the client calls in between).
A batch POST is one request; ``batch_null_items`` / ``batch_null_rate`` act on the items inside a batch.
"""

from __future__ import annotations

import dataclasses
import math
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any

TRANSIENT_KINDS = ("code_1", "code_2", "http_500", "http_503")
THROTTLE_CODES = (4, 17, 32, 613, 80001, 80005)
LIST_ROUTES = ("leads", "ad_leads", "leadgen_forms", "accounts")


@dataclass
class FaultConfig:
    """Faults to inject. Every ``*_rate`` is a probability per eligible request, every ``*_at`` a list of request
    numbers. ``routes`` restricts all faults to those route names (see ``Simulator.stats()['by_route']``)."""

    seed: int = 0
    routes: list[str] | None = None
    count_routes_only: bool = False  # number only the requests of `routes` (the others are neither counted nor faulted)
    # Transient errors: code 1 / code 2 (JSON envelope, is_transient, HTTP 500) or an HTML 500 / 503 page.
    transient_rate: float = 0.0
    transient_at: list[int] = field(default_factory=list)
    transient_kinds: list[str] = field(default_factory=lambda: list(TRANSIENT_KINDS))
    # Throttling windows: a window opens at a triggering request and covers it and the next requests.
    throttle_rate: float = 0.0
    throttle_at: list[int] = field(default_factory=list)
    throttle_code: int = 80005
    throttle_requests: int = 3            # window length in requests (when throttle_seconds is None)
    throttle_seconds: float | None = None  # window length in wall-clock seconds
    throttle_regain_minutes: int | None = None  # reported estimated_time_to_regain_access (default: from window)
    # Slow responses.
    slow_rate: float = 0.0
    slow_at: list[int] = field(default_factory=list)
    slow_seconds: float = 0.5
    # Connection reset mid-body (status + headers + part of the body, then RST).
    reset_rate: float = 0.0
    reset_at: list[int] = field(default_factory=list)
    # 200 with a truncated JSON body.
    truncated_rate: float = 0.0
    truncated_at: list[int] = field(default_factory=list)
    # An empty list page that still has `next` (list routes only).
    empty_page_rate: float = 0.0
    empty_page_at: list[int] = field(default_factory=list)
    # Token expiry: after N Graph requests, the tokens (all, or `expire_tokens`) answer 190/463.
    token_expiry_after_calls: int | None = None
    expire_tokens: list[str] | None = None
    # Batch items answered `null` (1-based item positions, and/or a rate per item).
    batch_null_items: list[int] = field(default_factory=list)
    batch_null_rate: float = 0.0

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            if f.name.endswith("_rate"):
                value = getattr(self, f.name)
                if not 0.0 <= float(value) <= 1.0:
                    raise ValueError(f"{f.name} must be within [0, 1]")
        bad = set(self.transient_kinds) - set(TRANSIENT_KINDS)
        if bad:
            raise ValueError(f"unknown transient kinds {sorted(bad)}; use {TRANSIENT_KINDS}")
        if self.throttle_code not in THROTTLE_CODES:
            raise ValueError(f"throttle_code must be one of {THROTTLE_CODES}")
        if self.count_routes_only and not self.routes:
            raise ValueError("count_routes_only needs routes")

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> FaultConfig:
        data = data or {}
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ValueError(f"unknown fault keys: {sorted(unknown)}")
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class Decision:
    """What the engine decided for one Graph request."""

    number: int
    transient: str | None = None
    throttle: tuple[int, int] | None = None  # (code, regain minutes)
    slow: float = 0.0
    reset: bool = False
    truncated: bool = False
    empty_page: bool = False
    token_expired: bool = False


class FaultEngine:
    def __init__(self, config: FaultConfig | None = None):
        self._lock = threading.Lock()
        self.configure(config or FaultConfig())

    def configure(self, config: FaultConfig) -> None:
        with self._lock:
            self.config = config
            self._rng = random.Random(f"faults:{config.seed}")
            self.count = 0
            self._window_left = 0
            self._window_until = 0.0
            self._window_code = config.throttle_code
            self._window_minutes = 1
            self.expired_at: float | None = None  # wall time of the expiry (for the 190/463 message)
            self.injected: dict[str, int] = {}

    def _hit(self, rate: float, at: list[int], n: int) -> bool:
        if n in at:
            return True
        return rate > 0 and self._rng.random() < rate

    def _note(self, kind: str) -> None:
        self.injected[kind] = self.injected.get(kind, 0) + 1

    def decide(self, route: str) -> Decision:
        with self._lock:
            cfg = self.config
            if cfg.count_routes_only and cfg.routes is not None and route not in cfg.routes:
                return Decision(self.count)
            self.count += 1
            n = self.count
            d = Decision(n)
            if cfg.token_expiry_after_calls is not None and n > cfg.token_expiry_after_calls:
                d.token_expired = True
                if self.expired_at is None:
                    self.expired_at = time.time()
            if cfg.routes is not None and route not in cfg.routes:
                return d
            # Throttling window.
            now = time.monotonic()
            in_window = self._window_left > 0 or now < self._window_until
            if not in_window and self._hit(cfg.throttle_rate, cfg.throttle_at, n):
                if cfg.throttle_seconds is not None:
                    self._window_until = now + cfg.throttle_seconds
                    minutes = math.ceil(cfg.throttle_seconds / 60)
                else:
                    self._window_left = max(1, cfg.throttle_requests)
                    minutes = 1
                self._window_minutes = cfg.throttle_regain_minutes if cfg.throttle_regain_minutes is not None \
                    else max(1, minutes)
                in_window = True
            if in_window:
                if self._window_left > 0:
                    self._window_left -= 1
                    minutes = self._window_minutes
                else:
                    minutes = cfg.throttle_regain_minutes if cfg.throttle_regain_minutes is not None \
                        else max(1, math.ceil((self._window_until - now) / 60))
                d.throttle = (cfg.throttle_code, minutes)
                self._note(f"throttle_{cfg.throttle_code}")
            elif self._hit(cfg.transient_rate, cfg.transient_at, n) and cfg.transient_kinds:
                d.transient = cfg.transient_kinds[self._rng.randrange(len(cfg.transient_kinds))] \
                    if len(cfg.transient_kinds) > 1 else cfg.transient_kinds[0]
                self._note(d.transient)
            if d.throttle is None and d.transient is None:
                if route in LIST_ROUTES and self._hit(cfg.empty_page_rate, cfg.empty_page_at, n):
                    d.empty_page = True
                    self._note("empty_page")
                if self._hit(cfg.truncated_rate, cfg.truncated_at, n):
                    d.truncated = True
                    self._note("truncated")
                elif self._hit(cfg.reset_rate, cfg.reset_at, n):
                    d.reset = True
                    self._note("reset")
            if self._hit(cfg.slow_rate, cfg.slow_at, n):
                d.slow = cfg.slow_seconds
                self._note("slow")
            return d

    def throttled_now(self) -> int:
        """Minutes left in the current throttling window (0 when none) — for the usage headers."""
        with self._lock:
            if self._window_left > 0:
                return self._window_minutes
            left = self._window_until - time.monotonic()
            return max(1, math.ceil(left / 60)) if left > 0 else 0

    def batch_item_null(self, position: int) -> bool:
        with self._lock:
            cfg = self.config
            hit = position in cfg.batch_null_items or (
                cfg.batch_null_rate > 0 and self._rng.random() < cfg.batch_null_rate)
            if hit:
                self._note("batch_null")
            return hit

    def token_expired(self, token: str) -> bool:
        cfg = self.config
        return cfg.expire_tokens is None or token in cfg.expire_tokens
