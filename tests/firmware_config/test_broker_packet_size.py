"""The generated mosquitto.conf bounds the packet size (issue 13): the largest message fabpass
sends (an access list of `protocol.MAX_ACL_BYTES`) goes through, a bigger one is refused by the
broker itself, on a real Mosquitto started from the generated settings."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from fabpass.broker import MosquittoProcess
from firmware_config.mosquitto import MAX_PACKET_BYTES, render_conf
from protocol import MAX_ACL_BYTES
from tests.server.test_broker_security import connect

pytestmark = pytest.mark.broker

WAIT = 20.0
TOPIC = "fabpass/v1/lab/node-a/acl"


def _global_settings(conf: str) -> str:
    """The generated settings that are not about listeners, TLS files or users (those need
    certificates and a password file the test does not make)."""
    keep = re.compile(r"^(max_\w+|set_tcp_nodelay|autosave_\w+) ")
    return "".join(line + "\n" for line in conf.splitlines() if keep.match(line))


@pytest.fixture()
def broker(tmp_path: Path) -> Iterator[MosquittoProcess]:
    extra = _global_settings(render_conf(str(tmp_path)))
    assert f"max_packet_size {MAX_PACKET_BYTES}" in extra
    process = MosquittoProcess(None, tmp_path / "mosq", persistence=False, extra_config=extra)
    yield process.start()
    process.cleanup()


def test_conf_bound_fits_the_largest_access_list() -> None:
    assert MAX_ACL_BYTES + 1024 <= MAX_PACKET_BYTES <= 2 * MAX_ACL_BYTES


def _publisher(port: int) -> tuple[mqtt.Client, threading.Event]:
    """An MQTT 3.1.1 publisher (no packet size property: the broker alone must refuse)."""
    gone = threading.Event()
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="big-publisher",
                    protocol=mqtt.MQTTv311)

    def on_disconnect(*_a: Any) -> None:
        gone.set()

    c.on_disconnect = on_disconnect
    connected = threading.Event()
    c.on_connect = lambda *_a: connected.set()
    c.connect("127.0.0.1", port)
    c.loop_start()
    assert connected.wait(WAIT), "no CONNACK"
    return c, gone


def test_broker_from_the_generated_conf_refuses_a_bigger_packet(broker: MosquittoProcess) -> None:
    listener = connect(broker.port, None, None)
    listener.subscribe(TOPIC)
    publisher, gone = _publisher(broker.port)
    try:
        biggest = b"x" * MAX_ACL_BYTES
        publisher.publish(TOPIC, biggest, qos=1).wait_for_publish(WAIT)
        topic, payload = listener.messages.get(timeout=WAIT)
        assert (topic, len(payload)) == (TOPIC, MAX_ACL_BYTES)
        publisher.publish(TOPIC, b"y" * (MAX_PACKET_BYTES + 1), qos=1)
        assert gone.wait(WAIT), "the broker took a packet over max_packet_size"
        assert listener.messages.empty()
    finally:
        publisher.loop_stop()
        publisher.disconnect()
        listener.client.disconnect()
        listener.client.loop_stop()
