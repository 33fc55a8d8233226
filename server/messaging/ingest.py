"""MQTT ingest: node events and statuses into the database, exactly once.

Design (docs/server.md has the long version):

* paho's network thread only queues each message; one writer thread takes up
  to `batch_max` messages or `batch_ms` milliseconds of them and handles the
  batch in one transaction, each message inside a savepoint.
* After the commit, and only then, every message of the batch is acknowledged
  to the broker (manual PUBACK) and an `ack` `{ids, rejected}` is published
  per node. A crash before that leaves the messages unacknowledged in the
  broker's persistent session: they come again, and the unique `event_id`
  turns the replay into a duplicate, which is acknowledged too.
* Any exception while handling one message (decoder, rules, a handler bug,
  `RecursionError`, anything) dead-letters that message with its reason and
  the batch goes on; it is acknowledged under `rejected` when the payload had
  a readable event id (`protocol.peek_id`, which never raises). What still
  escapes a batch goes to `isolation.Resilience`: retried while the database
  is down, split, then quarantined as `poison` if one message keeps failing
  alone with the database up. No message is retried forever.
* Plausibility and identity (contract section 6) are `server.services.usage`:
  implausible durations are rejected; untrusted wall-clock times are placed
  from the receive time and flagged; only a session's own node may change it.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import String, any_, bindparam, select, tuple_
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.exc import (
    DBAPIError,
    IntegrityError,
    InterfaceError,
    OperationalError,
    SQLAlchemyError,
)
from sqlalchemy.orm import Session, contains_eager, joinedload, sessionmaker

from protocol import Ack, ProtocolError, Status, TopicParts, Topics, load_object, parse_ts, peek_id
from protocol import Event as EventMsg
from server import services
from server.messaging import session_rows
from server.messaging.handlers import HANDLERS, BatchCache, EventHandlers
from server.messaging.isolation import Resilience, describe, identity
from server.models import (
    DeadLetter,
    Event,
    Member,
    Node,
    Site,
    UsageSession,
)
from server.services import billing, energy, refusals, usage
from server.services.personal import redact_uids

log = logging.getLogger(__name__)

SKEW_LIMIT = timedelta(minutes=5)
ACL_RESEND_AFTER = timedelta(seconds=5)
BATCH_GAP_S = 0.003  # a pause this long in the flow closes the batch early


@dataclass(slots=True)
class Incoming:
    """One received MQTT message, kept until its batch is committed."""

    topic: str
    payload: bytes
    mid: int
    qos: int
    received_at: datetime
    generation: int | None = None  # the MQTT connection it came in on


@dataclass
class Outcome:
    """What to tell whom once the batch is committed."""

    site: str | None = None
    node: str | None = None
    event_id: str | None = None
    accepted: bool = False
    rejected: bool = False


@dataclass
class IngestStats:
    received: int = 0
    stored: int = 0
    duplicates: int = 0
    dead_letters: int = 0
    statuses: int = 0
    batches: int = 0
    db_errors: int = 0
    by_reason: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def as_dict(self) -> dict[str, Any]:
        return {"received": self.received, "stored": self.stored,
                "duplicates": self.duplicates, "dead_letters": self.dead_letters,
                "statuses": self.statuses, "batches": self.batches, "db_errors": self.db_errors}


class _Rejected(Exception):
    """Internal: this message goes to the dead-letter table with `reason`."""

    def __init__(self, reason: str, site: str | None = None, node: str | None = None,
                 event_id: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.site = site
        self.node = node
        self.event_id = event_id


_PG_INSERT_EVENTS = (
    "INSERT INTO events (event_id, node_id, node_slug, type, ts, received_at, boot, seq, data, "
    "skew_s, clock_skewed) "
    "SELECT * FROM unnest(%(event_id)s::varchar[], %(node_id)s::int[], %(node_slug)s::varchar[], "
    "%(type)s::varchar[], %(ts)s::timestamp[], %(received_at)s::timestamp[], "
    "%(boot)s::varchar[], %(seq)s::bigint[], %(data)s::text[]::json[], "
    "%(skew_s)s::float8[], %(clock_skewed)s::bool[]) "
    "ON CONFLICT (event_id) DO NOTHING RETURNING event_id")


def _naive_utc(t: datetime) -> datetime:
    return t.astimezone(UTC).replace(tzinfo=None) if t.tzinfo else t


_EVENT_COLUMNS = ("event_id", "node_id", "node_slug", "type", "ts", "received_at", "boot",
                  "seq", "data", "skew_s", "clock_skewed")
_SQLITE_INSERT_EVENTS = (
    f"INSERT INTO events ({', '.join(_EVENT_COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in _EVENT_COLUMNS)}) ON CONFLICT (event_id) DO NOTHING")


def _pg_insert_events(db: Session, rows: list[tuple[Any, ...]]) -> set[str]:
    """The batch's events in one INSERT of column arrays (unnest): a statement of constant text,
    which psycopg parses once, where a multi-row VALUES of 500 rows is 150 kB to parse each
    time (a third of the ingest's CPU on PostgreSQL)."""
    cols = dict(zip(_EVENT_COLUMNS, (list(c) for c in zip(*rows, strict=True)), strict=True))
    result = db.connection().exec_driver_sql(_PG_INSERT_EVENTS, cols)
    return {row[0] for row in result}


def _sqlite_insert_events(db: Session, rows: dict[str, tuple[Any, ...]]) -> set[str]:
    """The batch's events through the driver's `executemany` (its loop is in C): the writer
    holds SQLite's write lock from BEGIN IMMEDIATE and has just read which ids are stored, so
    every row it inserts is new; a count that disagrees (it cannot, short of a bug) makes
    the batch go the slow way, message by message."""
    params = [(*r[:4], _sqlite_time(r[4]), _sqlite_time(r[5]), *r[6:]) for r in rows.values()]
    result = db.connection().exec_driver_sql(_SQLITE_INSERT_EVENTS, params)
    if result.rowcount != len(params):
        raise RuntimeError(f"{result.rowcount} of {len(params)} new events inserted")
    return set(rows)


def _sqlite_time(t: datetime) -> str:
    """A naive UTC datetime as SQLAlchemy's SQLite DATETIME stores it (always 6 digits, so
    that stored times compare as text)."""
    return t.isoformat(" ", "microseconds")


def _is_retryable(exc: BaseException) -> bool:
    """A database problem (connection, lock, deadlock) worth retrying, not a bad message.

    DataError/IntegrityError/ProgrammingError come from what a message holds: retrying
    would loop forever, so those go to the per-message path and end as dead letters.
    """
    if isinstance(exc, OperationalError | InterfaceError):
        return True
    if isinstance(exc, DBAPIError):  # its text holds the parameters: a payload could say anything
        return bool(exc.connection_invalidated)
    return isinstance(exc, SQLAlchemyError) and "connection" in str(exc).lower()


class Ingest(EventHandlers):
    """Turns MQTT messages into rows. `handle_batch` is usable without MQTT (tests, fuzzing)."""

    def __init__(self, sessions: sessionmaker[Session], topics: Topics, link: Any = None, *,
                 batch_max: int = 500, batch_ms: float = 20.0,
                 max_session_s: float | None = None) -> None:
        self.sessions = sessions
        self.topics = topics
        self.link = link
        self.batch_max = batch_max
        self.batch_ms = batch_ms
        self.max_session_s = usage.max_session_s() if max_session_s is None else max_session_s
        self.stats = IngestStats()
        # paho's thread puts, the writer takes: C's SimpleQueue costs a fraction of Queue's
        # lock and conditions per message (thousands a second)
        self.queue: queue.SimpleQueue[Incoming] = queue.SimpleQueue()
        self._stop = threading.Event()
        self.resilience = Resilience(sessions, topics, link, self.process, self._stop,
                                     is_db_error=_is_retryable, on_db_error=self._count_db_error)
        self._thread: threading.Thread | None = None
        self._last_stats_log = time.monotonic()
        self._cache: BatchCache | None = None

    # ------------------------------------------------------------ MQTT wiring

    def attach(self, *, shared_group: str | None = None, events: bool = True,
               statuses: bool = True) -> None:
        """Subscribe the link to node events and statuses (events optionally shared)."""
        assert self.link is not None
        self.link.on_message = self.on_message
        if events:
            topic = self.topics.wildcard("event")
            self.link.subscribe(f"$share/{shared_group}/{topic}" if shared_group else topic)
        if statuses:
            self.link.subscribe(self.topics.wildcard("status"))

    def on_message(self, msg: Any) -> None:
        """paho network thread: queue only (the writer does the work)."""
        self.queue.put(Incoming(topic=msg.topic, payload=bytes(msg.payload), mid=msg.mid,
                                qos=msg.qos, received_at=datetime.now(UTC),
                                generation=getattr(self.link, "generation", None)))

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="ingest-writer", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Finish the batch in hand (committed and acknowledged), then stop."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _take_batch(self) -> list[Incoming]:
        try:
            first = self.queue.get(timeout=0.2)
        except queue.Empty:
            return []
        batch = [first]
        deadline = time.monotonic() + self.batch_ms / 1000.0
        while len(batch) < self.batch_max:
            # Stop at the deadline, or as soon as messages stop flowing for a moment: the
            # broker sends no more than its in-flight window until we acknowledge.
            remaining = min(deadline - time.monotonic(), BATCH_GAP_S)
            try:
                batch.append(self.queue.get(timeout=remaining) if remaining > 0
                             else self.queue.get_nowait())
            except queue.Empty:
                break
        return batch

    @property
    def retry_base_s(self) -> float:
        """First delay before a failed batch is retried (doubles up to 10 s)."""
        return self.resilience.base_delay_s

    @retry_base_s.setter
    def retry_base_s(self, value: float) -> None:
        self.resilience.base_delay_s = value

    @property
    def retrying(self) -> bool:
        """A batch in hand failed and is being retried (or split)."""
        return self.resilience.retrying

    def _count_db_error(self) -> None:
        self.stats.db_errors += 1

    def _run(self) -> None:
        while not self._stop.is_set():
            batch = self._take_batch()
            if not batch:
                continue
            self.resilience.run(batch)  # unacknowledged only on stop: redelivered after restart
            self._maybe_log_stats()

    def _maybe_log_stats(self) -> None:
        if time.monotonic() - self._last_stats_log >= 60:
            self._last_stats_log = time.monotonic()
            log.info("ingest: %s", self.stats.as_dict())

    # ------------------------------------------------------------ batch

    def process(self, batch: list[Incoming]) -> list[Outcome]:
        """Handle, commit, then acknowledge (PUBACK and `ack` messages)."""
        outcomes = self.handle_batch(batch)
        if self.link is not None:
            self._send_acks(outcomes)
            self.link.ack_many([(item.mid, item.qos, item.generation) for item in batch])
        return outcomes

    def handle_batch(self, batch: list[Incoming]) -> list[Outcome]:
        """One transaction for the batch; raises (after rollback) on database errors.

        The fast path does a few statements per batch (one lookup of known ids, one
        multi-row INSERT … ON CONFLICT DO NOTHING, cached nodes and sessions). If
        anything unexpected happens there (a race with another worker, a bug on odd
        data), the batch is rolled back and redone message by message, each in a
        savepoint, so one bad message never blocks the others.
        """
        try:
            outcomes = self._fast_batch(batch)
        except Exception as exc:
            if _is_retryable(exc):
                raise
            log.info("ingest: fast path gave up on a batch of %d (%s: %s); "
                     "redoing it message by message", len(batch), type(exc).__name__, exc)
            outcomes = self._slow_batch(batch)
        self.stats.batches += 1
        return outcomes

    def _slow_batch(self, batch: list[Incoming]) -> list[Outcome]:
        outcomes: list[Outcome] = []
        self._cache = None
        with self.sessions() as db:
            try:
                for item in batch:
                    outcomes.append(self._handle_one(db, item))
                db.commit()
            except BaseException:
                db.rollback()
                raise
        return outcomes

    def _fast_batch(self, batch: list[Incoming]) -> list[Outcome]:
        outcomes: list[Outcome | None] = [None] * len(batch)
        pending: list[tuple[int, Incoming, Node, EventMsg]] = []
        counted = 0
        # counted again when the batch is redone message by message
        before = (self.stats.dead_letters, self.stats.stored, self.stats.duplicates)
        reasons_before = dict(self.stats.by_reason)
        with self.sessions() as db:
            self._cache = BatchCache()
            try:
                topics = [self._parse_topic(item.topic) for item in batch]
                self._preload_nodes(db, [t for t in topics if not isinstance(t, ProtocolError)])
                for i, item in enumerate(batch):
                    counted += 1
                    try:
                        parts = topics[i]
                        if isinstance(parts, ProtocolError):
                            raise parts
                        if parts.kind == "event":
                            node, msg = self._check_event(db, item, parts.site, parts.node)
                            pending.append((i, item, node, msg))
                        elif parts.kind == "status":
                            outcomes[i] = self._status(db, item, parts.site, parts.node)
                        else:
                            raise _Rejected(f"not an inbound topic kind: {parts.kind}",
                                            parts.site, parts.node)
                    except ProtocolError as exc:
                        outcomes[i] = self._dead_letter(db, item, _Rejected(f"bad topic: {exc}"))
                    except _Rejected as rejected:
                        outcomes[i] = self._dead_letter(db, item, rejected)
                    # anything else goes up: the batch is redone message by message below
                inserted = self._insert_events(db, pending)
                new = [m for _, _, _, m in pending if m.id in inserted]
                self._preload_sessions(db, new)
                self._preload_members(db, new)
                self._preload_refusals(db, new)
                # Sessions of this batch are found through the cache, so lookups need not
                # flush first: the batch's session rows are written once, at the commit
                # (autoflush cost ~40 % of the ingest's CPU per event).
                with db.no_autoflush:
                    for i, item, node, msg in pending:
                        outcomes[i] = Outcome(site=node.site.slug, node=node.slug,
                                              event_id=msg.id, accepted=True)
                        if msg.id in inserted:
                            inserted.discard(msg.id)  # a second copy in the batch is a dup
                            self.stats.stored += 1
                            handler = HANDLERS.get(msg.type)
                            if handler is not None:
                                # a refusal here (identity) redoes the batch with savepoints
                                self._received_at = item.received_at
                                handler(self, db, node, msg)
                        else:
                            self.stats.duplicates += 1
                self._write_sessions(db)
                db.commit()
            except BaseException:
                db.rollback()
                self.stats.dead_letters, self.stats.stored, self.stats.duplicates = before
                self.stats.by_reason.clear()
                self.stats.by_reason.update(reasons_before)
                raise
            finally:
                self._cache = None
        self.stats.received += counted
        return [o if o is not None else Outcome() for o in outcomes]

    def _insert_events(self, db: Session,
                       pending: list[tuple[int, Incoming, Node, EventMsg]]) -> set[str]:
        """Insert the batch's new events at once; returns the ids this call stored."""
        if not pending:
            return set()
        ids = list({m.id for _, _, _, m in pending})
        dialect = db.get_bind().dialect.name
        if dialect == "postgresql":  # one array parameter, not one placeholder per id
            known = set(db.scalars(select(Event.event_id).where(
                Event.event_id == any_(bindparam("ids", ids, type_=ARRAY(String))))))
        else:
            known = set(db.scalars(select(Event.event_id).where(Event.event_id.in_(ids))))
        rows: dict[str, tuple[Any, ...]] = {}
        limit = SKEW_LIMIT.total_seconds()
        for _, item, node, msg in pending:
            if msg.id in known or msg.id in rows:
                continue
            skew = (item.received_at - msg.ts).total_seconds()
            skewed = abs(skew) > limit
            if skewed:
                log.warning("node %s clock skew %.0f s (event %s)", node.slug, skew, msg.id)
            rows[msg.id] = (msg.id, node.id, node.slug, msg.type, _naive_utc(msg.ts),
                            _naive_utc(item.received_at), msg.boot, msg.seq,
                            msg.data_json if msg.data_json is not None else json.dumps(msg.data),
                            skew, skewed)
        if not rows:
            return set()
        if dialect == "postgresql":
            return _pg_insert_events(db, list(rows.values()))
        if dialect != "sqlite":  # pragma: no cover - only SQLite and PostgreSQL are supported
            raise RuntimeError(f"unsupported database {dialect}")
        return _sqlite_insert_events(db, rows)

    def _parse_topic(self, topic: str) -> TopicParts | ProtocolError:
        """The parsed topic, or the error saying why it is not one of ours (once per message)."""
        try:
            return self.topics.parse(topic)
        except ProtocolError as exc:
            return exc

    def _preload_nodes(self, db: Session, topics: list[TopicParts]) -> None:
        """The batch's nodes, with their site and machine, in one query (not one per node and
        two lazy loads each)."""
        cache = self._cache
        assert cache is not None
        pairs = {(t.site, t.node) for t in topics}
        if not pairs:
            return
        q = (select(Node).join(Site, Node.site_id == Site.id)
             .where(tuple_(Site.slug, Node.slug).in_(sorted(pairs)))
             .options(contains_eager(Node.site), joinedload(Node.machine)))
        for node in db.scalars(q).unique():
            cache.nodes[(node.site.slug, node.slug)] = node
        for pair in pairs:
            cache.nodes.setdefault(pair, None)

    def _preload_members(self, db: Session, msgs: list[EventMsg]) -> None:
        """Which member ids named by the batch's session events exist, in one query."""
        cache = self._cache
        assert cache is not None
        ids = {m.data["member"] for m in msgs if m.type.startswith("session.")
               and isinstance(m.data.get("member"), int)
               and not isinstance(m.data.get("member"), bool)}
        cache.members = set(db.scalars(select(Member.id).where(Member.id.in_(sorted(ids))))) \
            if ids else set()

    def _preload_refusals(self, db: Session, msgs: list[EventMsg]) -> None:
        """Badges and trainings that explain the batch's refusals, in a few queries."""
        cache = self._cache
        assert cache is not None
        denied = [m for m in msgs if m.type == "badge.denied"]
        if not denied:
            return
        uids = {str(m.data.get("uid") or "")[:20] for m in denied} - {""}
        machines = {node.machine.id for node in cache.nodes.values()
                    if node is not None and node.machine is not None}
        cache.refusals = refusals.Lookups(db, uids, machines)

    def _preload_sessions(self, db: Session, msgs: list[EventMsg]) -> None:
        """The batch's sessions as plain rows, in one query (written back by `_write_sessions`)."""
        cache = self._cache
        assert cache is not None
        sids = {m.data["session"] for m in msgs if m.type.startswith("session.")
                and isinstance(m.data.get("session"), str)}
        cache.sessions.update(session_rows.load(db, sids))
        cache.sessions_loaded = sids

    def _write_sessions(self, db: Session) -> None:
        """The batch's session changes in a few statements, then their charges.

        Pricing follows the sessions whoever writes them: the ORM listener of
        `services.billing` does it for ORM writes, this for the fast path's Core writes. An ORM
        copy of a written session (a status of the batch closed it as lost) is expired, so
        that nothing reads or prices its older state."""
        cache = self._cache
        assert cache is not None
        priced = session_rows.write(db, cache.sessions.values())
        written = {row.id for row in cache.sessions.values()}
        for obj in list(db.identity_map.values()):
            if isinstance(obj, UsageSession) and obj.id in written:
                db.expire(obj)
        if priced:
            billing.settle(db, priced)

    def _handle_one(self, db: Session, item: Incoming) -> Outcome:
        self.stats.received += 1
        try:
            with db.begin_nested():
                return self._dispatch(db, item)
        except _Rejected as rejected:
            return self._dead_letter(db, item, rejected)
        except usage.EventRefused as refused:  # a rule of services/usage.py, in a handler
            return self._dead_letter(db, item, _Rejected(refused.reason, *self._identity(item)))
        except Exception as exc:  # any other failure of this one message: it alone is dropped
            if _is_retryable(exc):
                raise
            # the exception's text may quote the payload: no UID at WARNING, the traceback at
            # DEBUG only (issue 13)
            log.warning("ingest: unexpected error on %s; dead-lettered: %s",
                        redact_uids(item.topic[:200]), redact_uids(describe(exc)))
            log.debug("ingest: the unexpected error", exc_info=not isinstance(exc, RecursionError))
            internal = _Rejected(f"internal error: {describe(exc)}", *self._identity(item))
            return self._dead_letter(db, item, internal)

    def _identity(self, item: Incoming) -> tuple[str | None, str | None, str | None]:
        """(site, node, event id) of a message, as far as they can be read; never raises."""
        return identity(self.topics, item)

    def _dead_letter(self, db: Session, item: Incoming, rej: _Rejected) -> Outcome:
        self.stats.dead_letters += 1
        self.stats.by_reason[rej.reason.split(":")[0]] += 1
        log.warning("ingest: dead letter on %s: %s", redact_uids(item.topic[:200]),
                    redact_uids(rej.reason))
        exists = rej.event_id is not None and db.scalar(
            select(DeadLetter.id).where(DeadLetter.event_id == rej.event_id).limit(1))
        if not exists:
            db.add(DeadLetter(topic=item.topic[:500], payload=item.payload, reason=rej.reason,
                              event_id=rej.event_id, node_slug=rej.node,
                              received_at=item.received_at))
            db.flush()
        return Outcome(site=rej.site, node=rej.node, event_id=rej.event_id,
                       rejected=rej.event_id is not None)

    def _send_acks(self, outcomes: Iterable[Outcome]) -> None:
        per_node: dict[tuple[str, str], Ack] = {}
        for o in outcomes:
            if o.site is None or o.node is None or o.event_id is None:
                continue
            ack = per_node.setdefault((o.site, o.node), Ack(ids=[], rejected=[]))
            if o.accepted:
                ack.ids.append(o.event_id)
            elif o.rejected:
                ack.rejected.append(o.event_id)
        for (site, node), ack in per_node.items():
            self.link.publish(self.topics.ack(site, node), ack.encode())

    # ------------------------------------------------------------ dispatch

    def _dispatch(self, db: Session, item: Incoming) -> Outcome:
        try:
            parts = self.topics.parse(item.topic)
        except ProtocolError as exc:
            raise _Rejected(f"bad topic: {exc}") from None
        if parts.kind == "status":
            return self._status(db, item, parts.site, parts.node)
        if parts.kind == "event":
            return self._event(db, item, parts.site, parts.node)
        raise _Rejected(f"not an inbound topic kind: {parts.kind}", parts.site, parts.node)

    def _registered_node(self, db: Session, site: str, node_slug: str,
                         event_id: str | None) -> Node:
        cache = self._cache
        key = (site, node_slug)
        if cache is not None and key in cache.nodes:
            node = cache.nodes[key]
        else:
            node = db.scalar(select(Node).join(Site, Node.site_id == Site.id)
                             .where(Node.slug == node_slug, Site.slug == site))
            if cache is not None:
                cache.nodes[key] = node
        if node is None or node.revoked_at is not None:
            raise _Rejected(f"node not registered: {node_slug!r} of site {site!r}", site,
                            node_slug, event_id)
        return node

    # ------------------------------------------------------------ status

    def _status(self, db: Session, item: Incoming, site: str, node_slug: str) -> Outcome:
        if not item.payload:
            return Outcome()  # a retained status being cleared
        try:
            status = Status.decode(item.payload)
        except ProtocolError as exc:
            raise _Rejected(f"invalid status: {exc}", site, node_slug) from None
        if status.node != node_slug:
            raise _Rejected(f"topic/payload mismatch: status of {status.node!r} on "
                            f"{node_slug!r}'s topic", site, node_slug)
        node = self._registered_node(db, site, node_slug, None)
        self.stats.statuses += 1
        raw = load_object(item.payload, "status")  # the bounded reader, as Status.decode
        if status.online and status.ts is not None and isinstance(node.last_status, dict):
            prev_ts = node.last_status.get("ts")
            try:
                if node.last_status.get("online") and prev_ts and parse_ts(prev_ts) > status.ts:
                    return Outcome()  # an older status delivered late
            except ProtocolError:
                pass
        node.last_seen = item.received_at
        services.notifications.on_status(db, node, status.online)
        node.online = status.online
        node.last_status = raw
        if not status.online:
            node.state = status.state
            return Outcome()
        node.state = status.state
        node.relay = status.relay
        node.acl_version = status.acl_version
        node.software = status.software
        node.clock_ok = status.clock_ok
        energy.record_status(db, node, raw, item.received_at)
        self._close_lost_sessions(db, node, status)
        if self._acl_outdated(node, item.received_at):
            services.mark_nodes_dirty(db, [node.id], "status.acl_version")
        db.flush()
        return Outcome()

    @staticmethod
    def _acl_outdated(node: Node, now: datetime) -> bool:
        if node.acl_published_version is None:
            return False  # never published: the publisher will, on its own
        if node.acl_version is not None and node.acl_version >= node.acl_published_version:
            return False
        return node.acl_published_at is None or now - node.acl_published_at >= ACL_RESEND_AFTER

    def _close_lost_sessions(self, db: Session, node: Node, status: Status) -> None:
        """Open sessions of this node that its status no longer shows are `lost`."""
        current = status.session.id if status.session else None
        stmt = select(UsageSession).where(UsageSession.node_id == node.id,
                                          UsageSession.ended_at.is_(None))
        if current is not None:
            stmt = stmt.where(UsageSession.session_uuid != current)
        if status.ts is not None:
            stmt = stmt.where(UsageSession.started_at < status.ts)
        for sess in db.scalars(stmt):
            elapsed = sess.elapsed_s or 0.0
            sess.ended_at = sess.started_at + timedelta(seconds=elapsed)
            sess.duration_s = elapsed
            sess.active_s = sess.active_s or 0.0
            sess.end_reason = "lost"
            log.info("session %s on %s closed as lost", sess.session_uuid, node.slug)

    # ------------------------------------------------------------ events

    def _check_event(self, db: Session, item: Incoming, site: str,
                     node_slug: str) -> tuple[Node, EventMsg]:
        try:
            msg = EventMsg.decode(item.payload)
        except ProtocolError as exc:  # peek_id walks bytes, never a recursive parser
            raise _Rejected(f"invalid event: {exc}", site, node_slug,
                            peek_id(item.payload)) from None
        if msg.node != node_slug:
            raise _Rejected(f"topic/payload mismatch: event of {msg.node!r} on {node_slug!r}'s "
                            "topic", site, node_slug, msg.id)
        if msg.data_json is None:  # the fast decoder vouches for its own text; check the rest
            try:  # what JSON columns cannot store (PostgreSQL refuses NaN and NUL characters)
                msg.data_json = json.dumps(msg.data, allow_nan=False)
            except ValueError:
                raise _Rejected("invalid event: data holds a non-finite number", site,
                                node_slug, msg.id) from None
            if "\\u0000" in msg.data_json:
                raise _Rejected("invalid event: data holds a NUL character", site, node_slug,
                                msg.id)
        if not 0 <= msg.seq < 2**63:
            raise _Rejected("invalid event: seq out of range", site, node_slug, msg.id)
        member = msg.data.get("member") if msg.known else None
        if isinstance(member, int) and not 0 < member < 2**31:
            raise _Rejected("invalid event: data field 'member' is not a member id", site,
                            node_slug, msg.id)
        try:  # plausibility (contract section 6) before anything is written
            if msg.type == "session.ended":
                usage.place_ended(msg, item.received_at, self.max_session_s)
            else:
                usage.check_durations(msg, self.max_session_s)
            energy.check_energy(msg)
        except usage.EventRefused as refused:
            raise _Rejected(refused.reason, site, node_slug, msg.id) from None
        return self._registered_node(db, site, node_slug, msg.id), msg

    def _event(self, db: Session, item: Incoming, site: str, node_slug: str) -> Outcome:
        node, msg = self._check_event(db, item, site, node_slug)
        outcome = Outcome(site=site, node=node_slug, event_id=msg.id, accepted=True)
        if db.scalar(select(Event.id).where(Event.event_id == msg.id)) is not None:
            self.stats.duplicates += 1
            return outcome
        skew = (item.received_at - msg.ts).total_seconds()
        row = Event(event_id=msg.id, node_id=node.id, node_slug=node_slug, type=msg.type,
                    ts=msg.ts, received_at=item.received_at, boot=msg.boot, seq=msg.seq,
                    data=msg.data, skew_s=skew, clock_skewed=abs(skew) > SKEW_LIMIT.total_seconds())
        try:
            with db.begin_nested():
                db.add(row)
                db.flush()
        except IntegrityError:
            # another worker stored it between our check and our insert
            self.stats.duplicates += 1
            return outcome
        self.stats.stored += 1
        if row.clock_skewed:
            log.warning("node %s clock skew %.0f s (event %s)", node_slug, skew, msg.id)
        handler = HANDLERS.get(msg.type)
        if handler is not None:
            self._received_at = item.received_at
            handler(self, db, node, msg)
        return outcome


__all__ = ["Incoming", "Ingest", "IngestStats", "Outcome"]
