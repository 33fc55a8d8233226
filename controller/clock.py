"""Clocks for the node: monotonic for durations, wall for timestamps, and "is time synced?".

The state machine takes a `Clock` so tests drive time by hand (`FakeClock`)
instead of sleeping; the daemon uses `SystemClock`.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol

log = logging.getLogger(__name__)

TIMESYNC_FLAG = "/run/systemd/timesync/synchronized"
_TIME_ERROR = 5  # adjtimex() return value when the kernel clock is not synchronised


class Clock(Protocol):
    def monotonic(self) -> float:
        """Seconds from an arbitrary origin that never goes backwards (durations)."""
        ...

    def wall(self) -> datetime:
        """The current wall-clock time, aware UTC (may jump, may be wrong)."""
        ...

    def synced(self) -> bool:
        """True when the wall clock is known to be synchronised (NTP or similar)."""
        ...


def kernel_clock_synced() -> bool | None:
    """Ask the kernel via adjtimex(2) whether NTP synchronised the clock; None when unknown."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        buf = ctypes.create_string_buffer(512)  # struct timex, modes = 0: read only
        state = int(libc.adjtimex(buf))
    except (OSError, AttributeError):
        return None
    if state < 0:
        return None
    return state != _TIME_ERROR


def default_synced() -> bool:
    """systemd-timesyncd's flag file, else the kernel's NTP state, else True (cannot tell).

    Off a Pi (a laptop, a container) neither may say anything useful; we then
    report True rather than flag every demo node's clock as bad.
    """
    if os.path.exists(TIMESYNC_FLAG):
        return True
    state = kernel_clock_synced()
    return True if state is None else state


class SystemClock:
    """The real clocks; the sync check is cached for a minute (it is a syscall and a stat)."""

    def __init__(self, synced_check: object = None) -> None:
        self._check = synced_check if callable(synced_check) else default_synced
        self._cached: tuple[float, bool] | None = None

    def monotonic(self) -> float:
        return time.monotonic()

    def wall(self) -> datetime:
        return datetime.now(UTC)

    def synced(self) -> bool:
        now = time.monotonic()
        if self._cached is None or now - self._cached[0] > 60:
            try:
                value = bool(self._check())
            except Exception:  # a broken check must not stop the node
                log.exception("clock sync check failed")
                value = True
            self._cached = (now, value)
        return self._cached[1]


class FakeClock:
    """A hand-driven clock for tests: `advance(s)` moves both clocks; `set_wall` jumps the wall."""

    def __init__(self, wall: datetime | None = None, synced: bool = True) -> None:
        self.mono = 1000.0
        self._wall = wall or datetime(2026, 11, 22, 10, 0, 0, tzinfo=UTC)
        self.is_synced = synced

    def monotonic(self) -> float:
        return self.mono

    def wall(self) -> datetime:
        return self._wall

    def synced(self) -> bool:
        return self.is_synced

    def advance(self, seconds: float) -> None:
        self.mono += seconds
        self._wall += timedelta(seconds=seconds)

    def set_wall(self, wall: datetime) -> None:
        self._wall = wall
