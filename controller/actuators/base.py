"""What an actuator tells the decision thread, and the interface every backend offers.

An actuator turns the state machine's "relay on/off" into a real switch and
reports back what the switch really did. The GPIO relay cannot say anything
(it is on when the pin is driven), so it confirms nothing; a smart plug has a
state of its own that can differ from what the node asked (unplugged, switched
by hand, rebooted), so the node only trusts what the plug reports.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class Confirmed:
    """The plug reported `on` after the node asked for it: the session may start."""


@dataclass(frozen=True)
class Failed:
    """The plug did not confirm within the bound (or answered an error): refuse, plug off."""

    reason: str  # actuator_failed | actuator_offline


@dataclass(frozen=True)
class Availability:
    """The plug went offline (or back online); offline refuses new sessions."""

    online: bool


@dataclass(frozen=True)
class UnexpectedOn:
    """The plug was found on with no session; `action`: switched_off | off_when_idle."""

    action: str
    power_w: float | None = None


@dataclass(frozen=True)
class Meter:
    """Measured power (W) and the plug's energy counter (Wh), either may be unknown."""

    power_w: float | None
    energy_wh: float | None


@dataclass(frozen=True)
class Busy:
    """The power crossed a threshold for long enough: the activity input changed."""

    busy: bool


Report = Confirmed | Failed | Availability | UnexpectedOn | Meter | Busy


class Actuator(Protocol):
    """The daemon's view of whatever switches the machine."""

    #: True when a session must wait for the actuator to confirm "on" (a plug).
    confirms: bool
    #: True when the actuator measures power and feeds the activity input.
    power_activity: bool

    def start(self) -> None:
        """Claim the output (off) and start talking to the device."""
        ...

    def set(self, on: bool) -> list[Report]:
        """The state machine wants the machine on or off."""
        ...

    def handle(self, item: Any) -> list[Report]:
        """An item the actuator's own threads put on the decision queue (kind "plug")."""
        ...

    def tick(self, protect: bool) -> list[Report]:
        """Timers. `protect`: a `when_idle` machine is busy, never let the switch cut it."""
        ...

    def off_now(self) -> None:
        """Emergency off (the decision thread failed), best effort, never raises."""
        ...

    def close(self) -> None:
        """Off, then release the device; safe to call twice."""
        ...
