"""`fabpass server` and `fabpass ingest`: run the web UI, API, ingest and publisher, or the ingest alone.

Heavy imports stay inside the functions so `fabpass node` on a Pi never loads them.
"""

from __future__ import annotations

import click

from server.cli.support import cli_settings


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--threads", default=8, show_default=True, type=int, help="WSGI threads (≥ 8)")
@click.option("--ingest-shared", is_flag=True,
              help="take events through the MQTT 5 shared subscription $share/fabpass/…, so "
                   "`fabpass ingest --shared --worker N` processes (N ≥ 1) share the load")
def server(host: str, port: int, threads: int, ingest_shared: bool) -> None:
    """Run the web UI + REST API and the MQTT ingest and access-list publisher."""
    from server.app import ConfigurationError
    from server.db import DatabaseError
    from server.runner import run_server

    try:
        run_server(host, port, threads=threads, shared=ingest_shared)
    except (ConfigurationError, DatabaseError) as exc:
        raise click.ClickException(str(exc)) from None


@click.command()
@click.option("--worker", type=int, default=None,
              help="worker number (client id fabpass-ingest-N); several workers share events")
@click.option("--shared/--no-shared", default=False,
              help="receive events through the MQTT 5 shared subscription $share/fabpass/…")
@click.option("--client-id", default=None, help="MQTT client id (fixed: the broker keeps its "
              "session). Default fabpass-ingest[-N], or FABPASS_MQTT_CLIENT_ID")
@click.option("--publisher/--no-publisher", default=False,
              help="also publish access lists (when no `fabpass server` runs)")
def ingest(worker: int | None, shared: bool, client_id: str | None, publisher: bool) -> None:
    """Run the MQTT ingest alone (events and statuses into the database)."""
    from server.db import DatabaseError
    from server.runner import run_ingest

    try:
        run_ingest(cli_settings(), worker=worker, shared=shared, client_id=client_id,
                   publisher=publisher)
    except DatabaseError as exc:
        raise click.ClickException(str(exc)) from None
