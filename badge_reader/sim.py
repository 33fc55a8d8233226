"""A simulated badge reader, driven by code (tests) or by stdin lines (`fabpass node --simulate`).

`SimReader` implements the same `poll()` contract as the hardware backends:
it answers the UID of the card "on the reader" now. A `tap` holds the card
for `hold_s` and is checked against the monotonic clock in `poll`, so no timer
thread is needed; a tap is always reported by at least one poll even if the
poller was late, so a tap is never lost.

`parse_sim_line` parses contract section 5 (`tap UID`, `place UID`, `remove`,
`busy on`, `busy off`); the controller applies the result (busy drives its
activity input pin, which this package knows nothing about).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from badge_reader.errors import InvalidUidError, SimLineError
from protocol.errors import ProtocolError
from protocol.uid import normalize_uid

log = logging.getLogger(__name__)

DEFAULT_TAP_HOLD_S = 0.3


def _uid(text: str) -> str:
    try:
        return normalize_uid(text)
    except ProtocolError as exc:
        raise InvalidUidError(str(exc)) from None


class SimReader:
    """A reader whose card is placed, removed and tapped by calls; thread-safe.

    `clock` is injectable so tests can drive tap expiry without sleeping.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._uid: str | None = None
        self._until: float | None = None  # tap expiry; None = placed until removed
        self._seen = False  # the current card was returned by poll at least once
        self._closed = False

    def place(self, uid: str) -> str:
        """Put a card on the reader until `remove` (or another place/tap). Returns the normalised UID."""
        norm = _uid(uid)
        with self._lock:
            self._uid, self._until, self._seen = norm, None, False
        log.debug("sim: placed %s", norm)
        return norm

    def tap(self, uid: str, hold_s: float = DEFAULT_TAP_HOLD_S) -> str:
        """Present a card for `hold_s` seconds, then take it away. Non-blocking."""
        if hold_s < 0:
            raise ValueError("hold_s must be >= 0")
        norm = _uid(uid)
        with self._lock:
            self._uid, self._until, self._seen = norm, self._clock() + hold_s, False
        log.debug("sim: tapped %s for %.2fs", norm, hold_s)
        return norm

    def remove(self) -> None:
        """Take the card off the reader (no-op when there is none)."""
        with self._lock:
            self._uid, self._until, self._seen = None, None, False
        log.debug("sim: removed")

    @property
    def current(self) -> str | None:
        """The card on the reader, without counting as a poll (tap expiry applied)."""
        with self._lock:
            self._expire()
            return self._uid

    def poll(self) -> str | None:
        with self._lock:
            self._expire()
            if self._uid is not None:
                self._seen = True
            return self._uid

    def _expire(self) -> None:
        # A tap that nobody saw yet stays until one poll reports it.
        if self._until is not None and self._seen and self._clock() >= self._until:
            self._uid, self._until, self._seen = None, None, False

    def apply(self, command: SimCommand) -> bool:
        """Carry out a tap/place/remove command; return False for the ones this reader does not own (busy)."""
        if command.action == "tap":
            assert command.uid is not None
            self.tap(
                command.uid, command.hold_s if command.hold_s is not None else DEFAULT_TAP_HOLD_S
            )
        elif command.action == "place":
            assert command.uid is not None
            self.place(command.uid)
        elif command.action == "remove":
            self.remove()
        else:
            return False
        return True

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._uid, self._until, self._seen = None, None, False


@dataclass(frozen=True)
class SimCommand:
    """One parsed simulation line.

    `action` is `tap`, `place`, `remove` or `busy`; `uid` is set (normalised)
    for tap/place; `busy` is True/False for `busy on`/`busy off`.
    """

    action: Literal["tap", "place", "remove", "busy"]
    uid: str | None = None
    busy: bool | None = None
    hold_s: float | None = None  # tap only; None = the default ~0.3 s


_USAGE = "expected one of: tap UID, place UID, remove, busy on, busy off"


def parse_sim_line(line: str) -> SimCommand | None:
    """Parse one stdin line of `fabpass node --simulate`.

    Blank lines and `#` comments give None; anything unknown or malformed
    raises `SimLineError` with a message fit for stderr. Keywords are
    case-insensitive; UIDs accept separators and lower case.
    """
    text = line.split("#", 1)[0].strip()
    if not text:
        return None
    words = text.split()
    verb, args = words[0].lower(), words[1:]
    if verb in ("tap", "place"):
        if len(args) != 1:
            raise SimLineError(f"{verb!r} needs exactly one UID: {line.strip()!r}")
        try:
            uid = normalize_uid(args[0])
        except ProtocolError as exc:
            raise SimLineError(f"{line.strip()!r}: {exc}") from None
        return SimCommand("tap" if verb == "tap" else "place", uid=uid)
    if verb == "remove":
        if args:
            raise SimLineError(f"'remove' takes no argument: {line.strip()!r}")
        return SimCommand("remove")
    if verb == "busy":
        if len(args) == 1 and args[0].lower() in ("on", "off"):
            return SimCommand("busy", busy=args[0].lower() == "on")
        raise SimLineError(f"'busy' needs 'on' or 'off': {line.strip()!r}")
    raise SimLineError(f"unknown simulation command {line.strip()!r}; {_USAGE}")
