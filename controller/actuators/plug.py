"""The plug supervisor: fail-secure rules for a switch the node does not own, no I/O.

Inputs: what the state machine wants (`set`), what the plug said (`observe`,
already decoded by a backend codec), the broker link going up or down, and
timer ticks on an injected clock. Outputs: commands for the codec to encode
(`Command`) and reports for the state machine (`controller.actuators.base`).

The rules (docs/actuators.md):
- "on" is confirmed by the plug's own state within `confirm_s`, else `Failed`
  and the plug is told off;
- while on, the lease (the plug's own auto-off timer) is renewed every third of
  `lease_s`, so a dead node or a lost network switches the machine off by
  itself within `lease_s`; while `protect` holds (a `when_idle` machine is
  busy) the plug is switched on without a timer: a crash never cuts a print;
- the plug found on while nothing wants it is switched off and reported once
  (`UnexpectedOn`), or, under `protect`, switched off once the machine idles;
- offline (its Last Will, the broker link down, or `MAX_ERRORS` errors or
  unanswered commands in a row) refuses new sessions until a good answer.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from controller.actuators.base import (
    Availability,
    Confirmed,
    Failed,
    Meter,
    Report,
    UnexpectedOn,
)
from controller.clock import Clock

log = logging.getLogger(__name__)

MAX_ERRORS = 3  # errors / unanswered commands in a row before the plug counts as offline
PROBE_S = 30.0  # how often an idle node asks the plug for its state
PROBE_FAILING_S = 5.0  # ... and a failing one


class PlugPayloadError(ValueError):
    """A plug message that is not what its firmware sends: logged and ignored."""


@dataclass(frozen=True)
class Seen:
    """Part of the plug's state (None: this message did not say)."""

    on: bool | None = None
    power_w: float | None = None
    energy_wh: float | None = None


@dataclass(frozen=True)
class Online:
    """The plug's own announcement (Shelly `{device}/online`, Tasmota `tele/…/LWT`)."""

    online: bool


@dataclass(frozen=True)
class Answer:
    """An answer to one of the node's commands: a result, or an error."""

    ok: bool
    detail: str = ""


Observation = Seen | Online | Answer


@dataclass(frozen=True)
class Command:
    """For the codec: switch (`on` True/False, `lease_s` None = no auto-off) or ask (`on` None)."""

    on: bool | None
    lease_s: int | None = None


class PlugSupervisor:
    def __init__(self, clock: Clock, *, lease_s: int, confirm_s: float) -> None:
        self.clock = clock
        self.lease_s = lease_s
        self.confirm_s = confirm_s
        self.want_on = False
        self.protect = False
        self.link_up = False
        self.announced: bool | None = None  # the plug's own online flag, None until heard
        self.seen_state = False  # a valid state arrived since the link came up
        self.failing = False
        self.errors = 0
        self.reported_on: bool | None = None
        self.power_w: float | None = None
        self.energy_wh: float | None = None
        self._available = False
        self._confirm_until: float | None = None
        self._answer_until: float | None = None
        self._next_renew = 0.0
        self._next_probe = 0.0
        self._unexpected_reported = False
        self._next_off_retry = 0.0
        self.outbox: list[Command] = []  # commands for the codec, taken by `take()`

    # ------------------------------------------------------------ state

    @property
    def available(self) -> bool:
        return (self.link_up and not self.failing and self.announced is not False
                and (self.announced is True or self.seen_state))

    def take(self) -> list[Command]:
        out, self.outbox = self.outbox, []
        return out

    # ------------------------------------------------------------ inputs

    def link(self, up: bool) -> list[Report]:
        self.link_up = up
        if up:
            self.seen_state = False
            self._ask()
        reports: list[Report] = []
        if not up and self._confirm_until is not None:
            reports += self._fail("actuator_offline")
        return reports + self._availability()

    def set(self, on: bool) -> list[Report]:
        now = self.clock.monotonic()
        if on == self.want_on:
            return []
        self.want_on = on
        if on:
            if not self.available:
                self.want_on = False
                log.warning("plug offline: not switching on")
                return [Failed("actuator_offline")]
            self._confirm_until = now + self.confirm_s
            self._switch_on()
        else:
            self._confirm_until = None
            self._send(Command(False))
        return []

    def set_protect(self, protect: bool) -> list[Report]:
        """`when_idle` and busy: drop the lease (and the off of a plug found on) meanwhile."""
        if protect == self.protect:
            return []
        self.protect = protect
        if self.want_on:
            log.info("plug lease %s", "suspended: the machine is busy under when_idle"
                     if protect else f"back: {self.lease_s} s")
            self._switch_on()
        elif not protect and self.reported_on:
            self._next_off_retry = 0.0  # the machine idled: a plug found on goes off now
        return []

    def observe(self, obs: Observation) -> list[Report]:
        reports: list[Report] = []
        if isinstance(obs, Online):
            if obs.online != self.announced:
                log.warning("plug announces itself %s", "online" if obs.online else "offline")
            self.announced = obs.online
            if obs.online:
                self._ask()
            elif self._confirm_until is not None:
                reports += self._fail("actuator_offline")
        elif isinstance(obs, Answer):
            self._answer_until = None
            if obs.ok:
                self._good()
            else:
                log.warning("plug answered an error: %s", obs.detail or "(no detail)")
                self._error()
                if self._confirm_until is not None:
                    reports += self._fail("actuator_failed")
        else:
            reports += self._seen(obs)
        return reports + self._availability()

    def tick(self) -> list[Report]:
        now = self.clock.monotonic()
        reports: list[Report] = []
        if self._confirm_until is not None and now >= self._confirm_until:
            log.warning("plug did not confirm 'on' within %.1f s", self.confirm_s)
            reports += self._fail("actuator_failed" if self.available else "actuator_offline")
        if self._answer_until is not None and now >= self._answer_until:
            self._answer_until = None
            log.warning("plug did not answer within %.1f s", self.confirm_s)
            self._error()
        if self.link_up:
            if self.want_on and now >= self._next_renew:
                self._switch_on()
            elif (not self.want_on and self.reported_on and not self.protect
                  and now >= self._next_off_retry):
                self._send(Command(False))
                self._next_off_retry = now + self.confirm_s
            elif not self.want_on and now >= self._next_probe:
                self._ask()
        return reports + self._availability()

    # ------------------------------------------------------------ internals

    def _seen(self, obs: Seen) -> list[Report]:
        reports: list[Report] = []
        self.seen_state = True
        self._answer_until = None
        self._good()
        if (obs.power_w is not None and obs.power_w != self.power_w) or (
                obs.energy_wh is not None and obs.energy_wh != self.energy_wh):
            self.power_w = obs.power_w if obs.power_w is not None else self.power_w
            self.energy_wh = obs.energy_wh if obs.energy_wh is not None else self.energy_wh
            reports.append(Meter(self.power_w, self.energy_wh))
        if obs.on is None:
            return reports
        if obs.on != self.reported_on:
            log.info("plug reports %s", "on" if obs.on else "off")
        self.reported_on = obs.on
        if obs.on:
            if self.want_on and self._confirm_until is not None:
                self._confirm_until = None
                log.info("plug confirmed on")
                reports.append(Confirmed())
            elif not self.want_on and not self._unexpected_reported:
                self._unexpected_reported = True
                action = "off_when_idle" if self.protect else "switched_off"
                log.warning("plug is on with no session (pressed by hand or power restored): %s",
                            "switching it off once the machine is idle" if self.protect
                            else "switching it off")
                reports.append(UnexpectedOn(action, self.power_w))
                if not self.protect:
                    self._send(Command(False))
                    self._next_off_retry = self.clock.monotonic() + self.confirm_s
        else:
            self._unexpected_reported = False
            if self.want_on and self._confirm_until is None:
                log.warning("plug reports off during a session (lease ran out, pressed, "
                            "rebooted): switching it on again")
                self._switch_on()
        return reports

    def _switch_on(self) -> None:
        now = self.clock.monotonic()
        self._send(Command(True, None if self.protect else self.lease_s))
        self._next_renew = now + self.lease_s / 3.0

    def _ask(self) -> None:
        self._send(Command(None))

    def _send(self, cmd: Command) -> None:
        now = self.clock.monotonic()
        self.outbox.append(cmd)
        if self._answer_until is None:
            self._answer_until = now + self.confirm_s
        self._next_probe = now + (PROBE_FAILING_S if self.failing else PROBE_S)

    def _fail(self, reason: str) -> list[Report]:
        self._confirm_until = None
        self.want_on = False
        self._send(Command(False))
        return [Failed(reason)]

    def _good(self) -> None:
        self.errors = 0
        if self.failing:
            log.info("plug answers again")
        self.failing = False

    def _error(self) -> None:
        self.errors += 1
        if self.errors >= MAX_ERRORS and not self.failing:
            log.error("plug failed %d times in a row: reported offline", self.errors)
            self.failing = True

    def _availability(self) -> list[Report]:
        now_available = self.available
        if now_available == self._available:
            return []
        self._available = now_available
        return [Availability(now_available)]
