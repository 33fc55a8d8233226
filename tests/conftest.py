"""Shared fixtures: a private Mosquitto per test session, throwaway databases, MockFactory pins."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from fabpass.broker import MosquittoProcess

PG_BASE_URL = os.environ.get(
    "FABPASS_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


@pytest.fixture(scope="session")
def mosquitto() -> Iterator[MosquittoProcess]:
    """A real Mosquitto on a free loopback port, with its own config and data dir."""
    broker = MosquittoProcess()
    broker.start()
    yield broker
    broker.cleanup()


@pytest.fixture()
def fresh_broker() -> Iterator[MosquittoProcess]:
    """A broker of this test's own, for tests that stop, kill or restart it."""
    broker = MosquittoProcess()
    broker.start()
    yield broker
    broker.cleanup()


@pytest.fixture()
def mock_pins() -> Iterator[object]:
    """gpiozero's MockFactory as the default pin factory (supports PWM)."""
    from gpiozero import Device
    from gpiozero.pins.mock import MockFactory, MockPWMPin

    previous = Device.pin_factory
    factory = MockFactory(pin_class=MockPWMPin)
    Device.pin_factory = factory
    yield factory
    factory.reset()
    Device.pin_factory = previous


def _pg_admin_url() -> str:
    return PG_BASE_URL


@pytest.fixture()
def pg_url() -> Iterator[str]:
    """A throwaway PostgreSQL database for one test; dropped afterwards."""
    import sqlalchemy as sa

    name = f"fabpass_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(_pg_admin_url(), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    base, _, _ = PG_BASE_URL.rpartition("/")
    yield f"{base}/{name}"
    with admin.connect() as conn:
        conn.execute(
            sa.text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"
            ),
            {"n": name},
        )
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))
    admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: object) -> str:
    """Each test using it runs once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/fabpass.db"
    return str(request.getfixturevalue("pg_url"))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """In CI (FABPASS_NO_SKIP=1) a skipped test is a failure: the whole suite must run."""
    if os.environ.get("FABPASS_NO_SKIP") != "1":
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = len(reporter.stats.get("skipped", [])) if reporter else 0
    if skipped and exitstatus == 0:
        reporter.write_line(f"FAIL: {skipped} test(s) skipped; CI runs everything", red=True)
        session.exitstatus = 1
