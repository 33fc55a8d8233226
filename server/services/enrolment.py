"""Enrolment in one step: a new member with an unknown badge, or "tap the badge on any machine now".

Two ways a volunteer gives a card to someone without typing its number:

- `enrol_new_member`: from the unknown-badges page, one form creates the member, gives them the
  badge and optionally records a training, in one transaction (each part audited as usual, plus
  one `member.enrol` entry that ties them together).
- `start_pending` / `honour_pending`: from a member page, "tap the badge now" opens a pending
  enrolment for a few minutes; the ingest, when a node refuses a UID nobody holds
  (`unknown_badge`) on a machine of the asker's sites, gives that UID to the member.

Why a pending row honoured by the ingest rather than a page that polls the unknown badges: the
row works whatever happens to the browser (a phone that sleeps, a closed tab, several ingest
workers), takes exactly one tap (the update that consumes it is conditional, so two workers
cannot both use it, nor one tap serve two members), is limited in time and to the asker's sites,
and leaves an audit entry naming who asked. The page only shows the result.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from datetime import date, datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from server.errors import N_, Conflict, Invalid
from server.models import Badge, Member, Node, PendingEnrolment
from server.services import members, trainings
from server.services.audit import audit
from server.services.common import get_member, now_utc
from server.services.validation import uid_field

log = logging.getLogger(__name__)

PENDING_MINUTES = 3


def enrol_new_member(db: Session, uid: str, name: str, *, actor: str, email: str | None = None,
                     member_no: str | None = None, site: str | None = None,
                     tags: Sequence[str] | str | None = None, machine_id: int | None = None,
                     group_id: int | None = None, role: str = "user",
                     expires_at: datetime | date | str | None = None,
                     granted_by_user_id: int | None = None, via: str = "web") -> Member:
    """Create a member holding badge `uid` and, if a machine or group is given, its training.
    Raises before anything is written when the UID is taken or malformed; callers commit."""
    uid = uid_field(uid)
    if db.scalar(select(Badge.id).where(Badge.uid == uid)) is not None:
        raise Conflict(N_("badge %(uid)s belongs to another member"), {"uid": uid})
    member = members.create_member(db, name, email=email, member_no=member_no, site=site,
                                   tags=tags, actor=actor)
    members.enrol_badge(db, member.id, uid, actor=actor)
    auth_id = None
    if machine_id is not None or group_id is not None:
        auth = trainings.grant(db, member.id, machine_id=machine_id, group_id=group_id, role=role,
                               expires_at=expires_at, granted_by_user_id=granted_by_user_id,
                               via=via, actor=actor)
        auth_id = auth.id
    audit(db, actor, "member.enrol", "member", member.id,
          {"uid": uid, "authorization_id": auth_id})
    db.flush()
    return member


def start_pending(db: Session, member_id: int, *, actor: str,
                  site_ids: Collection[int] | None, minutes: int = PENDING_MINUTES,
                  now: datetime | None = None) -> PendingEnrolment:
    """Wait for the next unknown badge on a machine of `site_ids` (None: any) for `minutes`.
    A member has at most one open wait: a new one replaces it."""
    member = get_member(db, member_id)
    if not member.active:
        raise Invalid(N_("member %(id)s is deactivated"), params={"id": member.id})
    now = now or now_utc()
    cancel_pending(db, member.id)
    row = PendingEnrolment(member_id=member.id, actor=actor[:200],
                           site_ids=None if site_ids is None else sorted(site_ids),
                           created_at=now, expires_at=now + timedelta(minutes=minutes))
    db.add(row)
    db.flush()
    audit(db, actor, "badge.enrol_pending", "member", member.id, {"minutes": minutes})
    return row


def cancel_pending(db: Session, member_id: int) -> None:
    db.execute(update(PendingEnrolment).where(
        PendingEnrolment.member_id == member_id, PendingEnrolment.done_at.is_(None),
        PendingEnrolment.cancelled.is_(False)).values(cancelled=True))


def open_pending(db: Session, member_id: int, now: datetime | None = None) -> PendingEnrolment | None:
    """The member's wait still open, if any (for the member page)."""
    now = now or now_utc()
    return db.scalar(select(PendingEnrolment).where(
        PendingEnrolment.member_id == member_id, PendingEnrolment.done_at.is_(None),
        PendingEnrolment.cancelled.is_(False), PendingEnrolment.expires_at > now)
        .order_by(PendingEnrolment.id.desc()))


def last_pending(db: Session, member_id: int) -> PendingEnrolment | None:
    return db.scalar(select(PendingEnrolment).where(PendingEnrolment.member_id == member_id)
                     .order_by(PendingEnrolment.id.desc()))


def open_waits(db: Session, now: datetime) -> list[PendingEnrolment]:
    """The waits a tap could honour now, oldest first (the ingest asks once per batch)."""
    return list(db.scalars(select(PendingEnrolment).where(
        PendingEnrolment.done_at.is_(None), PendingEnrolment.cancelled.is_(False),
        PendingEnrolment.expires_at > now, PendingEnrolment.created_at <= now)
        .order_by(PendingEnrolment.id)))


def honour_pending(db: Session, uid: str, node: Node, now: datetime | None = None,
                   waits: list[PendingEnrolment] | None = None) -> Badge | None:
    """Called by the ingest for an `unknown_badge` refusal of a UID nobody holds: give it to the
    oldest open wait covering the node's site. Returns the new badge, or None. `waits`: what
    `open_waits` returned for this batch (asked here otherwise); taking one is still atomic."""
    now = now or now_utc()
    machine = node.machine
    if machine is None:
        return None
    candidates = open_waits(db, now) if waits is None else waits
    for pending in candidates:
        if pending.site_ids is not None and machine.site_id not in pending.site_ids:
            continue
        taken = db.execute(update(PendingEnrolment).where(
            PendingEnrolment.id == pending.id, PendingEnrolment.done_at.is_(None),
            or_(PendingEnrolment.cancelled.is_(False), PendingEnrolment.cancelled.is_(None)))
            .values(done_at=now, badge_uid=uid).execution_options(synchronize_session=False))
        if getattr(taken, "rowcount", 0) != 1:
            continue  # another worker used it first
        badge = members.enrol_badge(db, pending.member_id, uid,
                                    actor=f"{pending.actor} (tap on {node.slug})")
        log.info("pending enrolment %s: badge tapped on %s given to member %s",
                 pending.id, node.slug, pending.member_id)
        return badge
    return None
