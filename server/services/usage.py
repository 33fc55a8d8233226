"""Plausibility and identity of session events (contract section 6), no I/O, no Flask.

The node measures durations on a monotonic clock and stamps wall-clock times on a clock that can
be wrong (a Pi without RTC boots in 1970; a bad NTP answer jumps a year ahead). The server
decides here what it believes:

- **rejected** (the node sees the id in `rejected`, the event is dead-lettered with the reason):
  durations that are not finite or negative, `active_s > duration_s` (both also refused by the
  protocol decoder), a duration over the maximum session length, and, when both wall-clock
  times are trusted, a duration longer than `ended - started` plus the skew allowance;
- **placed and flagged**: a wall-clock time before 2020-01-01 or more than a day after the
  receive time is not trusted. The usage is not lost: the session is placed from the receive
  time and the monotonic durations, and `sessions.clock_untrusted` says so. A session whose
  trusted times are further apart than any session can last (a clock jump during the session)
  is placed from its end and its duration the same way, so that one session never spans years
  of report cells.

An event may create or change only sessions of the node it came from (`check_owner`).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from protocol import Event

DEFAULT_MAX_SESSION_S = 7 * 86400.0
SKEW_ALLOWANCE_S = 300.0
TRUSTED_FROM = datetime(2020, 1, 1, tzinfo=UTC)
FUTURE_ALLOWANCE = timedelta(days=1)


class EventRefused(Exception):  # noqa: N818 - a refusal, not a failure
    """This event breaks a rule: it is dead-lettered with `reason` and acked as rejected."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def max_session_s(env: dict[str, str] | None = None) -> float:
    """`FABPASS_MAX_SESSION_S` (default 7 days); a value that is not a positive number is an
    error at start, not a silent default."""
    raw = (os.environ if env is None else env).get("FABPASS_MAX_SESSION_S", "")
    if not raw.strip():
        return DEFAULT_MAX_SESSION_S
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"FABPASS_MAX_SESSION_S must be a number of seconds, not {raw!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"FABPASS_MAX_SESSION_S must be a positive number of seconds, not {raw!r}")
    return value


def trusted(at: datetime, received_at: datetime) -> bool:
    """A node's wall-clock time is trusted unless before 2020 or over a day after receipt."""
    return TRUSTED_FROM <= at <= received_at + FUTURE_ALLOWANCE


def _finite_seconds(data: dict[str, object], key: str) -> float:
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise EventRefused(f"implausible: {key} is not a number")
    seconds = float(value)  # an int beyond a double is inf here
    if not math.isfinite(seconds):
        raise EventRefused(f"implausible: {key} is not finite")
    if seconds < 0:
        raise EventRefused(f"implausible: {key} is negative ({seconds:g})")
    return seconds


def check_durations(msg: Event, limit_s: float) -> None:
    """The rules that need no clock, for heartbeats and ends (raises EventRefused)."""
    if msg.type == "session.heartbeat":
        total_key = "elapsed_s"
    elif msg.type == "session.ended":
        total_key = "duration_s"
    else:
        return
    total = _finite_seconds(msg.data, total_key)
    active = _finite_seconds(msg.data, "active_s")
    if active > total:
        raise EventRefused(f"implausible: active_s ({active:g}) exceeds {total_key} ({total:g})")
    if total > limit_s:
        raise EventRefused(f"implausible: {total_key} ({total:g} s) is over the maximum session "
                           f"length ({limit_s:g} s, FABPASS_MAX_SESSION_S)")


@dataclass(frozen=True)
class Placement:
    """Where a session sits in wall-clock time, and whether the node's clock was believed."""

    started: datetime
    ended: datetime | None
    untrusted: bool


def place_ended(msg: Event, received_at: datetime, limit_s: float) -> Placement:
    """The `session.ended` times to store (raises EventRefused when implausible)."""
    check_durations(msg, limit_s)
    started, ended = msg.time("started"), msg.time("ended")
    assert started is not None and ended is not None  # required fields, checked at decode
    duration = timedelta(seconds=float(msg.data["duration_s"]))
    start_ok, end_ok = trusted(started, received_at), trusted(ended, received_at)
    if start_ok and end_ok:
        span = (ended - started).total_seconds()
        if duration.total_seconds() > span + SKEW_ALLOWANCE_S:
            raise EventRefused(f"implausible: duration_s ({duration.total_seconds():g} s) exceeds "
                               f"ended - started ({span:g} s) by more than {SKEW_ALLOWANCE_S:g} s")
        if span <= limit_s + SKEW_ALLOWANCE_S:
            return Placement(started, ended, False)
        return Placement(ended - duration, ended, True)  # the clock jumped during the session
    if end_ok:
        return Placement(ended - duration, ended, True)
    if start_ok and started + duration <= received_at + FUTURE_ALLOWANCE:
        return Placement(started, started + duration, True)
    return Placement(received_at - duration, received_at, True)


def place_at(msg: Event, received_at: datetime, before: float = 0.0) -> Placement:
    """The start of a session seen from a started (before=0) or heartbeat (before=elapsed)
    event: its `ts` if trusted, else the receive time."""
    untrusted = not trusted(msg.ts, received_at)
    at = received_at if untrusted else msg.ts
    return Placement(at - timedelta(seconds=before), None, untrusted)


def check_owner(session_node_id: int | None, node_id: int, session_uuid: str) -> None:
    """An event may create or change only sessions of the node it came from."""
    if session_node_id != node_id:
        raise EventRefused(f"identity: session {session_uuid} belongs to another node")


__all__ = ["DEFAULT_MAX_SESSION_S", "EventRefused", "Placement", "SKEW_ALLOWANCE_S",
           "TRUSTED_FROM", "check_durations", "check_owner", "max_session_s", "place_at",
           "place_ended", "trusted"]
