"""Decode cost per message, bounded in time: `python tests/protocol/bench_decode.py [seconds]`.

Prints µs per `Event.decode` (a heartbeat and a session.ended, the two most frequent events) and
per `AccessList.decode` of a 1,000-badge list. Not a test: a measurement for docs/protocol.md and
issue 21. Each case runs for at most the given time (default 1 s), best of 5 rounds.
"""

from __future__ import annotations

import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from protocol import AccessList, BadgeEntry, Event, format_ts

T0 = datetime(2026, 11, 22, 19, 20, 50, 123000, tzinfo=UTC)


def _event(etype: str, data: dict[str, object]) -> bytes:
    return Event(id=str(uuid.uuid4()), node="laser-1", boot=str(uuid.uuid4()), seq=42, ts=T0,
                 type=etype, data=data).encode()


def payloads() -> dict[str, tuple[Callable[[bytes], object], bytes]]:
    sid = str(uuid.uuid4())
    heartbeat = _event("session.heartbeat", {"session": sid, "uid": "04A1B2C3", "member": 12,
                                             "elapsed_s": 600.0, "active_s": 310.5})
    ended = _event("session.ended", {
        "session": sid, "uid": "04A1B2C3", "member": 12, "started": format_ts(T0),
        "ended": format_ts(T0 + timedelta(hours=1)), "duration_s": 3600.0, "active_s": 1800.0,
        "reason": "badge_out"})
    acl = AccessList(version=1, site="lab", node="laser-1", machine="laser-1", issued=T0,
                     valid_until=T0 + timedelta(days=7), locked=False, policy={"mode": "tap"},
                     badges=[BadgeEntry(uid=f"{i:08X}", member=i, label=f"Member {i}",
                                        until=T0 if i % 3 else None) for i in range(1000)])
    return {"event session.heartbeat": (Event.decode, heartbeat),
            "event session.ended": (Event.decode, ended),
            "acl 1000 badges": (AccessList.decode, acl.encode())}


def measure(decode: Callable[[bytes], object], payload: bytes, budget_s: float) -> float:
    """Best µs per call over 5 rounds, each bounded to budget_s / 5."""
    best = float("inf")
    for _ in range(5):
        n, start = 0, time.perf_counter()
        deadline = start + budget_s / 5
        while True:
            for _ in range(10):
                decode(payload)
            n += 10
            now = time.perf_counter()
            if now >= deadline or n >= 1_000_000:
                break
        best = min(best, (now - start) / n * 1e6)
    return best


def main() -> None:
    budget = float(sys.argv[1]) if len(sys.argv) > 1 else 1.0
    for name, (decode, payload) in payloads().items():
        print(f"{name:28s} {len(payload):8d} B  {measure(decode, payload, budget):9.1f} µs")


if __name__ == "__main__":
    main()
