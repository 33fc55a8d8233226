"""The one small interface every badge reader backend implements.

A backend only answers "which card is on the reader right now?" (`poll`).
`PresenceTracker` turns that stream of answers into placed/removed events and
tolerates a missed poll (an MFRC522 sometimes fails one read of a card that
is still there), and `ReaderLoop` polls at a fixed rate with a sleep, never a
busy loop.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

log = logging.getLogger(__name__)


class BadgeReaderError(Exception):
    """Root of every error raised by the badge_reader package."""


@dataclass(frozen=True)
class ReaderEvent:
    """A card was placed on or removed from the reader."""

    kind: Literal["placed", "removed"]
    uid: str  # uppercase hex of the UID bytes, no separators, no BCC


class Reader(Protocol):
    """A badge reader backend."""

    def poll(self) -> str | None:
        """Return the UID of the card on the reader now, or None. Must not block long."""
        ...

    def close(self) -> None:
        """Release the hardware."""
        ...


class PresenceTracker:
    """Turn successive poll results into placed/removed events.

    A card counts as removed only after `miss_tolerance + 1` consecutive empty
    polls, so one failed read does not end a `present`-mode session. A
    different UID replaces the current one at once (removed, then placed).
    """

    def __init__(self, miss_tolerance: int = 2) -> None:
        self.miss_tolerance = miss_tolerance
        self.current: str | None = None
        self._misses = 0

    def update(self, uid: str | None) -> list[ReaderEvent]:
        events: list[ReaderEvent] = []
        if uid is None:
            if self.current is not None:
                self._misses += 1
                if self._misses > self.miss_tolerance:
                    events.append(ReaderEvent("removed", self.current))
                    self.current = None
                    self._misses = 0
            return events
        self._misses = 0
        if uid != self.current:
            if self.current is not None:
                events.append(ReaderEvent("removed", self.current))
            self.current = uid
            events.append(ReaderEvent("placed", uid))
        return events


class ReaderLoop:
    """Poll a reader at `rate_hz` on a daemon thread and hand events to `callback`.

    The callback is expected to put the event on the controller's queue and
    return at once; the decision logic never runs on this thread.
    """

    def __init__(
        self,
        reader: Reader,
        callback: Callable[[ReaderEvent], None],
        rate_hz: float = 20.0,
        miss_tolerance: int = 2,
    ) -> None:
        self.reader = reader
        self.callback = callback
        self.interval = 1.0 / rate_hz
        self.tracker = PresenceTracker(miss_tolerance)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="reader", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                uid = self.reader.poll()
            except Exception:  # a flaky bus must not kill the node
                log.exception("reader poll failed")
                uid = None
            for event in self.tracker.update(uid):
                self.callback(event)
            self._stop.wait(self.interval)
