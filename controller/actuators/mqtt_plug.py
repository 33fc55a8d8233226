"""A smart plug on MQTT: its own paho client, a codec, the supervisor and the power input.

The paho thread only puts ("plug", item) on the decision queue; everything
else (decoding, the fail-secure rules, publishing) runs on the decision thread
through `handle` and `tick`, like every other input of the node.
The plug has its own client (`fabpass-node-{node}-plug`) so its broker may
differ (`[actuator] mqtt_url`) and the node's own subscriptions stay untouched.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol

import paho.mqtt.client as mqtt

from controller.actuators.base import Busy, Meter, Report
from controller.actuators.codec import Outgoing
from controller.actuators.plug import Command, Observation, PlugPayloadError, PlugSupervisor
from controller.actuators.power import PowerActivity, thresholds
from controller.clock import Clock
from firmware_config.node_config import NodeConfig
from protocol.mqttclient import make_client, parse_mqtt_url

log = logging.getLogger(__name__)

CLOSE_WAIT_S = 2.0  # how long `close` waits for the final "off" to leave


class Codec(Protocol):
    def subscriptions(self) -> list[str]: ...
    def encode(self, cmd: Command) -> list[Outgoing]: ...
    def decode(self, topic: str, payload: bytes) -> list[Observation]: ...


class PlugActuator:
    confirms = True

    def __init__(self, cfg: NodeConfig, codec: Codec, clock: Clock,
                 enqueue: Callable[[tuple[str, Any]], None],
                 indicate: Callable[[bool], None] | None = None) -> None:
        self.cfg = cfg
        act = cfg.actuator
        self.kind = act.type
        self.codec = codec
        self.clock = clock
        self.enqueue = enqueue
        self.indicate = indicate
        self.supervisor = PlugSupervisor(clock, lease_s=act.lease_s, confirm_s=act.confirm_s)
        self.power_activity = act.power_activity and cfg.gpio.activity is None
        self.power = PowerActivity(thresholds(act), clock)
        self.client: mqtt.Client | None = None
        self._shown: bool | None = None

    # ------------------------------------------------------------ life cycle

    def start(self) -> None:
        m, act = self.cfg.mqtt, self.cfg.actuator
        target = parse_mqtt_url(act.mqtt_url or m.url)
        client_id = f"fabpass-node-{self.cfg.node_id}-plug"
        client = make_client(client_id, target, protocol=m.protocol, username=m.username,
                             password=m.password, tls_ca=m.tls_ca, tls_cert=m.tls_cert,
                             tls_key=m.tls_key)
        client.reconnect_delay_set(min_delay=1, max_delay=15)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        self.client = client
        log.info("%s plug %r channel %d on %s as %s, lease %d s", self.kind, act.device,
                 act.channel, target, client_id, act.lease_s)
        client.connect_async(target.host, target.port, keepalive=m.keepalive_s)
        client.loop_start()

    def close(self) -> None:
        client, self.client = self.client, None
        if client is None:
            return
        try:
            if self.supervisor.link_up:
                infos = [client.publish(o.topic, o.payload, qos=o.qos)
                         for o in self.codec.encode(Command(False))]
                for info in infos:
                    info.wait_for_publish(CLOSE_WAIT_S)
                log.info("plug told off")
            client.disconnect()
        except Exception:  # closing must never stop the node's teardown
            log.warning("could not tell the plug off while closing", exc_info=True)
        client.loop_stop()
        self._show(False)

    def off_now(self) -> None:
        try:
            self.supervisor.set(False)
            self._flush()
        except Exception:
            log.exception("could not tell the plug off")

    # ------------------------------------------------------------ paho thread

    def _on_connect(self, client: mqtt.Client, _userdata: Any, _flags: Any, reason_code: Any,
                    _properties: Any) -> None:
        if getattr(reason_code, "is_failure", False):
            log.error("plug broker refused the connection: %s", reason_code)
            return
        client.subscribe([(topic, 1) for topic in self.codec.subscriptions()])
        self.enqueue(("plug", ("link", True)))

    def _on_disconnect(self, _client: mqtt.Client, _userdata: Any, _flags: Any,
                       reason_code: Any, _properties: Any) -> None:
        self.enqueue(("plug", ("link", False)))

    def _on_message(self, _client: mqtt.Client, _userdata: Any, msg: mqtt.MQTTMessage) -> None:
        self.enqueue(("plug", ("msg", msg.topic, bytes(msg.payload))))

    # ------------------------------------------------------------ decision thread

    def set(self, on: bool) -> list[Report]:
        reports = self.supervisor.set(on)
        self._flush()
        return self._follow(reports)

    def handle(self, item: Any) -> list[Report]:
        kind = item[0]
        reports: list[Report] = []
        if kind == "link":
            up = bool(item[1])
            log.info("plug broker link %s", "up" if up else "down")
            reports = self.supervisor.link(up)
        elif kind == "msg":
            topic, payload = item[1], item[2]
            try:
                observations = self.codec.decode(topic, payload)
            except PlugPayloadError as exc:
                log.warning("ignoring plug message on %s: %s", topic, exc)
                return []
            for obs in observations:
                reports += self.supervisor.observe(obs)
        self._flush()
        return self._follow(reports)

    def tick(self, protect: bool) -> list[Report]:
        reports = self.supervisor.set_protect(protect) + self.supervisor.tick()
        if self.power_activity:
            edge = self.power.tick()
            if edge is not None:
                reports.append(Busy(edge))
        self._flush()
        return self._follow(reports)

    def _follow(self, reports: list[Report]) -> list[Report]:
        """Add the activity edges the meter readings cause; show the plug's state."""
        out: list[Report] = []
        for rep in reports:
            out.append(rep)
            if isinstance(rep, Meter) and rep.power_w is not None and self.power_activity:
                edge = self.power.sample(rep.power_w)
                if edge is not None:
                    out.append(Busy(edge))
        self._show(bool(self.supervisor.reported_on and self.supervisor.want_on))
        return out

    def _show(self, on: bool) -> None:
        if on != self._shown and self.indicate is not None:
            self._shown = on
            self.indicate(on)

    def _flush(self) -> None:
        client = self.client
        commands = self.supervisor.take()
        if client is None or not self.supervisor.link_up:
            return  # stale commands are not queued: the supervisor re-sends what still matters
        for cmd in commands:
            for out in self.codec.encode(cmd):
                log.debug("plug <- %s %s", out.topic, out.payload[:120])
                client.publish(out.topic, out.payload, qos=out.qos)
