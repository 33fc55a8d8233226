"""`fabpass sync fabmanager [--dry-run]`: one Fab-manager sync from the command line.

Exit 0 when the run went through (its changes and problems are printed), 1 with the reason
when it stopped: then nothing was applied.
"""

from __future__ import annotations

import click

from server.cli.support import writer_session


@click.group()
def sync() -> None:
    """Synchronise with other tools."""


@sync.command("fabmanager")
@click.option("--dry-run", is_flag=True, help="list what would change, apply nothing")
def fabmanager(dry_run: bool) -> None:
    """Members, trainings and reservations from Fab-manager (settings: PUT
    /api/v1/integrations/fabmanager)."""
    from server.services.fabmanager import run_sync

    with writer_session() as session:
        result = run_sync(session, dry_run=dry_run)
    if not result.ok:
        raise click.ClickException(f"Fab-manager sync stopped, nothing applied: {result.message}")
    for line in result.changes:
        click.echo(("would " if dry_run else "") + line)
    for problem in result.problems:
        details = ", ".join(f"{k}={v}" for k, v in problem.items() if k != "kind")
        click.echo(f"problem: {problem['kind']} {details}", err=True)
    summary = ", ".join(f"{k} {v}" for k, v in sorted(result.counts.items())) or "no changes"
    click.echo(("dry run: " if dry_run else "") + summary, err=True)
