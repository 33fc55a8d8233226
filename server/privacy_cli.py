"""Commands for personal data: `fabpass member export|erase`, `fabpass privacy pseudonymise`."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any

import click


@contextlib.contextmanager
def _database() -> Iterator[Any]:
    """A session on the server's database (FABPASS_DATABASE_URL); the caller commits."""
    from sqlalchemy.exc import OperationalError

    from server.app import settings_from_env
    from server.db import DatabaseError, check_migrated, make_engine, make_sessionmaker

    engine = make_engine(settings_from_env()["DATABASE_URL"])
    try:
        try:
            check_migrated(engine)
        except DatabaseError as exc:
            raise click.ClickException(str(exc)) from exc
        except OperationalError as exc:
            raise click.ClickException(
                f"cannot open the database (FABPASS_DATABASE_URL): {exc.orig}") from exc
        with make_sessionmaker(engine)() as db:
            yield db
    finally:
        engine.dispose()


@click.group()
def member() -> None:
    """One member's personal data: export, erasure."""


@member.command("export")
@click.argument("member_id", type=int)
def member_export(member_id: int) -> None:
    """Print everything stored about a member as JSON (right of access)."""
    from server.errors import ServerError
    from server.privacy import export_member_json

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
    from server.privacy import erase_member

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
    from server.privacy import pseudonymise, retention_days_from_env

    try:
        days = older_than_days if older_than_days is not None else retention_days_from_env()
        with _database() as db:
            result = pseudonymise(db, days, actor="cli")
    except ServerError as exc:
        raise click.ClickException(exc.message) from exc
    click.echo(json.dumps(result.as_dict(), sort_keys=True))
