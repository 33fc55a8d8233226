"""Event handlers: what each stored node event does to the records (sessions, refusals, sign-offs).

The ingest (`server.messaging.ingest`) decodes, deduplicates and stores an event, then calls the
handler of its type here. Sessions are rebuilt from their started / heartbeat / ended events in
any order; the rules that are not about the wire (who may sign whom off, which badge is unknown)
are services (`server.services.trainings.sign_off`, `server.services.members`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from protocol import Event as EventMsg
from server.messaging import session_rows
from server.messaging.session_rows import SessionRow
from server.models import Badge, Member, Node, PendingEnrolment, UsageSession
from server.services import (
    energy,
    enrolment,
    members,
    notices,
    notifications,
    refusals,
    trainings,
    usage,
)

log = logging.getLogger(__name__)

_TRUSTED_FROM = datetime(2020, 1, 1, tzinfo=UTC)  # contract 6, "Plausibility"


@dataclass
class BatchCache:
    """Rows looked up once per batch on the fast path (its sessions are plain `SessionRow`s,
    written with Core at the end of the batch: `server.messaging.session_rows`)."""

    nodes: dict[tuple[str, str], Node | None] = field(default_factory=dict)
    sessions: dict[str, SessionRow] = field(default_factory=dict)
    sessions_loaded: set[str] = field(default_factory=set)
    badge_members: dict[str, int | None] = field(default_factory=dict)
    members: set[int] | None = None  # ids named by the batch's events that exist (None: unknown)
    watched: set[int] | None = None  # machines with open watch requests (None: not asked yet)
    refusals: refusals.Lookups | None = None  # badges and trainings of the batch's refusals
    waits: list[PendingEnrolment] | None = None  # open pending enrolments (None: not asked yet)


class EventHandlers:
    """The per-type handlers; the ingest's fast path sets `_cache` for the batch it handles.

    The ingest sets `_received_at` before each handler call: the plausibility rules
    (`server.services.usage`) judge a node's wall-clock times against the receive time."""

    _cache: BatchCache | None = None
    _received_at: datetime | None = None
    max_session_s: float = usage.DEFAULT_MAX_SESSION_S

    def _received(self, msg: EventMsg) -> datetime:
        return self._received_at if self._received_at is not None else msg.ts

    def _member_id(self, db: Session, data: dict[str, Any]) -> int | None:
        member = data.get("member")
        cache = self._cache
        if isinstance(member, int) and not isinstance(member, bool):
            known = cache.members if cache is not None else None
            if (member in known) if known is not None else db.get(Member, member) is not None:
                return member
        uid = data.get("uid")
        if not uid:
            return None
        if cache is not None and uid in cache.badge_members:
            return cache.badge_members[uid]
        found = db.scalar(select(Badge.member_id).where(Badge.uid == uid))
        if cache is not None:
            cache.badge_members[uid] = found
        return found

    def _session_row(self, db: Session, node: Node, msg: EventMsg,
                     place: usage.Placement) -> UsageSession | SessionRow:
        """The session of this uuid, created if new (race-safe across workers); only the node
        that created a session may change it (raises EventRefused otherwise)."""
        sid = msg.data["session"]
        cache = self._cache
        found: UsageSession | SessionRow | None
        if cache is not None:  # fast path: plain rows, loaded for the batch at once
            if sid not in cache.sessions and sid not in cache.sessions_loaded:
                cache.sessions.update(session_rows.load(db, [sid]))
                cache.sessions_loaded.add(sid)
            found = cache.sessions.get(sid)
        else:
            found = db.scalar(select(UsageSession).where(UsageSession.session_uuid == sid))
        if found is not None:
            usage.check_owner(found.node_id, node.id, sid)
            return found
        values = {"session_uuid": sid, "machine_id": node.machine.id if node.machine else None,
                  "node_id": node.id, "member_id": self._member_id(db, msg.data),
                  "badge_uid": msg.data["uid"], "started_at": place.started,
                  "clock_untrusted": place.untrusted}
        if cache is not None:
            # fast path: inserted at the end of the batch; a race with another worker raises
            # IntegrityError there, and the slow path redoes the batch with savepoints
            new = SessionRow.new(**values)
            cache.sessions[sid] = new
            return new
        row = UsageSession(**values)
        try:
            with db.begin_nested():
                db.add(row)
                db.flush()
        except IntegrityError:
            found = db.scalar(select(UsageSession).where(UsageSession.session_uuid == sid))
            if found is None:
                raise
            usage.check_owner(found.node_id, node.id, sid)
            return found
        return row

    def _on_started(self, db: Session, node: Node, msg: EventMsg) -> None:
        place = usage.place_at(msg, self._received(msg))
        row = self._session_row(db, node, msg, place)
        row.has_started_event = True
        if (not row.has_ended_event and row.end_reason is None and not place.untrusted
                and not row.clock_untrusted and place.started < row.started_at):
            row.started_at = place.started
        notifications.on_event(db, node, msg)

    def _on_heartbeat(self, db: Session, node: Node, msg: EventMsg) -> None:
        usage.check_durations(msg, self.max_session_s)
        elapsed = float(msg.data["elapsed_s"])
        active = float(msg.data["active_s"])
        place = usage.place_at(msg, self._received(msg), elapsed)
        row = self._session_row(db, node, msg, place)
        if row.has_ended_event:
            return
        if row.elapsed_s is None or elapsed >= row.elapsed_s:
            row.elapsed_s = elapsed
            row.active_s = max(active, row.active_s or 0.0)
            row.last_heartbeat_at = msg.ts if not place.untrusted else self._received(msg)
        if msg.data.get("power_w") is not None:
            energy.record_power(db, node, msg.data["power_w"], self._received(msg))
        if row.end_reason == "lost":  # still lost, but with the better duration
            row.duration_s = row.elapsed_s
            row.ended_at = row.started_at + timedelta(seconds=row.elapsed_s or 0.0)

    def _on_ended(self, db: Session, node: Node, msg: EventMsg) -> None:
        place = usage.place_ended(msg, self._received(msg), self.max_session_s)
        row = self._session_row(db, node, msg, place)
        row.started_at = place.started
        row.ended_at = place.ended
        row.clock_untrusted = place.untrusted
        row.duration_s = float(msg.data["duration_s"])
        row.active_s = float(msg.data["active_s"])
        row.elapsed_s = row.duration_s
        row.end_reason = msg.data["reason"]
        row.has_ended_event = True
        row.energy_wh = energy.energy_of(msg)
        if row.member_id is None:
            row.member_id = self._member_id(db, msg.data)
        notifications.on_event(db, node, msg, watched=lambda: self._watched(db))

    def _watched(self, db: Session) -> set[int]:
        """Machines with open watch requests: once per batch on the fast path."""
        cache = self._cache
        if cache is None:
            return notices.watched_machines(db)
        if cache.watched is None:
            cache.watched = notices.watched_machines(db)
        return cache.watched

    def _on_denied(self, db: Session, node: Node, msg: EventMsg) -> None:
        now = datetime.now(UTC)
        # the explanation is about the tap's time; a node clock far off is not believed
        at = msg.ts if _TRUSTED_FROM <= msg.ts <= now + timedelta(days=1) else now
        cache = self._cache
        lookups = cache.refusals if cache is not None else None
        refusals.record(db, msg.id, node, msg.data, at, lookups)
        if msg.data.get("reason") == "unknown_badge":
            uid = msg.data["uid"]
            if cache is not None and cache.waits is None:
                cache.waits = enrolment.open_waits(db, now)  # once per batch, not per refusal
            badge = enrolment.honour_pending(db, uid, node, now,
                                             cache.waits if cache is not None else None)
            if badge is None:
                enrolled = uid in lookups.badges if lookups is not None else None
                members.record_unknown_badge(db, uid, node.id, msg.ts, enrolled=enrolled)
            elif cache is not None:
                cache.waits = None  # one was taken: ask again next time
                if lookups is not None:
                    lookups.add_badge(badge)
        notifications.on_event(db, node, msg)

    def _on_unexpected_on(self, db: Session, node: Node, msg: EventMsg) -> None:
        energy.record_unexpected_on(db, node, msg.data, self._received(msg))

    def _on_signed(self, db: Session, node: Node, msg: EventMsg) -> None:
        trainings.sign_off(db, msg.id, node, msg.data["trainer_uid"], msg.data["trainee_uid"],
                           at=msg.ts)


HANDLERS: dict[str, Callable[[Any, Session, Node, EventMsg], None]] = {
    "session.started": EventHandlers._on_started,
    "session.heartbeat": EventHandlers._on_heartbeat,
    "session.ended": EventHandlers._on_ended,
    "badge.denied": EventHandlers._on_denied,
    "training.signed": EventHandlers._on_signed,
    "actuator.unexpected_on": EventHandlers._on_unexpected_on,
}

