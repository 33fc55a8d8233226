"""Tasmota over MQTT: `cmnd/`, `stat/` and `tele/` topics of the plug's `%topic%`.

Payload shapes (Tasmota's public docs; recorded in docs/actuators.md):
- `cmnd/{device}/POWER` `ON` / `OFF` (`POWER2`… for other relays), empty = ask;
  `cmnd/{device}/PulseTime1` `160` (values over 111 are seconds + 100; 0 = off);
- `stat/{device}/POWER` plain `ON` / `OFF`; `stat/{device}/RESULT` `{"POWER": "ON"}`,
  `{"PulseTime1": {"Set": 160, "Remaining": 160}}`, `{"Command": "Error"}`;
- `tele/{device}/SENSOR` `{"Time": …, "ENERGY": {"Total": kWh, "Power": W (or a list
  per channel), …}}`; `tele/{device}/STATE` `{…, "POWER": "ON"}`;
- `tele/{device}/LWT` `Online` / `Offline` (retained, its Last Will).
"""

from __future__ import annotations

from typing import Any

from controller.actuators.codec import Outgoing, load_object, number, text
from controller.actuators.plug import Answer, Command, Observation, Online, PlugPayloadError, Seen

PULSETIME_OFFSET = 100  # PulseTime values over 111 are seconds + 100


def pulsetime(lease_s: int | None) -> int:
    """The PulseTime value for a lease in whole seconds (None: no auto-off).

    1..111 count tenths of a second, 112..64900 seconds + 100: 10 and 11 s
    (which `lease_s` allows) must be written as 100 and 110 tenths.
    """
    if lease_s is None:
        return 0
    if lease_s * 10 <= 111:
        return max(1, int(lease_s * 10))
    return min(int(lease_s) + PULSETIME_OFFSET, 64900)


class TasmotaCodec:
    def __init__(self, device: str, channel: int) -> None:
        self.device = device
        self.channel = channel
        index = channel + 1
        self.power_keys = ("POWER", "POWER1") if channel == 0 else (f"POWER{index}",)
        self.power_cmd = "POWER" if channel == 0 else f"POWER{index}"
        self.pulse_cmd = f"PulseTime{index}"
        self.t_stat = f"stat/{device}/"
        self.t_tele = f"tele/{device}/"

    def subscriptions(self) -> list[str]:
        return [f"stat/{self.device}/RESULT", f"stat/{self.device}/{self.power_cmd}",
                f"tele/{self.device}/SENSOR", f"tele/{self.device}/STATE",
                f"tele/{self.device}/LWT"]

    def _cmnd(self, command: str, payload: str) -> Outgoing:
        return Outgoing(f"cmnd/{self.device}/{command}", payload.encode())

    def encode(self, cmd: Command) -> list[Outgoing]:
        if cmd.on is None:
            return [self._cmnd(self.power_cmd, "")]
        if cmd.on:
            # The timer first, so the ON that follows (re)starts it with the new value.
            return [self._cmnd(self.pulse_cmd, str(pulsetime(cmd.lease_s))),
                    self._cmnd(self.power_cmd, "ON")]
        return [self._cmnd(self.power_cmd, "OFF")]

    def decode(self, topic: str, payload: bytes) -> list[Observation]:
        if topic == f"tele/{self.device}/LWT":
            word = text(payload, topic)
            if word not in ("Online", "Offline"):
                raise PlugPayloadError(f"{topic}: expected Online or Offline, got {word[:20]!r}")
            return [Online(word == "Online")]
        if topic == f"stat/{self.device}/{self.power_cmd}":
            return [Seen(on=self._onoff(text(payload, topic), topic))]
        if topic == f"stat/{self.device}/RESULT":
            return self._result(load_object(payload, topic))
        if topic == f"tele/{self.device}/SENSOR":
            return self._sensor(load_object(payload, topic))
        if topic == f"tele/{self.device}/STATE":
            state = self._power_of(load_object(payload, topic), topic)
            return [] if state is None else [Seen(on=state)]
        raise PlugPayloadError(f"unexpected topic {topic}")

    @staticmethod
    def _onoff(word: Any, what: str) -> bool:
        if word in ("ON", "OFF"):
            return bool(word == "ON")
        raise PlugPayloadError(f"{what}: expected ON or OFF, got {str(word)[:20]!r}")

    def _power_of(self, obj: dict[str, Any], what: str) -> bool | None:
        for key in self.power_keys:
            if key in obj:
                return self._onoff(obj[key], f"{what}.{key}")
        return None

    def _result(self, obj: dict[str, Any]) -> list[Observation]:
        what = f"stat/{self.device}/RESULT"
        if obj.get("Command") in ("Error", "Unknown"):
            return [Answer(False, f"Command {obj.get('Command')}")]
        state = self._power_of(obj, what)
        if state is not None:
            return [Answer(True, "POWER"), Seen(on=state)]
        if self.pulse_cmd in obj:
            if not isinstance(obj[self.pulse_cmd], dict | int):
                raise PlugPayloadError(f"{what}.{self.pulse_cmd}: unexpected shape")
            return [Answer(True, self.pulse_cmd)]
        return []  # an answer about something else (another relay, another command)

    def _sensor(self, obj: dict[str, Any]) -> list[Observation]:
        what = f"tele/{self.device}/SENSOR.ENERGY"
        energy = obj.get("ENERGY")
        if energy is None:
            return []
        if not isinstance(energy, dict):
            raise PlugPayloadError(f"{what} must be an object")
        power = energy.get("Power")
        if isinstance(power, list):  # multi-channel meters report one value per channel
            if self.channel >= len(power):
                raise PlugPayloadError(f"{what}.Power has no channel {self.channel}")
            power = power[self.channel]
        watts = None if power is None else number(power, f"{what}.Power")
        total = energy.get("Total")
        wh = None if total is None else number(total, f"{what}.Total") * 1000.0
        return [Seen(power_w=watts, energy_wh=wh)]
