"""Promise 3 — fail-secure relay: off at start, after SIGTERM, after an exception in the decision
thread, while the list is missing or corrupt; no retained or queued message switches it on."""

from __future__ import annotations

import json
import os
import random
import threading
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from reliability_harness import NodeProc, node_config, wait_until

from controller.storage import AclStore, Outbox
from fabpass.broker import MosquittoProcess
from protocol import Topics

NODE, SITE, UID, STRANGER = "node-1", "lab", "04A1B2C3", "04DEAD00"
RELAY_PIN = 17


def _acl(version: int, uid: str = UID, **extra: Any) -> dict[str, Any]:
    issued = datetime.now(UTC)
    fmt = "%Y-%m-%dT%H:%M:%S.000Z"
    return {"v": 1, "version": version, "site": SITE, "node": NODE, "machine": NODE,
            "issued": issued.strftime(fmt),
            "valid_until": (issued + timedelta(days=7)).strftime(fmt), "locked": False,
            "policy": {}, "badges": [{"uid": uid, "member": 1, "role": "user", "until": None}],
            **extra}


@pytest.mark.timeout(60)
def test_exception_in_decision_thread_cuts_the_relay(tmp_path: Path, mock_pins: Any) -> None:
    """Fault injection in-process: the state machine raises while a session is running."""
    from controller.daemon import EXIT_FAILURE, NodeDaemon
    from firmware_config import load_node_config

    storage = tmp_path / NODE
    storage.mkdir()
    AclStore(storage).save(json.dumps(_acl(1)).encode())
    cfg = load_node_config(node_config(tmp_path / "n.toml", broker_url="mqtt://127.0.0.1:9",
                                       node=NODE, storage=storage))
    r, w = os.pipe()
    stdin, feed = os.fdopen(r, "r"), os.fdopen(w, "w")
    daemon = NodeDaemon(cfg, simulate=True, stdin=stdin, pin_factory=mock_pins)
    result: list[int] = []
    thread = threading.Thread(target=lambda: result.append(daemon.run()), daemon=True)
    thread.start()
    try:
        pin = mock_pins.pin(RELAY_PIN)
        wait_until(lambda: daemon.machine is not None and daemon.machine.state == "idle", 10,
                   "the node ready with its cached list")
        assert pin.state == 0  # off at start
        feed.write(f"tap {UID}\n")
        feed.flush()
        wait_until(lambda: pin.state == 1, 5, "relay on for a listed badge")
        wait_until(lambda: daemon.machine is not None and daemon.machine.session is not None
                   and daemon.machine.state == "in_use", 5, "a running session")

        def boom(*_a: Any, **_k: Any) -> Any:
            raise RuntimeError("injected fault")

        daemon.machine.tick = boom  # type: ignore[method-assign,union-attr]  # next timer tick
        thread.join(10)
        assert not thread.is_alive() and result == [EXIT_FAILURE]
        assert pin.state == 0
    finally:
        feed.close()
    box = Outbox(storage / "outbox.db")
    try:
        events = [json.loads(p) for _, p in box.pending()]
    finally:
        box.close()
    assert [e["type"] for e in events] == ["session.started", "session.ended"]
    assert events[-1]["data"]["reason"] == "shutdown"


@pytest.mark.broker
@pytest.mark.timeout(90)
def test_no_message_switches_the_relay_on(tmp_path: Path) -> None:
    """300 retained and queued messages on the node's acl and cmd topics — garbage, "on"-like,
    valid lists, valid commands — then SIGTERM mid-session: the relay only follows badges."""
    rng = random.Random(3)
    broker = MosquittoProcess(data_dir=tmp_path / "broker").start()
    topics = Topics()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="evil",
                         protocol=mqtt.MQTTv5)
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    storage = tmp_path / NODE
    storage.mkdir()
    node = NodeProc(NODE, node_config(tmp_path / "n.toml", broker_url=broker.url, node=NODE,
                                      storage=storage), storage)

    def cmd(name: str, age: float = 0) -> bytes:
        ts = (datetime.now(UTC) - timedelta(seconds=age)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
        return json.dumps({"v": 1, "id": str(uuid.uuid4()), "ts": ts, "cmd": name}).encode()

    payloads = [b"", b"on", b"1", b"true", b"ON", b"relay on", b"\xff\xfe\x00", b"[]", b"null",
                b'{"relay": true}', b'{"v":1,"relay":true,"state":"in_use"}',
                b'{"v":1,"cmd":"on"}', b'{"v":1,"cmd":"unlock"}', b'{"v":1}', b"{" * 5000,
                json.dumps(_acl(5, uid=STRANGER)).encode(),
                json.dumps(_acl(2**62, uid=STRANGER)).encode(),
                json.dumps({**_acl(7), "node": "node-2"}).encode(),
                json.dumps({**_acl(8), "locked": True}).encode()]
    try:
        # Retained before the node exists: what it finds at its first connection.
        for kind, payload in (("acl", b"on"), ("cmd", cmd("unlock"))):
            client.publish(topics.topic(SITE, NODE, kind), payload, qos=1,
                           retain=True).wait_for_publish(5)
        node.start()
        node.wait_line(r"MQTT connected", 20)
        for _ in range(300):
            kind = rng.choice(["acl", "cmd"])
            payload = rng.choice(payloads + [cmd(rng.choice(
                ["unlock", "lock", "stop", "identify", "resync", "on"]), rng.choice([0, 120]))])
            client.publish(topics.topic(SITE, NODE, kind), payload, qos=rng.choice([0, 1]),
                           retain=rng.random() < 0.3)
        client.publish(topics.topic(SITE, NODE, "acl"), json.dumps(_acl(2**62 + 1)).encode(),
                       qos=1, retain=True).wait_for_publish(5)
        client.publish(topics.topic(SITE, NODE, "cmd"), cmd("unlock"), qos=1).wait_for_publish(5)
        node.wait_line(r"access list version 4611686018427387905: 1 badges", 20)
        assert node.relay() == [] and node.alive and not node.find("Traceback")
        # The badge on the last list still opens; SIGTERM then cuts the relay and ends it.
        mark = node.tap(STRANGER)
        node.wait_line(rf"badge {STRANGER} denied", 5, since=mark)
        mark = node.tap(UID)
        node.wait_line(r": relay on$", 5, since=mark)
        assert node.stop() == 0
        assert node.relay() == ["on", "off"]
        assert node.find(r"session \S+ ended: shutdown")
    finally:
        node.stop()
        client.loop_stop()
        client.disconnect()
        broker.cleanup()
