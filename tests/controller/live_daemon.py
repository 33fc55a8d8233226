"""A real `NodeDaemon` in this process, on mock pins, talking to a real Mosquitto.

In-process (rather than `fabpass node` as a subprocess) so a test can drive its clock
(`FakeClock`) or make one stage of its receive path raise, while everything else — the
broker, paho, the outbox on disk, the decision thread — is the real thing.
"""

from __future__ import annotations

import io
import threading
import uuid
from pathlib import Path
from typing import Any

from controller_testkit import ACTIVITY, RELAY
from node_harness import wait_until

from controller.clock import Clock
from controller.daemon import NodeDaemon
from firmware_config.node_config import (
    ActivityConfig,
    GpioConfig,
    MqttConfig,
    NodeConfig,
    PinConfig,
    ReaderConfig,
    StorageConfig,
)


def new_node() -> str:
    return f"n-{uuid.uuid4().hex[:10]}"


def node_cfg(store: Path, node: str, broker_url: str) -> NodeConfig:
    return NodeConfig(
        node_id=node, site="lab", mqtt=MqttConfig(url=broker_url),
        reader=ReaderConfig(type="sim", poll_hz=100),
        gpio=GpioConfig(relay=PinConfig(RELAY), activity=ActivityConfig(ACTIVITY)),
        storage=StorageConfig(dir=str(store)))


class LiveNode:
    """Start with `start()`, stop with `stop()` (SIGTERM's path); `result` is run()'s exit code."""

    def __init__(self, cfg: NodeConfig, pins: Any, clock: Clock | None = None) -> None:
        self.daemon = NodeDaemon(cfg, simulate=True, pin_factory=pins, clock=clock,
                                 stdin=io.StringIO(""))
        self.pins = pins
        self.result: list[int] = []
        self.thread = threading.Thread(target=lambda: self.result.append(self.daemon.run()),
                                       daemon=True)

    def start(self) -> LiveNode:
        self.thread.start()  # not the main thread: run() installs no signal handlers
        wait_until(lambda: self.daemon.machine is not None and self.daemon.connected, 10,
                   "node connected")
        return self

    @property
    def alive(self) -> bool:
        return self.thread.is_alive()

    def relay(self) -> bool:
        return bool(self.pins.pin(RELAY).state)

    def place(self, uid: str) -> None:
        self.daemon.reader.place(uid)

    def remove(self) -> None:
        self.daemon.reader.remove()

    def stop(self) -> int:
        """Stop (idempotent) and return the exit code; -1 if it never ran."""
        if self.thread.is_alive():
            self.daemon.queue.put(("signal", 15))
            self.thread.join(10)
        assert not self.thread.is_alive(), "node did not stop"
        return self.result[0] if self.result else -1
