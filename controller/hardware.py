"""The node's GPIO: relay, LEDs, buzzer and the activity input, as gpiozero devices.

Every output starts off (`initial_value=False`): the relay is off from the
moment the process claims the pin. With a smart plug (`[actuator]`) there is
no relay: `relay` is None and the green LED shows what the plug confirmed
(`indicate`). The activity input's callbacks run on
gpiozero's thread and only hand the edge to `on_activity` (the daemon puts it
on the decision queue).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from gpiozero import LED, Buzzer, DigitalInputDevice, DigitalOutputDevice

from firmware_config.node_config import GpioConfig

log = logging.getLogger(__name__)


class Hardware:
    """Owns the gpiozero devices; `close()` switches everything off and releases the pins."""

    def __init__(self, gpio: GpioConfig, *, pin_factory: Any = None,
                 on_activity: Callable[[bool], None] | None = None,
                 simulate: bool = False) -> None:
        self.cfg = gpio
        self.relay: DigitalOutputDevice | None = None
        if gpio.relay is not None:
            self.relay = DigitalOutputDevice(gpio.relay.pin, active_high=gpio.relay.active_high,
                                             initial_value=False, pin_factory=pin_factory)
        self._indicated = False
        self.green = self._out(LED, gpio.green_led, pin_factory)
        self.red = self._out(LED, gpio.red_led, pin_factory)
        self.blue = self._out(LED, gpio.blue_led, pin_factory)
        self.buzzer = self._out(Buzzer, gpio.buzzer, pin_factory)
        self.activity: DigitalInputDevice | None = None
        self._busy_when_active = True
        act = gpio.activity
        if act is not None:
            if act.pull_up is None:
                self.activity = DigitalInputDevice(
                    act.pin, pull_up=None, active_state=act.active_high,
                    bounce_time=None if simulate else (act.bounce_s or None),
                    pin_factory=pin_factory)
            else:
                # gpiozero derives "active" from the pull; map it back to "busy".
                self.activity = DigitalInputDevice(
                    act.pin, pull_up=act.pull_up,
                    bounce_time=None if simulate else (act.bounce_s or None),
                    pin_factory=pin_factory)
                active_is_high = not act.pull_up
                self._busy_when_active = active_is_high == act.active_high
            if on_activity is not None:
                self.activity.when_activated = lambda: on_activity(self._busy_when_active)
                self.activity.when_deactivated = lambda: on_activity(not self._busy_when_active)

    @staticmethod
    def _out(cls: Any, pin_cfg: Any, pin_factory: Any) -> Any:
        if pin_cfg is None:
            return None
        return cls(pin_cfg.pin, active_high=pin_cfg.active_high, initial_value=False,
                   pin_factory=pin_factory)

    # ------------------------------------------------------------ outputs

    def set_relay(self, on: bool) -> None:
        if self.relay is None:
            raise RuntimeError("this node has no [gpio] relay (a smart plug switches it)")
        if on:
            self.relay.on()
        else:
            self.relay.off()
        log.info("relay %s", "on" if on else "off")
        self.indicate(on)

    def indicate(self, on: bool) -> None:
        """The green LED: the machine is powered (the relay, or what the plug confirmed)."""
        self._indicated = on
        if self.green is not None:
            self.green.on() if on else self.green.off()

    @property
    def relay_on(self) -> bool:
        if self.relay is None:
            return self._indicated
        return bool(self.relay.value)

    def signal(self, pattern: str) -> None:
        """Member feedback; every pattern is a bounded background blink/beep."""
        red, green, blue, buzzer = self.red, self.green, self.blue, self.buzzer
        if pattern == "denied":
            if red is not None:
                red.blink(on_time=0.15, off_time=0.1, n=3, background=True)
            if buzzer is not None:
                buzzer.beep(on_time=0.15, off_time=0.1, n=3, background=True)
        elif pattern == "granted":
            if buzzer is not None:
                buzzer.beep(on_time=0.08, off_time=0.05, n=1, background=True)
        elif pattern == "warning":
            if red is not None:
                red.blink(on_time=0.3, off_time=0.3, n=5, background=True)
            if buzzer is not None:
                buzzer.beep(on_time=0.3, off_time=0.3, n=5, background=True)
        elif pattern == "extended" or pattern == "signed":
            if buzzer is not None:
                buzzer.beep(on_time=0.08, off_time=0.08, n=2, background=True)
            if pattern == "signed" and green is not None and not self.relay_on:
                green.blink(on_time=0.2, off_time=0.2, n=3, background=True)
        elif pattern == "signoff":
            if blue is not None:
                blue.blink(on_time=0.5, off_time=0.5, n=30, background=True)
            if buzzer is not None:
                buzzer.beep(on_time=0.05, off_time=0.1, n=2, background=True)
        elif pattern == "identify":
            for led in (red, green, blue):
                if led is not None and not (led is green and self.relay_on):
                    led.blink(on_time=0.25, off_time=0.25, n=8, background=True)
            if buzzer is not None:
                buzzer.beep(on_time=0.1, off_time=0.4, n=4, background=True)
        else:
            log.debug("unknown signal pattern %r", pattern)

    # ------------------------------------------------------------ activity input

    def busy(self) -> bool:
        if self.activity is None:
            return False
        return bool(self.activity.is_active) == self._busy_when_active

    def drive_activity(self, busy: bool) -> bool:
        """Simulation: drive the (mock) activity pin to the busy/idle level. False if none."""
        act = self.cfg.activity
        if self.activity is None or act is None:
            return False
        pin: Any = self.activity.pin
        high = busy if act.active_high else not busy
        if high:
            pin.drive_high()
        else:
            pin.drive_low()
        return True

    def close(self) -> None:
        """Relay off, every output off, pins released; safe to call twice."""
        try:
            if self.relay is not None:
                self.relay.off()
        except Exception:  # closed already
            pass
        for dev in (self.green, self.red, self.blue, self.buzzer, self.activity, self.relay):
            if dev is None:
                continue
            try:
                if hasattr(dev, "off"):
                    dev.off()
                dev.close()
            except Exception:
                log.debug("closing %r failed", dev, exc_info=True)
