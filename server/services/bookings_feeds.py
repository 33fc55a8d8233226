"""Secret iCal feeds of bookings (one per machine, one per member), built with `icalendar`.

The address is `/bookings/ical/<feed id>/<token>.ics`; the token is an HMAC of the feed's
random salt under the server's secret key (`BookingFeed`), so the database alone does not give
the addresses away and a new salt (`rotate_feed`) invalidates an address that leaked.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.errors import N_, NotFound
from server.models import Booking, BookingFeed
from server.services.audit import audit
from server.services.common import now_utc

FEED_PAST = timedelta(days=30)  # a calendar shows a month back and everything to come


def feed_token(feed: BookingFeed, secret_key: str) -> str:
    return hmac.new(secret_key.encode(), f"{feed.id}:{feed.salt}".encode(),
                    hashlib.sha256).hexdigest()[:40]


def get_feed(db: Session, *, machine_id: int | None = None,
             member_id: int | None = None, actor: str = "web") -> BookingFeed:
    """The current feed of this machine or member, created on first use."""
    stmt = select(BookingFeed).where(BookingFeed.revoked_at.is_(None))
    stmt = stmt.where(BookingFeed.machine_id == machine_id) if machine_id is not None else \
        stmt.where(BookingFeed.member_id == member_id, BookingFeed.machine_id.is_(None))
    feed = db.scalars(stmt.order_by(BookingFeed.id.desc())).first()
    if feed is None:
        feed = BookingFeed(machine_id=machine_id, member_id=member_id,
                           salt=secrets.token_hex(16))
        db.add(feed)
        db.flush()
        audit(db, actor, "booking_feed.create", "booking_feed", feed.id,
              {"machine_id": machine_id, "member_id": member_id})
    return feed


def rotate_feed(db: Session, feed: BookingFeed, *, actor: str) -> BookingFeed:
    feed.revoked_at = now_utc()
    audit(db, actor, "booking_feed.rotate", "booking_feed", feed.id, {})
    db.flush()
    return get_feed(db, machine_id=feed.machine_id, member_id=feed.member_id, actor=actor)


def feed_by_token(db: Session, feed_id: int, token: str, secret_key: str) -> BookingFeed:
    """The feed this address names; NotFound for a wrong, old or unknown one (no hint which)."""
    feed = db.get(BookingFeed, feed_id)
    if (feed is None or feed.revoked_at is not None
            or not hmac.compare_digest(feed_token(feed, secret_key), token)):
        raise NotFound(N_("no such calendar"))
    return feed


def feed_calendar(db: Session, feed: BookingFeed, now: datetime | None = None) -> bytes:
    """The feed as an iCalendar file (RFC 5545): one VEVENT per booking not cancelled."""
    # imported here: the library and what it pulls in (dateutil, pytz) are ~6 MiB of the
    # server's idle memory, for a page a calendar app asks for now and then (issue 21)
    from icalendar import Calendar, Event
    now = now or now_utc()
    stmt = (select(Booking).where(Booking.cancelled_at.is_(None),
                                  Booking.end > now - FEED_PAST)
            .order_by(Booking.start, Booking.id))
    if feed.machine_id is not None:
        stmt = stmt.where(Booking.machine_id == feed.machine_id)
        name = feed_name(db, feed)
    else:
        stmt = stmt.where(Booking.member_id == feed.member_id)
        name = feed_name(db, feed)
    cal = Calendar()
    cal.add("prodid", "-//fabpass//bookings//EN")
    cal.add("version", "2.0")
    cal.add("x-wr-calname", name)
    for b in db.scalars(stmt):
        ev = Event()
        ev.add("uid", f"booking-{b.id}@fabpass")
        ev.add("dtstamp", b.created_at)
        ev.add("dtstart", b.start)
        ev.add("dtend", b.end)
        who = b.member.name if feed.machine_id is None else _short(b.member.name)
        ev.add("summary", f"{b.machine.name} — {who}" + (" (training)" if b.training else ""))
        ev.add("location", b.machine.site.name)
        cal.add_component(ev)
    return bytes(cal.to_ical())


def feed_name(db: Session, feed: BookingFeed) -> str:
    from server.models import Machine, Member

    if feed.machine_id is not None:
        machine = db.get(Machine, feed.machine_id)
        return f"fabpass: {machine.name if machine else feed.machine_id}"
    member = db.get(Member, feed.member_id)
    return f"fabpass: {member.name if member else feed.member_id}"


def _short(name: str) -> str:
    """A machine's calendar is shared: first name and initial only."""
    parts = name.split()
    return name if len(parts) < 2 else f"{parts[0]} {parts[-1][0]}."


__all__ = ["feed_by_token", "feed_calendar", "feed_token", "get_feed", "rotate_feed"]
