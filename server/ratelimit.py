"""A sliding-window request counter per (client address, key).

The login page uses `server.auth.LoginThrottle` (an increasing delay per address and
account, so nobody elsewhere can lock the owner out); this simpler counter bounds requests
that have no owner to protect, such as "forgot password" mails per address. In memory is
enough: one server process runs the web UI (contract section 1).
"""

from __future__ import annotations

import threading
import time
from collections import deque


class WindowLimiter:
    """At most `limit` hits per `window_s` seconds for each (address, key)."""

    def __init__(self, limit: int = 5, window_s: float = 60.0) -> None:
        self.limit = limit
        self.window_s = window_s
        self._hits: dict[tuple[str, str], deque[float]] = {}
        self._lock = threading.Lock()

    def _prune(self, key: tuple[str, str], now: float) -> deque[float]:
        q = self._hits.setdefault(key, deque())
        while q and now - q[0] > self.window_s:
            q.popleft()
        return q

    def blocked(self, ip: str, key: str) -> bool:
        now = time.monotonic()
        with self._lock:
            return len(self._prune((ip, key.lower()), now)) >= self.limit

    def failed(self, ip: str, key: str) -> None:
        """Count one hit (the name is kept from the login counter it replaced)."""
        now = time.monotonic()
        with self._lock:
            self._prune((ip, key.lower()), now).append(now)
            if len(self._hits) > 10_000:  # bound memory under a spray of keys
                for k in [k for k, v in self._hits.items() if not v]:
                    del self._hits[k]
