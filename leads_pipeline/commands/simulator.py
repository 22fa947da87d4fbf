"""``leads-pipeline simulator serve``: run the Meta Graph API simulator (the sandbox) on this machine."""

from __future__ import annotations

import signal
import threading

import click

from leads_pipeline.simulator import Scenario, SimulatorServer


@click.group("simulator")
def simulator() -> None:
    """The Meta Graph API (Lead Ads) simulator: a local, deterministic sandbox with fake pages, forms and leads."""


@simulator.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=None, type=int,
              help="Port (0 = any free port)  [default: 8765; with --sandbox, the demo's: LEADS_SANDBOX_PORT or 8765]")
@click.option("--seed", type=int, help="Same seed → same world (default: the scenario file's, else 1).")
@click.option("--scenario", "scenario_file", type=click.Path(exists=True, dir_okay=False),
              help="A JSON scenario file (see leads_pipeline.simulator.Scenario); the options below override it.")
@click.option("--pages", type=int, help="Number of Facebook pages.")
@click.option("--forms-per-page", type=int, help="Lead forms per page.")
@click.option("--leads-per-form", type=int, help="Leads that exist in each form at start.")
@click.option("--arrival-rate", type=float,
              help="New leads per minute; with it the clock follows wall time and leads keep arriving.")
@click.option("--start", "start",
              help="The world's clock: 'now' (default without --scenario: the history is the weeks up to now, and "
                   "with --arrival-rate leads arrive dated as they arrive), an ISO time (2026-06-01T00:00:00Z) or unix "
                   "seconds for a fixed, reproducible world.")
@click.option("--webhook-url", help="POST signed leadgen webhooks there as leads arrive.")
@click.option("--sandbox", is_flag=True,
              help="The demo's world (what `make demo` synced: its Pages, tokens, app secret and leads), with new "
                   "leads arriving in real time: the simulator `make dev` runs, without the Dagster UI. The demo's "
                   ".env points LEADS_GRAPH_BASE_URL at it (port 8765).")
def serve(host: str, port: int | None, seed: int | None, scenario_file: str | None, pages: int | None,
          forms_per_page: int | None, leads_per_form: int | None, arrival_rate: float | None,
          start: str | None, webhook_url: str | None, sandbox: bool) -> None:
    """Serve the simulator until interrupted (Ctrl-C)."""
    if sandbox and scenario_file:
        raise click.BadParameter("--sandbox is the demo's scenario: give it or --scenario, not both")
    if sandbox:
        from leads_pipeline.commands.demo import SANDBOX_PORT, sandbox_scenario

        scenario = sandbox_scenario()
        port = SANDBOX_PORT if port is None else port
    else:
        # Without a scenario file the world is anchored to now (a file keeps its own start_time unless --start).
        scenario = Scenario.from_json(scenario_file) if scenario_file else Scenario(start_time=None)
    changes: dict = {} if seed is None else {"seed": seed}
    if start is not None:
        changes["start_time"] = _start_time(start)
    if pages is not None:
        changes["pages"] = pages
    if forms_per_page is not None:
        changes["forms_per_page"] = forms_per_page
    if leads_per_form is not None:
        changes["leads_per_form"] = leads_per_form
    if arrival_rate is not None:
        changes["arrival_rate"] = arrival_rate
        changes["extra_leads"] = None  # endless: leads keep arriving in real time
    try:
        scenario = scenario.replace(**changes)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    realtime = arrival_rate is not None or sandbox
    port = 8765 if port is None else port
    stop, previous = _stop_on_signals()
    server = SimulatorServer(scenario, host=host, port=port, realtime=realtime, webhook_url=webhook_url)
    try:
        server.start()
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    world = server.simulator.world
    visible = sum(world.visible_hi(f.sks) for f in world.forms)
    click.echo(f"Meta Graph API simulator listening on {server.base_url} "
               f"(seed {scenario.seed}: {scenario.pages} pages, {len(world.forms)} forms, {visible} leads)")
    click.echo(f"  Graph API base URL: {server.base_url}  (e.g. {server.base_url}/{scenario.api_version}/me/accounts)")
    click.echo(f"  Credentials and ground truth: curl -s {server.base_url}/__simulator/manifest")
    click.echo(f"  Conversions API datasets (one per page) and the events they accepted: "
               f"curl -s '{server.base_url}/__simulator/datasets?events=1'")
    if realtime:
        click.echo(f"  New leads arrive in real time, about {scenario.arrival_rate:g} per minute "
                   f"(more now: curl -s -X POST -d '{{\"leads\": 5}}' {server.base_url}/__simulator/advance).")
    else:
        click.echo(f"  More leads: curl -s -X POST -d '{{\"leads\": 10}}' {server.base_url}/__simulator/advance")
    if webhook_url:
        click.echo(f"  Webhooks: POSTed to {webhook_url}, signed with the app secret from the manifest.")
    click.echo("Press Ctrl-C to stop.")
    try:
        while not stop.wait(0.5):
            pass
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        server.stop()
        click.echo("Simulator stopped.")


def _stop_on_signals() -> tuple[threading.Event, dict[int, object]]:
    """Ctrl-C and ``kill`` (SIGINT, SIGTERM) set the returned event, whatever signal state this process inherited.

    A script's background job (``serve &``) starts with SIGINT ignored, and a parent may start it with SIGINT blocked;
    relying on Python's KeyboardInterrupt then leaves a simulator nobody can stop but with SIGKILL. Called before the
    server's threads start, so they inherit the unblocked mask. Returns the event and the handlers it replaced.
    """
    stop = threading.Event()
    signals = (signal.SIGINT, signal.SIGTERM)
    previous = {signum: signal.signal(signum, lambda *_: stop.set()) for signum in signals}
    signal.pthread_sigmask(signal.SIG_UNBLOCK, signals)
    return stop, previous


def _start_time(text: str) -> int | None:
    """``--start``: 'now' → None (anchored to the wall clock), unix seconds, or an ISO 8601 time (UTC if no offset)."""
    import datetime as dt

    text = text.strip()
    if text.lower() == "now":
        return None
    if text.isdigit():
        return int(text)
    try:
        when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(f"{text!r}: give 'now', unix seconds or an ISO time such as 2026-06-01T00:00:00Z",
                                 param_hint="--start") from None
    return int((when if when.tzinfo else when.replace(tzinfo=dt.UTC)).timestamp())
