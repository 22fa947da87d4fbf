"""``leads-pipeline serve``: the HTTP service (JSON API, staff console, Meta webhooks) on uvicorn."""

from __future__ import annotations

import click


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (0.0.0.0 exposes it to the network: put HTTPS in front).")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535), help="Port (0: any free).")
@click.option("--secure-cookies/--no-secure-cookies", default=False, show_default=True,
              help="Mark the console's session cookie Secure and send Strict-Transport-Security (when served "
                   "behind HTTPS).")
@click.option("--log-level", default="info", show_default=True,
              type=click.Choice(["critical", "error", "warning", "info", "debug"]))
def serve(host: str, port: int, secure_cookies: bool, log_level: str) -> None:
    """Serve the JSON API (/api, /openapi.json), the staff console (/login) and Meta webhooks (/webhooks/meta).

    Uses LEADS_WAREHOUSE_URL (migrated on start) and LEADS_SECRET_KEY (tokens at rest; signs console sessions).
    Behind a reverse proxy, name it in LEADS_TRUSTED_PROXIES (login limits then count the client it saw). The access
    log shows paths without their query strings.
    API keys: `leads-pipeline users api-key create EMAIL`; console passwords: `users set-password EMAIL`.
    """
    import uvicorn

    from leads_pipeline.lib.security import install_log_redaction
    from leads_pipeline.lib.warehouse import WarehouseError
    from leads_pipeline.web.access_log import omit_query_strings
    from leads_pipeline.web.app import create_app

    try:
        app = create_app(https_only=secure_cookies)
    except WarehouseError as exc:
        raise click.ClickException(str(exc)) from None
    config = uvicorn.Config(app, host=host, port=port, log_level=log_level, proxy_headers=False,
                            server_header=False, date_header=True)
    server = uvicorn.Server(config)
    import logging

    for name in ("", "uvicorn", "uvicorn.error", "uvicorn.access"):
        install_log_redaction(logging.getLogger(name) if name else None)
    omit_query_strings()  # search terms, filters and Meta's verify token never reach the access log
    click.echo(f"Serving on http://{host}:{port}  (console: /login · API: /api · schema: /openapi.json)", err=True)
    server.run()
