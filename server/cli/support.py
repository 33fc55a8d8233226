"""What every server command shares: the settings, a database session (or a clear error),
service errors as click messages."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click


@contextmanager
def database_session(*, writer: bool = False, commit: bool = False) -> Iterator[Any]:
    """A session on FABPASS_DATABASE_URL for one command.

    An unmigrated database names `fabpass db upgrade`, an unreachable one names the URL (without
    its password): a message, never a traceback. `writer`: BEGIN IMMEDIATE on SQLite, as the
    ingest does. `commit`: commit when the block ends without an error (else the caller commits).
    """
    from sqlalchemy.exc import SQLAlchemyError

    from server.db import (
        DatabaseError,
        check_migrated,
        make_engine,
        make_sessionmaker,
        writer_engine,
    )
    from server.settings import settings_from_env

    engine = make_engine(settings_from_env()["DATABASE_URL"])
    try:
        try:
            check_migrated(engine)
        except DatabaseError as exc:
            raise click.ClickException(str(exc)) from None
        except SQLAlchemyError as exc:
            url = engine.url.render_as_string(hide_password=True)
            raise click.ClickException(
                f"cannot open the database ({url}): {getattr(exc, 'orig', None) or exc}; "
                "check FABPASS_DATABASE_URL") from None
        with make_sessionmaker(writer_engine(engine) if writer else engine)() as db:
            yield db
            if commit:
                db.commit()
    finally:
        engine.dispose()


def cli_settings() -> dict[str, Any]:
    from server.settings import settings_from_env

    return settings_from_env()


def writer_session() -> Any:
    """A database session on the configured database (refusing an unmigrated one)."""

    return database_session(writer=True)


@contextmanager
def service_errors() -> Iterator[None]:
    from server.errors import Invalid, ServerError

    try:
        yield
    except Invalid as exc:
        details = "; ".join(f"{k}: {v}" for k, v in exc.fields.items())
        raise click.ClickException(f"{exc.message}" + (f" ({details})" if details else "")) \
            from None
    except ServerError as exc:
        raise click.ClickException(exc.message) from None
