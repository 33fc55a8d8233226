"""Bookings (issue 17 leftovers), on SQLite and PostgreSQL: `booking.created` and
`booking.cancelled` webhooks reach a real receiver; a group booking holds every machine of the
group, or nothing when any of them refuses."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from server import services
from server.errors import Conflict
from server.models import Booking
from server.services import bookings, webhooks

sys.path.insert(0, str(Path(__file__).parent))
from test_webhooks import SECRET, Receiver, verify  # noqa: E402  (the receiver pattern)


@pytest.fixture()
def receiver() -> Any:
    r = Receiver()
    yield r
    r.stop()


def _slot(h0: float, h1: float) -> tuple[str, str]:
    now = datetime.now(UTC).replace(microsecond=0)
    return ((now + timedelta(hours=h0)).isoformat().replace("+00:00", "Z"),
            (now + timedelta(hours=h1)).isoformat().replace("+00:00", "Z"))


def test_booking_webhooks(api: Any, api_app: Any, seed: Any, receiver: Receiver) -> None:
    app = api_app[0]
    app.config["WEBHOOK_ALLOW_HOSTS"] = ["127.0.0.1"]
    r = api("POST", "/webhooks", {"url": receiver.url, "secret": SECRET,
                                  "events": ["booking.created", "booking.cancelled"]})
    assert r.status_code == 201, r.get_json()
    start, end = _slot(1, 2)
    r = api("POST", "/bookings", {"machine_id": seed.laser, "member_id": seed.alice,
                                  "start": start, "end": end})
    assert r.status_code == 201, r.get_json()
    booking = r.get_json()["id"]
    assert api("DELETE", f"/bookings/{booking}").status_code == 204
    assert api("DELETE", f"/bookings/{booking}").status_code == 204  # again: no second event
    sessions = app.extensions["fabpass.sessionmaker"]
    assert webhooks.deliver_due(sessions, ["127.0.0.1"]).delivered == 2
    bodies = [json.loads(b) for _h, b in receiver.requests]
    assert [b["type"] for b in bodies] == ["booking.created", "booking.cancelled"]
    for headers, body in receiver.requests:
        assert verify(SECRET, headers["x-fabpass-signature"], body)
    data = bodies[0]["data"]
    assert bodies[0]["site"] == "lab"
    assert data["booking"] == booking and data["machine"] == "laser-1"
    assert data["member"] == seed.alice and data["machine_id"] == seed.laser
    assert bodies[1]["data"]["booking"] == booking


def _group_of_two(db: Any, seed: Any) -> tuple[int, int]:
    laser2 = services.create_machine(db, "laser-2", "Laser cutter 2", "lab",
                                     kind="laser_cutter", node="laser-2", actor="test")
    group = services.create_group(db, "lasers-2", "Both lasers", [seed.laser, laser2.id],
                                  actor="test")
    services.grant(db, seed.alice, group_id=group.id, actor="test")
    db.flush()
    return group.id, laser2.id


def test_group_booking_holds_each_machine(api_app: Any, seed: Any) -> None:
    sessions = api_app[0].extensions["fabpass.sessionmaker"]
    start, end = _slot(1, 2)
    with sessions() as db:
        group, laser2 = _group_of_two(db, seed)
        made = bookings.create_group_booking(db, group_id=group, member_id=seed.alice,
                                             start=start, end=end, actor="test")
        db.commit()
        assert sorted(b.machine_id for b in made) == sorted([seed.laser, laser2])
        assert {b.member_id for b in made} == {seed.alice}


def test_group_booking_refused_whole_when_one_machine_overlaps(api_app: Any, seed: Any) -> None:
    sessions = api_app[0].extensions["fabpass.sessionmaker"]
    start, end = _slot(1, 2)
    with sessions() as db:
        group, laser2 = _group_of_two(db, seed)
        services.grant(db, seed.tom, machine_id=laser2, actor="test")
        bookings.create_booking(db, machine_id=laser2, member_id=seed.tom, start=start,
                                end=end, actor="test")
        db.commit()
        before = db.scalars(select(Booking.id)).all()
        with pytest.raises(Conflict):
            bookings.create_group_booking(db, group_id=group, member_id=seed.alice,
                                          start=start, end=end, actor="test")
        assert db.scalars(select(Booking.id)).all() == before  # nothing stored, not even laser-1
