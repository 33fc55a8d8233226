"""Periodic work of the server: the daily housekeeping and the report roll-up refresh.

Each job runs on a daemon thread every so often and is never fatal: a failure is logged and
tried again at the next round (`PeriodicJob`). `server.runner.ServerCore` starts them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from server.reports.rollups import RefreshResult, pending, plan, refresh
from server.services.bookings import advance_window
from server.services.privacy import daily_job

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


class Housekeeping(PeriodicJob):
    """Daily jobs of the one process that publishes access lists: the privacy retention job.

    Runs shortly after start (so a server restarted every night still runs it) and then every
    `interval`; a failure is logged and retried at the next round, never fatal.
    """

    name = "housekeeping"

    def __init__(self, sessions: Callable[[], Any], *, interval: timedelta = timedelta(days=1),
                 first_delay_s: float = 60.0) -> None:
        super().__init__(interval.total_seconds(), first_delay_s)
        self.sessions = sessions

    def run_once(self) -> None:
        result = daily_job(self.sessions)
        self.runs += 1
        log.info("daily privacy job done: %s", result)


class RollupRefresher(PeriodicJob):
    """Keeps the cells fresh in the background (every `interval_s`), so a report finds little or
    nothing to do. A failure is logged and retried; reports refresh for themselves anyway.

    A refresh holds the database's write lock (SQLite) or blocks the sessions' triggers
    (PostgreSQL) for as long as it runs, and the ingest waits meanwhile (a profile of the
    latency benchmark at 1,000 events/s: ~0.1 s in the refresher per 10 s round, and as much
    of the ingest writer's time waiting in BEGIN IMMEDIATE: a stall that lands in the p99).
    So the work is cut into transactions of about `max_marks` marks (whole machines),
    with a pause after each as long as it took plus `pause_s`: SQLite's busy handler sleeps
    between its retries, and a writer that waited must get the lock before the next part."""

    name = "rollups"

    def __init__(self, sessions: Callable[[], Any], interval_s: float = 10.0, *,
                 max_marks: int = 200, pause_s: float = 0.025) -> None:
        super().__init__(interval_s)
        self.sessions = sessions
        self.max_marks = max_marks
        self.pause_s = pause_s

    def run_once(self) -> RefreshResult:
        total = RefreshResult()
        with self.sessions() as db:
            # one grouping of the marks for the whole round; no marks but a site's zone
            # changed: one unbounded refresh (`machines=None`) rebuilds what it moved
            parts: list[list[int | None] | None] = list(plan(db, self.max_marks))
            if not parts and pending(db):
                parts = [None]
        for i, machines in enumerate(parts):
            t0 = time.monotonic()
            with self.sessions() as db:
                part = refresh(db, machines=machines)
                db.commit()
            for name in ("machines", "day_cells", "month_cells", "dirty_rows",
                         "added_sessions"):
                setattr(total, name, getattr(total, name) + getattr(part, name))
            if i + 1 < len(parts) and self._stop.wait(time.monotonic() - t0 + self.pause_s):
                break
        result = total
        self.runs += 1
        if result.machines:
            log.info("usage roll-ups refreshed: %d machines, %d day cells, %d month cells",
                     result.machines, result.day_cells, result.month_cells)
        return result


class BookingWindow(PeriodicJob):
    """Lists carry the bookings of the next 24 h: as that window moves on, nodes whose machine
    has a booking entering it get a new list (`services.bookings.advance_window`)."""

    name = "booking-window"

    def __init__(self, sessions: Callable[[], Any], interval_s: float = 300.0) -> None:
        super().__init__(interval_s, first_delay_s=5.0)
        self.sessions = sessions

    def run_once(self) -> int:
        with self.sessions() as db:
            marked = advance_window(db)
            db.commit()
        self.runs += 1
        return marked
class MailSender(PeriodicJob):
    """Delivers the mail queue (`server.services.mail.send_due`) every `interval_s`; does
    nothing while FABPASS_SMTP_URL is unset (mails wait in the queue)."""

    name = "mail"

    def __init__(self, sessions: Callable[[], Any], smtp_url: str, mail_from: str,
                 interval_s: float = 15.0) -> None:
        super().__init__(interval_s, first_delay_s=5.0)
        from server.services.mail import parse_smtp_url

        self.sessions = sessions
        self.config = parse_smtp_url(smtp_url) if smtp_url else None
        self.mail_from = mail_from

    def run_once(self) -> object:
        from server.services.mail import send_due

        if self.config is None:
            return None
        result = send_due(self.sessions, self.config, self.mail_from)
        self.runs += 1
        return result


class WebhookSender(PeriodicJob):
    """Delivers queued webhook events (`server.services.webhooks.deliver_due`) every
    `interval_s`, in order per webhook, with backoff."""

    name = "webhooks"

    def __init__(self, sessions: Callable[[], Any], allow_hosts: list[str],
                 interval_s: float = 5.0) -> None:
        super().__init__(interval_s, first_delay_s=interval_s)
        self.sessions = sessions
        self.allow_hosts = allow_hosts

    def run_once(self) -> object:
        from server.services.webhooks import deliver_due

        result = deliver_due(self.sessions, self.allow_hosts)
        self.runs += 1
        return result


class AlertJob(PeriodicJob):
    """Applies the managers' alert rules (`server.services.alerts.run_alerts`) and the members'
    training-expiry notices every `interval_s`; mails are queued, the MailSender delivers them."""

    name = "alerts"

    def __init__(self, sessions: Callable[[], Any], *, offline_after_s: float, public_url: str,
                 interval_s: float = 30.0) -> None:
        super().__init__(interval_s)
        self.sessions = sessions
        self.offline_after_s = offline_after_s
        self.public_url = public_url

    def run_once(self) -> object:
        from server.models import utcnow
        from server.services.alerts import run_alerts
        from server.services.notices import training_expiry_notices
        from server.services.summary import weekly_summaries

        with self.sessions() as db:
            result = run_alerts(db, utcnow(), offline_after_s=self.offline_after_s,
                                public_url=self.public_url)
            training_expiry_notices(db, utcnow(), public_url=self.public_url)
            weekly_summaries(db, utcnow(), public_url=self.public_url)
        self.runs += 1
        return result


class FabmanagerSync(PeriodicJob):
    """Runs the Fab-manager sync every `interval_s` (FABPASS_FABMANAGER_SYNC_MINUTES; off by
    default). A failed run keeps the previous state and is recorded; the next round retries."""

    name = "fabmanager"

    def __init__(self, sessions: Callable[[], Any], interval_s: float) -> None:
        super().__init__(interval_s, first_delay_s=min(interval_s, 30.0))
        self.sessions = sessions

    def run_once(self) -> object:
        from server.services.fabmanager import get_config, run_sync

        with self.sessions() as db:
            if get_config(db) is None:
                return None
            result = run_sync(db)
        self.runs += 1
        return result
