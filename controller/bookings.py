"""Booking rules at the machine (issue 17), pure: no I/O, times passed in.

The list carries the machine's bookings of the next 24 h, so the node enforces them offline
with its cached list (docs/bookings.md):

- inside another member's slot only the booker and trainers may start; others are refused
  `booked` with the slot's end;
- `required`: a user starts only inside their own slot, or `booking_early_s` before it;
- a session still running when another member's slot starts gets the usual warning and ends
  at the slot start (`cut_at`);
- no-show: a slot whose member has not started within `booking_no_show_s` of its start is
  released: it blocks nobody any more (its member may still use it).

`BookingBook` keeps the only state: which slots were used (their member had a session
running between the early start and the no-show limit).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from protocol import Booking
from protocol.acl import BOOKING_DEFAULTS

log = logging.getLogger(__name__)


def _seconds(policy: dict[str, Any], key: str) -> float | None:
    if key in policy:
        value = policy[key]
        return None if value is None else float(value)
    return BOOKING_DEFAULTS.get(key)


@dataclass(frozen=True)
class Refusal:
    reason: str  # booked | no_booking
    until: datetime | None = None  # `booked`: the end of the other member's slot


@dataclass
class BookingBook:
    """The bookings of the current list and what the node saw of them."""

    mode: str = "off"
    bookings: list[Booking] = field(default_factory=list)
    early_s: float = 0.0
    no_show_s: float | None = None
    _used: set[tuple[int, datetime]] = field(default_factory=set)

    def load(self, policy: dict[str, Any], bookings: list[Booking]) -> None:
        """A new list: its bookings and booking policy (slots already used stay used)."""
        self.mode = str(policy.get("booking") or "off")
        self.bookings = sorted(bookings, key=lambda b: b.start)
        self.early_s = _seconds(policy, "booking_early_s") or 0.0
        self.no_show_s = _seconds(policy, "booking_no_show_s")
        keys = {(b.member, b.start) for b in self.bookings}
        self._used &= keys

    @property
    def active(self) -> bool:
        return self.mode in ("optional", "required")

    def released(self, b: Booking, now: datetime) -> bool:
        """A no-show: not used and the no-show limit has passed."""
        return (self.no_show_s is not None and (b.member, b.start) not in self._used
                and now >= b.start + timedelta(seconds=self.no_show_s))

    def _own(self, member: int, now: datetime) -> Booking | None:
        early = timedelta(seconds=self.early_s)
        for b in self.bookings:
            if b.member == member and b.start - early <= now < b.end:
                return b
        return None

    def refusal(self, member: int, role: str, now: datetime) -> Refusal | None:
        """Why this badge may not start now, or None."""
        if not self.active or role == "trainer":
            return None
        for b in self.bookings:
            if b.member != member and b.start <= now < b.end and not self.released(b, now):
                return Refusal("booked", b.end)
        if self.mode == "required" and self._own(member, now) is None:
            return Refusal("no_booking")
        return None

    def started(self, member: int | None, now: datetime) -> None:
        """A session of `member` runs now: their slot (if any, within the limits) is used."""
        if member is None:
            return
        limit = timedelta(seconds=self.no_show_s) if self.no_show_s is not None else None
        early = timedelta(seconds=self.early_s)
        for b in self.bookings:
            if (b.member == member and b.start - early <= now < b.end
                    and (limit is None or now < b.start + limit)):
                self._used.add((b.member, b.start))

    def cut_at(self, member: int | None, started: datetime, now: datetime) -> datetime | None:
        """When the running session must end for another member's slot (None: it may go on).

        The next slot of someone else that starts after the session started; a released slot
        (a no-show) does not cut."""
        if not self.active:
            return None
        for b in self.bookings:
            if b.end <= now or b.member == member or b.start <= started:
                continue
            if self.released(b, now):
                continue
            return b.start
        return None
