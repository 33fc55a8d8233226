"""Fixtures for the reliability suite: a migrated database (SQLite and PostgreSQL) and a Session."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from server.db import make_engine, make_sessionmaker, upgrade

# reliability_harness / reliability_chaos (pytest runs in importlib mode; the soak command too).
sys.path.insert(0, str(Path(__file__).parent))


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
