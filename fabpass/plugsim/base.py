"""What both simulated plugs share: the relay, its auto-off timer, a power model, faults.

The test drives the power model (`phase`: off, idle, heating, printing, done,
in watts from `PHASES`) and the faults: `drop()` / `rejoin()` (off the network,
announcing it like the broker's Last Will would), `ignore_commands`,
`answer_errors`, `reboot(into_on=…)`, `press()` (the button, by hand). The
relay turns itself off when its timer (Shelly `toggle_after`, Tasmota
`PulseTime`) runs out, like the real firmware. Time is real: the brokers are real.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import paho.mqtt.client as mqtt

from protocol.mqttclient import parse_mqtt_url

PHASES = {"idle": 6.0, "heating": 1500.0, "printing": 1200.0, "done": 4.0}
STEP_S = 0.05


class SimPlug:
    """Subclasses implement `_subscribe`, `_online`, `_on_command` and `_publish_state`."""

    def __init__(self, broker_url: str, device: str, *, channel: int = 0,
                 tele_period_s: float = 0.5) -> None:
        self.device = device
        self.channel = channel
        self.tele_period_s = tele_period_s
        self.broker_url = broker_url
        self.output = False
        self.timer_until: float | None = None
        self.timer_duration: float | None = None
        self.phase = "idle"
        self.energy_wh = 0.0
        self.ignore_commands = False
        self.answer_errors = False
        self.received: list[tuple[str, bytes]] = []  # every command, in order
        self.history: list[tuple[float, bool, str]] = [(time.monotonic(), False, "init")]
        self.lock = threading.RLock()
        self._stop = threading.Event()
        self._last_tele = 0.0
        self._last_power = -1.0
        self.connected = threading.Event()
        self.client: mqtt.Client = self._make_client()
        self._thread = threading.Thread(target=self._run, name=f"sim-{device}", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------ model

    @property
    def power_w(self) -> float:
        return PHASES.get(self.phase, 0.0) if self.output else 0.0

    def set_phase(self, phase: str) -> None:
        assert phase in PHASES, phase
        with self.lock:
            self.phase = phase
            self._power_changed()

    def switch(self, on: bool, source: str, timer_s: float | None = None) -> bool:
        """Set the relay; returns what it was. `timer_s`: flip back off after that long."""
        with self.lock:
            was = self.output
            self.output = on
            if on and timer_s:
                self.timer_until = time.monotonic() + timer_s
                self.timer_duration = timer_s
            elif not on or timer_s is None:
                self.timer_until = self.timer_duration = None
            if was != on:
                self.history.append((time.monotonic(), on, source))
                self._publish_state(source)
                self._power_changed()
            return was

    def ons(self) -> int:
        return sum(1 for _, on, _src in self.history[1:] if on)

    # ------------------------------------------------------------ faults

    def press(self) -> None:
        """The button on the plug, pressed by hand: toggles the relay."""
        with self.lock:
            self.switch(not self.output, "button", self._button_timer())

    def _button_timer(self) -> float | None:
        return None

    def drop(self) -> None:
        """Off the network: the broker publishes the Last Will (done here at once)."""
        self._announce(False)
        self.client.disconnect()
        self.client.loop_stop()
        self.connected.clear()

    def rejoin(self) -> None:
        self._make_client()
        assert self.connected.wait(10), "simulated plug could not reconnect"

    def reboot(self, into_on: bool) -> None:
        """Power cycle: timers gone, the relay as the power-on setting leaves it."""
        self.drop()
        with self.lock:
            self.timer_until = self.timer_duration = None
            if self.output != into_on:
                self.history.append((time.monotonic(), into_on, "init"))
            self.output = into_on
        self.rejoin()

    # ------------------------------------------------------------ MQTT

    def _make_client(self) -> mqtt.Client:
        target = parse_mqtt_url(self.broker_url)
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                             client_id=f"sim-{self.device}-{time.monotonic_ns()}")
        topic, payload = self._will()
        client.will_set(topic, payload, qos=1, retain=True)
        client.on_connect = self._on_connect
        client.on_message = self._on_message
        self.client = client  # before connecting: on_connect publishes through it
        client.connect_async(target.host, target.port, keepalive=10)
        client.loop_start()
        return client

    def _on_connect(self, client: mqtt.Client, *_: Any) -> None:
        self._subscribe(client)
        self._announce(True)
        self.connected.set()
        self._publish_state("init")

    def _on_message(self, _client: mqtt.Client, _userdata: Any, msg: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.received.append((msg.topic, bytes(msg.payload)))
            if self.ignore_commands:
                return
            self._on_command(msg.topic, bytes(msg.payload))

    def publish(self, topic: str, payload: str | bytes, retain: bool = False) -> None:
        self.client.publish(topic, payload, qos=1, retain=retain)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self._announce(False)
        self.client.disconnect()
        self.client.loop_stop()

    # ------------------------------------------------------------ the plug's own loop

    def _run(self) -> None:
        last = time.monotonic()
        while not self._stop.wait(STEP_S):
            now = time.monotonic()
            with self.lock:
                self.energy_wh += self.power_w * (now - last) / 3600.0
                last = now
                if self.timer_until is not None and now >= self.timer_until:
                    self.switch(not self.output, "timer")
                if now - self._last_tele >= self.tele_period_s and self.connected.is_set():
                    self._last_tele = now
                    self._telemetry()

    def _power_changed(self) -> None:
        power = self.power_w
        if power != self._last_power and self.connected.is_set():
            self._last_power = power
            self._publish_power()

    # subclass hooks
    def _will(self) -> tuple[str, bytes]:
        raise NotImplementedError

    def _announce(self, online: bool) -> None:
        raise NotImplementedError

    def _subscribe(self, client: mqtt.Client) -> None:
        raise NotImplementedError

    def _on_command(self, topic: str, payload: bytes) -> None:
        raise NotImplementedError

    def _publish_state(self, source: str) -> None:
        raise NotImplementedError

    def _publish_power(self) -> None:
        raise NotImplementedError

    def _telemetry(self) -> None:
        raise NotImplementedError
