"""`fabpass node --simulate` as a subprocess against a real Mosquitto, the test acting as server."""

from __future__ import annotations

import signal
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from controller_testkit import ALICE, BOB, NOAUTH, OLD, STRANGER, acl_dict
from node_harness import FakeServer, NodeProc, wait_until, write_config

from protocol import utcnow

pytestmark = pytest.mark.broker


@pytest.fixture()
def procs() -> Iterator[list[NodeProc]]:
    started: list[NodeProc] = []
    yield started
    for p in started:
        p.stop()


def new_node() -> str:
    return f"n-{uuid.uuid4().hex[:10]}"


def live_acl(node: str, **kw: Any) -> dict[str, Any]:
    """A list issued now (the node's clock is real), valid for a day."""
    kw.setdefault("issued", utcnow())
    kw.setdefault("valid_s", 86400)
    return acl_dict(node=node, **kw)


@pytest.fixture()
def make_node(tmp_path: Path, procs: list[NodeProc]) -> Callable[..., NodeProc]:
    def make(node: str, broker_url: str, *, protocol: str = "5", start: bool = True,
             storage: Path | None = None) -> NodeProc:
        cfg = write_config(tmp_path / f"{node}-{len(procs)}.toml", broker_url=broker_url,
                           node=node, storage=storage or tmp_path / node, protocol=protocol)
        p = NodeProc(cfg)
        procs.append(p)
        return p.start() if start else p
    return make


def test_tap_in_out_denials_and_commands(mosquitto: Any, make_node: Any) -> None:
    node = new_node()
    server = FakeServer(mosquitto.url)
    try:
        server.publish_acl(node, live_acl(node, version=7))
        p = make_node(node, mosquitto.url)
        st = server.wait_status(node, state="idle", acl_version=7)
        assert st["online"] is True and st["relay"] is False and st["session"] is None
        assert st["software"] and st["clock_ok"] is True and st["ts"].endswith("Z")

        p.tap("04:a1:b2:c3")
        p.wait_line(r": relay on$")
        started = server.wait_event(node, "session.started", uid=ALICE)
        assert started.data["member"] == 1
        st = server.wait_status(node, state="in_use", relay=True)
        assert st["session"]["id"] == started.data["session"]

        p.tap(BOB)
        server.wait_event(node, "badge.denied", uid=BOB, reason="in_use")
        p.tap(ALICE)
        p.wait_line(r": relay off$")
        ended = server.wait_event(node, "session.ended", uid=ALICE)
        assert ended.data["reason"] == "badge_out"
        assert ended.data["session"] == started.data["session"]

        for uid, reason in ((STRANGER, "unknown_badge"), (OLD, "expired"),
                            (NOAUTH, "not_authorized")):
            p.tap(uid)
            server.wait_event(node, "badge.denied", uid=uid, reason=reason)
        p.send("frobnicate")
        p.wait_line(r"ignored simulation line: unknown simulation command 'frobnicate'")

        # commands: lock (echoed in last_cmd), old ones ignored, unlock, stop
        lock = server.command(node, "lock")
        server.wait_status(node, state="locked", last_cmd=lock.id)
        p.tap(ALICE)
        server.wait_event(node, "badge.denied", uid=ALICE, reason="machine_locked")
        server.command(node, "unlock", age_s=60)
        p.wait_line(r"ignoring command unlock")
        unlock = server.command(node, "unlock")
        server.wait_status(node, state="idle", last_cmd=unlock.id)
        p.tap(ALICE)
        p.wait_line(r": relay on$", n=2)
        server.command(node, "stop")
        server.wait_event(node, "session.ended", reason="remote_stop")
        p.wait_line(r": relay off$", n=2)

        events = server.of(node)
        seqs = [e.seq for e in events]
        assert sorted(set(seqs)) == list(range(1, max(seqs) + 1))  # nothing lost
        assert len({e.boot for e in events}) == 1
        p.wait_line(r"ack: \d+ event\(s\) done, 0 waiting")
        assert p.relay_changes() == ["on", "off", "on", "off"]

        p.signal(signal.SIGTERM)
        assert p.wait() == 0
        server.wait_status(node, online=False)
    finally:
        server.close()


def test_garbage_retained_messages_never_switch_the_relay(mosquitto: Any, make_node: Any) -> None:
    node = new_node()
    server = FakeServer(mosquitto.url)
    try:
        server.publish_acl(node, b"on")
        server.command(node, "unlock", payload=b'{"v":1,"cmd":"unlock"}', retain=True)
        p = make_node(node, mosquitto.url)
        p.wait_line(r"ignoring malformed retained payload on .*/acl")
        p.wait_line(r"ignoring malformed retained payload on .*/cmd")
        server.wait_status(node, state="no_acl")
        for payload in (b"", b"\xff\xfe", b"[1,2]", b'{"v":2}', b'{"v":1}', b"null"):
            server.publish_acl(node, payload, retain=False)
        other = live_acl("someone-else", version=99)
        server.publish_acl(node, other, retain=False)
        p.wait_line(r"ignoring access list on .*/acl: list is for node 'someone-else'")
        p.tap(ALICE)
        server.wait_event(node, "badge.denied", uid=ALICE, reason="no_acl")
        server.publish_acl(node, live_acl(node, version=1))
        server.wait_status(node, state="idle", acl_version=1)
        assert p.relay_changes() == []
        assert p.count(r"Traceback") == 0
    finally:
        server.clear_retained(node)
        server.close()


def test_offline_gating_and_outbox_flush(fresh_broker: Any, make_node: Any) -> None:
    node = new_node()
    server = FakeServer(fresh_broker.url)
    try:
        server.publish_acl(node, live_acl(node, version=3))
        p = make_node(node, fresh_broker.url)
        server.wait_status(node, state="idle", acl_version=3)
        fresh_broker.stop()
        p.wait_line(r"MQTT disconnected")
        p.tap(ALICE)
        p.wait_line(r": relay on$")
        p.tap(STRANGER)
        p.wait_line(rf"badge {STRANGER} denied: unknown_badge")
        p.tap(ALICE)
        p.wait_line(r": relay off$")
        fresh_broker.start()
        started = server.wait_event(node, "session.started", uid=ALICE, timeout=25)
        server.wait_event(node, "badge.denied", uid=STRANGER, reason="unknown_badge")
        ended = server.wait_event(node, "session.ended", reason="badge_out")
        assert ended.data["session"] == started.data["session"]
        p.wait_line(r"ack: \d+ event\(s\) done, 0 waiting", timeout=10)
        assert {e.type for e in server.of(node)} == {"session.started", "badge.denied",
                                                    "session.ended"}
        assert sorted({e.seq for e in server.of(node)}) == [1, 2, 3]
    finally:
        server.close()


def test_kill9_mid_session_then_power_loss(mosquitto: Any, make_node: Any, tmp_path: Path) -> None:
    node = new_node()
    server = FakeServer(mosquitto.url)
    try:
        server.publish_acl(node, live_acl(node, version=1, policy={"heartbeat_s": 1}))
        p = make_node(node, mosquitto.url)
        server.wait_status(node, state="idle")
        p.tap(ALICE)
        started = server.wait_event(node, "session.started")
        server.wait_event(node, "session.heartbeat", n=2)
        p.kill()
        server.wait_status(node, online=False)  # the Last Will
        p2 = make_node(node, mosquitto.url, storage=tmp_path / node)
        ended = server.wait_event(node, "session.ended")
        assert ended.data["reason"] == "power_loss"
        assert ended.data["session"] == started.data["session"]
        assert ended.data["duration_s"] >= 2.0
        last_hb = server.of(node, "session.heartbeat")[-1]
        assert ended.data["duration_s"] >= last_hb.data["elapsed_s"]
        assert ended.boot != started.boot and ended.seq > last_hb.seq
        server.wait_status(node, state="idle", relay=False)
        assert p2.relay_changes() == []
    finally:
        server.clear_retained(node)
        server.close()


def test_mqtt_311(mosquitto: Any, make_node: Any) -> None:
    node = new_node()
    server = FakeServer(mosquitto.url, protocol="3.1.1")
    try:
        server.publish_acl(node, live_acl(node, version=2))
        p = make_node(node, mosquitto.url, protocol="3.1.1")
        server.wait_status(node, state="idle", acl_version=2)
        p.tap(ALICE)
        server.wait_event(node, "session.started")
        p.tap(ALICE)
        server.wait_event(node, "session.ended", reason="badge_out")
        p.wait_line(r"ack: \d+ event\(s\) done, 0 waiting")

        # without an ack the node sends the event again (2 s, then backing off up to 30 s)
        server.auto_ack = False
        p.tap(STRANGER)
        denied = server.wait_event(node, "badge.denied", uid=STRANGER)
        wait_until(lambda: server.deliveries(denied.id) >= 2, 6, "a resend without ack")
        n = server.deliveries(denied.id)
        server.command(node, "resync")  # resends at once
        wait_until(lambda: server.deliveries(denied.id) > n, 3, "a resend on resync")
        server.auto_ack = True
        p.wait_line(r"ack: \d+ event\(s\) done, 0 waiting", n=2, timeout=35)
        assert len(server.of(node, "badge.denied")) == 1
    finally:
        server.clear_retained(node)
        server.close()


def test_sigterm_waits_for_when_idle_machine(mosquitto: Any, make_node: Any) -> None:
    node = new_node()
    server = FakeServer(mosquitto.url)
    try:
        server.publish_acl(node, live_acl(node, version=1, policy={"power_off": "when_idle",
                                                                   "idle_end_s": 1}))
        p = make_node(node, mosquitto.url)
        server.wait_status(node, state="idle")
        p.tap(ALICE)
        p.send("busy on")
        server.wait_status(node, state="in_use", relay=True)
        p.signal(signal.SIGTERM)
        server.wait_status(node, state="finishing", relay=True)
        p.tap(BOB)
        server.wait_event(node, "badge.denied", uid=BOB, reason="machine_locked")
        p.send("busy off")
        assert p.wait(10) == 0
        ended = server.wait_event(node, "session.ended")
        assert ended.data["reason"] == "shutdown" and ended.data["active_s"] > 0
        assert p.relay_changes() == ["on", "off"]

        p2 = make_node(node, mosquitto.url, storage=Path(str(p.config)).parent / node)
        server.wait_status(node, state="idle", online=True)
        p2.tap(ALICE)
        p2.send("busy on")
        p2.wait_line(r": relay on$")
        p2.signal(signal.SIGTERM)
        p2.wait_line(r"waiting for the machine to be idle")
        p2.signal(signal.SIGINT)
        assert p2.wait(10) == 0
        assert p2.relay_changes() == ["on", "off"]
        wait_until(lambda: len(server.of(node, "session.ended")) == 2, 10, "second ended")
    finally:
        server.clear_retained(node)
        server.close()


def test_bad_config_exits_1(tmp_path: Path) -> None:
    import subprocess
    import sys

    cfg = tmp_path / "bad.toml"
    cfg.write_text('node_id = "Bad Name"\nsite = "lab"\n')
    res = subprocess.run([sys.executable, "-m", "fabpass", "node", "--config", str(cfg),
                          "--simulate"], capture_output=True, text=True, timeout=30)
    assert res.returncode == 1
    assert f"{cfg}:1: node_id:" in res.stderr
