"""A background job run every so often on a daemon thread, never fatal (the server's
housekeeping and roll-up refresh)."""

from __future__ import annotations

import logging
import threading

log = logging.getLogger(__name__)


class PeriodicJob:
    """Calls `run_once` after `first_delay_s`, then every `interval_s` until `stop`. A failure is
    logged and the job is tried again at the next round: a background job never stops the
    server."""

    name = "periodic"

    def __init__(self, interval_s: float, first_delay_s: float | None = None) -> None:
        self.interval_s = interval_s
        self.first_delay_s = interval_s if first_delay_s is None else first_delay_s
        self.runs = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    def run_once(self) -> object:
        raise NotImplementedError

    def _run(self) -> None:
        delay = self.first_delay_s
        while not self._stop.wait(delay):
            try:
                self.run_once()
            except Exception:
                log.exception("%s failed; retrying at the next round", self.name)
            delay = self.interval_s
