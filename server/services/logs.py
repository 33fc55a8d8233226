"""What happened: usage sessions and the payloads the ingest set aside."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from server.models import (
    DeadLetter,
    Machine,
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
    stmt = select(UsageSession).order_by(UsageSession.started_at.desc(), UsageSession.id.desc())
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
