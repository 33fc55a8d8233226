"""When the node resends unacknowledged events: a schedule with no I/O.

Every event stays in the outbox until the server acks it (controller/storage.py). The daemon
publishes new events at once and asks this schedule which unacked ones are due again: all of
them on (re)connect, else those unacked for `backoff` seconds, the backoff doubling after each
round up to the contract's limit (unacked events are resent after at most 30 s). Kept apart
from the daemon so the rule is read and tested without MQTT or threads.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

RESEND_MIN_S = 2.0
RESEND_MAX_S = 30.0  # contract: unacked events are resent after at most 30 s


@dataclass
class ResendSchedule:
    backoff: float = RESEND_MIN_S
    next_at: float = 0.0
    _sent_at: dict[str, float] = field(default_factory=dict)

    def sent(self, event_id: str, now: float) -> None:
        """An event was just published: it is not due before one backoff."""
        self._sent_at[event_id] = now
        if self.next_at < now + self.backoff:
            self.next_at = now + self.backoff

    def due(self, pending: Iterable[tuple[str, bytes]], now: float, *,
            force: bool = False) -> list[tuple[str, bytes]]:
        """The pending events to publish again now (`force`: all of them, on connect)."""
        return [(i, p) for i, p in pending
                if force or now - self._sent_at.get(i, -math.inf) >= self.backoff]

    def acked(self, event_ids: Iterable[str], now: float) -> None:
        """The server answered: those events are done, and the link works, so the backoff
        starts again from its minimum."""
        for event_id in event_ids:
            self._sent_at.pop(event_id, None)
        self.backoff = RESEND_MIN_S
        self.next_at = now + self.backoff

    def round_done(self, now: float, *, resent: bool, force: bool) -> None:
        """After a resend round: back off further when something still had to be resent."""
        if resent and not force:
            self.backoff = min(self.backoff * 2, RESEND_MAX_S)
        self.next_at = now + self.backoff

    def is_due(self, now: float) -> bool:
        return now >= self.next_at
