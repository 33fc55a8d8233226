"""The MQTT connection details both sides share: URL parsing and a configured paho client.

paho-mqtt 2 is used with `CallbackAPIVersion.VERSION2`; MQTT 5 by default with
3.1.1 as an option; TCP_NODELAY on the socket so small QoS 1 messages are not
held back by Nagle's algorithm.
"""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlparse

import paho.mqtt.client as mqtt

from protocol.errors import ProtocolError


@dataclass(frozen=True)
class MqttTarget:
    host: str
    port: int
    tls: bool
    username: str | None = None
    password: str | None = None

    def __repr__(self) -> str:  # never show the password in logs
        pw = "***" if self.password else None
        return f"MqttTarget(host={self.host!r}, port={self.port}, tls={self.tls}, username={self.username!r}, password={pw})"


def parse_mqtt_url(url: str) -> MqttTarget:
    """`mqtt://[user[:password]@]host[:port]` or `mqtts://…` (default ports 1883 / 8883)."""
    parsed = urlparse(url)
    if parsed.scheme not in ("mqtt", "mqtts", "tcp", "ssl"):
        raise ProtocolError(f"MQTT URL {url!r}: scheme must be mqtt:// or mqtts://")
    if not parsed.hostname:
        raise ProtocolError(f"MQTT URL {url!r}: no host")
    tls = parsed.scheme in ("mqtts", "ssl")
    try:
        port = parsed.port or (8883 if tls else 1883)
    except ValueError as exc:
        raise ProtocolError(f"MQTT URL {url!r}: bad port") from exc
    return MqttTarget(
        host=parsed.hostname, port=port, tls=tls,
        username=unquote(parsed.username) if parsed.username else None,
        password=unquote(parsed.password) if parsed.password else None,
    )


def make_client(
    client_id: str,
    target: MqttTarget,
    *,
    protocol: str = "5",
    username: str | None = None,
    password: str | None = None,
    tls_ca: str | None = None,
    tls_cert: str | None = None,
    tls_key: str | None = None,
    persistent: bool = False,
    max_inflight: int = 100,
    client_class: type[mqtt.Client] = mqtt.Client,
) -> mqtt.Client:
    """A paho client, not yet connected. `persistent`: 3.1.1 clean_session=False (for MQTT 5,
    pass `clean_start=False` and a SessionExpiryInterval to `connect`, see `connect_properties`).
    `client_class`: paho's `Client` or a subclass (`protocol.fastclient.BufferedClient`)."""
    proto = mqtt.MQTTv5 if protocol == "5" else mqtt.MQTTv311
    kwargs: dict[str, Any] = {}
    if proto == mqtt.MQTTv311:
        kwargs["clean_session"] = not persistent
    client = client_class(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=proto,
                          **kwargs)
    user = username or target.username
    pw = password or target.password
    if user:
        client.username_pw_set(user, pw)
    if target.tls or tls_ca or tls_cert:
        client.tls_set(ca_certs=tls_ca, certfile=tls_cert, keyfile=tls_key,
                       cert_reqs=ssl.CERT_REQUIRED, tls_version=ssl.PROTOCOL_TLS_CLIENT)
    client.max_inflight_messages_set(max_inflight)
    client.max_queued_messages_set(0)

    def _nodelay(_client: mqtt.Client, _userdata: Any, sock: Any) -> None:
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except (OSError, AttributeError):
            pass

    client.on_socket_open = _nodelay
    return client


def connect_properties(session_expiry_s: int) -> Any:
    """MQTT 5 CONNECT properties asking the broker to keep the session `session_expiry_s`."""
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = session_expiry_s
    return props
