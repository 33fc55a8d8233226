"""What happened: usage sessions and the payloads the ingest set aside.

One rule for a date range, used by the web sessions page and the API alike: a session is
listed when it *overlaps* [since, until) (started before `until`, and still open or ended at or
after `since`).
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session, selectinload

from server.models import (
    DeadLetter,
    Event,
    Machine,
    Site,
    UsageSession,
)
from server.services.access import machine_ids_in_sites
from server.services.common import DEFAULT_PER_PAGE, Page, get_site_by_slug, paginate


def list_sessions(db: Session, machine_id: int | None = None, member_id: int | None = None,
                  since: datetime | None = None, until: datetime | None = None,
                  open_only: bool = False, site: str | None = None, page: int | None = 1,
                  per_page: int | None = DEFAULT_PER_PAGE,
                  site_ids: Collection[int] | None = None) -> Page[UsageSession]:
    """Sessions overlapping [since, until), newest first."""
    stmt = (select(UsageSession)
            .options(selectinload(UsageSession.machine), selectinload(UsageSession.member))
            .order_by(UsageSession.started_at.desc(), UsageSession.id.desc()))
    if site_ids is not None:
        stmt = stmt.where(UsageSession.machine_id.in_(machine_ids_in_sites(site_ids)))
    if machine_id is not None:
        stmt = stmt.where(UsageSession.machine_id == machine_id)
    if member_id is not None:
        stmt = stmt.where(UsageSession.member_id == member_id)
    if until is not None:
        stmt = stmt.where(UsageSession.started_at < until)
    if since is not None:
        stmt = stmt.where(or_(UsageSession.ended_at.is_(None), UsageSession.ended_at >= since))
    if open_only:
        stmt = stmt.where(UsageSession.ended_at.is_(None))
    if site:
        stmt = stmt.where(UsageSession.machine_id.in_(
            select(Machine.id).where(Machine.site_id == get_site_by_slug(db, site, "site").id)))
    return paginate(db, stmt, page, per_page)


def list_dead_letters(db: Session, page: int | None = 1,
                      per_page: int | None = DEFAULT_PER_PAGE) -> Page[DeadLetter]:
    return paginate(db, select(DeadLetter).order_by(DeadLetter.id.desc()), page, per_page)


def dead_letter_counts(db: Session, since: datetime | None = None) -> dict[str | None, int]:
    """Rejected payloads per node slug (None: no readable node), e.g. for the nodes page."""
    stmt = select(DeadLetter.node_slug, func.count()).group_by(DeadLetter.node_slug)
    if since is not None:
        stmt = stmt.where(DeadLetter.received_at >= since)
    return {slug: int(n) for slug, n in db.execute(stmt).all()}


def member_sessions(db: Session, member_id: int, *, site_ids: Collection[int] | None,
                    limit: int = 50) -> list[UsageSession]:
    """A member's latest sessions, on the machines of `site_ids` only (None: all)."""
    stmt = (select(UsageSession).where(UsageSession.member_id == member_id)
            .order_by(UsageSession.started_at.desc(), UsageSession.id.desc()).limit(limit))
    if site_ids is not None:
        stmt = stmt.where(UsageSession.machine_id.in_(machine_ids_in_sites(site_ids)))
    return list(db.scalars(stmt))


def machine_sessions(db: Session, machine_id: int, limit: int = 20) -> list[UsageSession]:
    return list(db.scalars(select(UsageSession).where(UsageSession.machine_id == machine_id)
                           .order_by(UsageSession.started_at.desc()).limit(limit)))


def hours_by_machine(db: Session, member_id: int, since: datetime) -> list[Any]:
    """(machine name, sessions, hours) of a member's closed sessions since `since`."""
    return list(db.execute(
        select(Machine.name, func.count(UsageSession.id),
               func.coalesce(func.sum(UsageSession.duration_s), 0) / 3600.0)
        .join(Machine, Machine.id == UsageSession.machine_id)
        .where(UsageSession.member_id == member_id, UsageSession.started_at >= since,
               UsageSession.ended_at.is_not(None))
        .group_by(Machine.name).order_by(Machine.name)).all())


def open_session_count(db: Session, site: str | None = None) -> int:
    """Sessions still running (on one site's machines, by slug)."""
    q = select(func.count()).select_from(UsageSession).where(UsageSession.ended_at.is_(None))
    if site:
        q = q.join(Machine, Machine.id == UsageSession.machine_id).join(
            Site, Site.id == Machine.site_id).where(Site.slug == site)
    return int(db.scalar(q) or 0)


def recent_events(db: Session, limit: int = 12) -> list[Event]:
    """The latest events received, newest first."""
    return list(db.scalars(select(Event).order_by(Event.received_at.desc(), Event.id.desc())
                           .limit(limit)))


def open_sessions_by_machine(db: Session, machine_ids: Collection[int]) -> dict[int, UsageSession]:
    """The latest open session of each machine, in one query (lists of up to 500 machines)."""
    if not machine_ids:
        return {}
    rows = db.scalars(select(UsageSession).where(UsageSession.machine_id.in_(sorted(machine_ids)),
                                                 UsageSession.ended_at.is_(None))
                      .order_by(UsageSession.started_at)).all()
    return {r.machine_id: r for r in rows if r.machine_id is not None}
