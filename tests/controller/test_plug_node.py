"""`fabpass node --simulate` driving a simulated Shelly / Tasmota plug on a real Mosquitto.

The plug simulators (tests/controller/plugs/) speak the devices' documented
topics; the node is a real subprocess; the test plays the server (FakeServer).
Leases are 10 s (the config's minimum) and the power thresholds short, so each
test takes seconds.
"""

from __future__ import annotations

import json
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from controller_testkit import ALICE, BOB
from node_harness import FakeServer, NodeProc, wait_until
from plugs.base import SimPlug
from plugs.shelly_sim import ShellySim
from plugs.tasmota_sim import TasmotaSim
from test_node_integration import live_acl

pytestmark = pytest.mark.broker

LEASE_S = 10
BACKENDS = {"shelly": ShellySim, "tasmota": TasmotaSim}


def write_plug_config(path: Path, *, broker_url: str, node: str, storage: Path, kind: str,
                      device: str) -> Path:
    path.write_text(f'''node_id = "{node}"
site = "lab"

[mqtt]
url = "{broker_url}"

[reader]
type = "sim"
poll_hz = 50

[storage]
dir = "{storage}"

[actuator]
type = "{kind}"
device = "{device}"
lease_s = {LEASE_S}
confirm_s = 2
machine_kind = "3d_printer"
busy_after_s = 0.5
idle_after_s = 1.5
''')
    return path


class Rig:
    def __init__(self, kind: str, broker_url: str, tmp: Path, procs: list[NodeProc]) -> None:
        self.kind = kind
        self.node = f"p-{uuid.uuid4().hex[:10]}"
        self.device = (f"shellyplugsg3-{uuid.uuid4().hex[:12]}" if kind == "shelly"
                       else f"tasmota_{uuid.uuid4().hex[:6].upper()}")
        self.plug: SimPlug = BACKENDS[kind](broker_url, self.device)
        assert self.plug.connected.wait(10)
        self.server = FakeServer(broker_url)
        self.config = write_plug_config(tmp / f"{self.node}.toml", broker_url=broker_url,
                                        node=self.node, storage=tmp / self.node, kind=kind,
                                        device=self.device)
        self.procs = procs
        self.p: NodeProc | None = None

    def start(self, **policy: Any) -> NodeProc:
        policy.setdefault("heartbeat_s", 1)
        self.server.publish_acl(self.node, live_acl(self.node, policy=policy))
        self.p = NodeProc(self.config).start()
        self.procs.append(self.p)
        self.server.wait_status(self.node, state="idle")
        self.p.wait_line(r"plug reports off")  # the plug spoke: sessions are allowed
        return self.p

    def close(self) -> None:
        self.server.clear_retained(self.node)
        self.server.close()
        self.plug.close()

    def off_commands(self) -> int:
        def is_off(topic: str, payload: bytes) -> bool:
            if self.kind == "tasmota":
                return topic.endswith("/POWER") and payload == b"OFF"
            try:
                frame = json.loads(payload)
            except ValueError:
                return False
            return frame.get("method") == "Switch.Set" and frame["params"].get("on") is False
        return sum(1 for t, p in list(self.plug.received) if is_off(t, p))


@pytest.fixture()
def procs() -> Iterator[list[NodeProc]]:
    started: list[NodeProc] = []
    yield started
    for p in started:
        p.stop()


@pytest.fixture(params=sorted(BACKENDS))
def rig(request: Any, mosquitto: Any, tmp_path: Path, procs: list[NodeProc]) -> Iterator[Rig]:
    r = Rig(request.param, mosquitto.url, tmp_path, procs)
    yield r
    r.close()


def test_print_session_with_when_idle_follows_the_plug_power(rig: Rig) -> None:
    p = rig.start(power_off="when_idle")
    plug, server, node = rig.plug, rig.server, rig.node
    plug.set_phase("heating")
    p.tap(ALICE)
    started = server.wait_event(node, "session.started", uid=ALICE)
    assert plug.output, "the session started before the plug was on"
    on_at = next(t for t, on, _src in plug.history if on)
    p.wait_line(r"plug confirmed on")
    assert p.count(r"plug confirmed on") == 1 and on_at > 0
    status = server.wait_status(node, state="in_use", relay=True)
    assert status["session"]["id"] == started.data["session"]

    plug.set_phase("printing")  # power rises: busy after busy_after_s, active seconds grow
    beat = server.wait_event(node, "session.heartbeat", n=1, timeout=10)
    wait_until(lambda: any(e.data["active_s"] >= 1.5 for e in
                           server.of(node, "session.heartbeat")), 10, "active seconds")
    beat = server.of(node, "session.heartbeat")[-1]
    assert beat.data["power_w"] == pytest.approx(1200, abs=1)
    assert server.wait_status(node, power_w=1200)

    p.tap(ALICE)  # tap out mid-print: when_idle keeps the plug on
    server.wait_status(node, state="finishing", relay=True)
    time.sleep(2.5)  # longer than confirm_s and idle_after_s: nothing cuts the print
    assert plug.output and not server.of(node, "session.ended")

    plug.set_phase("done")  # the print is over: idle after idle_after_s, then off
    ended = server.wait_event(node, "session.ended", uid=ALICE, timeout=10)
    assert ended.data["reason"] == "badge_out"
    assert ended.data["active_s"] >= 1.5
    assert ended.data["energy_wh"] > 0.5  # 1.2-1.5 kW for a few seconds
    wait_until(lambda: not plug.output, 5, "the plug switched off")
    assert [src for _t, on, src in plug.history[1:]] == ["MQTT", "MQTT"]  # one on, one off
    assert p.count(r"Traceback") == 0


def test_node_killed_during_a_session_plug_turns_itself_off_within_the_lease(rig: Rig) -> None:
    p = rig.start()
    plug = rig.plug
    p.tap(ALICE)
    rig.server.wait_event(rig.node, "session.started", uid=ALICE)
    assert plug.output and plug.timer_duration == LEASE_S
    time.sleep(1.0)
    p.kill()  # SIGKILL: no teardown, no "off"
    killed = time.monotonic()
    wait_until(lambda: not plug.output, LEASE_S + 2, "the plug's own auto-off")
    took = time.monotonic() - killed
    assert took <= LEASE_S + 0.5
    assert plug.history[-1][2] == "timer"


def test_hand_press_with_no_session_is_switched_off_and_reported(rig: Rig) -> None:
    p = rig.start()
    plug, server, node = rig.plug, rig.server, rig.node
    plug.set_phase("idle")
    plug.press()
    event = server.wait_event(node, "actuator.unexpected_on", timeout=5)
    assert event.data["action"] == "switched_off" and event.data["device"] == rig.device
    wait_until(lambda: not plug.output, 5, "the node switched the plug off")
    assert plug.history[-1][2] == "MQTT"
    p.tap(ALICE)  # and the node still works
    server.wait_event(node, "session.started", uid=ALICE)


def test_plug_faults_refuse_badges_and_never_leave_it_on(rig: Rig) -> None:
    p = rig.start()
    plug, server, node = rig.plug, rig.server, rig.node
    plug.ignore_commands = True  # the plug takes nothing in
    p.tap(ALICE)
    denied = server.wait_event(node, "badge.denied", uid=ALICE, timeout=6)
    assert denied.data["reason"] == "actuator_failed"
    wait_until(lambda: rig.off_commands() >= 1, 3, "the plug told off")
    assert not server.of(node, "session.started") and not plug.output
    plug.ignore_commands = False

    plug.drop()  # off the network: refused while offline
    p.wait_line(r"plug announces itself offline")
    server.wait_status(node, actuator_online=False)
    p.tap(BOB)
    assert server.wait_event(node, "badge.denied", uid=BOB).data["reason"] == "actuator_offline"
    plug.rejoin()
    p.wait_line(r"plug announces itself online")
    p.wait_line(r"plug online: new sessions allowed", n=2)
    p.tap(BOB)
    server.wait_event(node, "session.started", uid=BOB)

    plug.reboot(into_on=False)  # power cut: the node switches it on again for the session
    wait_until(lambda: plug.output, 8, "the plug back on for the running session")
    p.tap(BOB)
    server.wait_event(node, "session.ended", uid=BOB)
    wait_until(lambda: not plug.output, 5, "the plug off after the session")

    plug.reboot(into_on=True)  # restored power with the relay on and no session: off
    server.wait_event(node, "actuator.unexpected_on", timeout=8)
    wait_until(lambda: not plug.output, 5, "the plug off again")
    assert p.count(r"Traceback") == 0


def test_garbage_on_plug_topics_never_switches_it_on(rig: Rig) -> None:
    p = rig.start()
    plug = rig.plug
    if rig.kind == "shelly":
        src = f"fabpass/v1/lab/{rig.node}/plug/rpc"
        junk: list[tuple[str, bytes]] = [
            (f"{rig.device}/online", b"perhaps"),
            (f"{rig.device}/events/rpc", b"\xff garbage"),
            (f"{rig.device}/events/rpc",
             b'{"method":"NotifyStatus","params":{"switch:0":{"output":"yes"}}}'),
            (f"{rig.device}/events/rpc",
             b'{"method":"NotifyStatus","params":{"switch:3":{"id":3,"output":true}}}'),
            (src, b'{"id":424242,"src":"' + rig.device.encode() + b'","result":{"was_on":true}}'),
        ]
    else:
        junk = [
            (f"stat/{rig.device}/POWER", b"MAYBE"),
            (f"stat/{rig.device}/RESULT", b'{"POWER":true}'),
            (f"tele/{rig.device}/SENSOR", b'{"ENERGY":{"Power":"much"}}'),
            (f"tele/{rig.device}/LWT", b"Sleeping"),
            (f"stat/{rig.device}/RESULT", b"[[[[[["),
        ]
    for topic, payload in junk:
        plug.publish(topic, payload)
    p.wait_line(r"ignoring plug message", n=len(junk) - (1 if rig.kind == "shelly" else 0))
    time.sleep(0.5)
    assert not plug.output and plug.ons() == 0
    assert rig.server.wait_status(rig.node, state="idle", relay=False)
    assert p.proc is not None and p.proc.poll() is None
    assert p.count(r"Traceback") == 0


@pytest.fixture()
def make_rig(mosquitto: Any, tmp_path: Path, procs: list[NodeProc]) -> Iterator[Callable[..., Rig]]:
    made: list[Rig] = []

    def make(kind: str) -> Rig:
        r = Rig(kind, mosquitto.url, tmp_path, procs)
        made.append(r)
        return r
    yield make
    for r in made:
        r.close()


def test_sigterm_switches_the_plug_off(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig("shelly")
    p = rig.start()
    p.tap(ALICE)
    rig.server.wait_event(rig.node, "session.started", uid=ALICE)
    p.signal(signal.SIGTERM)
    assert p.wait() == 0
    ended = rig.server.wait_event(rig.node, "session.ended", uid=ALICE)
    assert ended.data["reason"] == "shutdown"
    wait_until(lambda: not rig.plug.output, 3, "the plug off at once")
    assert rig.plug.history[-1][2] == "MQTT"
