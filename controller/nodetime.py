"""The node's time: what it stamps events with, and what it decides with.

Three clocks meet here. The monotonic clock never jumps, so it alone measures how long a
list has been held. The system wall clock may jump either way (no RTC, a bad NTP answer),
so it is checked against the access list: the list carries `issued`, a time the server
vouches for, and the monotonic clock says how much time has passed since it was received.

- **Freshness** (contract section 6): a list is stale once its age — its age when it was
  received plus the monotonic time since — passes `valid_until − issued`. A wall-clock jump
  after the list was received changes nothing. A list that arrives live (not a retained
  replay) was just published, so its age at receipt is 0; a retained replay or the cached
  copy read at start is aged by the wall clock, the only witness there is.
- **Agreement**: the wall clock agrees with the list while it is within `SKEW_S` of the
  list's time (`issued` + age). `clock_ok` is false while they disagree.
- **Time of record** (event `ts`, `started`/`ended`): the wall clock while it agrees with
  the list (or there is no list), else the list's time — so a session started during a jump
  is not stamped a year ahead and then ended "before" it started. Never behind a floor (the
  last persisted `ts`, the list's `issued`), except that a floor more than `SKEW_S` ahead of
  a wall clock that agrees with the list was raised by a forward jump since undone (while
  the node had no list, or by a previous process): it comes back. Otherwise the floor holds
  (timestamps stand still until the clock catches up).
- **Decision time** (badge `until`, command age): the same, without the floor, so a jump
  neither expires badges nor ages commands.

Times are kept as epoch seconds (floats) so that lists issued in year 1 or 9999 cannot make
date arithmetic overflow.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import UTC, datetime

from controller.clock import Clock

log = logging.getLogger(__name__)

SKEW_S = 300.0  # contract: clock and list disagree beyond 5 minutes

_MIN_EPOCH = datetime(1, 1, 2, tzinfo=UTC).timestamp()
_MAX_EPOCH = datetime(9999, 12, 30, tzinfo=UTC).timestamp()


def _epoch(when: datetime) -> float:
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


def _dt(epoch: float) -> datetime:
    if not math.isfinite(epoch):
        epoch = _MAX_EPOCH if epoch > 0 else _MIN_EPOCH
    return datetime.fromtimestamp(min(max(epoch, _MIN_EPOCH), _MAX_EPOCH), UTC)


@dataclass(frozen=True)
class ListAnchor:
    """When the current list was issued and received, in the two clocks that matter."""

    issued: float  # epoch seconds (the server's word)
    span_s: float  # valid_until − issued
    age_rx: float  # the list's age when it was received
    mono_rx: float  # the monotonic time it was received


class NodeTime:
    """The floor, the current list's anchor and the rules above; no I/O (the clock is injected)."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.floor: float | None = None  # epoch seconds
        self.anchor: ListAnchor | None = None

    # ------------------------------------------------------------ inputs

    def receive_list(self, issued: datetime, valid_until: datetime, *, fresh: bool) -> None:
        """A list was installed; `fresh`: it arrived live, not as a retained or cached copy."""
        iss = _epoch(issued)
        age = 0.0 if fresh else max(0.0, _epoch(self.clock.wall()) - iss)
        self.anchor = ListAnchor(issued=iss, span_s=_epoch(valid_until) - iss, age_rx=age,
                                 mono_rx=self.clock.monotonic())
        self.raise_floor(issued)

    def raise_floor(self, when: datetime | None) -> None:
        if when is not None:
            t = _epoch(when)
            if self.floor is None or t > self.floor:
                self.floor = t

    # ------------------------------------------------------------ the list's view

    def list_age(self) -> float | None:
        a = self.anchor
        if a is None:
            return None
        return a.age_rx + max(0.0, self.clock.monotonic() - a.mono_rx)

    def list_stale(self) -> bool:
        a, age = self.anchor, self.list_age()
        return a is not None and age is not None and age > a.span_s

    def list_time(self) -> float | None:
        """The time the list says it is: `issued` + its age (epoch seconds)."""
        a, age = self.anchor, self.list_age()
        return None if a is None or age is None else a.issued + age

    def skew_s(self) -> float | None:
        """System wall clock minus the list's time; None without a list."""
        lt = self.list_time()
        return None if lt is None else _epoch(self.clock.wall()) - lt

    def agrees(self) -> bool:
        skew = self.skew_s()
        return skew is None or abs(skew) <= SKEW_S

    def clock_ok(self) -> bool:
        return bool(self.clock.synced()) and self.agrees()

    # ------------------------------------------------------------ outputs

    def _best(self) -> tuple[float, bool]:
        """The wall clock if it agrees with the list, else the list's time; and whether it agreed."""
        wall = _epoch(self.clock.wall())
        lt = self.list_time()
        if lt is None or abs(wall - lt) <= SKEW_S:
            return wall, lt is not None
        return lt, False

    def now(self) -> datetime:
        """The time of record: never behind the floor, the floor coming back after an undone jump."""
        t, agreed = self._best()
        floor = self.floor
        if floor is not None and t < floor:
            if agreed and self.anchor is not None and floor - t > SKEW_S:
                log.warning("the system clock agrees with the access list and is %.0f s behind "
                            "the last time of record: the floor comes back (a forward jump was "
                            "undone)", floor - t)
                t = max(t, self.anchor.issued)
            else:
                t = floor
        self.floor = t
        return _dt(t)

    def decision_time(self) -> datetime:
        """For `until` and command ages: like `now()` but unfloored (a raised floor expires nothing)."""
        return _dt(self._best()[0])
