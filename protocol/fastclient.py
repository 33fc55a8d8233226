"""A paho client for a subscriber that takes thousands of QoS 1 messages a second (issue 21).

paho reads every packet with separate `recv` calls for its header byte, each length byte
and its body, and its network loop turns once (a `select`, its timers) per packet. Its
manual `ack` queues one 4-byte PUBACK per message, each with a wake-up of the loop and
its own `send`. For the server's ingest (hundreds of messages per batch) that was about
a third of the process's CPU, more than the raw paho subscriber that is the benchmark's
limit spends on a whole message.

`BufferedClient` changes four things and nothing of the protocol:

* reads: the socket is read up to 64 KiB at a time and packets are handed to paho's
  parser from that buffer; one loop turn parses every packet the buffer holds;
* `ack_many`: a batch's PUBACKs are queued as one write (the same bytes paho would send);
* messages: with no per-topic callbacks (`message_callback_add`), `on_message` is called
  without walking paho's topic matcher for each message;
* PUBLISH packets: one that the buffer holds whole, of QoS 0 or 1 and without MQTT 5
  properties (what nodes send), is cut into topic, packet id and payload in one step, where
  paho's reader takes a `recv` call per header byte and its decoder builds an empty
  `Properties` and formats a debug line for every message (a fifth of the server's CPU per
  event under load, issue 21). Every other packet, and a PUBLISH split across reads, goes
  through paho's own reader and handlers unchanged.

It relies on internals of paho-mqtt 2: the methods `_sock_recv`, `_sock_close`,
`_packet_queue`, `_handle_on_message`, `_packet_read` and `_send_puback`, checked at import (if
one is missing, `BufferedClient` is plain paho: `FAST` is False), and the attributes
`_in_packet`, `_msgtime_mutex` and `_last_bytes_received` that paho 2's `__init__` sets (the
dependency is pinned below 3).
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Iterable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

log = logging.getLogger(__name__)

READ_SIZE = 65536
_PUBACK = 0x40
FAST = all(callable(getattr(mqtt.Client, name, None))
           for name in ("_sock_recv", "_sock_close", "_packet_queue", "_handle_on_message",
                        "_packet_read", "_send_puback"))
_PUBLISH = 0x30
# what paho gives a PUBLISH without properties; shared by every such message, read-only
_NO_PROPERTIES = Properties(PacketTypes.PUBLISH)


class BufferedClient(mqtt.Client):
    """paho's `Client`, reading in large chunks and acknowledging in batches (see the module)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._rbuf = b""
        self._rpos = 0
        self._filtered = False

    # ------------------------------------------------------------ reads

    def _sock_recv(self, bufsize: int) -> bytes:
        if not FAST:
            return super()._sock_recv(bufsize)
        pos, buf = self._rpos, self._rbuf
        if pos >= len(buf):
            data = super()._sock_recv(READ_SIZE)  # BlockingIOError when nothing is there
            if len(data) <= bufsize:  # what was asked or less (b"" when the peer closed)
                self._rbuf, self._rpos = b"", 0
                return data
            buf, pos = data, 0
            self._rbuf = buf
        end = pos + bufsize
        self._rpos = end
        return buf[pos:end]

    def _sock_close(self) -> None:
        super()._sock_close()
        self._rbuf, self._rpos = b"", 0  # never parse an old connection's bytes on a new one

    def buffered(self) -> int:
        """Bytes read from the socket and not parsed yet."""
        return len(self._rbuf) - self._rpos

    def loop_read(self, max_packets: int = 1) -> mqtt.MQTTErrorCode:
        rc = super().loop_read(max_packets)
        # the socket may not be readable again for what the buffer already holds: parse it all
        while rc == mqtt.MQTT_ERR_SUCCESS and self._rpos < len(self._rbuf) and self._sock:
            rc = super().loop_read(max_packets)
        return rc

    def _packet_read(self) -> mqtt.MQTTErrorCode:
        """A whole plain PUBLISH at the head of the buffer is cut here; anything else, or a
        packet paho has started reading, is paho's."""
        buf, pos = self._rbuf, self._rpos
        if (not FAST or len(buf) - pos < 2 or (buf[pos] & 0xF0) != _PUBLISH
                or self._in_packet["command"] != 0 or self._filtered or self.on_message is None):
            return super()._packet_read()
        header = buf[pos]
        qos = (header & 0x06) >> 1
        if qos > 1:
            return super()._packet_read()
        length, mult, i, n = 0, 1, pos + 1, len(buf)
        while True:  # the remaining length: at most 4 bytes (paho refuses more)
            if i >= n or i - pos > 4:
                return super()._packet_read()
            byte = buf[i]
            length += (byte & 127) * mult
            mult *= 128
            i += 1
            if not byte & 128:
                break
        end = i + length
        if end > n:  # split across reads: paho's reader takes it from the buffer, then the socket
            return super()._packet_read()
        # topic length, topic, packet id (QoS 1), properties length (MQTT 5): all in the body
        p = i + 2 + int.from_bytes(buf[i:i + 2], "big")
        v5 = self._protocol == mqtt.MQTTv5
        props_at = p + (2 if qos else 0)
        if (props_at + (1 if v5 else 0) > end or (v5 and buf[props_at] != 0)
                or (p == i + 2 and not v5)):  # properties, or malformed: paho decides
            return super()._packet_read()
        msg = mqtt.MQTTMessage(int.from_bytes(buf[p:p + 2], "big") if qos else 0, buf[i + 2:p])
        msg.dup = bool(header & 0x08)
        msg.qos = qos
        msg.retain = bool(header & 0x01)
        msg.properties = _NO_PROPERTIES if v5 else None
        msg.payload = buf[props_at + (1 if v5 else 0):end]
        self._rpos = end
        now = mqtt.time_func()
        msg.timestamp = now
        with self._msgtime_mutex:
            self._last_bytes_received = now
        self._handle_on_message(msg)
        if qos == 1 and not self._manual_ack:
            return self._send_puback(msg.mid)
        return mqtt.MQTT_ERR_SUCCESS

    # ------------------------------------------------------------ acknowledgements

    def ack_many(self, mids: Iterable[int]) -> None:
        """PUBACK each QoS 1 message id, in one write (manual acknowledgement must be on)."""
        ids = list(mids)
        if not ids:
            return
        if not FAST or not self._manual_ack:
            for mid in ids:
                self.ack(mid, 1)
            return
        packet = b"".join(struct.pack("!BBH", _PUBACK, 2, mid) for mid in ids)
        self._packet_queue(_PUBACK, packet, 0, 1)

    # ------------------------------------------------------------ messages

    def message_callback_add(self, sub: str, callback: Any) -> None:
        self._filtered = True
        super().message_callback_add(sub, callback)

    def _handle_on_message(self, message: mqtt.MQTTMessage) -> None:
        on_message = self.on_message
        if self._filtered or not FAST or on_message is None:
            super()._handle_on_message(message)
            return
        with self._in_callback_mutex:
            try:
                on_message(self, self._userdata, message)
            except Exception as err:
                self._easy_log(mqtt.MQTT_LOG_ERR, "Caught exception in on_message: %s", err)
                if not self.suppress_exceptions:
                    raise


__all__ = ["FAST", "READ_SIZE", "BufferedClient"]
