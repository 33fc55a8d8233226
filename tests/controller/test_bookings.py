"""Bookings enforced by the node itself (issue 17): real gpiozero devices on MockFactory pins,
a fake clock, lists as the server sends them (and as the node caches them on disk)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from controller_testkit import ALICE, BOB, RELAY, TRAINER, Rig, acl_dict

from controller.storage import AclStore
from protocol import AccessList, Event, dumps, format_ts, parse_ts

T0 = datetime(2026, 11, 22, 10, 0, 0, tzinfo=UTC)  # the fake clock's wall at start
ALICE_ID, BOB_ID = 1, 2


def slot(member: int, start_min: float, end_min: float) -> dict[str, Any]:
    return {"member": member, "start": format_ts(T0 + timedelta(minutes=start_min)),
            "end": format_ts(T0 + timedelta(minutes=end_min))}


def booking_acl(mode: str, bookings: list[dict[str, Any]], version: int = 1,
                **policy: Any) -> dict[str, Any]:
    raw = acl_dict(version=version, issued=T0 - timedelta(minutes=1),
                   policy={"booking": mode, **policy})
    raw["bookings"] = bookings
    return raw


@pytest.fixture()
def rig_factory(mock_pins: Any) -> Iterator[Any]:
    rigs: list[Rig] = []

    def make(raw: dict[str, Any]) -> Rig:
        rig = Rig(mock_pins, acl=False)
        rig.do(rig.machine.load_acl(AccessList.decode(dumps(raw)), raw))
        rigs.append(rig)
        return rig
    yield make
    for rig in rigs:
        rig.hw.close()


def denied(rig: Rig) -> dict[str, Any]:
    return rig.last("badge.denied")


def check_events(rig: Rig) -> None:
    for i, e in enumerate(rig.events):  # every event is valid protocol data (`until` too)
        Event.create(node="laser-1", boot="00000000-0000-4000-8000-000000000000", seq=i,
                     ts=e.ts, type=e.type, data=e.data)


def test_inside_another_members_slot_others_are_refused_booked(rig_factory: Any) -> None:
    rig = rig_factory(booking_acl("optional", [slot(ALICE_ID, -10, 50)]))
    rig.tap(BOB)
    d = denied(rig)
    assert d["reason"] == "booked" and parse_ts(d["until"]) == T0 + timedelta(minutes=50)
    assert rig.state == "idle" and rig.relay_states() == [False]
    rig.tap(TRAINER)  # trainers (staff) may start in anyone's slot
    assert rig.state == "in_use"
    rig.advance(5)  # not a double tap (that would be a sign-off)
    rig.tap(TRAINER)
    rig.tap(ALICE)  # the booker starts
    assert rig.state == "in_use" and rig.last("session.started")["member"] == ALICE_ID
    check_events(rig)


def test_off_ignores_bookings_and_optional_allows_free_time(rig_factory: Any) -> None:
    rig = rig_factory(booking_acl("off", [slot(ALICE_ID, -10, 50)]))
    rig.tap(BOB)
    assert rig.state == "in_use"
    rig.hw.close()  # one set of pins at a time
    rig2 = rig_factory(booking_acl("optional", [slot(ALICE_ID, 30, 50)]))
    rig2.tap(BOB)  # nobody's slot now
    assert rig2.state == "in_use"


def test_required_starts_only_in_ones_own_slot_with_early_start(rig_factory: Any) -> None:
    rig = rig_factory(booking_acl("required", [slot(ALICE_ID, 8, 60)], booking_early_s=300))
    rig.tap(ALICE)  # 8 minutes early: more than the 5 allowed
    assert denied(rig)["reason"] == "no_booking" and "until" not in denied(rig)
    rig.advance(3 * 60 + 1)  # now 5 minutes before: early start allowed
    rig.tap(ALICE)
    assert rig.state == "in_use"
    rig.tap(ALICE)
    rig.tap(BOB)  # bob has no slot: booked (alice's) is checked first... not yet started
    assert denied(rig)["reason"] == "no_booking"
    rig.advance(5 * 60)
    rig.tap(BOB)  # inside alice's slot
    assert denied(rig)["reason"] == "booked"
    rig.tap(TRAINER)  # trainers need no slot
    assert rig.state == "in_use"
    check_events(rig)


def test_overrun_warns_then_ends_at_the_next_members_slot(rig_factory: Any) -> None:
    rig = rig_factory(booking_acl("optional", [slot(ALICE_ID, 20, 80)]))
    rig.tap(BOB)
    assert rig.state == "in_use"
    rig.advance(20 * 60 - 300 - 5)
    assert "warning" not in rig.signals
    rig.advance(10)
    assert rig.signals.count("warning") == 1 and rig.machine.status_fields()["warning"]
    rig.tap(BOB)  # tapping to extend is refused: the next slot is not his
    assert rig.state == "in_use" and rig.signals[-1] == "denied"
    rig.advance(300)
    assert rig.state == "idle" and rig.last("session.ended")["reason"] == "timeout"
    assert rig.relay_states() == [False, True, False]
    rig.tap(ALICE)
    assert rig.state == "in_use"


def test_a_session_goes_on_when_the_next_slot_is_its_own_or_free(rig_factory: Any) -> None:
    rig = rig_factory(booking_acl("optional", [slot(ALICE_ID, 20, 80)]))
    rig.tap(ALICE)
    rig.advance(30 * 60)
    assert rig.state == "in_use" and "warning" not in rig.signals
    rig.hw.close()
    rig2 = rig_factory(booking_acl("optional", []))
    rig2.tap(BOB)
    rig2.advance(3 * 3600)
    assert rig2.state == "in_use"


def test_no_show_releases_the_slot(rig_factory: Any) -> None:
    rig = rig_factory(booking_acl("optional", [slot(ALICE_ID, 0, 120)], booking_no_show_s=900))
    rig.tap(BOB)
    assert denied(rig)["reason"] == "booked"
    rig.advance(15 * 60 + 1)  # alice did not come within 15 minutes: released
    rig.tap(BOB)
    assert rig.state == "in_use"
    rig.tap(BOB)
    # a slot that was used is not released
    rig.hw.close()
    used = rig_factory(booking_acl("optional", [slot(ALICE_ID, 0, 120)], booking_no_show_s=900))
    used.tap(ALICE)
    used.advance(60)
    used.tap(ALICE)
    used.advance(20 * 60)
    used.tap(BOB)
    assert denied(used)["reason"] == "booked"


def test_offline_with_the_cached_list_the_same_decisions(rig_factory: Any, tmp_path: Path,
                                                         mock_pins: Any) -> None:
    raw = booking_acl("required", [slot(ALICE_ID, -5, 55)])
    store = AclStore(tmp_path)
    store.save(dumps(raw))
    loaded = store.load()  # what a restarted node without network reads
    assert loaded is not None
    rig = Rig(mock_pins, acl=False)
    try:
        rig.do(rig.machine.load_acl(*loaded))
        rig.tap(BOB)
        assert denied(rig)["reason"] == "booked"
        rig.tap(ALICE)
        assert rig.state == "in_use"
        assert [bool(s.state) for s in mock_pins.pin(RELAY).states] == [False, True]
    finally:
        rig.hw.close()


def test_a_new_list_cancelling_the_slot_frees_the_machine(rig_factory: Any) -> None:
    rig = rig_factory(booking_acl("optional", [slot(ALICE_ID, -5, 55)]))
    rig.tap(BOB)
    assert denied(rig)["reason"] == "booked"
    raw = booking_acl("optional", [], version=2)
    accepted, acts = rig.machine.offer_acl(AccessList.decode(dumps(raw)), raw)
    assert accepted
    rig.tap(BOB)
    assert rig.state == "in_use"
