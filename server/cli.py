"""Server commands: run the server, migrate, users, tokens, member import, grants."""

from __future__ import annotations

import click


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
def server(host: str, port: int) -> None:
    """Run the web UI + REST API and the MQTT ingest and access-list publisher."""
    raise click.ClickException("not built yet")


@click.group()
def db() -> None:
    """Database schema."""


@click.group()
def user() -> None:
    """Web logins."""


@click.group()
def token() -> None:
    """REST API tokens."""


@click.group()
def members() -> None:
    """Members."""


@click.command()
def grant() -> None:
    """Grant a training authorization."""
    raise click.ClickException("not built yet")


@click.command()
def revoke() -> None:
    """Revoke a training authorization."""
    raise click.ClickException("not built yet")
