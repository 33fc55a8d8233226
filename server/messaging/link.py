"""The server's one MQTT connection: persistent session, manual acknowledgement, reconnects.

The broker keeps the server's session (MQTT 5 `clean_start=False` with a
SessionExpiryInterval; 3.1.1 `clean_session=False`) under a fixed client id,
so events published while the server is down wait for it. Messages are
acknowledged by hand (`ack`) only after the database commit: if the process
dies first, the broker redelivers them.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt

from protocol.fastclient import BufferedClient
from protocol.mqttclient import connect_properties, make_client, parse_mqtt_url
from server.errors import ServerError

log = logging.getLogger(__name__)

MessageHandler = Callable[[mqtt.MQTTMessage], None]
ConnectHandler = Callable[[bool], None]


class MqttError(ServerError, RuntimeError):
    """The MQTT connection could not be set up."""

    code = "mqtt"


@dataclass
class MqttSettings:
    url: str = "mqtt://127.0.0.1:1883"
    client_id: str = "fabpass-server"
    protocol: str = "5"  # "5" or "311"
    session_expiry_s: int = 7 * 86400
    keepalive: int = 30
    receive_maximum: int = 1000
    tls_ca: str | None = None


class MqttLink:
    """A paho client wired for the server: subscriptions re-made on every connection."""

    def __init__(self, settings: MqttSettings) -> None:
        self.settings = settings
        self.target = parse_mqtt_url(settings.url)
        # buffered reads and one write per batch of PUBACKs (protocol/fastclient.py)
        self.client: BufferedClient = make_client(  # type: ignore[assignment]
            settings.client_id, self.target, protocol=settings.protocol, tls_ca=settings.tls_ca,
            persistent=True, max_inflight=1000, client_class=BufferedClient)
        self.client.manual_ack_set(True)
        self.client.reconnect_delay_set(min_delay=1, max_delay=5)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.connected = threading.Event()
        self.subscriptions: list[str] = []
        self.on_message: MessageHandler | None = None
        self.on_connected: list[ConnectHandler] = []
        self._started = False
        # Counts connections. A PUBACK must go out on the connection the message came in on:
        # after a reconnection its packet id may name another message.
        self.generation = 0

    @property
    def is_v5(self) -> bool:
        return self.settings.protocol == "5"

    def subscribe(self, topic: str) -> None:
        """Subscribe now (if connected) and again on every reconnection (QoS 1)."""
        self.subscriptions.append(topic)
        if self.connected.is_set():
            self.client.subscribe(topic, qos=1)

    def start(self) -> None:
        props = None
        if self.is_v5:
            from paho.mqtt.packettypes import PacketTypes

            props = connect_properties(self.settings.session_expiry_s)
            props.ReceiveMaximum = self.settings.receive_maximum
            assert props.packetType == PacketTypes.CONNECT
            self.client.connect_async(self.target.host, self.target.port,
                                      keepalive=self.settings.keepalive, clean_start=False,
                                      properties=props)
        else:
            self.client.connect_async(self.target.host, self.target.port,
                                      keepalive=self.settings.keepalive)
        self.client.loop_start()
        self._started = True

    def wait_connected(self, timeout: float) -> bool:
        return self.connected.wait(timeout)

    def stop(self, *, forget_session: bool = False) -> None:
        """Disconnect. `forget_session`: ask the broker to drop our session now (MQTT 5), e.g.
        for a shared-subscription worker retired for good, whose share would otherwise be
        queued for it until the session expires."""
        if not self._started:
            return
        self._started = False
        try:
            if forget_session and self.is_v5:
                from paho.mqtt.packettypes import PacketTypes
                from paho.mqtt.properties import Properties

                props = Properties(PacketTypes.DISCONNECT)
                props.SessionExpiryInterval = 0
                self.client.disconnect(properties=props)
            else:
                self.client.disconnect()
        finally:
            self.client.loop_stop()
            self.connected.clear()

    def publish(self, topic: str, payload: bytes, *, retain: bool = False,
                qos: int = 1) -> mqtt.MQTTMessageInfo:
        return self.client.publish(topic, payload, qos=qos, retain=retain)

    def ack(self, mid: int, qos: int, generation: int | None = None) -> bool:
        """PUBACK one message; skipped (False) if it came in on an earlier connection: the
        broker redelivers it on this one, and the copy is acknowledged as a duplicate."""
        if qos == 0:
            return True
        if generation is not None and generation != self.generation:
            return False
        self.client.ack(mid, qos)
        return True

    def ack_many(self, items: Iterable[tuple[int, int, int | None]]) -> int:
        """`ack` for each (mid, qos, generation) of a batch, the PUBACKs in one write; returns
        how many were sent."""
        mids = [mid for mid, qos, generation in items
                if qos == 1 and (generation is None or generation == self.generation)]
        self.client.ack_many(mids)
        return len(mids)

    # ------------------------------------------------------------ paho callbacks

    def _on_connect(self, client: mqtt.Client, _userdata: Any, flags: Any, reason_code: Any,
                    _properties: Any) -> None:
        if reason_code.is_failure:
            log.warning("MQTT connection refused by %s:%s: %s", self.target.host,
                        self.target.port, reason_code)
            return
        self.generation += 1
        session_present = bool(getattr(flags, "session_present", False))
        log.info("MQTT connected to %s:%s as %s (session present: %s)", self.target.host,
                 self.target.port, self.settings.client_id, session_present)
        for topic in self.subscriptions:
            client.subscribe(topic, qos=1)
        self.connected.set()
        for handler in list(self.on_connected):
            try:
                handler(session_present)
            except Exception:  # a handler bug must not kill the network thread
                log.exception("MQTT on_connected handler failed")

    def _on_disconnect(self, _client: mqtt.Client, _userdata: Any, _flags: Any, reason_code: Any,
                       _properties: Any) -> None:
        self.connected.clear()
        if self._started:
            log.warning("MQTT disconnected (%s); reconnecting", reason_code)

    def _on_message(self, _client: mqtt.Client, _userdata: Any, msg: mqtt.MQTTMessage) -> None:
        handler = self.on_message
        if handler is None:
            return
        try:
            handler(msg)
        except Exception:
            log.exception("MQTT message handler failed on %s", msg.topic)


__all__ = ["MqttError", "MqttLink", "MqttSettings"]
