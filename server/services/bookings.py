"""Bookings of machines (issue 17): the rules, no Flask.

Who may book is the caller's check (`server.auth`: managers of the machine's site, trainers of
the machine, a member for themself where the policy's `booking_self` allows it); this module
holds what makes a booking acceptable whoever asks:

- `end` after `start`, `end` not in the past (a `start` in the past is fine: "from now on"),
  the span at most the policy's `booking_max_s` (default 12 h);
- no overlap with another booking of the machine (409);
- not on a locked machine (409): a lock has no end, so it covers every future slot. Bookings
  made before the lock are kept and flagged (`hit_by_lock`) rather than cancelled behind the
  member's back;
- the member holds a valid training for the machine, unless the booking is the training
  itself (`training=True`, which only a trainer or manager may ask for).

Every change is audited and marks the machine's node dirty: the node's list carries the
bookings of the next 24 h (`booking_entries`), so the node enforces them offline.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from protocol import Booking as WireBooking
from protocol.acl import BOOKING_DEFAULTS
from server.errors import N_, Conflict, Invalid, NotFound
from server.models import Booking, Machine, Setting
from server.services.audit import audit
from server.services.common import (
    DEFAULT_PER_PAGE,
    Page,
    get_member,
    now_utc,
    paginate,
)
from server.services.dirty import mark_nodes_dirty
from server.services.trainings import valid_machine_ids_for

log = logging.getLogger(__name__)

LIST_WINDOW = timedelta(hours=24)  # contract: the list carries bookings overlapping the next 24 h
WINDOW_KEY = "bookings.window_end"  # Setting: up to when published lists hold bookings
SOURCE_MAX = 40
EXTERNAL_ID_MAX = 200


def policy_seconds(machine: Machine, key: str) -> float | None:
    """A booking policy key in seconds: the machine's value, `BOOKING_DEFAULTS` when absent,
    None when set to null (off)."""
    policy = machine.policy or {}
    if key in policy:
        value = policy[key]
        return None if value is None else float(value)
    return BOOKING_DEFAULTS.get(key)


def booking_mode(machine: Machine) -> str:
    return str((machine.policy or {}).get("booking") or "off")


def self_booking_allowed(machine: Machine) -> bool:
    """The machine lets members book for themselves (policy `booking_self`)."""
    return bool((machine.policy or {}).get("booking_self"))


def _time(value: Any, field: str) -> datetime:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise Invalid(N_("%(field)s needs a time zone"), {field: N_("an RFC 3339 time")},
                          {"field": field})
        return value.astimezone(UTC)
    if not isinstance(value, str) or "T" not in value.upper() or len(value.strip()) < 19:
        raise Invalid(N_("%(field)s must be an RFC 3339 time"), {field: N_("an RFC 3339 time")},
                      {"field": field})
    try:
        dt = datetime.fromisoformat(value.strip().replace("z", "Z").replace("Z", "+00:00"))
    except ValueError:
        dt = None
    if dt is None or dt.tzinfo is None or not 2000 <= dt.year <= 2200:
        raise Invalid(N_("%(field)s must be an RFC 3339 time"), {field: N_("an RFC 3339 time")},
                      {"field": field})
    return dt.astimezone(UTC)


def _overlapping(machine_id: int, start: datetime, end: datetime) -> Select[Any]:
    return select(Booking).where(Booking.machine_id == machine_id,
                                 Booking.cancelled_at.is_(None),
                                 Booking.start < end, Booking.end > start)


def check_slot(db: Session, machine: Machine, member_id: int, start: datetime, end: datetime,
               *, training: bool, now: datetime, ignore_id: int | None = None) -> None:
    """Raise the first reason this slot cannot be booked (each error names its field)."""
    if end <= start:
        raise Invalid(N_("the end must be after the start"), {"end": N_("must be after the start")})
    if end <= now:
        raise Invalid(N_("the booking is over already"), {"end": N_("must be in the future")})
    longest = policy_seconds(machine, "booking_max_s")
    if longest is not None and (end - start).total_seconds() > longest:
        raise Invalid(N_("a booking may last at most %(hours)s h"),
                      {"end": N_("too long for this machine")},
                      {"hours": f"{longest / 3600:g}"})
    if machine.locked or not machine.active:
        raise Conflict(N_("machine %(slug)s is locked (%(reason)s): no new bookings"),
                       {"slug": machine.slug, "reason": machine.lock_reason or "locked"})
    if (machine.requires_authorization and not training
            and machine.id not in valid_machine_ids_for(db, member_id, now=now)):
        raise Invalid(N_("this member is not trained on this machine"),
                      {"member_id": N_("not trained on this machine")})
    clash = db.scalars(_overlapping(machine.id, start, end).order_by(Booking.start)).first()
    if clash is not None and clash.id != ignore_id:
        raise Conflict(N_("this slot overlaps another booking (%(start)s to %(end)s)"),
                       {"start": clash.start.isoformat(), "end": clash.end.isoformat()})


def create_booking(db: Session, *, machine_id: int, member_id: int, start: Any, end: Any,
                   actor: str, source: str = "fabpass", external_id: str | None = None,
                   training: bool = False, now: datetime | None = None) -> Booking:
    """Book `machine_id` for `member_id`; the caller has checked that `actor` may."""
    now = now or now_utc()
    start_, end_ = _time(start, "start"), _time(end, "end")
    if not isinstance(source, str) or not 0 < len(source) <= SOURCE_MAX:
        raise Invalid(N_("source must be short text"), {"source": N_("1-40 characters")})
    if external_id is not None and (not isinstance(external_id, str)
                                    or not 0 < len(external_id) <= EXTERNAL_ID_MAX):
        raise Invalid(N_("external_id must be short text"),
                      {"external_id": N_("1-200 characters")})
    # Lock the machine row (PostgreSQL) so two requests cannot both find the slot free.
    machine = db.scalar(select(Machine).where(Machine.id == machine_id).with_for_update())
    if machine is None:
        raise NotFound(N_("machine %(id)s not found"), {"id": machine_id})
    member = get_member(db, member_id)
    if not member.active or member.erased_at is not None:
        raise Invalid(N_("this member is not active"), {"member_id": N_("not an active member")})
    check_slot(db, machine, member.id, start_, end_, training=bool(training), now=now)
    booking = Booking(machine_id=machine.id, member_id=member.id, start=start_, end=end_,
                      training=bool(training), source=source, external_id=external_id,
                      created_by=actor[:200], created_at=now)
    db.add(booking)
    db.flush()
    audit(db, actor, "booking.create", "booking", booking.id,
          {"machine_id": machine.id, "member_id": member.id, "start": start_.isoformat(),
           "end": end_.isoformat(), "training": bool(training), "source": source,
           "external_id": external_id})
    _changed(db, machine, start_, end_, now, "booking.create")
    db.flush()
    return booking


def get_booking(db: Session, booking_id: int) -> Booking:
    booking = db.get(Booking, booking_id)
    if booking is None:
        raise NotFound(N_("booking %(id)s not found"), {"id": booking_id})
    return booking


def find_external(db: Session, source: str, external_id: str) -> Booking | None:
    """The booking another system made under this id (cancelled ones included)."""
    return db.scalar(select(Booking).where(Booking.source == source,
                                           Booking.external_id == external_id))


def cancel_booking(db: Session, booking_id: int, *, actor: str,
                   now: datetime | None = None) -> Booking:
    """Cancel (kept for the reports); cancelling twice changes nothing."""
    now = now or now_utc()
    booking = get_booking(db, booking_id)
    if booking.cancelled_at is None:
        booking.cancelled_at = now
        booking.cancelled_by = actor[:200]
        audit(db, actor, "booking.cancel", "booking", booking.id,
              {"machine_id": booking.machine_id, "member_id": booking.member_id})
        _changed(db, booking.machine, booking.start, booking.end, now, "booking.cancel")
    db.flush()
    return booking


def _changed(db: Session, machine: Machine, start: datetime, end: datetime, now: datetime,
             reason: str) -> None:
    """Republish the node's list when the booking is inside the window lists carry (later
    ones come in with the window job)."""
    if start < now + LIST_WINDOW and end > now:
        mark_nodes_dirty(db, [machine.node_id], reason)


def list_bookings(db: Session, *, machine_id: int | None = None, member_id: int | None = None,
                  since: datetime | None = None, until: datetime | None = None,
                  site_ids: Collection[int] | None = None, machine_ids: Collection[int] | None = None,
                  page: int | None = 1, per_page: int | None = DEFAULT_PER_PAGE) -> Page[Booking]:
    """Bookings (not cancelled) overlapping [since, until), by start time."""
    stmt = select(Booking).where(Booking.cancelled_at.is_(None)).order_by(Booking.start, Booking.id)
    if machine_id is not None:
        stmt = stmt.where(Booking.machine_id == machine_id)
    if machine_ids is not None:
        stmt = stmt.where(Booking.machine_id.in_(sorted(machine_ids)))
    if member_id is not None:
        stmt = stmt.where(Booking.member_id == member_id)
    if since is not None:
        stmt = stmt.where(Booking.end > since)
    if until is not None:
        stmt = stmt.where(Booking.start < until)
    if site_ids is not None:
        stmt = stmt.where(Booking.machine_id.in_(
            select(Machine.id).where(Machine.site_id.in_(sorted(site_ids)))))
    return paginate(db, stmt, page, per_page)


def hit_by_lock(booking: Booking, now: datetime | None = None) -> bool:
    """The booking is still to come (or running) on a machine that is now locked."""
    now = now or now_utc()
    return bool(booking.machine.locked or not booking.machine.active) and booking.end > now


# ---------------------------------------------------------------- the node's list


def booking_entries(db: Session, machine: Machine, now: datetime) -> list[WireBooking]:
    """The list's `bookings`: every booking of the machine overlapping the next 24 h."""
    rows = db.scalars(_overlapping(machine.id, now, now + LIST_WINDOW)
                      .order_by(Booking.start, Booking.id))
    return [WireBooking(member=b.member_id, start=b.start, end=b.end) for b in rows]


def advance_window(db: Session, now: datetime | None = None) -> int:
    """Mark dirty the nodes whose list must now carry a booking that entered the 24 h window
    since the last run (the window end is kept in `settings`). Returns how many nodes."""
    now = now or now_utc()
    new_end = now + LIST_WINDOW
    row = db.get(Setting, WINDOW_KEY)
    old_end = None
    if row is not None:
        try:
            old_end = datetime.fromisoformat(row.value)
        except ValueError:
            old_end = None
    if old_end is None or old_end > new_end:  # first run, or a clock set back: check it all
        old_end = now
    node_ids = set(db.scalars(
        select(Machine.node_id).join(Booking, Booking.machine_id == Machine.id)
        .where(Booking.cancelled_at.is_(None), Booking.start >= old_end,
               Booking.start < new_end, Machine.node_id.is_not(None))))
    ids = {n for n in node_ids if n is not None}
    mark_nodes_dirty(db, ids, "bookings.window")
    if row is None:
        db.add(Setting(key=WINDOW_KEY, value=new_end.isoformat()))
    else:
        row.value = new_end.isoformat()
    db.flush()
    if ids:
        log.info("bookings entered the 24 h window: %d node lists to republish", len(ids))
    return len(ids)


__all__ = ["LIST_WINDOW", "advance_window", "booking_entries", "booking_mode", "cancel_booking",
           "check_slot", "create_booking", "find_external", "get_booking", "hit_by_lock",
           "list_bookings", "policy_seconds", "self_booking_allowed"]


def bookable_machines(db: Session, site_ids: Collection[int] | None,
                      site_id: int | None = None) -> list[Machine]:
    """Active machines by name, within `site_ids` (None: every site), of one site if given."""
    stmt = select(Machine).where(Machine.active.is_(True)).order_by(Machine.name)
    if site_ids is not None:
        stmt = stmt.where(Machine.site_id.in_(sorted(site_ids)))
    if site_id is not None:
        stmt = stmt.where(Machine.site_id == site_id)
    return list(db.scalars(stmt))
