"""`fabpass db`: the schema (Alembic upgrade) and the report roll-ups.
"""

from __future__ import annotations

import click

from server.cli.support import cli_settings


@click.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
def db_upgrade(revision: str) -> None:
    """Apply migrations (Alembic) to FABPASS_DATABASE_URL."""
    from server.db import upgrade

    url = cli_settings()["DATABASE_URL"]
    upgrade(url, revision)
    click.echo(f"database at {revision}", err=True)


@db.command("rollups")
@click.option("--rebuild", is_flag=True, help="drop every cell and rebuild from the sessions")
def db_rollups(rebuild: bool) -> None:
    """Bring the report roll-ups up to date now (the server does it every few seconds)."""
    import time

    from server.cli.support import database_session
    from server.reports import rollups

    with database_session(writer=True, commit=True) as session:
        t = time.perf_counter()
        res = rollups.rebuild_all(session) if rebuild else rollups.refresh(session)
    click.echo(f"roll-ups: {res.machines} machines, {res.day_cells} day cells and "
               f"{res.month_cells} month cells rebuilt from {res.dirty_rows} marks "
               f"in {time.perf_counter() - t:.1f} s", err=True)
