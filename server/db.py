"""Engines, sessions and migrations.

SQLite gets WAL, foreign keys and a busy timeout so the web UI and the
ingest can share one file. A writer that needs savepoints asks for
`engine.execution_options(sqlite_begin="IMMEDIATE")` (see `writer_engine`);
PostgreSQL needs nothing special.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import IntegrityError as UniqueViolation  # noqa: F401  (re-exported)
from sqlalchemy.orm import sessionmaker

from server.errors import ServerError

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


# `UniqueViolation`: two writers raced for the same unique value (the API answers 409). Named
# here so the web and API layers need not import SQLAlchemy.


class DatabaseError(ServerError, RuntimeError):
    """The database is missing, unmigrated or unreachable."""

    code = "database"


def default_url(data_dir: str | os.PathLike[str]) -> str:
    return f"sqlite:///{Path(data_dir).resolve() / 'fabpass.db'}"


def make_engine(url: str, **kwargs: Any) -> Engine:
    if url.startswith("sqlite"):
        kwargs.setdefault("connect_args", {"check_same_thread": False, "timeout": 30})
        engine = create_engine(url, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Any) -> None:
            # Writers (ingest, publisher, CLI) ask for `sqlite_begin="IMMEDIATE"`: SQLAlchemy
            # emits BEGIN IMMEDIATE itself, so SAVEPOINTs work and the write lock is taken
            # (waiting on busy_timeout) before any read. Other sessions keep pysqlite's
            # default: reads in autocommit, a deferred BEGIN just before the first write,
            # which never fails with "database is locked" on a stale read snapshot.
            mode = conn.get_execution_options().get("sqlite_begin")
            dbapi_conn = conn.connection.dbapi_connection
            if mode is None:
                if dbapi_conn.isolation_level is None:
                    dbapi_conn.isolation_level = ""
                return
            if dbapi_conn.isolation_level is not None:
                dbapi_conn.isolation_level = None
            conn.exec_driver_sql(f"BEGIN {mode}".strip())

        return engine
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(url, **kwargs)


def writer_engine(engine: Engine) -> Engine:
    """The same engine for writers: on SQLite, BEGIN IMMEDIATE and working savepoints."""
    return engine.execution_options(sqlite_begin="IMMEDIATE")


def make_sessionmaker(engine: Engine) -> sessionmaker[Any]:
    return sessionmaker(engine, expire_on_commit=False)


def alembic_config(url: str) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    """Apply migrations up to `revision` (what `fabpass db upgrade` runs)."""
    from alembic import command

    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    command.upgrade(alembic_config(url), revision)


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def check_migrated(engine: Engine) -> None:
    """Raise DatabaseError naming `fabpass db upgrade` unless the schema is at head."""
    current = current_revision(engine)
    head = head_revision()
    if current != head:
        raise DatabaseError(
            f"the database is not migrated (at {current or 'nothing'}, code expects {head}): "
            "run `fabpass db upgrade` first"
        )
