"""Shared pieces of the ``test_web_*`` modules (no tests here): a seeded world (users with API keys and passwords, a
distributor, leads), an in-process client, the console's login, and ``leads-pipeline serve`` as a real subprocess.
"""

from __future__ import annotations

import contextlib
import html
import os
import re
import signal
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from leads_pipeline.lib import crm
from leads_pipeline.lib.distributors import registry
from leads_pipeline.lib.security import TokenCipher, generate_key
from leads_pipeline.lib.warehouse import Warehouse
from leads_pipeline.settings import Settings, get_settings
from leads_pipeline.lib.crm import credentials
from leads_pipeline.web.app import create_app
from leads_pipeline_tests.crm_fixtures import insert_rows, lead_row

with warnings.catch_warnings():  # starlette asks for httpx2; httpx (pinned) works
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

REPO_ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO_ROOT / "test-artifacts"
ADMIN_PASSWORD = "admin-password-123"
STAFF_PASSWORD = "staff-password-123"
# Shaped like a Meta token, so the redaction of EAA… strings would also catch it — and long enough to find anywhere.
SECRET_TOKEN = "EAAwriteonlytoken" + "Zx9" * 20
UNREACHABLE_GRAPH = "http://127.0.0.1:9"  # nothing listens on the discard port: Graph calls fail fast

NAMES = ["Ayşe Kaya", "Mehmet Demir", "John Smith", "Anna Müller", "Fatma Yılmaz", "Ali Öztürk", "Sara Jansen",
         "Omar Haddad", "Elif Şahin", "Peter Brown", "Zeynep Arslan", "Ivan Petrov"]


@dataclass
class World:
    wh: Warehouse
    secret_key: str
    admin: dict[str, Any]
    staff: dict[str, Any]
    admin_key: str
    staff_key: str
    distributor: str
    lead_ids: list[str] = field(default_factory=list)

    def settings(self) -> Settings:
        """The service's settings for this world (independent of the environment)."""
        return Settings(warehouse_url=self.wh.url, secret_key=self.secret_key, graph_base_url=UNREACHABLE_GRAPH,
                        graph_max_retries=0)

    def headers(self, who: str | None) -> dict[str, str]:
        if who == "superadmin":
            return {"Authorization": f"Bearer {self.admin_key}"}
        if who == "staff":
            return {"X-API-Key": self.staff_key}
        return {}

    def audit(self, **where: Any) -> list[dict[str, Any]]:
        sql = "SELECT actor, action, entity_type, entity_id, before, after FROM audit_log"
        if where:
            sql += " WHERE " + " AND ".join(f"{k} = ?" for k in where)
        with self.wh.transaction(read_only=True) as conn:
            return conn.query(sql + " ORDER BY id", list(where.values()))

    def lead(self, lead_id: str) -> dict[str, Any] | None:
        with self.wh.transaction(read_only=True) as conn:
            return conn.query_one("SELECT status, assigned_to FROM leads WHERE meta_lead_id = ?", [lead_id])


_HASHES: dict[str, str] = {}


def set_password_hashed_once(wh: Warehouse, email: str, password: str) -> None:
    """A console password for a seeded user, hashed once per test process and stored with SQL: a scrypt hash costs
    about 0.3 s and 128 MiB, and every web test seeds a world. ``credentials.set_password`` itself (rules, audit,
    sessions ended) is tested in test_web_auth.py; logging in still verifies the hash the normal way."""
    from leads_pipeline.lib.crm import credentials

    if password not in _HASHES:
        _HASHES[password] = credentials.hash_password(password)
    with wh.transaction() as conn:
        conn.execute("UPDATE users SET password_hash = ? WHERE email = ?", [_HASHES[password], email])


def seed_world(monkeypatch, wh: Warehouse, *, leads: int = 12, graph_base_url: str = UNREACHABLE_GRAPH,
               token: str = "EAAplaceholdertoken1234567890", page_ids: tuple[str, ...] = ("1001",),
               region: str = "TR") -> World:
    """Distributor ``msh``, users (superadmin + a staff user of ``msh``, each with an API key and a console
    password), leads of ``msh``."""
    secret = generate_key()
    for name, value in {"LEADS_SECRET_KEY": secret, "LEADS_GRAPH_BASE_URL": graph_base_url,
                        "LEADS_GRAPH_MAX_RETRIES": "0", "LEADS_WAREHOUSE_URL": wh.url}.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    registry.add(wh, "MSH Med Tour", token, key="msh", page_ids=list(page_ids), region=region,
                 cipher=TokenCipher(secret))
    admin = crm.add_user(wh, "Admin Person", "admin@example.com", "superadmin")
    staff = crm.add_user(wh, "Staff Person", "staff@example.com", "staff", distributors=["msh"])
    admin_key, _ = credentials.create_api_key(wh, admin["email"], name="tests")
    staff_key, _ = credentials.create_api_key(wh, staff["email"], name="tests")
    set_password_hashed_once(wh, admin["email"], ADMIN_PASSWORD)
    set_password_hashed_once(wh, staff["email"], STAFF_PASSWORD)
    rows = []
    for i in range(leads):
        first, _, last = NAMES[i % len(NAMES)].partition(" ")
        rows.append(lead_row(900 + i, meta_lead_id=f"{700000000000000 + i}", full_name=NAMES[i % len(NAMES)],
                             email=f"{first.lower()}.{i}@example.com", status="new" if i % 3 else "contacted"))
    insert_rows(wh, rows)
    return World(wh, secret, admin, staff, admin_key, staff_key, "msh", [r["meta_lead_id"] for r in rows])


def client(wh: Warehouse, settings: Settings | None = None, **kwargs: Any) -> TestClient:
    """The app in-process (default: settings from the environment ``seed_world`` set)."""
    return TestClient(create_app(settings or Settings(), wh), follow_redirects=False, **kwargs)


def csrf_from(page_html: str) -> str:
    m = re.search(r'name="csrf_token" value="([^"]+)"', page_html)
    assert m, "no CSRF token on the page"
    return html.unescape(m.group(1))


def login(c: TestClient, email: str, password: str) -> str:
    """Log the client in through the form; returns the session's CSRF token."""
    token = csrf_from(c.get("/login").text)
    r = c.post("/login", data={"email": email, "password": password, "csrf_token": token, "next": "/console/leads"})
    assert r.status_code == 303, r.text[:500]
    return csrf_from(c.get("/console/leads").text)


# ------------------------------------------------------------------------------------------------- a real server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def served(env: dict[str, str], *, timeout: float = 60.0) -> Iterator[str]:
    """``leads-pipeline serve`` in a subprocess on a free loopback port; yields its base URL."""
    port = free_port()
    full_env = {**os.environ, **env}
    log_path = Path(env.get("LEADS_DATA_DIR", ".")) / f"serve-{port}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = open(log_path, "wb")
    cmd = [sys.executable, "-c", "from leads_pipeline.cli import main; main()", "serve", "--host", "127.0.0.1",
           "--port", str(port), "--log-level", "warning"]
    proc = subprocess.Popen(cmd, env=full_env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"serve exited with {proc.returncode}: {log_path.read_text()[-3000:]}")
            try:
                if requests.get(base + "/api/health", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"serve did not answer within {timeout}s: {log_path.read_text()[-3000:]}")
            time.sleep(0.2)
        yield base
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)  # uvicorn shuts down gracefully on SIGINT
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        log.close()


def server_env(world: World, **extra: str) -> dict[str, str]:
    return {"LEADS_WAREHOUSE_URL": world.wh.url, "LEADS_SECRET_KEY": world.secret_key,
            "LEADS_DATA_DIR": os.environ.get("LEADS_DATA_DIR", "data"),
            "LEADS_GRAPH_BASE_URL": os.environ.get("LEADS_GRAPH_BASE_URL", UNREACHABLE_GRAPH),
            "LEADS_GRAPH_MAX_RETRIES": os.environ.get("LEADS_GRAPH_MAX_RETRIES", "0"), **extra}
