"""``roboflow ui``: serve the REST API and the web console with uvicorn."""

from __future__ import annotations

import logging
import os
import sys

import click

from roboflow_cli._options import log_format_option
from roboflow_core import RoboflowError
from roboflow_core.logs import configure_logging

__all__ = ["ui"]


@click.command()
@click.option(
    "--store",
    "store_url",
    envvar="ROBOFLOW_STORE",
    default=None,
    help="Coordination store URL (as for every command).",
)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to bind; anything but loopback needs ROBOFLOW_UI_TOKEN.",
)
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True, help="Port to bind.")
@log_format_option
def ui(store_url: str | None, host: str, port: int, log_format: str) -> None:
    """Serve the operations console: the web UI at / and the REST API at /api/v1 (OpenAPI at /openapi.json).

    Binds 127.0.0.1 unless told otherwise. Another address needs a token in ROBOFLOW_UI_TOKEN;
    with a token set, every request that changes something needs 'Authorization: Bearer <token>'.
    """
    import uvicorn

    from roboflow_cli.console.app import create_app
    from roboflow_cli.console.security import TOKEN_ENV, check_bind
    from roboflow_distributed.service import Operations
    from roboflow_distributed.settings import Settings
    from roboflow_distributed.store import open_store

    token = os.environ.get(TOKEN_ENV) or None
    try:
        check_bind(host, token)
        settings = Settings.from_env()
        store = open_store(store_url)
    except RoboflowError as err:
        click.echo(f"error: {err}", err=True)
        sys.exit(2)
    configure_logging(log_format, level=logging.INFO, role="ui")  # redacted, text or JSON lines
    app = create_app(Operations(store, heartbeat_timeout=settings.heartbeat_timeout), token=token)
    click.echo(f"roboflow ui on http://{host}:{port}/ (store {store.url})", err=True)
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False, server_header=False)
    finally:
        store.close()
