"""`protocol.fastclient.BufferedClient` against a real Mosquitto: every message arrives once and
intact whatever the packet sizes (packets split across 64 KiB reads, many packets per read),
`ack_many` acknowledges exactly the ids it names (the broker redelivers the others to a
persistent session), and no byte of an old connection is parsed on a new one."""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from protocol import fastclient
from protocol.fastclient import READ_SIZE, BufferedClient
from protocol.mqttclient import connect_properties, make_client, parse_mqtt_url


def _wait(cond: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.01)


class Sub:
    """A persistent MQTT 5 subscriber with manual acknowledgement, like the server's link."""

    def __init__(self, url: str, client_id: str, topic: str) -> None:
        self.target = parse_mqtt_url(url)
        self.topic = topic
        self.client: BufferedClient = make_client(  # type: ignore[assignment]
            client_id, self.target, persistent=True, max_inflight=1000,
            client_class=BufferedClient)
        self.client.manual_ack_set(True)
        self.got: list[tuple[int, bytes]] = []
        self.lock = threading.Lock()
        self.subscribed = threading.Event()
        self.client.on_connect = lambda c, *_: c.subscribe(topic, qos=1)
        self.client.on_subscribe = lambda *_: self.subscribed.set()
        self.client.on_message = self._on_message

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.got.append((msg.mid, bytes(msg.payload)))

    def start(self) -> None:
        props = connect_properties(3600)
        props.ReceiveMaximum = 1000
        self.client.connect(self.target.host, self.target.port, clean_start=False,
                            properties=props)
        self.client.loop_start()
        assert self.subscribed.wait(10)

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _publish(url: str, topic: str, payloads: list[bytes]) -> None:
    target = parse_mqtt_url(url)
    pub = make_client(f"pub-{uuid.uuid4().hex[:8]}", target)
    pub.connect(target.host, target.port)
    pub.loop_start()
    try:
        for p in payloads:
            pub.publish(topic, p, qos=1).wait_for_publish(10)
    finally:
        pub.disconnect()
        pub.loop_stop()


def test_the_fast_path_is_on_for_the_installed_paho() -> None:
    assert fastclient.FAST  # the internals it uses exist; else this whole module tests paho


@pytest.mark.parametrize("sizes", [
    [40] * 3000,  # hundreds of packets per read
    [READ_SIZE - 7, 3, READ_SIZE + 5, 1, 2 * READ_SIZE, 17] * 3,  # packets across reads
])
def test_every_message_arrives_once_and_intact(mosquitto: Any, sizes: list[int]) -> None:
    topic = f"t/{uuid.uuid4().hex}"
    payloads = [(f"{i:06d}:".encode() + b"x" * n)[:max(n, 8)] for i, n in enumerate(sizes)]
    sub = Sub(mosquitto.url, f"sub-{uuid.uuid4().hex[:8]}", topic)
    sub.start()
    try:
        acked = [0]

        def ack_what_came() -> bool:  # as the ingest does: one write per batch of PUBACKs
            with sub.lock:
                batch = sub.got[acked[0]:]
            sub.client.ack_many(mid for mid, _ in batch)
            acked[0] += len(batch)
            return acked[0] >= len(payloads)

        sender = threading.Thread(target=_publish, args=(mosquitto.url, topic, payloads))
        sender.start()
        _wait(ack_what_came, 60)
        sender.join(30)
        time.sleep(0.2)  # nothing more may come
        assert [p for _, p in sub.got] == payloads
    finally:
        sub.stop()


def test_ack_many_acknowledges_exactly_what_it_names(mosquitto: Any) -> None:
    topic = f"t/{uuid.uuid4().hex}"
    client_id = f"sub-{uuid.uuid4().hex[:8]}"
    payloads = [f"m{i}".encode() for i in range(50)]
    sub = Sub(mosquitto.url, client_id, topic)
    sub.start()
    try:
        _publish(mosquitto.url, topic, payloads)
        _wait(lambda: len(sub.got) == 50)
        acked = {p for _, p in sub.got[::2]}
        sub.client.ack_many(mid for mid, p in sub.got if p in acked)
        time.sleep(0.3)  # let the one write of 25 PUBACKs reach the broker
    finally:
        sub.stop()
    again = Sub(mosquitto.url, client_id, topic)  # same session: the unacked come again
    again.start()
    try:
        _wait(lambda: len(again.got) >= 25)
        time.sleep(0.3)
        assert sorted(p for _, p in again.got) == sorted(set(payloads) - acked)
        again.client.ack_many(mid for mid, _ in again.got)
    finally:
        again.stop()


def test_a_new_connection_starts_with_an_empty_buffer(mosquitto: Any) -> None:
    topic = f"t/{uuid.uuid4().hex}"
    sub = Sub(mosquitto.url, f"sub-{uuid.uuid4().hex[:8]}", topic)
    sub.start()
    try:
        sub.client._rbuf, sub.client._rpos = b"\x30\x05junk", 0  # left by a dropped connection
        sub.client.reconnect()  # closes the socket: the leftover must go with it
        assert sub.client.buffered() == 0
        _wait(lambda: sub.client.is_connected())
        sub.subscribed.clear()
        _publish(mosquitto.url, topic, [b"after"])
        _wait(lambda: any(p == b"after" for _, p in sub.got))
        assert [p for _, p in sub.got] == [b"after"]
    finally:
        sub.stop()
