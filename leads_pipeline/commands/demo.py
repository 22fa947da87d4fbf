"""``leads-pipeline demo`` and ``leads-pipeline dev``: the sandbox on the embedded default (DuckDB + simulator).

``demo`` runs the whole pipeline once through Dagster, on the same local instance that ``dev`` opens in the UI,
so the runs, lineage, metadata and checks it produced are there to look at afterwards. Both use one sandbox
scenario (fixed seed), so the simulator's tokens and lead ids stay the same from one start to the next.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import click

from leads_pipeline.commands.common import echo_json, fail, warehouse
from leads_pipeline.deploy import LOCAL_INSTANCE_YAML
from leads_pipeline.settings import get_settings

# LEADS_SANDBOX_PORT moves it (a test session runs its own demo while another may be running on this machine: the
# demo reuses a simulator that answers on its port, and one that stops mid-run would fail the other's syncs).
SANDBOX_PORT = int(os.environ.get("LEADS_SANDBOX_PORT") or 8765)
SANDBOX_URL = f"http://127.0.0.1:{SANDBOX_PORT}"
# The demo's distributors, one per simulated Facebook Page (the seed's first customer first).
DEMO_DISTRIBUTORS = ["MSH Med Tour", "Anatolia Dental Care", "Berlin Hair Clinic"]


def sandbox_scenario():
    """The sandbox world: 3 pages × 2 forms × 900 leads (about 5,400) over the 8 weeks up to now (the world's clock
    is anchored to the wall clock when it starts), more arriving in real time under ``dev``, dated as they arrive."""
    from leads_pipeline.simulator import Scenario

    return Scenario(seed=1, pages=3, forms_per_page=2, leads_per_form=900, extra_leads=None, arrival_rate=6.0,
                    start_time=None, history_days=56)


def dagster_home() -> Path:
    """The local Dagster instance (``data/dagster_home``), created with the project's ``dagster.yaml`` and its
    storage.

    Why the storage at once: Dagster's SQLite storages create their tables unguarded, and the processes that open a
    new home (the UI, the daemon, a CLI sync's report in ``defs.events``) may do so at the same moment — one of
    them then fails with "table jobs already exists". Made here, before any of them starts, no one creates tables
    later."""
    home = (get_settings().data_dir / "dagster_home").resolve()
    home.mkdir(parents=True, exist_ok=True)
    target = home / "dagster.yaml"
    if not target.exists():
        shutil.copy(LOCAL_INSTANCE_YAML, target)
        import dagster as dg

        with dg.DagsterInstance.from_config(str(home)):
            pass
    else:  # a home made by an older checkout: add the settings it lacks (no modal; freshness evaluated)
        text = target.read_text()
        missing = [block for key, block in (("nux:", "nux:\n  enabled: false\n"),
                                            ("freshness:", "freshness:\n  enabled: true\n")) if key not in text]
        if missing:
            target.write_text(text.rstrip("\n") + "\n" + "".join(missing))
    return home


def _env_file_sandbox(app_secret: str) -> dict[str, str]:
    """Sandbox settings for this process; written to ``.env`` when there is none, so ``dev`` finds them later.

    An existing ``.env`` is never overwritten (it may hold a real Meta configuration); only a missing
    LEADS_SECRET_KEY is appended to it, since tokens encrypted with it must stay readable.
    """
    from leads_pipeline.lib.security import generate_key

    settings = get_settings()
    key = settings.secret_key.get_secret_value() if settings.secret_key else generate_key()
    values = {
        "LEADS_GRAPH_BASE_URL": SANDBOX_URL,
        "LEADS_APP_SECRET": app_secret,
        "LEADS_SECRET_KEY": key,
        "LEADS_WEBHOOK_VERIFY_TOKEN": "sandbox-verify-token",
    }
    env = Path(".env")
    if not env.exists():
        env.write_text(
            "# Written by `leads-pipeline demo`: the sandbox (built-in Graph API simulator). Remove LEADS_GRAPH_BASE_URL\n"
            "# and set a real LEADS_APP_SECRET to use Meta; keep LEADS_SECRET_KEY (it decrypts the stored tokens).\n"
            + "".join(f"{k}={v}\n" for k, v in values.items())
        )
        env.chmod(0o600)
    elif not settings.secret_key:
        with env.open("a") as fh:
            fh.write(f"LEADS_SECRET_KEY={key}\n")
    return values


def _running_simulator() -> bool:
    import requests  # here, not at the top: `leads-pipeline --help` must not import it (issue #14, P6)

    try:
        return requests.get(f"{SANDBOX_URL}/__simulator/scenario", timeout=2).ok
    except requests.RequestException:
        return False


def start_sandbox(realtime: bool):
    """Start the sandbox simulator on 127.0.0.1:8765 unless one already answers there; returns the server or None."""
    from leads_pipeline.simulator import SimulatorServer

    if _running_simulator():
        return None
    return SimulatorServer(sandbox_scenario(), host="127.0.0.1", port=SANDBOX_PORT, realtime=realtime).start()


def _register_distributors(wh, manifest: dict) -> list[str]:
    from leads_pipeline.lib.distributors import registry as distributors

    existing = {d.name: d.key for d in distributors.list_all(wh)}
    keys = []
    for name, page in zip(DEMO_DISTRIBUTORS, manifest["pages"]):
        if name in existing:
            keys.append(existing[name])
            continue
        dist = distributors.add(
            wh, name, page["access_token"], page_ids=[page["id"]], region=page.get("default_region", "TR"), actor="demo"
        )
        keys.append(dist.key)
    return keys


@click.command("demo")
def demo() -> None:
    """Run the pipeline end to end on DuckDB + the built-in Graph API simulator, through Dagster."""
    os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    import requests

    started = time.monotonic()
    server = start_sandbox(realtime=False)
    try:
        manifest = requests.get(f"{SANDBOX_URL}/__simulator/manifest", timeout=10).json()
        os.environ.update(_env_file_sandbox(manifest["app_secret"]))
        get_settings.cache_clear()
        wh = warehouse()
        keys = _register_distributors(wh, manifest)
        _configure_conversions(wh, keys, manifest)
        click.echo(f"Simulator on {SANDBOX_URL}; warehouse {wh!r}; distributors: {', '.join(keys)}", err=True)
        world_now = dt.datetime.fromtimestamp(manifest["now"], dt.UTC) if manifest.get("now") else None
        results = _materialize_everything(keys, before_marts=lambda: _staff_activity(wh, world_now))
        conversions = _conversions_accepted(manifest)
    finally:
        if server is not None:
            server.stop()
    from leads_pipeline.lib.marts.analytics import live_stats

    with wh.transaction(read_only=True) as conn:
        stats = live_stats(conn)
        conversions["sent_in_all"] = int(conn.scalar("SELECT count(*) FROM conversion_events WHERE status = 'sent'")
                                         or 0)
    failed = [k for k, ok in results.items() if not ok]
    echo_json({"stats": stats, "runs": results, "conversions_api": conversions,
               "seconds": round(time.monotonic() - started, 1)})
    click.echo(f"\nConversions API: Meta (the simulator) accepted {conversions['events_accepted']} lead stage events "
               f"in {conversions['datasets']} CRM dataset(s) in this run: {conversions['by_event_name']} "
               f"({conversions['sent_in_all']} sent in all; a stage is never sent twice)", err=True)
    click.echo(
        "\nNext:\n"
        "  make dev                          # Dagster UI on http://127.0.0.1:3000 (lineage, runs, checks)\n"
        "  .venv/bin/leads-pipeline lead list  # work the leads; `leads-pipeline --help` for everything\n"
        "  make notebook                     # the notebooks in Jupyter, on a read-only snapshot beside the pipeline\n"
        "  .venv/bin/leads-pipeline sql \"SELECT * FROM conversion_funnel LIMIT 5\"  # SQL on the snapshot; "
        "no query: a prompt\n",
        err=True,
    )
    if failed:
        fail(f"these runs failed: {', '.join(failed)} (see `make dev` → Runs)")


def _configure_conversions(wh, keys: list[str], manifest: dict) -> None:
    """Give each demo distributor its Page's CRM dataset on the simulator (once), so its lead stages go to Meta."""
    from leads_pipeline.lib import capi

    for key, page in zip(keys, manifest["pages"]):
        if page.get("capi_dataset_id") and not capi.get(wh, key).dataset_id:
            capi.configure(wh, key, dataset_id=page["capi_dataset_id"], crm_name="Demo CRM", actor="demo")


def _conversions_accepted(manifest: dict) -> dict:
    """What the simulator's CRM datasets of the demo's Pages accepted (Meta's side of the loop)."""
    import requests

    ids = {p.get("capi_dataset_id") for p in manifest["pages"]} - {None}
    datasets = requests.get(f"{SANDBOX_URL}/__simulator/datasets", timeout=10).json().get("datasets", [])
    mine = [d for d in datasets if d.get("id") in ids]
    names: dict[str, int] = {}
    for d in mine:
        for name, n in (d.get("by_event_name") or {}).items():
            names[name] = names.get(name, 0) + n
    return {"datasets": len(mine), "events_accepted": sum(d.get("events_received", 0) for d in mine),
            "by_event_name": names}


def _staff_activity(wh, now: dt.datetime | None = None) -> None:
    """The demo's sales history (once): staff assign, contact, convert and reject the leads, each at the lead's own
    time, up to ``now`` (the simulator's clock; default the wall clock), through the library's bulk operations
    (``demo_staff.py``)."""
    from leads_pipeline.commands.demo_staff import seed_staff_activity

    seed_staff_activity(wh, now=now)


QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def _check_outcomes(evaluations) -> tuple[list[str], list[str]]:
    """The checks that did not pass, as ``check on asset [partition]: what it found``: ERROR ones fail the demo, WARN
    ones (e.g. leads waiting past their speed-to-lead target) are named as warnings."""
    import dagster as dg

    failed, warned = [], []
    for e in evaluations:
        if e.passed:
            continue
        where = e.asset_key.to_user_string() + (f" [{e.partition}]" if getattr(e, "partition", None) else "")
        found = e.description or next((str(v.value) for k, v in (e.metadata or {}).items()
                                       if k in ("problem", "summary", "message")), "")
        text = f"{e.check_name} on {where}" + (f": {found}" if found else "")
        (warned if e.severity == dg.AssetCheckSeverity.WARN else failed).append(text)
    return failed, warned


def _materialize_everything(keys: list[str], before_marts=None) -> dict[str, bool]:
    """Sync each distributor partition, then refresh every mart, as Dagster runs on the local instance."""
    os.environ["DAGSTER_HOME"] = str(dagster_home())
    import dagster as dg

    from leads_pipeline.definitions import defs

    definitions = defs()
    results: dict[str, bool] = {}
    with dg.DagsterInstance.get() as instance:
        instance.add_dynamic_partitions("distributors", [k for k in keys if not instance.has_dynamic_partition("distributors", k)])
        sync_job = definitions.resolve_job_def("sync_job")
        for key in keys:
            run = sync_job.execute_in_process(
                partition_key=key, instance=instance, raise_on_error=False, tags={"leads/trigger": "demo"},
                run_config=QUIET,
            )
            results[f"sync {key}"] = run.success
            click.echo(f"  sync {key}: {'ok' if run.success else 'FAILED'}", err=True)
        if before_marts:
            before_marts()
        # The lead stages go to Meta before the marts count them (conversion_funnel's stages reported to Meta).
        capi_job = definitions.resolve_job_def("meta_conversion_events_job")
        for key in keys:
            run = capi_job.execute_in_process(partition_key=key, instance=instance, raise_on_error=False,
                                              tags={"leads/trigger": "demo"}, run_config=QUIET)
            results[f"conversions api {key}"] = run.success
            click.echo(f"  conversions api {key}: {'ok' if run.success else 'FAILED'}", err=True)
        marts = definitions.resolve_job_def("marts_job").execute_in_process(
            instance=instance, raise_on_error=False, run_config=QUIET
        )
        results["marts"] = marts.success
        click.echo(f"  marts: {'ok' if marts.success else 'FAILED'}", err=True)
        quality = definitions.resolve_job_def("leads_quality_job").execute_in_process(
            instance=instance, raise_on_error=False, run_config=QUIET
        )
        failed, warned = _check_outcomes(quality.get_asset_check_evaluations())
        results["quality checks"] = quality.success and not failed
        click.echo(f"  quality checks: {'passed' if results['quality checks'] else 'FAILED'}"
                   + (f" — failed: {'; '.join(failed)}" if failed else "")
                   + (f" — warnings: {'; '.join(warned)}" if warned else ""), err=True)
    return results


def _workspace() -> Path:
    """The checkout's workspace.yaml wherever `dev` is run from (else the current folder's)."""
    checkout = Path(__file__).resolve().parents[2] / "workspace.yaml"
    return checkout if checkout.is_file() else Path("workspace.yaml")


@click.command("dev")
@click.option("--port", default=3000, show_default=True, help="Port of the Dagster UI.")
def dev(port: int) -> None:
    """Open the Dagster UI over the local instance (starting the sandbox simulator when the settings use it)."""
    os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    os.environ["DAGSTER_HOME"] = str(dagster_home())
    server = start_sandbox(realtime=True) if get_settings().graph_base_url.rstrip("/") == SANDBOX_URL else None
    if server:
        click.echo(f"Sandbox simulator on {SANDBOX_URL} (new leads arrive in real time)", err=True)
    dagster = Path(sys.executable).with_name("dagster")
    try:
        code = subprocess.run([str(dagster), "dev", "-w", str(_workspace()), "-h", "127.0.0.1", "-p", str(port)],
                              check=False).returncode
    finally:
        if server is not None:
            server.stop()
    if code:  # the UI did not start, or stopped with an error: exit with its status, not 0
        raise SystemExit(code)
