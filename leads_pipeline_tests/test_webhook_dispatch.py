"""``LEADS_WEBHOOK_PROCESS=service``: the receiver processes what it stored, off the request — the simulator's signed
webhooks become rows in ``leads`` without a sensor tick or a Dagster run (issue #14, P4's service path). Without the
setting the receiver only stores (the sensor's job does the rest)."""

from __future__ import annotations

import time

from leads_pipeline.lib.webhooks import dispatch
from leads_pipeline.settings import get_settings
from leads_pipeline_tests.test_webhook_support import (  # noqa: F401 - fixtures
    add_sim_distributor,
    inbox_rows,
    lead_ids,
    live_receiver,
    world,
)


def _wait(condition, seconds: float = 30.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


def test_the_service_turns_webhooks_into_leads_without_the_sensor(world, monkeypatch) -> None:
    wh, _receiver, sim, manifest = world
    monkeypatch.setenv(dispatch.ENV, "service")
    get_settings.cache_clear()
    key = add_sim_distributor(wh, monkeypatch, manifest)
    new_ids = set(sim.advance(leads=5))
    assert sim.flush_webhooks(30)
    assert _wait(lambda: new_ids <= lead_ids(wh)), (new_ids - lead_ids(wh), inbox_rows(wh))
    assert _wait(lambda: {inbox_rows(wh)[i]["status"] for i in new_ids} == {"processed"})
    with wh.transaction(read_only=True) as conn:
        runs = conn.query("SELECT trigger, status FROM sync_runs WHERE distributor = ?", [key])
    assert runs and {r["trigger"] for r in runs} == {"webhook"} and {r["status"] for r in runs} == {"success"}


def test_with_the_sensor_setting_the_receiver_only_stores(world, monkeypatch) -> None:
    wh, _receiver, sim, manifest = world
    monkeypatch.setenv(dispatch.ENV, "sensor")
    get_settings.cache_clear()
    add_sim_distributor(wh, monkeypatch, manifest)
    new_ids = set(sim.advance(leads=3))
    assert sim.flush_webhooks(30)
    time.sleep(1.0)  # what the service would have needed (debounce 0.3 s + one small sync): nothing happens
    rows = inbox_rows(wh)
    assert {rows[i]["status"] for i in new_ids} == {"pending"}
    assert not new_ids & lead_ids(wh)
