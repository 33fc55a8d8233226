"""The daemon in-process on mock pins: crash in the decision thread, watchdog, cached list at start."""

from __future__ import annotations

import io
import json
import socket
import threading
from pathlib import Path
from typing import Any

import pytest
from controller_testkit import ACTIVITY, ALICE, RELAY, acl_dict
from node_harness import wait_until

from controller.daemon import EXIT_FAILURE, NodeDaemon
from controller.storage import AclStore, Outbox
from firmware_config.node_config import (
    ActivityConfig,
    GpioConfig,
    MqttConfig,
    NodeConfig,
    PinConfig,
    ReaderConfig,
    StorageConfig,
)
from protocol import Command, Event, utcnow


def make_cfg(tmp_path: Path, **gpio: Any) -> NodeConfig:
    # An MQTT port nobody listens on: the node works offline, which is what we test here.
    return NodeConfig(
        node_id="laser-1", site="lab", mqtt=MqttConfig(url="mqtt://127.0.0.1:9"),
        reader=ReaderConfig(type="sim", poll_hz=100),
        gpio=GpioConfig(relay=PinConfig(RELAY), activity=ActivityConfig(ACTIVITY), **gpio),
        storage=StorageConfig(dir=str(tmp_path / "store")))


def start(daemon: NodeDaemon) -> tuple[threading.Thread, list[int]]:
    result: list[int] = []
    thread = threading.Thread(target=lambda: result.append(daemon.run()), daemon=True)
    thread.start()  # not the main thread: run() installs no signal handlers
    wait_until(lambda: daemon.machine is not None and daemon.machine.acl is not None, 10,
               "node ready")
    return thread, result


def seed_acl(tmp_path: Path) -> None:
    store = tmp_path / "store"
    store.mkdir()
    AclStore(store).save(json.dumps(acl_dict(issued=utcnow(), valid_s=86400)).encode())


def test_crash_in_decision_thread_cuts_relay_and_exits_nonzero(tmp_path: Path,
                                                               mock_pins: Any) -> None:
    seed_acl(tmp_path)
    relay = mock_pins.pin(RELAY)
    daemon = NodeDaemon(make_cfg(tmp_path), simulate=True, pin_factory=mock_pins,
                        stdin=io.StringIO(""))
    thread, result = start(daemon)
    daemon.reader.place(ALICE)
    wait_until(lambda: relay.state, 5, "relay on")
    assert daemon.machine is not None

    def boom() -> list[Any]:
        raise RuntimeError("injected failure")

    daemon.machine.tick = boom  # type: ignore[method-assign]
    thread.join(10)
    assert result == [EXIT_FAILURE]
    assert [s.state for s in relay.states] == [False, True, False]
    box = Outbox(tmp_path / "store" / "outbox.db")
    events = [Event.decode(p) for _, p in box.pending()]
    assert [e.type for e in events] == ["session.started", "session.ended"]
    assert events[1].data["reason"] == "shutdown"
    assert box.load_checkpoint() is None


def test_busy_lines_drive_the_activity_pin(tmp_path: Path, mock_pins: Any) -> None:
    seed_acl(tmp_path)
    r, w = socket.socketpair()
    stdin = r.makefile("r")
    daemon = NodeDaemon(make_cfg(tmp_path), simulate=True, pin_factory=mock_pins, stdin=stdin)
    thread, result = start(daemon)
    try:
        w.sendall(b"place 04A1B2C3\nbusy on\n")
        wait_until(lambda: daemon.machine and daemon.machine.busy, 5, "busy")
        assert mock_pins.pin(ACTIVITY).state  # active_high: busy is high
        w.sendall(b"busy off\n")
        wait_until(lambda: daemon.machine and not daemon.machine.busy, 5, "idle")
        assert daemon.machine and daemon.machine.session is not None
        assert daemon.machine.session.active_s(daemon.clock.monotonic()) > 0
    finally:
        daemon.queue.put(("signal", 15))
        thread.join(10)
        w.close()
        stdin.close()
        r.close()
    assert result == [0]


def test_watchdog_and_ready(tmp_path: Path, mock_pins: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    seed_acl(tmp_path)
    addr = str(tmp_path / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(addr)
        sock.settimeout(5)
        monkeypatch.setenv("NOTIFY_SOCKET", addr)
        monkeypatch.setenv("WATCHDOG_USEC", "200000")
        monkeypatch.delenv("WATCHDOG_PID", raising=False)
        daemon = NodeDaemon(make_cfg(tmp_path), simulate=True, pin_factory=mock_pins,
                            stdin=io.StringIO(""))
        thread, result = start(daemon)
        got = [sock.recv(100) for _ in range(3)]
        assert got[0] == b"READY=1" and got[1:] == [b"WATCHDOG=1", b"WATCHDOG=1"]
        daemon.queue.put(("signal", 15))
        thread.join(10)
        assert result == [0]
        msgs = []
        while True:
            try:
                sock.settimeout(0.5)
                msgs.append(sock.recv(100))
            except TimeoutError:
                break
        assert msgs and msgs[-1] == b"STOPPING=1"


def test_cached_list_for_another_node_is_not_used(tmp_path: Path, mock_pins: Any,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    store = tmp_path / "store"
    store.mkdir()
    AclStore(store).save(json.dumps(acl_dict(node="printer-9", issued=utcnow())).encode())
    daemon = NodeDaemon(make_cfg(tmp_path), simulate=True, pin_factory=mock_pins,
                        stdin=io.StringIO(""))
    result: list[int] = []
    thread = threading.Thread(target=lambda: result.append(daemon.run()), daemon=True)
    thread.start()
    wait_until(lambda: "cached access list ignored: list is for node 'printer-9'" in caplog.text,
               10, "cached list refused")
    assert daemon.machine is not None and daemon.machine.state == "no_acl"
    daemon.queue.put(("signal", 15))
    thread.join(10)
    assert result == [0]


def test_remote_lock_survives_a_restart(tmp_path: Path, mock_pins: Any) -> None:
    seed_acl(tmp_path)
    cfg = make_cfg(tmp_path)
    daemon = NodeDaemon(cfg, simulate=True, pin_factory=mock_pins, stdin=io.StringIO(""))
    thread, result = start(daemon)
    lock = Command.create("lock", utcnow())
    daemon.queue.put(("mqtt", (daemon.t_cmd, lock.encode(), False)))
    daemon.queue.put(("mqtt", (daemon.t_cmd, b"\x00garbage", False)))
    wait_until(lambda: daemon.machine and daemon.machine.state == "locked", 5, "locked")
    daemon.queue.put(("signal", 15))
    thread.join(10)
    assert result == [0]

    again = NodeDaemon(cfg, simulate=True, pin_factory=mock_pins, stdin=io.StringIO(""))
    thread, result = start(again)
    wait_until(lambda: again.machine and again.machine.state == "locked", 5, "still locked")
    again.reader.place(ALICE)
    reader = Outbox(tmp_path / "store" / "outbox.db")  # a second connection (WAL readers)

    def reasons() -> list[Any]:
        return [Event.decode(p).data.get("reason") for _, p in reader.pending()]
    wait_until(lambda: "machine_locked" in reasons(), 5, "machine_locked denial")
    reader.close()
    again.queue.put(("signal", 15))
    thread.join(10)
    assert result == [0]
    assert not [s for s in mock_pins.pin(RELAY).states if s.state]
