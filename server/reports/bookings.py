"""Bookings against actual use, per machine: booked hours, hours used by the booker inside
their slots, no-shows (issue 17).

A no-show is a booking whose start plus the machine's `booking_no_show_s` has passed without a
session of its member on its machine running at any time from `booking_early_s` before the
start to that limit: the same rule the node uses to release the slot.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.models import Booking, UsageSession
from server.services.bookings import live_bookings, policy_seconds
from server.services.common import now_utc


def _overlap_h(a0: datetime, a1: datetime, b0: datetime, b1: datetime) -> float:
    return max((min(a1, b1) - max(a0, b0)).total_seconds(), 0.0) / 3600.0


def booking_usage(db: Session, *, since: datetime | None = None, until: datetime | None = None,
                  site_ids: Collection[int] | None = None,
                  now: datetime | None = None) -> list[dict[str, Any]]:
    """One row per machine with bookings in [since, until): `machine` (slug), `bookings`,
    `booked_hours`, `used_hours`, `no_shows`, and `no_shows_by_member` {member id: count}."""
    now = now or now_utc()
    stmt = live_bookings(since, until, site_ids).order_by(Booking.machine_id, Booking.start)
    rows: dict[int, dict[str, Any]] = {}
    for b in db.scalars(stmt):
        m = b.machine
        row = rows.setdefault(m.id, {"machine": m.slug, "bookings": 0, "booked_hours": 0.0,
                                     "used_hours": 0.0, "no_shows": 0,
                                     "no_shows_by_member": {}})
        row["bookings"] += 1
        row["booked_hours"] += (b.end - b.start).total_seconds() / 3600.0
        sessions = db.execute(
            select(UsageSession.started_at, UsageSession.ended_at)
            .where(UsageSession.machine_id == m.id, UsageSession.member_id == b.member_id,
                   UsageSession.started_at < b.end)).all()
        spans = [(s, e or now) for s, e in sessions if (e or now) > b.start
                 - timedelta(seconds=policy_seconds(m, "booking_early_s") or 0)]
        row["used_hours"] += sum(_overlap_h(s, e, b.start, min(b.end, now)) for s, e in spans)
        limit_s = policy_seconds(m, "booking_no_show_s")
        if limit_s is not None and b.start + timedelta(seconds=limit_s) <= now:
            lo = b.start - timedelta(seconds=policy_seconds(m, "booking_early_s") or 0)
            hi = b.start + timedelta(seconds=limit_s)
            if not any(s < hi and e > lo for s, e in spans):
                row["no_shows"] += 1
                by = row["no_shows_by_member"]
                by[b.member_id] = by.get(b.member_id, 0) + 1
    out = list(rows.values())
    for r in out:
        r["booked_hours"] = round(r["booked_hours"], 2)
        r["used_hours"] = round(r["used_hours"], 2)
    return sorted(out, key=lambda r: r["machine"])
