"""The `[gpio]` relay as an actuator: it does what the pin says, so it confirms nothing."""

from __future__ import annotations

import logging
from typing import Any

from controller.actuators.base import Report
from controller.hardware import Hardware

log = logging.getLogger(__name__)


class GpioActuator:
    confirms = False
    power_activity = False

    def __init__(self, hardware: Hardware) -> None:
        self.hardware = hardware

    def start(self) -> None:
        """The relay pin was claimed (off) when `Hardware` was built."""

    def set(self, on: bool) -> list[Report]:
        self.hardware.set_relay(on)
        return []

    def handle(self, item: Any) -> list[Report]:
        return []

    def tick(self, protect: bool) -> list[Report]:
        return []

    def off_now(self) -> None:
        try:
            self.hardware.set_relay(False)
        except Exception:
            log.exception("could not switch the relay off")

    def close(self) -> None:
        if self.hardware.relay_on:
            self.hardware.set_relay(False)
