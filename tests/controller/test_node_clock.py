"""The node's clock rules (contract section 6, amending section 2) under wall-clock jumps.

A forward jump must not lock the machine (freshness is monotonic time since the list was
received), a floor raised by a jump that was undone comes back once the list and the system
clock agree again, and `clock_ok` is false while they disagree by more than 5 minutes.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from controller_testkit import ALICE, BOB, OLD, Rig, acl_dict, make_acl
from live_daemon import LiveNode, new_node, node_cfg
from node_harness import FakeServer, wait_until

from controller.clock import FakeClock
from controller.storage import Outbox
from protocol import format_ts, parse_ts, utcnow

YEAR = timedelta(days=365)


@pytest.fixture()
def rig(mock_pins: Any) -> Iterator[Rig]:
    r = Rig(mock_pins)  # list issued 09:00, valid 7 days; the node's clock reads 10:00
    yield r
    r.hw.close()


def test_forward_jump_for_one_tap_then_back(rig: Rig) -> None:
    normal = rig.clock.wall()
    rig.clock.set_wall(normal + YEAR)  # e.g. a bad NTP answer
    rig.tap(ALICE)
    assert rig.types() == ["session.started"], "a fresh list must not look stale after a jump"
    assert rig.machine.status_fields()["clock_ok"] is False
    # Stamped with the list's time, not a year ahead (else it would end "before" it started).
    assert abs(rig.events[-1].ts - normal) < timedelta(minutes=1)
    rig.advance(5)
    rig.tap(ALICE)
    assert rig.last("session.ended")["duration_s"] == pytest.approx(5.3, abs=0.01)

    rig.clock.set_wall(normal + timedelta(seconds=6))  # the jump is undone
    rig.advance(1)
    assert rig.machine.status_fields()["clock_ok"] is True
    rig.tap(BOB)
    started = rig.last("session.started")
    assert started["uid"] == BOB and rig.machine.relay
    assert abs(rig.events[-1].ts - normal) < timedelta(minutes=1)
    assert all(parse_ts(e.data["ended"]) >= parse_ts(e.data["started"])
               for e in rig.events if e.type == "session.ended")


def test_floor_raised_without_a_list_comes_back_when_list_and_clock_agree(
        mock_pins: Any) -> None:
    rig = Rig(mock_pins, acl=False)
    try:
        normal = rig.clock.wall()
        rig.clock.set_wall(normal + YEAR)  # no list yet: nothing to check the clock against
        rig.tap(ALICE)
        assert rig.last("badge.denied")["reason"] == "no_acl"
        assert rig.events[-1].ts > normal + YEAR - timedelta(days=1)  # the floor followed
        rig.clock.set_wall(normal + timedelta(seconds=1))  # undone
        a, raw = make_acl(issued=normal)
        rig.do(rig.machine.load_acl(a, raw, fresh=True))
        assert rig.machine.status_fields()["clock_ok"] is True
        rig.tap(ALICE)
        assert rig.last("session.started")["uid"] == ALICE
        assert abs(rig.events[-1].ts - normal) < timedelta(minutes=1), "the floor came back"
    finally:
        rig.hw.close()


def test_floor_holds_while_the_clock_disagrees_with_the_list(mock_pins: Any) -> None:
    rig = Rig(mock_pins, acl=False)
    try:
        normal = rig.clock.wall()
        rig.machine.raise_floor(normal + YEAR)  # persisted by an earlier process
        rig.clock.set_wall(normal - timedelta(days=30))  # behind the list too: no agreement
        a, raw = make_acl(issued=normal, valid_s=86400)
        rig.do(rig.machine.load_acl(a, raw, fresh=True))
        assert rig.machine.status_fields()["clock_ok"] is False
        assert rig.machine.now_wall() >= normal + YEAR - timedelta(seconds=1)
        rig.tap(ALICE)  # the list is fresh all the same
        assert rig.last("session.started")["uid"] == ALICE
    finally:
        rig.hw.close()


def test_freshness_is_monotonic_time_since_the_list_was_received(mock_pins: Any) -> None:
    rig = Rig(mock_pins, valid_s=2 * 3600)  # issued 09:00, valid until 11:00, clock 10:00
    try:
        rig.clock.set_wall(rig.clock.wall() + timedelta(hours=5))  # wall says 15:00
        rig.tap(ALICE)
        rig.tap(ALICE)
        assert rig.types() == ["session.started", "session.ended"]
        rig.advance(3600 - 60, step=60)  # one real hour later (monotonic): 10:59
        rig.tap(BOB)
        rig.tap(BOB)
        assert rig.of("session.started")[-1]["uid"] == BOB
        rig.advance(120, step=60)  # 11:01 by the monotonic clock: now the list is stale
        rig.tap(ALICE)
        assert rig.last("badge.denied")["reason"] == "acl_stale"
        assert rig.state == "no_acl"
    finally:
        rig.hw.close()


def test_expiry_and_commands_use_the_list_time_while_the_clock_is_off(rig: Rig) -> None:
    from protocol import Command

    rig.clock.set_wall(rig.clock.wall() + YEAR)
    rig.tap(OLD)  # expired a day before the list's issue: still expired
    assert rig.last("badge.denied")["reason"] == "expired"
    issued = parse_ts(acl_dict()["issued"])
    lock = Command.create("lock", issued + timedelta(hours=1))  # sent "now" by the server
    rig.do(rig.machine.command(lock))
    assert rig.machine.cmd_locked, "a fresh command must not look a year old"


def test_backward_jump_keeps_the_floor(rig: Rig) -> None:
    rig.tap(ALICE)
    t0 = rig.events[-1].ts
    rig.clock.set_wall(t0 - timedelta(minutes=30))  # 30 min behind the list's time: disagree
    rig.advance(1)
    assert rig.machine.status_fields()["clock_ok"] is False
    rig.tap(ALICE)
    assert rig.events[-1].ts >= t0


def test_clock_behind_the_list_reports_clock_ok_false(mock_pins: Any) -> None:
    rig = Rig(mock_pins, acl=False)
    try:
        rig.clock.set_wall(parse_ts("1970-01-01T00:00:10Z"))  # a Pi without RTC, no NTP yet
        a, raw = make_acl()
        rig.do(rig.machine.load_acl(a, raw))
        assert rig.machine.now_wall() >= a.issued
        assert rig.machine.status_fields()["clock_ok"] is False
        rig.tap(ALICE)
        assert rig.types() == ["session.started"]
    finally:
        rig.hw.close()


@pytest.mark.broker
def test_jump_then_restart_with_the_clock_back(tmp_path: Path, mock_pins: Any,
                                              mosquitto: Any) -> None:
    """The floor persisted during the jump comes back after a restart; status says what happened."""
    node = new_node()
    cfg = node_cfg(tmp_path / "store", node, mosquitto.url)
    server = FakeServer(mosquitto.url)
    t0 = utcnow()
    nodes: list[LiveNode] = []
    try:
        server.publish_acl(node, acl_dict(node=node, issued=t0, valid_s=86400, version=3))
        clock = FakeClock(wall=t0)
        live = LiveNode(cfg, mock_pins, clock)
        nodes.append(live)
        live.start()
        server.wait_status(node, state="idle", acl_version=3, clock_ok=True)
        clock.set_wall(t0 + YEAR)
        live.place(ALICE)
        wait_until(live.relay, 5, "relay on during the jump")
        server.wait_status(node, state="in_use", clock_ok=False)
        assert live.stop() == 0  # SIGTERM while the clock is a year ahead
        box = Outbox(tmp_path / "store" / "outbox.db")
        floor = box.last_ts()
        assert floor is not None and floor - t0 < timedelta(minutes=5), "stamped by list time"
        # The floor an older node (or a jump while it had no list) persisted, a year ahead:
        box.set_meta("last_ts", format_ts(t0 + YEAR))
        box.close()

        clock2 = FakeClock(wall=t0 + timedelta(seconds=30))  # restarted, the clock is right again
        live2 = LiveNode(cfg, mock_pins, clock2)
        nodes.append(live2)
        live2.start()
        st = server.wait_status(node, state="idle", clock_ok=True)
        assert parse_ts(st["ts"]) - t0 < timedelta(minutes=5)
        live2.place(BOB)
        wait_until(live2.relay, 5, "the next badge opens")
        started = server.wait_event(node, "session.started", uid=BOB)
        assert started.ts - t0 < timedelta(minutes=5)
        assert live2.stop() == 0
        assert server.of(node, "badge.denied") == []
    finally:
        for n in nodes:
            n.stop()
        server.clear_retained(node)
        server.close()
