"""Fixtures for the server core: a migrated database (SQLite and PostgreSQL) and a Session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from server.db import make_engine, make_sessionmaker, upgrade


@pytest.fixture()
def engine(db_url: str) -> Iterator[Engine]:
    upgrade(db_url)
    eng = make_engine(db_url)
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
