"""Power as the activity input: busy/idle from a plug's measured power, with hysteresis.

A printer's heater cycles and a laser's tube fires in bursts, so one sample says
little: the machine becomes busy only once the power has stayed above
`busy_above_w` for `busy_after_s`, and idle only once it has stayed below
`idle_below_w` for `idle_after_s`. Between the two thresholds nothing changes.
A pure state machine on an injected clock (samples may be sparse, so `tick()`
also decides when no new sample came).
"""

from __future__ import annotations

from dataclasses import dataclass

from controller.clock import Clock
from firmware_config.node_config import ActuatorConfig


@dataclass(frozen=True)
class Thresholds:
    busy_above_w: float
    idle_below_w: float
    busy_after_s: float
    idle_after_s: float


# Defaults per machine kind (docs/actuators.md says why these numbers).
KIND_DEFAULTS: dict[str, Thresholds] = {
    # A CO2 laser's controller, fans and chiller idle at ~50-100 W; the tube adds hundreds.
    "laser_cutter": Thresholds(busy_above_w=150.0, idle_below_w=100.0, busy_after_s=2.0,
                               idle_after_s=30.0),
    # A printer idles at ~5-10 W; heating and printing draw 50-300 W with heater cycling,
    # so idle needs a long quiet spell (the bed's PWM drops the power for seconds).
    "3d_printer": Thresholds(busy_above_w=30.0, idle_below_w=15.0, busy_after_s=10.0,
                             idle_after_s=120.0),
    "cnc": Thresholds(busy_above_w=100.0, idle_below_w=50.0, busy_after_s=3.0,
                      idle_after_s=30.0),
    "other": Thresholds(busy_above_w=20.0, idle_below_w=10.0, busy_after_s=5.0,
                        idle_after_s=60.0),
}


def thresholds(cfg: ActuatorConfig) -> Thresholds:
    """The config's values over the machine kind's defaults."""
    base = KIND_DEFAULTS.get(cfg.machine_kind, KIND_DEFAULTS["other"])

    def pick(value: float | None, default: float) -> float:
        return default if value is None else float(value)

    busy_w = pick(cfg.busy_above_w, base.busy_above_w)
    idle_w = pick(cfg.idle_below_w, min(base.idle_below_w, busy_w))
    return Thresholds(busy_above_w=busy_w, idle_below_w=min(idle_w, busy_w),
                      busy_after_s=pick(cfg.busy_after_s, base.busy_after_s),
                      idle_after_s=pick(cfg.idle_after_s, base.idle_after_s))


class PowerActivity:
    """Samples in, busy edges out. `busy` starts False (a plug that is off draws nothing)."""

    def __init__(self, limits: Thresholds, clock: Clock) -> None:
        self.limits = limits
        self.clock = clock
        self.busy = False
        self.power_w: float | None = None
        self._above_since: float | None = None
        self._below_since: float | None = None

    def sample(self, power_w: float) -> bool | None:
        """A new measurement; returns the new busy state when it changed, else None."""
        now = self.clock.monotonic()
        self.power_w = power_w
        lim = self.limits
        if power_w > lim.busy_above_w:
            if self._above_since is None:
                self._above_since = now
            self._below_since = None
        elif power_w < lim.idle_below_w:
            if self._below_since is None:
                self._below_since = now
            self._above_since = None
        else:  # between the thresholds: neither spell goes on
            self._above_since = self._below_since = None
        return self.tick()

    def tick(self) -> bool | None:
        now = self.clock.monotonic()
        lim = self.limits
        if (not self.busy and self._above_since is not None
                and now - self._above_since >= lim.busy_after_s):
            self.busy = True
            return True
        if (self.busy and self._below_since is not None
                and now - self._below_since >= lim.idle_after_s):
            self.busy = False
            return False
        return None
