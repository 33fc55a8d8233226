"""A simulated Tasmota plug (Sonoff S31 / Athom-like with an energy meter)."""

from __future__ import annotations

import json
import time
from datetime import datetime

import paho.mqtt.client as mqtt

from fabpass.plugsim.base import SimPlug


class TasmotaSim(SimPlug):
    def __init__(self, *args: object, **kw: object) -> None:
        self.pulsetime = 0  # 0 off, 1..111 tenths of a second, 112.. seconds + 100
        super().__init__(*args, **kw)  # type: ignore[arg-type]

    @property
    def index(self) -> int:
        return self.channel + 1

    def pulse_s(self) -> float | None:
        if self.pulsetime <= 0:
            return None
        return self.pulsetime / 10.0 if self.pulsetime <= 111 else float(self.pulsetime - 100)

    def _will(self) -> tuple[str, bytes]:
        return f"tele/{self.device}/LWT", b"Offline"

    def _announce(self, online: bool) -> None:
        self.publish(f"tele/{self.device}/LWT", "Online" if online else "Offline", retain=True)

    def _subscribe(self, client: mqtt.Client) -> None:
        client.subscribe(f"cmnd/{self.device}/#", qos=1)

    def _button_timer(self) -> float | None:
        return self.pulse_s()  # Tasmota's PulseTime applies to the button too

    def _result(self, obj: dict[str, object]) -> None:
        self.publish(f"stat/{self.device}/RESULT", json.dumps(obj))

    def _power_key(self) -> str:
        return "POWER" if self.channel == 0 else f"POWER{self.index}"

    def _on_command(self, topic: str, payload: bytes) -> None:
        command = topic.rsplit("/", 1)[-1].upper()
        arg = payload.decode("utf-8", "replace").strip().upper()
        if self.answer_errors:
            self._result({"Command": "Error"})
            return
        if command in ("POWER", f"POWER{self.index}"):
            if arg in ("ON", "1", "TRUE"):
                self.switch(True, "MQTT", self.pulse_s())
            elif arg in ("OFF", "0", "FALSE"):
                self.switch(False, "MQTT")
            elif arg == "TOGGLE":
                self.switch(not self.output, "MQTT", self.pulse_s())
            elif arg:
                self._result({"Command": "Error"})
                return
            self._publish_state("MQTT", force=True)
        elif command == f"PULSETIME{self.index}":
            if arg:
                try:
                    value = int(arg)
                except ValueError:
                    self._result({"Command": "Error"})
                    return
                self.pulsetime = max(0, min(value, 64900))
                if self.output and self.pulse_s():
                    self.timer_until = time.monotonic() + (self.pulse_s() or 0)
                    self.timer_duration = self.pulse_s()
                elif self.output:
                    self.timer_until = self.timer_duration = None
            self._result({f"PulseTime{self.index}": {"Set": self.pulsetime,
                                                    "Remaining": self.pulsetime}})
        else:
            self._result({"Command": "Unknown"})

    def _publish_state(self, source: str, force: bool = False) -> None:
        word = "ON" if self.output else "OFF"
        self._result({self._power_key(): word})
        self.publish(f"stat/{self.device}/{self._power_key()}", word)

    def _publish_power(self) -> None:
        self._telemetry()  # Tasmota's PowerDelta: a telemetry message on a power step

    def _telemetry(self) -> None:
        now = datetime.now().strftime("%Y-%m-%dT%H:%M:%S")
        power = round(self.power_w)
        self.publish(f"tele/{self.device}/SENSOR", json.dumps({
            "Time": now, "ENERGY": {
                "TotalStartTime": "2026-01-01T00:00:00", "Total": round(self.energy_wh / 1000, 6),
                "Yesterday": 0.0, "Today": round(self.energy_wh / 1000, 6), "Period": 0,
                "Power": power, "ApparentPower": power, "ReactivePower": 0, "Factor": 1.0,
                "Voltage": 230, "Current": round(power / 230, 3)}}))
        self.publish(f"tele/{self.device}/STATE", json.dumps({
            "Time": now, "Uptime": "0T00:01:00", "UptimeSec": 60,
            self._power_key(): "ON" if self.output else "OFF"}))
