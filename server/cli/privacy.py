"""Commands for personal data: `fabpass member export|erase`, `fabpass privacy pseudonymise`."""

from __future__ import annotations

import json
from typing import Any

import click


def _database() -> Any:
    """A session on the server's database (FABPASS_DATABASE_URL); the caller commits."""
    from server.cli.support import database_session

    return database_session()


@click.group()
def member() -> None:
    """One member's personal data: export, erasure."""


@member.command("export")
@click.argument("member_id", type=int)
def member_export(member_id: int) -> None:
    """Print everything stored about a member as JSON (right of access)."""
    from server.errors import ServerError
    from server.services.privacy import export_member_json

    with _database() as db:
        try:
            text = export_member_json(db, member_id)
        except ServerError as exc:
            raise click.ClickException(exc.message) from exc
    click.echo(text)


@member.command("erase")
@click.argument("member_id", type=int)
@click.option("--yes", is_flag=True, help="confirm: this cannot be undone")
def member_erase(member_id: int, yes: bool) -> None:
    """Remove a member's identity for good; anonymous usage totals are kept."""
    from server.errors import ServerError
    from server.services.privacy import erase_member

    if not yes:
        raise click.ClickException("erasure cannot be undone: add --yes to confirm")
    with _database() as db:
        try:
            result = erase_member(db, member_id, actor="cli")
        except ServerError as exc:
            raise click.ClickException(exc.message) from exc
        db.commit()
    click.echo(json.dumps(result.as_dict(), sort_keys=True))


@click.group()
def privacy() -> None:
    """Retention of personal data."""


@privacy.command("pseudonymise")
@click.option("--older-than-days", type=click.IntRange(min=1), default=None,
              help="retention in days (default FABPASS_RETENTION_DAYS, else 365)")
def privacy_pseudonymise(older_than_days: int | None) -> None:
    """Replace badge UIDs in raw detail older than the retention with pseudonyms."""
    from server.errors import ServerError
    from server.services.privacy import pseudonymise, retention_days_from_env

    try:
        days = older_than_days if older_than_days is not None else retention_days_from_env()
        with _database() as db:
            result = pseudonymise(db, days, actor="cli")
    except ServerError as exc:
        raise click.ClickException(exc.message) from exc
    click.echo(json.dumps(result.as_dict(), sort_keys=True))
