"""The smart plug's inputs to the node's state machine: confirmation, availability, meter.

A mixin of `NodeMachine` (controller/session.py): the badge rules stay there, and what a plug
reports (docs/actuators.md) lives here. Like the rest of the state machine it does no I/O: each
method returns the actions the daemon carries out. A session with a confirming plug starts only
once the plug said "on" (`actuator_confirmed`); otherwise the waiting badge is refused.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from controller.actions import Action, EmitAction
from protocol import BadgeEntry

if TYPE_CHECKING:
    from controller.session_record import Session

log = logging.getLogger("controller.session")


class ActuatorInputs:
    """Plug inputs; the attributes and helpers below are provided by `NodeMachine`."""

    if TYPE_CHECKING:
        session: Session | None
        actuator_ready: bool
        power_w: float | None
        status_power_w: float | None
        _energy_total: float | None
        _pending: BadgeEntry | None

        def _begin(self, entry: BadgeEntry, acts: list[Action]) -> None: ...
        def _set_relay(self, on: bool, acts: list[Action]) -> None: ...
        def _deny(self, uid: str, reason: str, acts: list[Action]) -> None: ...
        def _emit(self, etype: str, data: dict[str, Any], *,
                  checkpoint: dict[str, Any] | None = None,
                  clear_checkpoint: bool = False) -> EmitAction: ...

    def actuator_confirmed(self) -> list[Action]:
        """The plug reported "on": the waiting badge's session starts now."""
        acts: list[Action] = []
        entry, self._pending = self._pending, None
        if entry is not None and self.session is None:
            self._begin(entry, acts)
        return acts

    def actuator_failed(self, reason: str) -> list[Action]:
        """The plug did not confirm (or is offline): the waiting badge is refused."""
        acts: list[Action] = []
        entry, self._pending = self._pending, None
        if entry is None:
            return acts
        self._set_relay(False, acts)
        self._deny(entry.uid, reason, acts)
        return acts

    def actuator_available(self, online: bool) -> list[Action]:
        if online != self.actuator_ready:
            log.info("plug %s: new sessions %s", "online" if online else "offline",
                     "allowed" if online else "refused (actuator_offline)")
        self.actuator_ready = online
        return []

    def actuator_unexpected_on(self, action: str, device: str | None,
                               power_w: float | None) -> list[Action]:
        """The plug was on with no session (pressed by hand, power restored): report it."""
        data: dict[str, Any] = {"action": action}
        if device is not None:
            data["device"] = device
        if power_w is not None:
            data["power_w"] = round(power_w, 1)
        return [self._emit("actuator.unexpected_on", data)]

    def actuator_meter(self, power_w: float | None, energy_wh: float | None) -> None:
        """A plug's reading: power for heartbeats/status, the counter for `energy_wh`."""
        if power_w is not None:
            self.power_w = power_w
            old = self.status_power_w
            if old is None or abs(power_w - old) >= max(5.0, 0.1 * old) or (
                    power_w < 1.0) != (old < 1.0):
                self.status_power_w = round(power_w)
        if energy_wh is None:
            return
        s = self.session
        last, self._energy_total = self._energy_total, energy_wh
        if s is None:
            return
        if s.energy_wh is None:
            s.energy_wh = 0.0  # first reading of this session: the counter's base
        elif last is not None and energy_wh >= last:
            s.energy_wh += energy_wh - last
        # a counter that went down (plug reset): the new value is the new base
