"""A small fixed data set whose every aggregate is computed by hand in the tests.

Sites: paris (Europe/Paris, CET = UTC+1 from 2026-10-25) and hq (UTC).
Sessions (UTC times; duration_s is the node's monotonic figure):
  S7 carol laser-1   2026-10-10 08:00-09:00  dur 3600 active 1200  (authorization revoked later)
  S1 alice laser-1   2026-10-31 22:30-00:30  dur 7200 active 3600  (23:30-01:30 Paris: spans
                                                                    midnight and the month)
  S2 bob   laser-1   2026-11-02 09:00-10:00  dur 3600 active 1800  (badge B1)
  S3 bob   printer-1 2026-11-02 14:00-16:00  dur 7000 active 6000  (badge B2: a second badge)
  S4 alice printer-1 2026-11-15 10:00-11:00  dur 3600 active 3600
  S5 dave  laser-1   2026-11-20 10:00-open                         (open: left out)
  S6 carol cnc-1     2026-11-30 23:30-00:30  dur 3600 active 0     (hq, UTC: Nov/Dec halves)
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from server.db import make_engine, make_sessionmaker, upgrade
from server.models import (
    Authorization,
    Badge,
    Event,
    Machine,
    MachineGroup,
    MachineKind,
    Member,
    Node,
    Site,
    UsageSession,
)

# the report pages' tests (test_web.py, test_scoping.py): logins and the period they show
PASSWORD = "correct horse battery"
CSRF_RE = re.compile(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"')
PERIOD = "from=2026-10-01&to=2026-12-31"


def login(app: Flask, email: str) -> FlaskClient:
    """A test client logged in as `email` (whose password is PASSWORD)."""
    client = app.test_client()
    token = CSRF_RE.search(client.get("/login").get_data(as_text=True))
    assert token
    res = client.post("/login", data={"email": email, "password": PASSWORD,
                                      "csrf_token": token.group(1)})
    assert res.status_code in (302, 303), res.get_data(as_text=True)[:500]
    return client


def T(s: str) -> datetime:
    return datetime.fromisoformat(s.replace("Z", "+00:00")).astimezone(UTC)


@pytest.fixture(scope="module",
                params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def module_db_url(request: pytest.FixtureRequest,
                  tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Like tests/conftest.py's `db_url` (SQLite and PostgreSQL), once per module: the report
    tests only read the fixed data set, so one database per module keeps them fast."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('reports')}/fabpass.db"
        return
    import sqlalchemy as sa

    from tests.conftest import PG_BASE_URL

    name = f"fabpass_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(PG_BASE_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    yield f"{PG_BASE_URL.rpartition('/')[0]}/{name}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="module")
def module_db(module_db_url: str) -> Iterator[Session]:
    upgrade(module_db_url)
    engine = make_engine(module_db_url)
    with make_sessionmaker(engine)() as session:
        yield session
    engine.dispose()


@pytest.fixture(scope="module")
def module_data(module_db: Session) -> dict[str, Any]:
    return build(module_db)


@pytest.fixture()
def db(module_db: Session, module_data: dict[str, Any]) -> Iterator[Session]:
    """The module's session; anything a test leaves uncommitted is rolled back."""
    yield module_db
    module_db.rollback()


@pytest.fixture()
def data(module_data: dict[str, Any]) -> dict[str, Any]:
    return module_data


def build(db: Session) -> dict[str, Any]:
    paris = Site(slug="paris", name="Paris", timezone="Europe/Paris")
    hq = Site(slug="hq", name="HQ", timezone="UTC")
    db.add_all([paris, hq])
    db.flush()
    nodes = {n: Node(slug=f"node-{n}", site_id=(hq if n == "cnc" else paris).id)
             for n in ("laser", "printer", "cnc")}
    db.add_all(nodes.values())
    db.flush()
    laser = Machine(slug="laser-1", name="Laser", site_id=paris.id, kind=MachineKind.laser_cutter,
                    hourly_rate=10.0, node_id=nodes["laser"].id)
    printer = Machine(slug="printer-1", name="Printer", site_id=paris.id,
                      kind=MachineKind.printer_3d, hourly_rate=2.0, node_id=nodes["printer"].id)
    cnc = Machine(slug="cnc-1", name="CNC", site_id=hq.id, kind=MachineKind.cnc,
                  node_id=nodes["cnc"].id)
    db.add_all([laser, printer, cnc])
    db.flush()
    db.add(MachineGroup(slug="lasers", name="Lasers", machines=[laser]))
    old = T("2026-01-01T00:00:00Z")
    alice = Member(name="Alice", tags=["student"], site_id=paris.id, created_at=old)
    bob = Member(name="Bob", tags=["student", "youth"], site_id=paris.id, created_at=old)
    carol = Member(name="Carol", tags=[], site_id=hq.id, created_at=old)
    dave = Member(name="Dave", tags=["youth"], site_id=paris.id, created_at=old)
    db.add_all([alice, bob, carol, dave])
    db.flush()
    db.add_all([Badge(uid="04A1A1A1", member_id=alice.id), Badge(uid="04B1B1B1", member_id=bob.id),
                Badge(uid="04B2B2B2", member_id=bob.id), Badge(uid="04C1C1C1", member_id=carol.id),
                Badge(uid="04D1D1D1", member_id=dave.id)])
    db.add(Authorization(member_id=carol.id, machine_id=laser.id, granted_at=old,
                         revoked_at=T("2026-10-15T00:00:00Z"), revoke_reason="misuse"))

    def sess(name: str, member: Member, machine: Machine, uid: str, start: str, end: str | None,
             dur: float | None, active: float | None) -> None:
        db.add(UsageSession(session_uuid=name, member_id=member.id, machine_id=machine.id,
                            badge_uid=uid, started_at=T(start), ended_at=T(end) if end else None,
                            duration_s=dur, active_s=active, end_reason="badge_out" if end else None,
                            has_started_event=True, has_ended_event=end is not None))

    sess("S7", carol, laser, "04C1C1C1", "2026-10-10T08:00:00Z", "2026-10-10T09:00:00Z", 3600, 1200)
    sess("S1", alice, laser, "04A1A1A1", "2026-10-31T22:30:00Z", "2026-11-01T00:30:00Z", 7200, 3600)
    sess("S2", bob, laser, "04B1B1B1", "2026-11-02T09:00:00Z", "2026-11-02T10:00:00Z", 3600, 1800)
    sess("S3", bob, printer, "04B2B2B2", "2026-11-02T14:00:00Z", "2026-11-02T16:00:00Z", 7000, 6000)
    sess("S4", alice, printer, "04A1A1A1", "2026-11-15T10:00:00Z", "2026-11-15T11:00:00Z", 3600, 3600)
    sess("S5", dave, laser, "04D1D1D1", "2026-11-20T10:00:00Z", None, None, None)
    sess("S6", carol, cnc, "04C1C1C1", "2026-11-30T23:30:00Z", "2026-12-01T00:30:00Z", 3600, 0)

    def denied(i: int, node: Node, reason: str, ts: str) -> None:
        db.add(Event(event_id=f"00000000-0000-4000-8000-{i:012d}", node_id=node.id,
                     node_slug=node.slug, type="badge.denied", ts=T(ts), boot="b", seq=i,
                     data={"uid": "04FFFFFF", "reason": reason}))

    denied(1, nodes["laser"], "unknown_badge", "2026-11-03T10:00:00Z")
    denied(2, nodes["laser"], "unknown_badge", "2026-11-04T10:00:00Z")
    denied(3, nodes["laser"], "not_authorized", "2026-11-05T10:00:00Z")
    denied(4, nodes["printer"], "expired", "2026-12-05T10:00:00Z")
    db.commit()
    return {"alice": alice.id, "bob": bob.id, "carol": carol.id, "dave": dave.id,
            "laser": laser.id, "printer": printer.id, "cnc": cnc.id, "paris": paris.id}
