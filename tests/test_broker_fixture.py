"""The shared broker fixture is a real Mosquitto that carries QoS 1 messages on loopback."""

from __future__ import annotations

import queue
from urllib.parse import urlparse

import paho.mqtt.client as mqtt

from fabpass.broker import MosquittoProcess


def test_real_broker_round_trip(mosquitto: MosquittoProcess) -> None:
    got: queue.Queue[bytes] = queue.Queue()
    port = urlparse(mosquitto.url).port
    assert port is not None
    sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="t-sub")
    sub.on_message = lambda c, u, m: got.put(m.payload)
    sub.connect("127.0.0.1", port)
    sub.subscribe("t/x", qos=1)
    sub.loop_start()
    pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="t-pub")
    pub.connect("127.0.0.1", port)
    pub.loop_start()
    try:
        for _ in range(50):  # bounded: retry until the subscription is live
            pub.publish("t/x", b"hello", qos=1).wait_for_publish(2)
            try:
                assert got.get(timeout=0.2) == b"hello"
                break
            except queue.Empty:
                continue
        else:
            raise AssertionError("no message through the broker")
    finally:
        pub.loop_stop()
        sub.loop_stop()
