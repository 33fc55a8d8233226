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


class _StandInSock:
    """A socket for the packet reader without a broker: it returns `chunks` one per `recv`,
    then has nothing more (BlockingIOError)."""

    def __init__(self, *chunks: bytes) -> None:
        self.chunks = list(chunks)

    def recv(self, _n: int) -> bytes:
        if self.chunks:
            return self.chunks.pop(0)
        raise BlockingIOError

    def pending(self) -> int:
        return 0

    def close(self) -> None:
        pass


def _packets_through(client: BufferedClient, data: bytes) -> list[mqtt.MQTTMessage]:
    """Feed `data` to the client's reader as one socket read and return what `on_message` got:
    the packet reader without a broker (its socket is a stand-in that has nothing more)."""
    got: list[mqtt.MQTTMessage] = []
    client.on_message = lambda _c, _u, m: got.append(m)
    client._sock = _StandInSock()  # type: ignore[assignment]
    client._rbuf, client._rpos = data, 0
    client.manual_ack_set(True)
    while client.buffered():
        rc = client._packet_read()
        assert rc == mqtt.MQTT_ERR_SUCCESS, rc
    client._sock = None
    return got


def _publish_packet(topic: bytes, payload: bytes, *, qos: int, mid: int = 0, retain: bool = False,
                    dup: bool = False, props: bytes | None = b"\x00") -> bytes:
    body = len(topic).to_bytes(2, "big") + topic + (mid.to_bytes(2, "big") if qos else b"")
    body += (props or b"") + payload
    header = 0x30 | (0x08 if dup else 0) | (qos << 1) | (0x01 if retain else 0)
    length, rem = b"", len(body)
    while True:
        byte, rem = rem % 128, rem // 128
        length += bytes([byte | (0x80 if rem else 0)])
        if not rem:
            return bytes([header]) + length + body


@pytest.mark.parametrize("v5", [True, False])
def test_the_one_step_publish_reader_gives_what_paho_gives(v5: bool, monkeypatch: Any) -> None:
    """The same bytes through `BufferedClient`'s one-step reader and through paho's own reader
    (a plain `Client`, fed byte by byte as its reader asks) give equal messages: topic,
    payload, packet id, QoS, retain, dup and (MQTT 5) properties, including a PUBLISH with
    properties (which the one-step reader leaves to paho) and a large one."""
    user_prop = b"\x07\x26\x00\x01k\x00\x01v"  # length 7: UserProperty k=v
    packets = [
        dict(topic=b"fabpass/lab/laser-1/events", payload=b'{"a":1}', qos=1, mid=7),
        dict(topic=b"t/q0", payload=b"zero", qos=0, retain=True),
        dict(topic=b"t/dup", payload=b"again", qos=1, mid=65535, dup=True),
        dict(topic=b"t/big", payload=b"x" * 300_000, qos=1, mid=9),  # a 3-byte length
        dict(topic=b"t/props", payload=b"p", qos=1, mid=8, props=user_prop),
        dict(topic=b"t/empty", payload=b"", qos=1, mid=10),
    ]
    if not v5:
        packets = [dict(p, props=None) for p in packets if p["topic"] != b"t/props"]
    data = b"".join(_publish_packet(**p) for p in packets)  # type: ignore[arg-type]
    proto = mqtt.MQTTv5 if v5 else mqtt.MQTTv311
    fast = BufferedClient(mqtt.CallbackAPIVersion.VERSION2, protocol=proto)
    paho_reads: list[int] = []
    paho_read = mqtt.Client._packet_read

    def counted(self: mqtt.Client) -> mqtt.MQTTErrorCode:
        paho_reads.append(1)
        return paho_read(self)

    monkeypatch.setattr(mqtt.Client, "_packet_read", counted)
    ours = _packets_through(fast, data)
    monkeypatch.undo()
    assert len(paho_reads) == (1 if v5 else 0)  # only the PUBLISH with properties was paho's

    plain = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=proto)
    theirs: list[mqtt.MQTTMessage] = []
    plain.on_message = lambda _c, _u, m: theirs.append(m)
    plain.manual_ack_set(True)
    view = memoryview(data)
    at = [0]

    def recv(n: int) -> bytes:
        if at[0] >= len(data):
            raise BlockingIOError
        chunk = bytes(view[at[0]:at[0] + n])
        at[0] += len(chunk)
        return chunk

    plain._sock_recv = recv  # type: ignore[method-assign]
    plain._sock = object()  # type: ignore[assignment]
    while at[0] < len(data):
        assert plain._packet_read() == mqtt.MQTT_ERR_SUCCESS
    plain._sock = None

    def seen(m: mqtt.MQTTMessage) -> tuple[Any, ...]:
        props = None if m.properties is None else sorted(m.properties.json().items())
        return (m.topic, bytes(m.payload), m.mid, m.qos, m.retain, m.dup, props)

    assert [seen(m) for m in ours] == [seen(m) for m in theirs]
    assert len(ours) == len(packets)
    if v5:
        assert ours[4].properties.UserProperty == [("k", "v")]  # left to paho, kept


def test_a_publish_split_across_reads_is_still_read_whole() -> None:
    """Half a PUBLISH in the buffer: the one-step reader leaves it to paho's, which takes the
    rest from the socket; nothing is lost or read twice."""
    packet = _publish_packet(b"t/split", b"y" * 1000, qos=1, mid=3)
    client = BufferedClient(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    got: list[mqtt.MQTTMessage] = []
    client.on_message = lambda _c, _u, m: got.append(m)
    client.manual_ack_set(True)
    client._sock = _StandInSock(packet[600:])  # type: ignore[assignment]
    client._rbuf, client._rpos = packet[:600], 0
    while not got:
        assert client._packet_read() == mqtt.MQTT_ERR_SUCCESS
    client._sock = None
    assert [(m.topic, bytes(m.payload), m.mid) for m in got] == [("t/split", b"y" * 1000, 3)]


@pytest.mark.parametrize("packet", [
    b"\x32\x05\x00\x40t/x",  # a topic length past the packet's end
    b"\x30\x02\x00\x00",  # MQTT 3.1.1: an empty topic
    b"\x32\xff\xff\xff\xff\x7f",  # a remaining length of five bytes
])
def test_a_malformed_publish_is_refused_as_paho_refuses_it(packet: bytes) -> None:
    """The one-step reader takes only what it can cut whole; a malformed PUBLISH goes to paho's
    reader, which refuses it: the same protocol error, no message."""
    client = BufferedClient(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
    got: list[mqtt.MQTTMessage] = []
    client.on_message = lambda _c, _u, m: got.append(m)
    client.manual_ack_set(True)
    client._sock = _StandInSock()  # type: ignore[assignment]
    client._rbuf, client._rpos = packet, 0
    rc = client._packet_read()
    client._sock = None
    assert rc == mqtt.MQTT_ERR_PROTOCOL and got == []
