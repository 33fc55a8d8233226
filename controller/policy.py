"""The effective session policy: the access list's `policy` over the node config's defaults.

A pure value with one merge rule (absent key → default, `null` → off), so that the state
machine (controller/session.py) reads settled numbers and never re-checks the list's types.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from firmware_config.node_config import SessionConfig


@dataclass(frozen=True)
class Policy:
    """The effective session policy: the list's `policy` over the config's defaults."""

    mode: str = "tap"
    max_session_s: float | None = None
    warn_before_s: float | None = 300
    grace_s: float | None = 10
    idle_end_s: float | None = None
    power_off: str = "immediate"
    handover: bool = False
    end_on_revoke: bool = False
    on_stale: str = "deny"
    heartbeat_s: float = 60

    @classmethod
    def merge(cls, defaults: SessionConfig, policy: dict[str, Any] | None) -> Policy:
        """Absent key → config default; `null` → off (numbers None, booleans False,
        choices fall back to the default because they have no "off")."""
        policy = policy or {}

        def pick(key: str, default: Any) -> Any:
            return policy[key] if key in policy else default

        def choice(key: str, default: str) -> str:
            value = policy.get(key, default)
            return default if value is None else str(value)

        hb = _num(policy.get("heartbeat_s"))
        heartbeat = hb if hb is not None else float(defaults.heartbeat_s)
        return cls(
            mode=choice("mode", defaults.mode),
            max_session_s=_num(pick("max_session_s", defaults.max_session_s)),
            warn_before_s=_num(pick("warn_before_s", defaults.warn_before_s)),
            grace_s=_num(pick("grace_s", defaults.grace_s)),
            idle_end_s=_num(pick("idle_end_s", defaults.idle_end_s)),
            power_off=choice("power_off", defaults.power_off),
            handover=bool(pick("handover", defaults.handover)),
            end_on_revoke=bool(pick("end_on_revoke", defaults.end_on_revoke)),
            on_stale=choice("on_stale", defaults.on_stale),
            heartbeat_s=max(heartbeat, 1.0),
        )


def _num(value: Any) -> float | None:
    """A positive finite number of seconds, else None (off): NaN and infinities are not times."""
    if value is None or isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        seconds = float(value)
    except OverflowError:  # an integer beyond any float
        return None
    return seconds if math.isfinite(seconds) and seconds > 0 else None
