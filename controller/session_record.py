"""The open session's record and the trainer sign-off window: data, no rules.

The state machine (controller/session.py) and its actuator inputs
(controller/actuator_inputs.py) both read and write these; keeping them here lets the two
modules share them without importing each other.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime


@dataclass
class Session:
    id: str
    uid: str
    member: int | None
    role: str
    mode: str
    started_wall: datetime
    started_mono: float
    last_heartbeat: float
    deadline: float | None = None  # max_session_s end (monotonic)
    warned: bool = False
    grace_until: float | None = None  # present mode: card off the reader until then
    finishing: str | None = None  # pending end reason while waiting for the machine to idle
    active_acc: float = 0.0
    busy_since: float | None = None
    energy_wh: float | None = None  # measured by a plug during the session


    def active_s(self, now: float) -> float:
        return self.active_acc + (now - self.busy_since if self.busy_since is not None else 0.0)


@dataclass
class _Signoff:
    trainer: str
    until: float


def rounded_s(seconds: float) -> float:
    """Seconds as events carry them: never negative, to the millisecond."""
    return round(max(seconds, 0.0), 3)


# A key drawn once per process: the short tag names one badge across the lines of one run
# (enough to follow a tap in the log) but cannot be turned back into the UID, nor matched
# against another node's or another run's log.
_LOG_KEY = secrets.token_bytes(16)


def badge_tag(uid: str) -> str:
    """A short keyed hash of a badge UID for INFO logs (the UID itself only at DEBUG)."""
    return "#" + hmac.new(_LOG_KEY, uid.encode(), hashlib.sha256).hexdigest()[:8]
