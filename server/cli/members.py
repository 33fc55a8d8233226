"""`fabpass members import`: members (and badges) from a CSV file.
"""

from __future__ import annotations

from pathlib import Path

import click

from server.cli.support import service_errors, writer_session


@click.group()
def members() -> None:
    """Members."""


@members.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--mapping", default=None,
              help="column mapping: 'helloasso' or a TOML file ([columns] header = field)")
@click.option("--site", default=None, help="site slug for rows without a site column")
@click.option("--dry-run", is_flag=True, help="check everything, change nothing")
def members_import(file: Path, mapping: str | None, site: str | None, dry_run: bool) -> None:
    """Import members from CSV: every row or none; errors name their line."""
    from server.services.members_import import import_members

    with writer_session() as session, service_errors():
        result = import_members(session, file.read_bytes(), mapping=mapping, site=site,
                                dry_run=dry_run)
        if not result.ok:
            for line in result.errors:
                click.echo(f"{file}: {line}", err=True)
            session.rollback()
            raise click.ClickException(
                f"{len(result.errors)} error(s) in {result.rows} row(s): nothing imported")
        session.commit()
    verb = "would import" if dry_run else "imported"
    click.echo(f"{verb} {result.rows} row(s): {result.created} created, {result.updated} "
               f"updated, {result.badges} badge(s)", err=True)
