"""What every command that works on the server's database shares: opening it, or a clear error."""

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

    from server.app import settings_from_env
    from server.db import (
        DatabaseError,
        check_migrated,
        make_engine,
        make_sessionmaker,
        writer_engine,
    )

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
