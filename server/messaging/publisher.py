"""Access-list publisher: one retained list per node, republished within a second of a change.

Changes are found through `AclDirty` rows written in the same transaction as
the change (so a change made by the CLI in another process is seen too); the
thread polls that table every `poll_s` and wakes at once when an in-process
commit signals `services.acl_changed`. It also republishes every node when
the broker kept no session for the server, once a day, and when asked
(a node reporting an older `acl_version`). Queued remote commands
(`OutgoingCommand`) are sent on the same loop.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from protocol import Command, Topics
from server import services
from server.messaging.link import MqttLink
from server.models import AclDirty, Node, OutgoingCommand
from server.services.acl import DEFAULT_VALID_FOR, compute_acl, nodes_for

log = logging.getLogger(__name__)

COMMAND_MAX_AGE = timedelta(seconds=30)  # a node ignores older commands anyway


class AclPublisher:
    """Runs in a thread of `fabpass server`; `run_once` is the unit tests call directly."""

    def __init__(self, link: MqttLink, sessions: sessionmaker[Session], topics: Topics, *,
                 valid_for: timedelta = DEFAULT_VALID_FOR, poll_s: float = 0.2,
                 full_every_s: float = 86400.0,
                 readers: sessionmaker[Session] | None = None) -> None:
        self.link = link
        self.sessions = sessions
        # the 200 ms poll only reads: on SQLite it must not take the write lock each time
        self.readers = readers or sessions
        self.topics = topics
        self.valid_for = valid_for
        self.poll_s = poll_s
        self.full_every_s = full_every_s
        self._full_requested = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_full = time.monotonic()
        self.published = 0
        link.on_connected.append(self._on_connected)

    # ------------------------------------------------------------ control

    def _on_connected(self, session_present: bool) -> None:
        if not session_present:
            log.info("broker kept no session for us: republishing every access list")
            self.request_full()
        else:
            services.acl_changed.set()  # send anything that piled up while disconnected

    def request_full(self) -> None:
        self._full_requested.set()
        services.acl_changed.set()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="acl-publisher", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        services.acl_changed.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        backoff = 0.5
        while not self._stop.is_set():
            services.acl_changed.wait(self.poll_s)
            services.acl_changed.clear()
            if self._stop.is_set():
                break
            if not self.link.connected.is_set():
                continue
            try:
                self.run_once()
                backoff = 0.5
            except SQLAlchemyError:
                log.exception("publisher: database error; retrying in %.1f s", backoff)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 10.0)
            except Exception:
                log.exception("publisher: unexpected error")
                self._stop.wait(1.0)

    # ------------------------------------------------------------ work

    def run_once(self, now: datetime | None = None) -> int:
        """Publish what is due; returns the number of lists published."""
        now = now or datetime.now(UTC)
        count = 0
        full_due = self._full_requested.is_set() or \
            time.monotonic() - self._last_full >= self.full_every_s
        if not full_due:
            with self.readers() as db:
                idle = db.scalar(select(AclDirty.id).limit(1)) is None and db.scalar(
                    select(OutgoingCommand.id).where(OutgoingCommand.published_at.is_(None))
                    .limit(1)) is None
            if idle:
                return 0
        with self.sessions() as db:
            dirty = db.execute(select(AclDirty.id, AclDirty.node_id)).all()
            full = self._full_requested.is_set()
            if time.monotonic() - self._last_full >= self.full_every_s:
                full = True
            if any(node_id is None for _, node_id in dirty):
                full = True
            if full or dirty:
                self._full_requested.clear()
                nodes = nodes_for(db, None if full else {n for _, n in dirty if n is not None})
                for node in nodes:
                    count += self.publish_node(db, node, now)
                if dirty:
                    db.execute(delete(AclDirty).where(AclDirty.id <= max(i for i, _ in dirty)))
                if full:
                    self._last_full = time.monotonic()
                db.commit()
            self._send_commands(db, now)
        return count

    def publish_node(self, db: Session, node: Node, now: datetime) -> int:
        acl = compute_acl(db, node, now, valid_for=self.valid_for)
        if acl is None:
            return 0
        info = self.link.publish(self.topics.acl(acl.site, acl.node), acl.encode(), retain=True)
        if info.rc != 0:
            raise RuntimeError(f"publish of {node.slug}'s list failed (rc={info.rc})")
        node.acl_published_version = acl.version
        node.acl_published_at = now
        self.published += 1
        log.debug("published list v%s for %s (%d badges)", acl.version, node.slug,
                  len(acl.badges))
        return 1

    def _send_commands(self, db: Session, now: datetime) -> None:
        rows = list(db.scalars(select(OutgoingCommand).where(OutgoingCommand.published_at.is_(None))
                               .order_by(OutgoingCommand.id).limit(500)))
        if not rows:
            return
        for row in rows:
            node = db.get(Node, row.node_id)
            if node is not None and now - row.ts <= COMMAND_MAX_AGE:
                cmd = Command(id=row.command_id, ts=row.ts, cmd=row.cmd)
                self.link.publish(self.topics.cmd(node.site.slug, node.slug), cmd.encode())
            row.published_at = now
        db.commit()


__all__ = ["AclPublisher"]
