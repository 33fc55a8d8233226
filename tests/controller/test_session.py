"""The node state machine through every mode, state and reason, with mock pins and a fake clock."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from controller_testkit import (
    ALICE,
    BOB,
    BUZZER,
    NOAUTH,
    OLD,
    RED,
    STRANGER,
    TRAINER,
    Rig,
    make_acl,
)

from controller.session import NodeMachine, Policy, RelayAction
from firmware_config.node_config import SessionConfig
from protocol import Command, Event, format_ts, parse_ts


@pytest.fixture()
def rig_factory(mock_pins: Any) -> Iterator[Any]:
    rigs: list[Rig] = []

    def make(**kw: Any) -> Rig:
        rigs.append(Rig(mock_pins, **kw))
        return rigs[-1]
    yield make
    for rig in rigs:
        rig.hw.close()


def check_events(rig: Rig) -> None:
    """Every emitted event is valid protocol v1 data."""
    for i, e in enumerate(rig.events):
        Event.create(node="laser-1", boot="00000000-0000-4000-8000-000000000000", seq=i,
                     ts=e.ts, type=e.type, data=e.data)


# ------------------------------------------------------------------ tap mode


def test_tap_in_tap_out(rig_factory: Any) -> None:
    rig = rig_factory()
    assert rig.state == "idle" and rig.relay_states() == [False]
    rig.tap(ALICE)
    assert rig.state == "in_use" and rig.machine.relay
    assert rig.relay_states() == [False, True]
    assert rig.factory.pin(22).state  # green LED follows the relay
    started = rig.last("session.started")
    assert started["uid"] == ALICE and started["member"] == 1
    st = rig.machine.status_fields()
    assert st["session"]["id"] == started["session"] and st["relay"] is True
    rig.advance(100)
    rig.tap(ALICE)
    assert rig.state == "idle"
    assert rig.relay_states() == [False, True, False]
    ended = rig.last("session.ended")
    assert ended["reason"] == "badge_out" and ended["session"] == started["session"]
    assert ended["duration_s"] == pytest.approx(100.3, abs=0.01)
    assert parse_ts(ended["ended"]) - parse_ts(ended["started"]) == timedelta(seconds=100.3)
    assert rig.machine.checkpoint() is None
    check_events(rig)


def test_removal_is_ignored_in_tap_mode(rig_factory: Any) -> None:
    rig = rig_factory()
    rig.place(ALICE)
    rig.remove(ALICE)
    rig.advance(60)
    assert rig.state == "in_use" and rig.relay_states() == [False, True]


@pytest.mark.parametrize(("uid", "reason"), [
    (STRANGER, "unknown_badge"), (OLD, "expired"), (NOAUTH, "not_authorized")])
def test_denials_by_badge(rig_factory: Any, uid: str, reason: str) -> None:
    rig = rig_factory()
    rig.tap(uid)
    assert rig.relay_states() == [False]
    assert rig.of("badge.denied") == [{"uid": uid, "reason": reason}]
    assert "denied" in rig.signals
    check_events(rig)


def test_denied_blinks_red_and_beeps(rig_factory: Any) -> None:
    rig = rig_factory()
    rig.tap(STRANGER)

    def pulses(pin: int) -> int:
        return [s.state for s in rig.factory.pin(pin).states].count(True)

    deadline = time.monotonic() + 3  # the pattern runs on gpiozero's background thread
    while time.monotonic() < deadline and (pulses(RED) < 3 or pulses(BUZZER) < 3):
        time.sleep(0.02)
    assert pulses(RED) == 3 and pulses(BUZZER) == 3
    assert rig.relay_states() == [False]


def test_until_is_enforced_with_the_node_clock(rig_factory: Any) -> None:
    a, raw = make_acl(badges=[{"uid": ALICE, "member": 1, "role": "user",
                               "until": "2026-11-22T10:00:10.000Z"}])
    rig = rig_factory(acl=False)
    rig.do(rig.machine.load_acl(a, raw))
    rig.tap(ALICE)
    assert rig.state == "in_use"
    rig.tap(ALICE)
    rig.advance(10)
    rig.tap(ALICE)
    assert rig.last("badge.denied")["reason"] == "expired"


def test_no_acl_denies_everyone_and_is_a_state(rig_factory: Any) -> None:
    rig = rig_factory(acl=False)
    assert rig.state == "no_acl"
    rig.tap(ALICE)
    assert rig.relay_states() == [False]
    assert rig.last("badge.denied") == {"uid": ALICE, "reason": "no_acl"}


def test_stale_acl_denies_with_on_stale_deny(rig_factory: Any) -> None:
    rig = rig_factory(valid_s=3600 + 60)  # issued 09:00, clock at 10:00
    rig.tap(ALICE)
    assert rig.state == "in_use"
    rig.advance(120)  # list goes stale mid-session: the session is never ended by staleness
    assert rig.state == "in_use"
    rig.tap(ALICE)
    assert rig.last("session.ended")["reason"] == "badge_out"
    assert rig.state == "no_acl"
    rig.tap(ALICE)
    assert rig.last("badge.denied")["reason"] == "acl_stale"
    assert rig.relay_states() == [False, True, False]


def test_stale_acl_known_badges_keeps_working(rig_factory: Any) -> None:
    rig = rig_factory(valid_s=60, policy={"on_stale": "known_badges"})
    rig.tap(ALICE)
    assert rig.state == "in_use"
    rig.tap(STRANGER)
    assert rig.last("badge.denied")["reason"] == "unknown_badge"
    rig.tap(BOB)
    assert rig.last("badge.denied")["reason"] == "in_use"
    rig.tap(ALICE)
    assert rig.last("session.ended")["reason"] == "badge_out"


def test_locked_list_denies_and_running_session_finishes(rig_factory: Any) -> None:
    rig = rig_factory()
    rig.tap(ALICE)
    a, raw = make_acl(version=2, locked=True)
    accepted, acts = rig.machine.offer_acl(a, raw)
    rig.do(acts)
    assert accepted and rig.state == "in_use"
    rig.tap(ALICE)
    assert rig.state == "locked"
    rig.tap(BOB)
    assert rig.last("badge.denied")["reason"] == "machine_locked"
    assert rig.relay_states() == [False, True, False]


def test_in_use_without_handover(rig_factory: Any) -> None:
    rig = rig_factory()
    rig.tap(ALICE)
    rig.tap(BOB)
    assert rig.last("badge.denied") == {"uid": BOB, "reason": "in_use"}
    rig.tap(STRANGER)  # an unknown badge is unknown, not in_use
    assert rig.last("badge.denied")["reason"] == "unknown_badge"
    assert rig.machine.session and rig.machine.session.uid == ALICE


def test_handover(rig_factory: Any) -> None:
    rig = rig_factory(policy={"handover": True})
    rig.tap(ALICE)
    rig.advance(30)
    rig.tap(BOB)
    ended = rig.last("session.ended")
    assert ended["reason"] == "handover" and ended["uid"] == ALICE
    assert rig.last("session.started")["uid"] == BOB
    assert rig.relay_states() == [False, True]  # never cut during a handover
    assert rig.types() == ["session.started", "session.ended", "session.started"]


# ------------------------------------------------------------------ present mode


def test_present_mode_grace_and_resume(rig_factory: Any) -> None:
    rig = rig_factory(policy={"mode": "present", "grace_s": 10})
    rig.place(ALICE)
    assert rig.state == "in_use"
    rig.remove(ALICE)
    assert rig.state == "grace" and rig.machine.relay
    rig.advance(5)
    rig.place(ALICE)
    assert rig.state == "in_use"
    rig.remove(ALICE)
    rig.advance(9.5)
    assert rig.state == "grace"
    rig.advance(1)
    assert rig.state == "idle"
    ended = rig.last("session.ended")
    assert ended["reason"] == "badge_removed"
    assert rig.relay_states() == [False, True, False]


def test_present_mode_without_grace_ends_on_removal(rig_factory: Any) -> None:
    rig = rig_factory(policy={"mode": "present", "grace_s": None})
    rig.place(ALICE)
    rig.remove(ALICE)
    assert rig.last("session.ended")["reason"] == "badge_removed"
    assert rig.relay_states() == [False, True, False]


# ------------------------------------------------------------------ max session


def test_max_session_warning_extension_and_timeout(rig_factory: Any) -> None:
    rig = rig_factory(policy={"max_session_s": 600, "warn_before_s": 60})
    rig.tap(ALICE)
    rig.advance(530)
    assert not rig.machine.status_fields()["warning"]
    rig.advance(20)
    assert rig.machine.status_fields()["warning"] is True
    assert "warning" in rig.signals
    rig.tap(ALICE)  # badging during the warning extends instead of ending
    assert rig.state == "in_use" and not rig.machine.status_fields()["warning"]
    assert "extended" in rig.signals
    rig.advance(599)
    assert rig.state == "in_use" and rig.machine.status_fields()["warning"]
    rig.advance(1)
    ended = rig.last("session.ended")
    assert ended["reason"] == "timeout"
    assert ended["duration_s"] == pytest.approx(1150.6, abs=0.6)
    assert rig.relay_states() == [False, True, False]


def test_tap_outside_warning_ends(rig_factory: Any) -> None:
    rig = rig_factory(policy={"max_session_s": 600, "warn_before_s": 60})
    rig.tap(ALICE)
    rig.advance(100)
    rig.tap(ALICE)
    assert rig.last("session.ended")["reason"] == "badge_out"


# ------------------------------------------------------------------ activity


def test_active_seconds_and_idle_end(rig_factory: Any) -> None:
    rig = rig_factory(policy={"idle_end_s": 120})
    rig.tap(ALICE)
    rig.busy(True)
    rig.advance(50)
    rig.busy(False)
    rig.advance(60)
    rig.busy(True)
    rig.advance(10)
    rig.busy(False)
    rig.advance(119)
    assert rig.state == "in_use"
    rig.advance(1)
    ended = rig.last("session.ended")
    assert ended["reason"] == "idle"
    assert ended["active_s"] == pytest.approx(60.0, abs=0.01)
    assert ended["duration_s"] == pytest.approx(240.3, abs=0.01)
    assert rig.relay_states() == [False, True, False]


def test_heartbeats_carry_elapsed_and_active(rig_factory: Any) -> None:
    rig = rig_factory(defaults=SessionConfig(heartbeat_s=60))
    rig.place(ALICE)
    rig.busy(True)
    rig.advance(30)
    rig.busy(False)
    rig.advance(90.5)
    hbs = rig.of("session.heartbeat")
    assert len(hbs) == 2
    assert hbs[0]["elapsed_s"] == pytest.approx(60, abs=0.01)
    assert hbs[0]["active_s"] == pytest.approx(30, abs=0.01)
    assert hbs[1]["elapsed_s"] == pytest.approx(120, abs=0.01)
    cp = rig.machine.checkpoint()
    assert cp and cp["elapsed_s"] == pytest.approx(120.5) and cp["active_s"] == pytest.approx(30)
    heartbeat_actions = [e for e in rig.events if e.type == "session.heartbeat"]
    assert all(e.checkpoint for e in heartbeat_actions)
    check_events(rig)


def test_when_idle_keeps_relay_on_until_idle(rig_factory: Any) -> None:
    rig = rig_factory(policy={"power_off": "when_idle", "idle_end_s": 30})
    rig.tap(ALICE)
    rig.busy(True)
    rig.advance(100)
    rig.tap(ALICE)  # badge out mid-print
    assert rig.state == "finishing" and rig.machine.relay
    rig.advance(200)
    assert rig.state == "finishing"
    rig.tap(BOB)  # the machine is still someone's
    assert rig.last("badge.denied")["reason"] == "in_use"
    rig.busy(False)
    rig.advance(29.5)
    assert rig.state == "finishing"
    rig.advance(0.5)
    assert rig.state == "idle"
    ended = rig.last("session.ended")
    assert ended["reason"] == "badge_out"
    assert ended["active_s"] == pytest.approx(300.6, abs=0.01)
    assert rig.relay_states() == [False, True, False]


def test_when_idle_ends_at_once_if_already_idle(rig_factory: Any) -> None:
    rig = rig_factory(policy={"power_off": "when_idle"})
    rig.tap(ALICE)
    rig.busy(True)
    rig.advance(60)
    rig.busy(False)
    rig.tap(ALICE)
    assert rig.state == "idle" and rig.last("session.ended")["reason"] == "badge_out"


def test_finishing_resumed_by_same_badge(rig_factory: Any) -> None:
    rig = rig_factory(policy={"power_off": "when_idle", "idle_end_s": 30})
    rig.tap(ALICE)
    rig.busy(True)
    rig.advance(10)
    rig.tap(ALICE)
    assert rig.state == "finishing"
    rig.tap(ALICE)
    assert rig.state == "in_use"
    rig.busy(False)
    rig.advance(29)
    assert rig.state == "in_use"  # idle_end_s applies to an in-use session too
    rig.advance(1)
    assert rig.last("session.ended")["reason"] == "idle"


def test_idle_end_needs_an_activity_input(rig_factory: Any) -> None:
    rig = rig_factory(policy={"idle_end_s": 10}, activity=False)
    rig.tap(ALICE)
    rig.advance(100)
    assert rig.state == "in_use"


# ------------------------------------------------------------------ trainer sign-off


def test_trainer_single_tap_is_a_normal_session(rig_factory: Any) -> None:
    rig = rig_factory()
    rig.tap(TRAINER)
    rig.advance(5)
    rig.tap(TRAINER)
    assert rig.last("session.ended")["reason"] == "badge_out"
    assert rig.state == "idle"


def test_trainer_double_tap_signoff(rig_factory: Any) -> None:
    rig = rig_factory()
    rig.tap(TRAINER)
    rig.advance(1)
    rig.tap(TRAINER)
    assert rig.state == "signoff"
    assert rig.relay_states() == [False, True, False]
    ended = rig.last("session.ended")
    assert ended["reason"] == "badge_out" and ended["duration_s"] < 3
    rig.tap(TRAINER)  # the trainer again: still waiting
    assert rig.state == "signoff"
    rig.advance(10)
    rig.tap(STRANGER)  # listed or not
    assert rig.of("training.signed") == [{"trainer_uid": TRAINER, "trainee_uid": STRANGER}]
    assert rig.state == "idle" and rig.relay_states() == [False, True, False]
    assert "signoff" in rig.signals and "signed" in rig.signals
    check_events(rig)


def test_signoff_expires(rig_factory: Any) -> None:
    rig = rig_factory()
    rig.tap(TRAINER)
    rig.tap(TRAINER)
    rig.advance(30)
    assert rig.state == "idle"
    rig.tap(ALICE)
    assert rig.state == "in_use" and not rig.of("training.signed")


# ------------------------------------------------------------------ revocation


def test_end_on_revoke(rig_factory: Any) -> None:
    rig = rig_factory(policy={"end_on_revoke": True})
    rig.tap(ALICE)
    a, raw = make_acl(version=2, policy={"end_on_revoke": True},
                      badges=[{"uid": BOB, "member": 2, "role": "user"}])
    accepted, acts = rig.machine.offer_acl(a, raw)
    rig.do(acts)
    assert accepted
    assert rig.last("session.ended")["reason"] == "revoked"
    assert rig.relay_states() == [False, True, False]


def test_revocation_without_end_on_revoke_only_blocks_new_sessions(rig_factory: Any) -> None:
    rig = rig_factory()
    rig.tap(ALICE)
    a, raw = make_acl(version=2, badges=[{"uid": BOB, "member": 2, "role": "user"}])
    rig.do(rig.machine.offer_acl(a, raw)[1])
    assert rig.state == "in_use"
    rig.tap(ALICE)
    assert rig.last("session.ended")["reason"] == "badge_out"
    rig.tap(ALICE)
    assert rig.last("badge.denied")["reason"] == "unknown_badge"


def test_acl_versions_and_nodes(rig_factory: Any) -> None:
    rig = rig_factory(version=5)
    older, raw = make_acl(version=5, locked=True)
    assert rig.machine.offer_acl(older, raw) == (False, [])
    other, raw = make_acl(version=9, node="printer-1", locked=True)
    assert rig.machine.offer_acl(other, raw) == (False, [])
    other_site, raw = make_acl(version=9, site="elsewhere", locked=True)
    assert rig.machine.offer_acl(other_site, raw) == (False, [])
    assert rig.state == "idle" and rig.machine.status_fields()["acl_version"] == 5


def test_no_list_or_command_switches_the_relay_on(rig_factory: Any) -> None:
    rig = rig_factory(acl=False)
    for version in range(1, 4):
        a, raw = make_acl(version=version)
        _, acts = rig.machine.offer_acl(a, raw)
        assert not any(isinstance(x, RelayAction) for x in acts)
    for cmd in ("unlock", "resync", "identify", "stop"):
        acts = rig.machine.command(Command.create(cmd, rig.clock.wall()))
        assert not any(isinstance(x, RelayAction) for x in acts)
    rig.advance(5)
    assert rig.relay_states() == [False]


# ------------------------------------------------------------------ commands


def test_commands(rig_factory: Any) -> None:
    rig = rig_factory()
    now = rig.clock.wall()
    rig.tap(ALICE)
    stop = Command.create("stop", now)
    rig.do(rig.machine.command(stop))
    assert rig.last("session.ended")["reason"] == "remote_stop"
    assert rig.machine.status_fields()["last_cmd"] == stop.id
    lock = Command.create("lock", rig.clock.wall())
    rig.do(rig.machine.command(lock))
    assert rig.state == "locked"
    rig.tap(ALICE)
    assert rig.last("badge.denied")["reason"] == "machine_locked"
    rig.do(rig.machine.command(Command.create("unlock", rig.clock.wall())))
    assert rig.state == "idle"
    rig.do(rig.machine.command(Command.create("identify", rig.clock.wall())))
    assert rig.signals[-1] == "identify"
    rig.do(rig.machine.command(Command.create("resync", rig.clock.wall())))
    assert rig.resyncs == 1
    old = Command.create("lock", rig.clock.wall() - timedelta(seconds=31))
    rig.do(rig.machine.command(old))
    assert rig.state == "idle" and rig.machine.last_cmd != old.id
    assert rig.relay_states() == [False, True, False]


def test_lock_lets_the_running_session_finish(rig_factory: Any) -> None:
    rig = rig_factory()
    rig.tap(ALICE)
    rig.do(rig.machine.command(Command.create("lock", rig.clock.wall())))
    assert rig.state == "in_use"
    rig.tap(ALICE)
    assert rig.state == "locked"


# ------------------------------------------------------------------ stopping


def test_shutdown_ends_session(rig_factory: Any) -> None:
    rig = rig_factory()
    rig.tap(ALICE)
    rig.do(rig.machine.shutdown())
    assert rig.machine.done
    assert rig.last("session.ended")["reason"] == "shutdown"
    assert rig.relay_states() == [False, True, False]


def test_shutdown_waits_for_when_idle_then_second_signal_cuts(rig_factory: Any) -> None:
    rig = rig_factory(policy={"power_off": "when_idle", "idle_end_s": 20})
    rig.tap(ALICE)
    rig.busy(True)
    rig.do(rig.machine.shutdown())
    assert not rig.machine.done and rig.state == "finishing" and rig.machine.relay
    rig.tap(BOB)
    assert rig.last("badge.denied")["reason"] == "machine_locked"
    rig.busy(False)
    rig.advance(20)
    assert rig.machine.done
    assert rig.last("session.ended")["reason"] == "shutdown"
    assert rig.relay_states() == [False, True, False]


def test_second_signal_cuts_at_once(rig_factory: Any) -> None:
    rig2 = rig_factory(policy={"power_off": "when_idle"})
    rig2.tap(ALICE)
    rig2.busy(True)
    rig2.do(rig2.machine.shutdown())
    assert not rig2.machine.done
    rig2.do(rig2.machine.shutdown(force=True))
    assert rig2.machine.done and not rig2.machine.relay
    assert rig2.last("session.ended")["reason"] == "shutdown"


def test_fail_cuts_relay_and_ends_session(rig_factory: Any) -> None:
    rig = rig_factory(policy={"power_off": "when_idle"})
    rig.tap(ALICE)
    rig.busy(True)
    rig.do(rig.machine.fail())
    assert rig.relay_states() == [False, True, False]
    assert rig.last("session.ended")["reason"] == "shutdown"


# ------------------------------------------------------------------ clocks and recovery


def test_wall_clock_never_runs_backwards(rig_factory: Any) -> None:
    rig = rig_factory()
    rig.tap(ALICE)
    t_start = rig.events[-1].ts
    rig.clock.set_wall(rig.clock.wall() - timedelta(hours=2))
    rig.advance(10)
    rig.tap(ALICE)
    ended = rig.last("session.ended")
    assert parse_ts(ended["ended"]) >= parse_ts(ended["started"])
    assert rig.events[-1].ts >= t_start
    assert ended["duration_s"] == pytest.approx(10.3, abs=0.01)  # monotonic, not wall


def test_wall_floor_from_list_issued(rig_factory: Any) -> None:
    rig = rig_factory(acl=False)
    rig.clock.set_wall(parse_ts("2020-01-01T00:00:00Z"))  # a Pi that booted without RTC
    a, raw = make_acl()
    rig.do(rig.machine.load_acl(a, raw))
    assert rig.machine.now_wall() >= a.issued


def test_clock_ok_reported(rig_factory: Any) -> None:
    rig = rig_factory()
    rig.clock.is_synced = False
    assert rig.machine.status_fields()["clock_ok"] is False


def test_recover_power_loss(rig_factory: Any) -> None:
    rig = rig_factory()
    rig.tap(ALICE)
    rig.busy(True)
    rig.advance(42)
    cp = rig.machine.checkpoint()
    assert cp is not None
    fresh = NodeMachine("laser-1", "lab", SessionConfig(), rig.clock)
    acts = fresh.recover(cp)
    assert len(acts) == 1
    ev = acts[0]
    assert ev.type == "session.ended" and ev.clear_checkpoint  # type: ignore[union-attr]
    data = ev.data  # type: ignore[union-attr]
    assert data["reason"] == "power_loss" and data["session"] == cp["session"]
    assert data["ended"] == cp["last_ts"] and data["duration_s"] == pytest.approx(42.3)
    assert data["active_s"] == pytest.approx(42.0)
    assert fresh.recover({"garbage": True}) == []


def test_every_state_is_reachable(rig_factory: Any) -> None:
    seen = set()
    rig = rig_factory(acl=False)
    seen.add(rig.state)  # no_acl
    a, raw = make_acl(policy={"mode": "present", "power_off": "when_idle", "idle_end_s": 5})
    rig.do(rig.machine.load_acl(a, raw))
    seen.add(rig.state)  # idle
    rig.place(ALICE)
    seen.add(rig.state)  # in_use
    rig.busy(True)
    rig.remove(ALICE)
    seen.add(rig.state)  # grace
    rig.advance(11)
    seen.add(rig.state)  # finishing
    rig.busy(False)
    rig.advance(5)
    rig.place(TRAINER)
    rig.remove(TRAINER)
    rig.place(TRAINER)
    seen.add(rig.state)  # signoff
    rig.advance(31)
    rig.do(rig.machine.command(Command.create("lock", rig.clock.wall())))
    seen.add(rig.state)  # locked
    assert seen == {"no_acl", "idle", "in_use", "grace", "finishing", "signoff", "locked"}


def test_policy_merge() -> None:
    d = SessionConfig(mode="present", grace_s=15, max_session_s=3600, handover=True)
    p = Policy.merge(d, {"grace_s": None, "mode": None, "handover": None, "idle_end_s": 60})
    assert p.mode == "present" and p.grace_s is None and p.max_session_s == 3600
    assert p.handover is False and p.idle_end_s == 60
    assert Policy.merge(d, None).handover is True


def test_event_timestamps_are_rfc3339(rig_factory: Any) -> None:
    rig = rig_factory()
    rig.tap(ALICE)
    assert format_ts(rig.events[0].ts).endswith("Z")
