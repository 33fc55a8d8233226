"""The Fab-manager connector against a local stand-in of its Open API (issue 18).

Both databases (the `db` fixture is SQLite and PostgreSQL); real HTTP on loopback.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

sys.path.insert(0, str(Path(__file__).parent))

from fabmanager_standin import (  # noqa: E402
    FabmanagerStandIn,
    named,
    reservation,
    user,
    user_training,
)

from server import services as s  # noqa: E402
from server.models import AuditLog, Authorization, Booking, FabmanagerRun, Member  # noqa: E402
from server.services import fabmanager as fm  # noqa: E402
from server.services.fabmanager_api import FabmanagerClient  # noqa: E402


def _slot(days: float, hours: float = 2) -> tuple[str, str]:
    start = (datetime.now(UTC) + timedelta(days=days)).replace(microsecond=0, second=0)
    return start.isoformat(), (start + timedelta(hours=hours)).isoformat()


LASER_CUT = named(1, "Laser cutting", "laser-cutting")
PRINTING = named(2, "3D printing", "3d-printing")
WOOD = named(3, "Wood workshop", "wood")
FM_LASER = named(11, "Epilog laser", "epilog")
FM_PRINTER = named(12, "Prusa", "prusa")
FM_CNC = named(13, "Shopbot", "shopbot")


@pytest.fixture()
def upstream() -> Any:
    with FabmanagerStandIn() as fake:
        fake.data["users"] = [user(101, "alice@example.org", "Alice", "Martin"),
                              user(102, "bob@example.org", "Bob", "Leroy"),
                              user(103, "chloe@example.org", "Chloé", "Petit")]
        fake.data["trainings"] = [LASER_CUT, PRINTING, WOOD]
        fake.data["machines"] = [FM_LASER, FM_PRINTER, FM_CNC]
        fake.data["user_trainings"] = [user_training(201, 102, 1), user_training(202, 103, 2),
                                       user_training(203, 102, 3)]
        fake.data["reservations"] = [
            reservation(301, 103, FM_PRINTER, [_slot(1), _slot(2)], canceled={1}),
            reservation(302, 102, FM_LASER, [_slot(1.5)]),
            reservation(303, 102, FM_CNC, [_slot(3)]),
        ]
        yield fake


@pytest.fixture()
def configured(db: Session, lab: dict[str, Any], upstream: FabmanagerStandIn) -> Any:
    fm.save_config(db, {"url": upstream.url, "token": upstream.token, "site": "lab",
                        "trainings": {"1": {"group": "lasers"}, "2": {"machine": "printer-1"}},
                        "machines": {"11": "laser-1", "12": "printer-1"}}, actor="admin")
    db.commit()
    return upstream


def quick(cfg: Any) -> FabmanagerClient:
    return FabmanagerClient(cfg.url, cfg.token, timeout=0.5)


def _state(db: Session) -> dict[str, Any]:
    db.expire_all()
    return {
        "members": sorted((m.email, m.name) for m in db.scalars(select(Member))),
        "auths": sorted((a.member_id, a.machine_id, a.group_id, a.granted_via,
                         a.revoked_at is None) for a in db.scalars(select(Authorization))),
        "bookings": sorted((b.external_id, b.machine_id, b.member_id, b.cancelled_at is None)
                           for b in db.scalars(select(Booking))),
    }


def _member(db: Session, email: str) -> Member:
    m = db.scalar(select(Member).where(Member.email == email))
    assert m is not None
    return m


def test_first_run_then_a_second_that_changes_nothing(db: Session, lab: Any,
                                                      configured: FabmanagerStandIn) -> None:
    result = fm.run_sync(db)
    assert result.ok, result.message
    assert result.counts == {"members_created": 2, "members_updated": 1,
                             "authorizations_granted": 2, "bookings_created": 2}
    bob, chloe = _member(db, "bob@example.org"), _member(db, "chloe@example.org")
    assert chloe.name == "Chloé Petit" and chloe.site_id == lab["site"].id
    alice = _member(db, "alice@example.org")  # matched by e-mail, renamed, not duplicated
    assert alice.id == lab["alice"].id and alice.name == "Alice Martin"
    auths = {(a.member_id, a.machine_id, a.group_id) for a in db.scalars(
        select(Authorization).where(Authorization.granted_via == "fabmanager"))}
    assert auths == {(bob.id, None, lab["group"].id), (chloe.id, lab["printer"].id, None)}
    bookings = list(db.scalars(select(Booking).where(Booking.source == "fabmanager")))
    assert sorted((b.machine_id, b.member_id) for b in bookings) == sorted(
        [(lab["printer"].id, chloe.id), (lab["laser"].id, bob.id)])  # the cancelled slot: none
    kinds = {(p["kind"], p.get("id")) for p in result.problems}
    assert {("unmapped_training", 3), ("unmapped_machine", 13)} <= kinds
    actors = {a.actor for a in db.scalars(select(AuditLog).where(
        AuditLog.action.in_(["authorization.grant", "booking.create"])))}
    assert actors == {"fabmanager"}  # audited with its source
    created = {a.entity_id for a in db.scalars(select(AuditLog).where(
        AuditLog.action == "member.create", AuditLog.actor == "fabmanager"))}
    assert created == {str(bob.id), str(chloe.id)}
    # the lists are read page by page (2 per page in the stand-in)
    assert any("users?page=2" in r for r in configured.requests)
    assert any("reservations?" in r and "page=2" in r for r in configured.requests)
    before = _state(db)
    again = fm.run_sync(db)
    assert again.ok and again.counts == {} and again.changes == []
    assert _state(db) == before
    runs = list(db.scalars(select(FabmanagerRun).order_by(FabmanagerRun.id)))
    assert [r.ok for r in runs] == [True, True]


def test_changes_upstream_are_followed(db: Session, lab: Any,
                                       configured: FabmanagerStandIn) -> None:
    alice = lab["alice"]
    by_hand = s.grant(db, alice.id, group_id=lab["group"].id, actor="admin")
    db.commit()
    configured.data["user_trainings"].append(user_training(204, 101, 1))  # alice: by hand already
    assert fm.run_sync(db).ok
    up = configured.data
    up["users"].append(user(104, "dan@example.org", "Dan", "Roux"))
    up["user_trainings"] = [ut for ut in up["user_trainings"] if ut["id"] not in (201, 204)]
    up["user_trainings"].append(user_training(205, 104, 2))
    up["reservations"][1]["reserved_slots"][0]["canceled_at"] = "2026-12-01T09:00:00.000+01:00"
    up["reservations"].append(reservation(304, 104, FM_PRINTER, [_slot(4)]))
    result = fm.run_sync(db)
    assert result.ok, result.message
    assert result.counts == {"members_created": 1, "authorizations_granted": 1,
                             "authorizations_revoked": 1, "bookings_created": 1,
                             "bookings_cancelled": 1}
    bob, dan = _member(db, "bob@example.org"), _member(db, "dan@example.org")
    revoked = db.scalar(select(Authorization).where(Authorization.member_id == bob.id,
                                                    Authorization.granted_via == "fabmanager"))
    assert revoked is not None and revoked.revoked_at is not None
    db.refresh(by_hand)
    assert by_hand.revoked_at is None  # made by hand: never touched
    assert db.scalar(select(Booking).where(Booking.external_id.like("304/%"),
                                           Booking.member_id == dan.id)) is not None
    laser = db.scalar(select(Booking).where(Booking.external_id.like("302/%")))
    assert laser is not None and laser.cancelled_at is not None


def test_dry_run_lists_and_applies_nothing(db: Session, lab: Any,
                                           configured: FabmanagerStandIn) -> None:
    before = _state(db)
    result = fm.run_sync(db, dry_run=True)
    assert result.ok and result.dry_run
    assert any(c.startswith("create member chloe@example.org") for c in result.changes)
    assert any(c.startswith("grant member") for c in result.changes)
    assert _state(db) == before
    assert fm.run_sync(db).counts["members_created"] == 2  # and the real run does it


@pytest.mark.parametrize("fault", ["bad_key", "500", "slow", "malformed", "unknown_type"])
def test_a_bad_upstream_stops_the_run_and_keeps_the_state(
        db: Session, lab: Any, configured: FabmanagerStandIn, fault: str) -> None:
    assert fm.run_sync(db).ok
    configured.data["users"].append(user(104, "dan@example.org", "Dan", "Roux"))
    configured.data["user_trainings"] = []
    before = _state(db)
    if fault == "bad_key":
        configured.token = "another"
    else:
        configured.fault = fault
    result = fm.run_sync(db, client_factory=quick)
    assert not result.ok and result.counts == {} and result.changes == []
    expected = {"bad_key": "refused the API key", "500": "HTTP 500", "slow": "cannot reach",
                "malformed": "no field 'email'", "unknown_type": "unknown reservable_type"}
    assert expected[fault] in (result.message or "")
    assert _state(db) == before
    last = fm.last_runs(db, 1)[0]
    assert not last.ok and expected[fault] in (last.message or "")


def test_edited_on_both_sides_and_vanished_are_reported(db: Session, lab: Any,
                                                        configured: FabmanagerStandIn) -> None:
    assert fm.run_sync(db).ok
    bob = _member(db, "bob@example.org")
    s.update_member(db, bob.id, name="Robert Leroy", actor="admin")
    db.commit()
    configured.data["users"][1] = user(102, "bob@example.org", "Bobby", "Leroy")
    configured.data["users"] = [u for u in configured.data["users"] if u["id"] != 103]
    result = fm.run_sync(db)
    assert result.ok
    kinds = {p["kind"]: p for p in result.problems}
    assert kinds["edited_both_sides"]["member"] == bob.id
    assert kinds["vanished_upstream"]["email"] == "chloe@example.org"
    db.expire_all()
    assert db.get(Member, bob.id).name == "Robert Leroy"  # type: ignore[union-attr]
    assert _member(db, "chloe@example.org").active  # kept, not erased


def test_not_configured_is_a_clear_stop(db: Session, lab: Any) -> None:
    result = fm.run_sync(db)
    assert not result.ok and "not configured" in (result.message or "")


def test_the_schedule_is_off_by_default_and_runs_when_set(db: Session, lab: Any, engine: Any,
                                                          configured: FabmanagerStandIn) -> None:
    from server.db import make_sessionmaker
    from server.jobs import FabmanagerSync
    from server.runner import CoreOptions
    from server.settings import settings_from_env

    assert CoreOptions.from_settings(settings_from_env({})).fabmanager_sync_min == 0
    on = settings_from_env({"FABPASS_FABMANAGER_SYNC_MINUTES": "15"})
    assert CoreOptions.from_settings(on).fabmanager_sync_min == 15
    job = FabmanagerSync(make_sessionmaker(engine), 15 * 60)
    result = job.run_once()
    assert getattr(result, "ok", False) and job.runs == 1
    assert _member(db, "chloe@example.org").name == "Chloé Petit"
