"""Meta-style ``leadgen`` webhook deliveries, signed with the app secret, retried with backoff, sometimes twice."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import random
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import requests

log = logging.getLogger(__name__)


@dataclass
class WebhookConfig:
    url: str
    batch_size: int = 50               # changes per POST (Meta: up to 1000)
    duplicate_rate: float = 0.0        # probability that a delivered change is delivered once more
    retry_window_seconds: float = 60.0  # give up (drop) a POST this long after its first attempt (Meta: 36 h)
    backoff_initial: float = 0.05
    backoff_max: float = 5.0
    timeout: float = 5.0
    sha1_signature: bool = True        # also send the legacy X-Hub-Signature (sha1=...)
    seed: int = 0
    require_page_install: bool = False  # only pages that installed the app (POST /{page}/subscribed_apps)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WebhookConfig:
        return cls(**data)


def sign(app_secret: str, body: bytes) -> tuple[str, str]:
    """(X-Hub-Signature-256, X-Hub-Signature) header values for ``body``."""
    sha256 = hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()
    sha1 = hmac.new(app_secret.encode(), body, hashlib.sha1).hexdigest()
    return f"sha256={sha256}", f"sha1={sha1}"


class WebhookEmitter:
    """Background deliverer. ``enqueue`` changes; ``flush(timeout)`` waits until everything is delivered or dropped."""

    def __init__(self, config: WebhookConfig, app_secret: str, clock=None):
        self.config = config
        self._secret = app_secret
        self._clock = clock or (lambda: int(time.time()))
        self._rng = random.Random(f"webhooks:{config.seed}")
        self._queue: deque[tuple[str, dict, bool]] = deque()  # (page_id, value, is_duplicate)
        self._cond = threading.Condition()
        self._busy = False
        self._stop = threading.Event()
        self._session = requests.Session()
        self._stats = {"posts": 0, "posts_ok": 0, "posts_failed": 0, "retries": 0, "changes_enqueued": 0,
                       "changes_delivered": 0, "duplicates_delivered": 0, "changes_dropped": 0, "last_error": None}
        self._thread = threading.Thread(target=self._run, name="simulator-webhooks", daemon=True)
        self._thread.start()

    # ----------------------------------------------------------------------------------------------------- API --

    def enqueue(self, changes: list[tuple[str, dict]]) -> None:
        if not changes:
            return
        with self._cond:
            for page_id, value in changes:
                self._queue.append((page_id, value, False))
            self._stats["changes_enqueued"] += len(changes)
            self._cond.notify_all()

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until the queue is empty and no POST is in flight; True when that happened within ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._queue or self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.1))
            return True

    def stats(self) -> dict[str, Any]:
        with self._cond:
            out = dict(self._stats)
            out["pending"] = len(self._queue) + (1 if self._busy else 0)
            out["url"] = self.config.url
            return out

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        self._thread.join(timeout)
        self._session.close()

    # ------------------------------------------------------------------------------------------------- worker --

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._cond:
                while not self._queue and not self._stop.is_set():
                    self._cond.wait(0.5)
                if self._stop.is_set():
                    return
                batch: list[tuple[str, dict, bool]] = []
                while self._queue and len(batch) < max(1, self.config.batch_size):
                    batch.append(self._queue.popleft())
                self._busy = True
            try:
                self._deliver(batch)
            except Exception as exc:  # noqa: BLE001 - the worker must survive anything
                log.warning("webhook worker error: %s", exc)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _payload(self, batch: list[tuple[str, dict, bool]]) -> bytes:
        entries: dict[str, list[dict]] = {}
        for page_id, value, _dup in batch:
            entries.setdefault(page_id, []).append({"field": "leadgen", "value": value})
        now = self._clock()
        payload = {"object": "page",
                   "entry": [{"id": pid, "time": now, "changes": changes} for pid, changes in entries.items()]}
        return json.dumps(payload, separators=(",", ":")).encode()

    def _deliver(self, batch: list[tuple[str, dict, bool]]) -> None:
        body = self._payload(batch)
        sig256, sig1 = sign(self._secret, body)
        headers = {"Content-Type": "application/json", "User-Agent": "facebookexternalua",
                   "X-Hub-Signature-256": sig256}
        if self.config.sha1_signature:
            headers["X-Hub-Signature"] = sig1
        first = time.monotonic()
        delay = self.config.backoff_initial
        attempt = 0
        while not self._stop.is_set():
            attempt += 1
            ok = False
            try:
                resp = self._session.post(self.config.url, data=body, headers=headers, timeout=self.config.timeout)
                ok = 200 <= resp.status_code < 300
                error = None if ok else f"HTTP {resp.status_code}"
            except requests.RequestException as exc:
                error = f"{type(exc).__name__}"
            with self._cond:
                self._stats["posts"] += 1
                if attempt > 1:
                    self._stats["retries"] += 1
                if ok:
                    self._stats["posts_ok"] += 1
                    for _pid, _value, dup in batch:
                        self._stats["duplicates_delivered" if dup else "changes_delivered"] += 1
                    # At-least-once: some changes are delivered once more, later.
                    rate = self.config.duplicate_rate
                    for pid, value, dup in batch:
                        if not dup and rate > 0 and self._rng.random() < rate:
                            self._queue.append((pid, value, True))
                    return
                self._stats["posts_failed"] += 1
                self._stats["last_error"] = error
            if time.monotonic() - first + delay > self.config.retry_window_seconds:
                with self._cond:
                    self._stats["changes_dropped"] += len(batch)
                return
            self._stop.wait(delay)
            delay = min(delay * 2, self.config.backoff_max)
