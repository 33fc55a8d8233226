"""Plug rules on the fake clock: confirmation, lease, offline, hand presses, power, codecs."""

from __future__ import annotations

import json

import pytest
from controller_testkit import ALICE, BOB, make_acl

from controller.actuators import apply_reports
from controller.actuators.base import Availability, Confirmed, Failed, Meter, UnexpectedOn
from controller.actuators.plug import (
    Answer,
    Command,
    Online,
    PlugPayloadError,
    PlugSupervisor,
    Seen,
)
from controller.actuators.power import KIND_DEFAULTS, PowerActivity, Thresholds, thresholds
from controller.actuators.shelly import ShellyCodec
from controller.actuators.tasmota import TasmotaCodec, pulsetime
from controller.clock import FakeClock
from controller.session import EmitAction, NodeMachine, RelayAction
from firmware_config.node_config import ActuatorConfig, SessionConfig

# ---------------------------------------------------------------- power hysteresis


def test_power_busy_needs_a_spell_above_and_idle_a_spell_below() -> None:
    clock = FakeClock()
    p = PowerActivity(Thresholds(busy_above_w=30, idle_below_w=15, busy_after_s=10,
                                 idle_after_s=60), clock)
    assert p.sample(200) is None  # above, but not for long enough
    clock.advance(9.9)
    assert p.tick() is None
    clock.advance(0.2)
    assert p.tick() is True and p.busy
    # heater cycling: short dips below do not make it idle
    for _ in range(5):
        assert p.sample(5) is None
        clock.advance(20)
        assert p.sample(150) is None
        clock.advance(5)
    assert p.busy
    # between the thresholds nothing changes, however long
    p.sample(20)
    clock.advance(600)
    assert p.tick() is None and p.busy
    p.sample(4)
    clock.advance(59)
    assert p.tick() is None
    clock.advance(1)
    assert p.tick() is False and not p.busy


def test_power_spike_shorter_than_busy_after_is_not_busy() -> None:
    clock = FakeClock()
    p = PowerActivity(KIND_DEFAULTS["laser_cutter"], clock)
    p.sample(900)
    clock.advance(1)
    assert p.sample(60) is None
    clock.advance(10)
    assert p.tick() is None and not p.busy


def test_thresholds_follow_the_machine_kind_and_the_config() -> None:
    printer = thresholds(ActuatorConfig(type="shelly", device="x", machine_kind="3d_printer"))
    assert printer == KIND_DEFAULTS["3d_printer"]
    custom = thresholds(ActuatorConfig(type="shelly", device="x", machine_kind="laser_cutter",
                                       busy_above_w=300, idle_after_s=0))
    assert custom.busy_above_w == 300 and custom.idle_after_s == 0
    assert custom.idle_below_w == KIND_DEFAULTS["laser_cutter"].idle_below_w


# ---------------------------------------------------------------- supervisor


def online_sup(clock: FakeClock, lease_s: int = 60, confirm_s: float = 5) -> PlugSupervisor:
    sup = PlugSupervisor(clock, lease_s=lease_s, confirm_s=confirm_s)
    sup.link(True)
    assert sup.observe(Online(True)) == [Availability(True)]
    sup.observe(Seen(on=False))
    sup.take()
    return sup


def test_on_is_confirmed_by_the_plug_state_within_the_bound() -> None:
    clock = FakeClock()
    sup = online_sup(clock)
    assert sup.set(True) == []
    assert sup.take() == [Command(True, 60)]
    clock.advance(1)
    assert sup.observe(Answer(True)) == []  # an answer is not the state
    assert sup.observe(Seen(on=True)) == [Confirmed()]


def test_no_confirmation_fails_and_tells_the_plug_off() -> None:
    clock = FakeClock()
    sup = online_sup(clock, confirm_s=3)
    sup.set(True)
    sup.take()
    clock.advance(2.9)
    assert sup.tick() == []
    clock.advance(0.2)
    assert Failed("actuator_failed") in sup.tick()
    assert Command(False) in sup.take()
    assert sup.observe(Seen(on=True)) == [UnexpectedOn("switched_off", None)]  # late "on"


def test_error_answer_fails_at_once_and_repeated_errors_mean_offline() -> None:
    clock = FakeClock()
    sup = online_sup(clock)
    sup.set(True)
    assert sup.observe(Answer(False, "Switch.Set: -114")) == [Failed("actuator_failed")]
    assert sup.take()[-1] == Command(False)
    reports = sup.observe(Answer(False)) + sup.observe(Answer(False))
    assert reports == [Availability(False)]
    assert sup.set(True) == [Failed("actuator_offline")]
    assert sup.observe(Seen(on=False)) == [Availability(True)]  # a good answer: back


def test_unanswered_commands_count_as_errors() -> None:
    clock = FakeClock()
    sup = online_sup(clock, confirm_s=2)
    reports = []
    for _ in range(3):
        sup._ask()
        clock.advance(2.1)
        reports += sup.tick()
    assert Availability(False) in reports


def test_lease_is_renewed_before_it_ends_and_dropped_under_protect() -> None:
    clock = FakeClock()
    sup = online_sup(clock, lease_s=30)
    sup.set(True)
    sup.observe(Seen(on=True))
    sup.take()
    renewals = []
    for _ in range(60):  # 60 s
        clock.advance(1)
        sup.tick()
        renewals += [c for c in sup.take() if c.on]
    assert len(renewals) >= 5 and all(c.lease_s == 30 for c in renewals)
    sup.set_protect(True)
    assert sup.take() == [Command(True, None)]  # a when_idle print: no auto-off
    sup.set_protect(False)
    assert sup.take() == [Command(True, 30)]


def test_plug_found_on_is_switched_off_and_reported_once() -> None:
    clock = FakeClock()
    sup = online_sup(clock)
    assert sup.observe(Seen(on=True, power_w=40)) == [Meter(40, None),
                                                       UnexpectedOn("switched_off", 40)]
    assert sup.take() == [Command(False)]
    assert sup.observe(Seen(on=True)) == []  # still on: no second report ...
    clock.advance(6)
    sup.tick()
    assert sup.take() == [Command(False)]  # ... but the off is repeated
    sup.observe(Seen(on=False))
    assert sup.observe(Seen(on=True)) == [UnexpectedOn("switched_off", 40)]  # a new press


def test_plug_found_on_during_a_protected_print_goes_off_when_idle() -> None:
    clock = FakeClock()
    sup = online_sup(clock)
    sup.set_protect(True)
    assert sup.observe(Seen(on=True)) == [UnexpectedOn("off_when_idle", None)]
    clock.advance(10)
    sup.tick()
    assert Command(False) not in sup.take()
    sup.set_protect(False)
    sup.tick()
    assert Command(False) in sup.take()


def test_offline_announcement_refuses_and_fails_a_waiting_start() -> None:
    clock = FakeClock()
    sup = online_sup(clock)
    sup.set(True)
    assert sup.observe(Online(False)) == [Failed("actuator_offline"), Availability(False)]
    assert sup.set(True) == [Failed("actuator_offline")]


def test_unknown_plug_is_not_available_until_it_speaks() -> None:
    clock = FakeClock()
    sup = PlugSupervisor(clock, lease_s=60, confirm_s=5)
    assert sup.set(True) == [Failed("actuator_offline")]
    sup.link(True)
    assert not sup.available
    assert sup.observe(Seen(on=False)) == [Availability(True)]


# ---------------------------------------------------------------- codecs


def shelly() -> ShellyCodec:
    return ShellyCodec("shellyplugsg3-abc", 0, "fabpass/v1/lab/laser-1/plug")


def test_shelly_frames_and_merge_of_notifications() -> None:
    c = shelly()
    set_frame, get_frame = c.encode(Command(True, 60))
    assert set_frame.topic == "shellyplugsg3-abc/rpc"
    body = json.loads(set_frame.payload)
    assert body["src"] == "fabpass/v1/lab/laser-1/plug" and body["method"] == "Switch.Set"
    assert body["params"] == {"id": 0, "on": True, "toggle_after": 60}
    assert "toggle_after" not in json.loads(c.encode(Command(True, None))[0].payload)["params"]
    get_id = json.loads(get_frame.payload)["id"]
    answer = {"id": get_id, "src": "shellyplugsg3-abc", "dst": body["src"], "result": {
        "id": 0, "output": True, "apower": 12.5, "aenergy": {"total": 100.0}}}
    obs = c.decode(c.t_answer, json.dumps(answer).encode())
    assert obs == [Answer(True, "Switch.GetStatus"), Seen(True, 12.5, 100.0)]
    note = {"src": "shellyplugsg3-abc", "method": "NotifyStatus",
            "params": {"ts": 1.0, "switch:0": {"id": 0, "apower": 80.0}}}
    assert c.decode(c.t_events, json.dumps(note).encode()) == [Seen(None, 80.0, None)]
    assert c.status["output"] is True and c.status["apower"] == 80.0  # merged


@pytest.mark.parametrize("topic,payload", [
    ("shellyplugsg3-abc/online", b"maybe"),
    ("shellyplugsg3-abc/events/rpc", b"\xff\xfe garbage"),
    ("shellyplugsg3-abc/events/rpc", b"[1, 2]"),
    ("shellyplugsg3-abc/events/rpc",
     b'{"method": "NotifyStatus", "params": {"switch:0": {"output": "on"}}}'),
    ("shellyplugsg3-abc/events/rpc",
     b'{"method": "NotifyStatus", "params": {"switch:0": {"apower": NaN}}}'),
    ("fabpass/v1/lab/laser-1/plug/rpc",
     b'{"id": 999, "src": "shellyplugsg3-abc", "result": {"was_on": false}}'),
    ("fabpass/v1/lab/laser-1/plug/rpc", b'{"id": true, "result": {}}'),
])
def test_shelly_bad_payloads_are_refused(topic: str, payload: bytes) -> None:
    with pytest.raises(PlugPayloadError):
        shelly().decode(topic, payload)


def test_shelly_other_channel_and_other_components_are_ignored() -> None:
    c = shelly()
    note = {"method": "NotifyStatus", "params": {"switch:1": {"id": 1, "output": True},
                                                 "wifi": {"rssi": -60}}}
    assert c.decode(c.t_events, json.dumps(note).encode()) == []
    frame = json.loads(c.encode(Command(None))[0].payload)
    wrong = {"id": frame["id"], "src": "shellyplugsg3-abc", "result": {"id": 1, "output": True}}
    with pytest.raises(PlugPayloadError):
        c.decode(c.t_answer, json.dumps(wrong).encode())


def test_tasmota_commands_and_payloads() -> None:
    c = TasmotaCodec("plug-laser", 0)
    assert pulsetime(60) == 160 and pulsetime(None) == 0
    assert pulsetime(10) == 100 and pulsetime(11) == 110 and pulsetime(12) == 112
    pulse, power = c.encode(Command(True, 60))
    assert (pulse.topic, pulse.payload) == ("cmnd/plug-laser/PulseTime1", b"160")
    assert (power.topic, power.payload) == ("cmnd/plug-laser/POWER", b"ON")
    assert c.encode(Command(False))[0].payload == b"OFF"
    assert c.encode(Command(None))[0].payload == b""
    assert c.decode("stat/plug-laser/POWER", b"ON") == [Seen(on=True)]
    assert c.decode("stat/plug-laser/RESULT", b'{"POWER":"OFF"}') == [Answer(True, "POWER"),
                                                                     Seen(on=False)]
    assert c.decode("stat/plug-laser/RESULT", b'{"Command":"Error"}') == [Answer(False, "Command Error")]
    sensor = b'{"Time":"x","ENERGY":{"Total":1.234,"Power":118,"Voltage":230}}'
    assert c.decode("tele/plug-laser/SENSOR", sensor) == [Seen(None, 118.0, 1234.0)]
    assert c.decode("tele/plug-laser/LWT", b"Offline") == [Online(False)]
    assert TasmotaCodec("p", 1).encode(Command(False))[0].topic == "cmnd/p/POWER2"


@pytest.mark.parametrize("topic,payload", [
    ("stat/plug-laser/POWER", b"MAYBE"),
    ("stat/plug-laser/RESULT", b'{"POWER": 1}'),
    ("tele/plug-laser/SENSOR", b'{"ENERGY": {"Power": "lots"}}'),
    ("tele/plug-laser/SENSOR", b'{"ENERGY": []}'),
    ("tele/plug-laser/LWT", b"\x00" * 300),
    ("tele/plug-laser/SENSOR", b"{" * 100_000),
])
def test_tasmota_bad_payloads_are_refused(topic: str, payload: bytes) -> None:
    with pytest.raises(PlugPayloadError):
        TasmotaCodec("plug-laser", 0).decode(topic, payload)


# ---------------------------------------------------------------- the state machine


def plug_machine(**policy: object) -> tuple[NodeMachine, FakeClock]:
    clock = FakeClock()
    m = NodeMachine("laser-1", "lab", SessionConfig(), clock, has_activity=True)
    m.actuator_confirms = True
    acl, raw = make_acl(policy=dict(policy))
    m.load_acl(acl, raw)
    return m, clock


def emitted(acts: list, etype: str) -> list[dict]:
    return [a.data for a in acts if isinstance(a, EmitAction) and a.type == etype]


def test_session_starts_only_once_the_plug_confirmed() -> None:
    m, clock = plug_machine()
    acts = m.badge_placed(ALICE)
    assert RelayAction(True) in acts and not emitted(acts, "session.started")
    assert m.session is None and m.state == "idle"
    assert emitted(m.badge_placed(BOB), "badge.denied")[0]["reason"] == "in_use"
    assert m.badge_placed(ALICE) == []  # the same card read again while waiting
    acts = apply_reports(m, [Confirmed()])
    assert emitted(acts, "session.started")[0]["uid"] == ALICE and m.state == "in_use"


def test_unconfirmed_start_is_refused_actuator_failed() -> None:
    m, _ = plug_machine()
    m.badge_placed(ALICE)
    acts = apply_reports(m, [Failed("actuator_failed")])
    assert RelayAction(False) in acts
    assert emitted(acts, "badge.denied") == [{"uid": ALICE, "reason": "actuator_failed"}]
    assert m.session is None and not m.relay


def test_offline_plug_refuses_listed_badges_actuator_offline() -> None:
    m, _ = plug_machine()
    assert m.status_fields()["actuator_online"] is True
    apply_reports(m, [Availability(False)])
    assert m.status_fields()["actuator_online"] is False
    acts = m.badge_placed(ALICE)
    assert emitted(acts, "badge.denied") == [{"uid": ALICE, "reason": "actuator_offline"}]
    assert RelayAction(True) not in acts
    assert emitted(m.badge_placed("04FFFFFF"), "badge.denied")[0]["reason"] == "unknown_badge"


def test_energy_and_power_reach_the_events() -> None:
    m, clock = plug_machine(heartbeat_s=10)
    apply_reports(m, [Meter(3.0, 5000.0)])
    m.badge_placed(ALICE)
    apply_reports(m, [Confirmed()])
    apply_reports(m, [Meter(150.0, 5010.0)])
    clock.advance(10)
    beat = emitted(m.tick(), "session.heartbeat")[0]
    assert beat["power_w"] == 150.0
    assert m.status_fields()["power_w"] == 150
    apply_reports(m, [Meter(150.0, 4.0)])  # the plug's counter was reset: a new base
    apply_reports(m, [Meter(150.0, 6.5)])
    clock.advance(1)
    ended = emitted(m.badge_placed(ALICE), "session.ended")[0]
    assert ended["energy_wh"] == 12.5


def test_unexpected_on_is_an_event() -> None:
    m, _ = plug_machine()
    acts = apply_reports(m, [UnexpectedOn("switched_off", 12.0)], "plug-x")
    assert emitted(acts, "actuator.unexpected_on") == [
        {"action": "switched_off", "device": "plug-x", "power_w": 12.0}]
