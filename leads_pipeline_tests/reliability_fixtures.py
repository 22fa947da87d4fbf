"""Helpers shared by the ``test_reliability_*`` modules (no tests here).

- :func:`settings_env` sets ``LEADS_*`` variables and drops the cached settings;
- :func:`table_state` is what an uninterrupted sync must leave, independent of timestamps and sync ids;
- :func:`free_port`, :class:`ServeProcess`: ``leads-pipeline serve`` as a real subprocess (to SIGKILL it);
- :func:`find_secrets` scans bytes/text for secrets without ever printing them (only their labels).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

import requests

from leads_pipeline.lib.warehouse import Warehouse
from leads_pipeline.settings import get_settings

CLI = str(Path(sys.executable).with_name("leads-pipeline"))


def settings_env(monkeypatch, **values: str | None) -> None:
    """Set (or, with None, unset) ``LEADS_<NAME>`` variables and drop the cached settings."""
    for name, value in values.items():
        env = f"LEADS_{name.upper()}"
        if value is None:
            monkeypatch.delenv(env, raising=False)
        else:
            monkeypatch.setenv(env, str(value))
    get_settings.cache_clear()


def table_state(wh: Warehouse) -> dict:
    """The rows a sync is responsible for, without timestamps and sync ids (comparable across runs)."""
    with wh.transaction(read_only=True) as conn:
        return {
            "leads": sorted(
                tuple(str(v) for v in r.values())
                for r in conn.query(
                    "SELECT meta_lead_id, distributor, form_id, created_time, email, phone, full_name, status, "
                    "CAST(custom_fields AS TEXT) AS custom FROM leads"
                )
            ),
            "rejected": sorted(tuple(r.values()) for r in conn.query("SELECT reject_key, reason FROM rejected_leads")),
            "raw": sorted(r["raw_key"] for r in conn.query("SELECT raw_key FROM raw_leads")),
            "raw_count": conn.scalar("SELECT count(*) FROM raw_leads"),
            "leads_count": conn.scalar("SELECT count(*) FROM leads"),
            "unprocessed": conn.scalar("SELECT count(*) FROM raw_leads WHERE processed_at IS NULL"),
            "cursors": sorted(tuple(r.values()) for r in conn.query(
                "SELECT distributor, form_id, last_created_time FROM sync_cursors")),
        }


def duplicate_counts(wh: Warehouse) -> dict[str, int]:
    """Rows that share a key where there must be one row per key (0 everywhere expected)."""
    with wh.transaction(read_only=True) as conn:
        return {
            "leads": int(conn.scalar(
                "SELECT count(*) FROM (SELECT meta_lead_id FROM leads GROUP BY meta_lead_id HAVING count(*) > 1) d")),
            "raw_leads": int(conn.scalar(
                "SELECT count(*) FROM (SELECT distributor, raw_key FROM raw_leads GROUP BY distributor, raw_key "
                "HAVING count(*) > 1) d")),
            "webhook_inbox": int(conn.scalar(
                "SELECT count(*) FROM (SELECT leadgen_id FROM webhook_inbox GROUP BY leadgen_id "
                "HAVING count(*) > 1) d")),
        }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServeProcess:
    """``leads-pipeline serve`` on a free port, its output kept in a file (scanned later for secrets)."""

    def __init__(self, env: Mapping[str, str], log_path: Path, port: int | None = None):
        self.env = dict(env)
        self.port = port or free_port()
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> ServeProcess:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen([CLI, "serve", "--port", str(self.port), "--log-level", "info"], env=self.env,
                                     stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"serve exited with {self.proc.returncode}: {self.log_path.read_text()[-2000:]}")
            try:
                requests.get(f"{self.url}/webhooks/meta", timeout=1)
                return self
            except requests.ConnectionError:
                time.sleep(0.1)
        raise RuntimeError("serve did not start listening in time")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.send_signal(signal.SIGKILL)
                self.proc.wait(10)


def subprocess_env(**extra: str) -> dict[str, str]:
    return {**os.environ, **extra}


def secret_variants(secret: str) -> list[bytes]:
    """A secret as it could appear at rest: UTF-8, UTF-16 (some SQLite/JSON encodings), JSON-escaped."""
    out = [secret.encode()]
    out.append(secret.encode("utf-16-le"))
    return out


def find_secrets(blob: bytes | str, secrets: Mapping[str, str]) -> list[str]:
    """Labels of the ``secrets`` (label → value) found in ``blob``; never the values themselves."""
    data = blob.encode("utf-8", "replace") if isinstance(blob, str) else blob
    found = []
    for label, value in secrets.items():
        if value and any(v in data for v in secret_variants(value)):
            found.append(label)
    return found


def files_under(root: Path) -> Iterable[Path]:
    for path in sorted(root.rglob("*")):
        if path.is_file():
            yield path
