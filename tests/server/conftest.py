"""Fixtures for the server core: a migrated database (SQLite and PostgreSQL) and a Session."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from server.db import head_revision, make_engine, make_sessionmaker, upgrade, writer_engine
from server.models import Base

sys.path.insert(0, str(Path(__file__).parent))  # server_helpers (pytest runs in importlib mode)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One migrated SQLite file per test session, copied for each test (migrating is slow)."""
    path = tmp_path_factory.mktemp("template") / "fabpass.db"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture()
def engine(db_url: str, request: pytest.FixtureRequest) -> Iterator[Engine]:
    """A migrated database: a copy of the template (SQLite) or create_all + stamp (PostgreSQL)."""
    if db_url.startswith("sqlite:///"):
        shutil.copyfile(request.getfixturevalue("sqlite_template"),
                        db_url.removeprefix("sqlite:///"))
        eng = make_engine(db_url)
    else:
        eng = make_engine(db_url)
        Base.metadata.create_all(eng)
        with eng.begin() as conn:
            conn.execute(text("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL "
                              "PRIMARY KEY)"))
            conn.execute(text("INSERT INTO alembic_version VALUES (:v)"), {"v": head_revision()})
    yield eng
    eng.dispose()


@pytest.fixture()
def db(engine: Engine) -> Iterator[Session]:
    session = make_sessionmaker(engine)()
    yield session
    session.rollback()
    session.close()


@pytest.fixture()
def lab(db: Session) -> dict[str, object]:
    """A site, two machines with nodes (one in a group), a member with a badge."""
    from server import services as s

    site = s.create_site(db, "lab", "The Lab", "Europe/Paris", actor="cli")
    laser = s.create_machine(db, "laser-1", "Laser", "lab", "laser_cutter", node="laser-1",
                             actor="cli")
    printer = s.create_machine(db, "printer-1", "Printer", "lab", "3d_printer", node="printer-1",
                               actor="cli")
    group = s.create_group(db, "lasers", "All lasers", [laser.id], actor="cli")
    alice = s.create_member(db, "Alice Dupont", "alice@example.org", "A1", "lab", ["youth"],
                            actor="cli")
    s.enrol_badge(db, alice.id, "04:a1:b2:c3", actor="cli")
    db.commit()
    return {"site": site, "laser": laser, "printer": printer, "group": group, "alice": alice}


@pytest.fixture()
def writer_sessions(engine: Engine):  # type: ignore[no-untyped-def]
    """Sessions as the ingest and publisher get them (BEGIN IMMEDIATE on SQLite)."""
    return make_sessionmaker(writer_engine(engine))


@pytest.fixture()
def ingest(writer_sessions):  # type: ignore[no-untyped-def]
    from protocol import Topics
    from server.messaging.ingest import Ingest

    return Ingest(writer_sessions, Topics("fabpass"))
