"""Access lists (contract section 2): who may use a node's machine, computed from the database.

A badge is listed when its member is active (and not past `active_until`), the
badge is active, and the member holds a valid authorization for the machine
(directly or via a group), or the machine needs no authorization. Role
`trainer` wins over `user`; `until` is the latest expiry of the member's
authorizations of the winning role, cut at the end of the member's
`active_until` day in the site's time zone.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from protocol import AccessList, BadgeEntry
from server.models import (
    Authorization,
    AuthRole,
    Badge,
    BadgeStatus,
    Machine,
    Member,
    Node,
    machine_group_members,
)
from server.services.billing import credit_entries
from server.services.bookings import booking_entries
from server.services.trainings import valid_authorization_clause

DEFAULT_VALID_FOR = timedelta(days=7)


def epoch_ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


def next_version(node: Node, now: datetime) -> int:
    """Greater than anything this node was sent or reports, and at least the time in ms.

    Using the clock keeps versions growing even after the database is restored
    from a backup that remembers an older published version.
    """
    return max(epoch_ms(now), (node.acl_published_version or 0) + 1, (node.acl_version or 0) + 1)


def _member_until(active_until: date | None, tz: ZoneInfo) -> datetime | None:
    if active_until is None:
        return None
    end = datetime.combine(active_until + timedelta(days=1), time(0), tzinfo=tz)
    return end.astimezone(UTC)


def label_for(name: str) -> str:
    """A short display name: "Alice Dupont" → "Alice D."."""
    parts = name.split()
    if len(parts) < 2:
        return name[:40]
    return f"{parts[0]} {parts[-1][0]}."[:40]


def _min_until(a: datetime | None, b: datetime | None) -> datetime | None:
    if a is None:
        return b
    if b is None:
        return a
    return min(a, b)


def badge_entries(db: Session, machine: Machine, now: datetime) -> list[BadgeEntry]:
    """The badges of one machine's list, sorted by UID."""
    tz = ZoneInfo(machine.site.timezone or "UTC")
    today = now.astimezone(tz).date()
    group_ids = select(machine_group_members.c.group_id).where(
        machine_group_members.c.machine_id == machine.id)
    auth_rows = db.execute(
        select(Authorization.member_id, Authorization.role, Authorization.expires_at)
        .where(or_(Authorization.machine_id == machine.id, Authorization.group_id.in_(group_ids)),
               valid_authorization_clause(now))
    ).all()
    # member -> (role, until); until None means no expiry
    grants: dict[int, tuple[AuthRole, datetime | None]] = {}
    for member_id, role, expires in auth_rows:
        current = grants.get(member_id)
        if current is None or (role == AuthRole.trainer and current[0] == AuthRole.user):
            grants[member_id] = (role, expires)
        elif role == current[0]:
            until = None if current[1] is None or expires is None else max(current[1], expires)
            grants[member_id] = (role, until)

    stmt = (select(Badge.uid, Member.id, Member.name, Member.active_until)
            .join(Member, Badge.member_id == Member.id)
            .where(Badge.status == BadgeStatus.active, Member.active.is_(True),
                   Member.erased_at.is_(None),
                   or_(Member.active_until.is_(None), Member.active_until >= today)))
    if machine.requires_authorization:
        if not grants:
            return []
        stmt = stmt.where(Member.id.in_(list(grants)))
    entries: list[BadgeEntry] = []
    for uid, member_id, name, active_until in db.execute(stmt).all():
        role, auth_until = grants.get(member_id, (AuthRole.user, None))
        if not machine.requires_authorization and role == AuthRole.user:
            auth_until = None  # an open machine: only membership limits it
        until = _min_until(auth_until, _member_until(active_until, tz))
        entries.append(BadgeEntry(uid=uid, member=member_id, role=role.value, until=until,
                                  label=label_for(name)))
    entries.sort(key=lambda e: e.uid)
    return entries


def compute_acl(db: Session, node: Node, now: datetime, version: int | None = None,
                valid_for: timedelta = DEFAULT_VALID_FOR) -> AccessList | None:
    """The node's full list, or None when the node drives no machine (nothing to publish)."""
    machine = node.machine
    if machine is None or node.revoked_at is not None:
        return None
    badges = [] if not machine.active else badge_entries(db, machine, now)
    badges = credit_entries(db, machine, badges, now)  # paid use: `credit_ok`
    return AccessList(
        version=next_version(node, now) if version is None else version,
        site=node.site.slug, node=node.slug, machine=machine.slug, issued=now,
        valid_until=now + valid_for, locked=bool(machine.locked or not machine.active),
        policy=dict(machine.policy or {}), badges=badges,
        bookings=booking_entries(db, machine, now),
    )


def nodes_for(db: Session, node_ids: Iterable[int] | None) -> list[Node]:
    """Nodes to publish: the given ids, or every registered node when None."""
    stmt = select(Node).where(Node.revoked_at.is_(None)).order_by(Node.id)
    if node_ids is not None:
        ids = list(node_ids)
        if not ids:
            return []
        stmt = stmt.where(Node.id.in_(ids))
    return list(db.scalars(stmt))


__all__ = ["DEFAULT_VALID_FOR", "badge_entries", "compute_acl", "epoch_ms", "label_for",
           "next_version", "nodes_for"]
