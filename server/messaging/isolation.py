"""Per-message isolation of the ingest: no message can hold a batch, or the ingest, forever.

The invariant (docs/reliability.md, promise 5): every message received is, in the end, stored
or dead-lettered with a reason, and acknowledged. Inside a batch the ingest already turns any
exception of one message into a dead letter (each message in a savepoint). This module is the
last line, for what still escapes a batch:

* while the database does not answer (a probe transaction fails), the batch is kept and retried
  with backoff, unacknowledged: that is an outage, and waiting loses nothing;
* when the database answers and the batch still fails a few times, the fault is in a message:
  the batch is redone one message at a time, and a message that fails alone `ALONE_TRIES` times
  while the database answers is quarantined: dead-lettered as `poison` (in a transaction of its
  own, through nothing the failing code paths use), acked as rejected to its node, and
  acknowledged to the broker, so that it is never redelivered.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from protocol import Ack, ProtocolError, Topics, peek_id
from server.models import DeadLetter
from server.services.personal import redact_uids

log = logging.getLogger(__name__)

BATCH_TRIES = 3  # a batch failing this often while the database answers is split
ALONE_TRIES = 3  # a message failing alone this often while the database answers is poison
MAX_DELAY_S = 10.0


class _Item(Protocol):
    topic: str
    payload: bytes
    mid: int
    qos: int
    received_at: datetime
    generation: int | None


def describe(exc: BaseException) -> str:
    """`Type: message`, bounded and storable (never raises, no NUL for PostgreSQL)."""
    try:
        msg = str(exc)
    except Exception:  # noqa: BLE001 - a broken __str__ must not break the dead letter
        msg = "(unprintable)"
    return f"{type(exc).__name__}: {msg}"[:400].replace("\x00", "\\0")


def identity(topics: Topics, item: _Item) -> tuple[str | None, str | None, str | None]:
    """(site, node, event id) of a message, as far as they can be read; never raises."""
    site = node = eid = None
    try:
        parts = topics.parse(item.topic)
        site, node = parts.site, parts.node
    except (ProtocolError, Exception):  # noqa: BLE001 - best effort by design
        pass
    try:
        eid = peek_id(item.payload)
    except Exception:  # noqa: BLE001
        pass
    return site, node, eid


class Resilience:
    """Runs `process(batch)` until every message of it is settled (see the module docstring)."""

    def __init__(self, sessions: sessionmaker[Session], topics: Topics, link: Any,
                 process: Callable[[list[Any]], object], stop: threading.Event, *,
                 is_db_error: Callable[[BaseException], bool] = lambda exc: False,
                 on_db_error: Callable[[], None] = lambda: None) -> None:
        self.sessions = sessions
        self.is_db_error = is_db_error  # counted as a database error (the probe still decides)
        self.on_db_error = on_db_error  # live statistics: called at once, not after the batch
        self.topics = topics
        self.link = link
        self.process = process
        self.stop = stop
        self.base_delay_s = 0.2
        self.retrying = False  # a batch is in hand and failed at least once
        self.db_errors = 0
        self.quarantined = 0

    def database_ok(self) -> bool:
        """Does the database take a write transaction now? (BEGIN IMMEDIATE on SQLite.)"""
        try:
            with self.sessions() as db:
                db.execute(text("SELECT 1"))
                db.commit()
            return True
        except Exception:  # noqa: BLE001 - any failure means "not now"
            return False

    def run(self, batch: list[Any]) -> None:
        """Settle `batch`; returns early only when asked to stop (the rest stays unacked)."""
        try:
            if self._attempts(batch, BATCH_TRIES) or self.stop.is_set():
                return
            alone = len(batch) == 1
            if not alone:
                log.warning("ingest: a batch of %d fails while the database answers; "
                            "handling its messages one by one", len(batch))
            for item in batch:
                if not alone and self._attempts([item], ALONE_TRIES):
                    continue
                if self.stop.is_set():
                    return
                self.quarantine(item, self._last)
        finally:
            self.retrying = False

    _last: BaseException | None = None

    def _attempts(self, batch: list[Any], tries: int) -> bool:
        """True once processed; False after `tries` failures with the database up, or on stop."""
        failures, delay = 0, self.base_delay_s
        while not self.stop.is_set():
            try:
                self.process(batch)
                return True
            except Exception as exc:  # noqa: BLE001 - every failure is judged below
                self._last = exc
                self.retrying = True
                up = self.database_ok()
                if up:
                    failures += 1  # the database answers: this batch itself may be the cause
                if not up or self.is_db_error(exc):
                    self.db_errors += 1
                    self.on_db_error()
                log.warning("ingest: %s of %d message(s) failed (%s); %s", "batch" if
                            len(batch) > 1 else "message", len(batch), redact_uids(describe(exc)),
                            "database down, retrying" if not up else f"try {failures}/{tries}")
                if failures >= tries:
                    return False
            if self.stop.wait(delay):
                return False
            delay = min(delay * 2, MAX_DELAY_S)
        return False

    def quarantine(self, item: _Item, exc: BaseException | None) -> None:
        """Dead-letter `item` as poison, tell its node, acknowledge it: it is settled."""
        self.quarantined += 1
        site, node, eid = identity(self.topics, item)
        reason = f"poison: {describe(exc) if exc is not None else 'failed'}"
        log.error("ingest: message on %s quarantined after %d tries: %s",
                  redact_uids(item.topic[:200]), ALONE_TRIES, redact_uids(reason))
        try:
            with self.sessions() as db:
                db.add(DeadLetter(topic=item.topic[:500].replace("\x00", ""),
                                  payload=item.payload, reason=reason, event_id=eid,
                                  node_slug=node, received_at=item.received_at))
                db.commit()
        except Exception:  # noqa: BLE001 - the payload is in the log line below, at least
            log.exception("ingest: could not store the poison message (%d bytes on %s)",
                          len(item.payload), item.topic[:200])
        if self.link is None:
            return
        try:
            if site is not None and node is not None and eid is not None:
                self.link.publish(self.topics.ack(site, node),
                                  Ack(ids=[], rejected=[eid]).encode())
        except Exception:  # noqa: BLE001 - the PUBACK below matters more
            log.exception("ingest: could not send the rejection of a poison message")
        try:
            self.link.ack(item.mid, item.qos, item.generation)
        except Exception:  # noqa: BLE001
            log.exception("ingest: could not acknowledge a poison message")
