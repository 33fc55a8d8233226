"""Notices for members (opt-in): "tell me when the <machine> is free" (issue 20).

A request is for one member and one machine; when a session on that machine ends (the ingest
calls `machine_freed` through `server.services.notifications`), every open request gets one
mail and is spent. A request that sees no session end expires after `WATCH_TTL`.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.errors import N_, Invalid
from server.models import (
    Authorization,
    Machine,
    MachineWatch,
    Member,
    NoticeOptIn,
    NoticeSent,
    utcnow,
)
from server.services import mail, mail_templates
from server.services.audit import audit
from server.services.common import replace_kind_rows
from server.services.languages import member_language

WATCH_TTL = timedelta(hours=12)


def watch(db: Session, member_id: int, machine_id: int, *, actor: str,
          now: datetime | None = None) -> MachineWatch:
    """Open (or renew) a request; the member needs an e-mail address (the caller commits)."""
    now = now or utcnow()
    member = db.get(Member, member_id)
    machine = db.get(Machine, machine_id)
    if member is None or machine is None:
        raise Invalid(N_("unknown member or machine"), {"machine_id": "unknown"})
    if not member.email:
        raise Invalid(N_("this member has no e-mail address"), {"email": N_("required")})
    row = db.scalar(select(MachineWatch).where(
        MachineWatch.member_id == member_id, MachineWatch.machine_id == machine_id,
        MachineWatch.notified_at.is_(None), MachineWatch.expires_at > now))
    if row is None:
        row = MachineWatch(member_id=member_id, machine_id=machine_id, created_at=now,
                           expires_at=now + WATCH_TTL)
        db.add(row)
    else:
        row.expires_at = now + WATCH_TTL
    audit(db, actor, "notice.watch", "machine", machine_id, {"member_id": member_id})
    return row


def open_watches(db: Session, member_id: int, now: datetime | None = None) -> list[MachineWatch]:
    now = now or utcnow()
    return list(db.scalars(select(MachineWatch).where(
        MachineWatch.member_id == member_id, MachineWatch.notified_at.is_(None),
        MachineWatch.expires_at > now).order_by(MachineWatch.id)))


def watched_machines(db: Session, now: datetime | None = None) -> set[int]:
    """Machines with an open "tell me when it is free" request, in one query: the ingest asks
    once per batch, so that the sessions ending on machines nobody watches (nearly all of
    them) cost no query each (a quarter of the ingest's CPU per event when they did)."""
    now = now or utcnow()
    return set(db.scalars(select(MachineWatch.machine_id).where(
        MachineWatch.notified_at.is_(None), MachineWatch.expires_at > now).distinct()))


def machine_freed(db: Session, machine_id: int | None, *, public_url: str = "",
                  now: datetime | None = None, watched: Collection[int] | None = None) -> int:
    """A session on this machine ended: mail every open request once (the caller commits).

    `watched` is what `watched_machines` said for this transaction, when the caller has it."""
    if machine_id is None or (watched is not None and machine_id not in watched):
        return 0
    now = now or utcnow()
    rows = list(db.scalars(select(MachineWatch).where(
        MachineWatch.machine_id == machine_id, MachineWatch.notified_at.is_(None),
        MachineWatch.expires_at > now)))
    if not rows:
        return 0
    machine = db.get(Machine, machine_id)
    for row in rows:
        row.notified_at = now
        member = db.get(Member, row.member_id)
        if member is None or not member.email or machine is None:
            continue
        subject, text, html = mail_templates.render(
            "machine_free", member_language(db, member.id),
            name=member.name, machine=machine.name,
            link=f"{public_url.rstrip('/')}/machines/{machine.id}" if public_url else "")
        mail.enqueue(db, member.email, subject, text, html, kind="machine_free")
    return len(rows)


NOTICE_KINDS = ("training_expiring",)
EXPIRY_NOTICE = timedelta(days=14)


def set_optins(db: Session, member_id: int, kinds: list[str], *, actor: str) -> None:
    """The notices this member wants (others are off); the caller commits."""
    wanted = {k for k in kinds if k in NOTICE_KINDS}
    replace_kind_rows(db, NoticeOptIn, "member_id", member_id, wanted)
    audit(db, actor, "notice.optins", "member", member_id, {"kinds": sorted(wanted)})


def optins(db: Session, member_id: int) -> set[str]:
    return set(db.scalars(select(NoticeOptIn.kind).where(NoticeOptIn.member_id == member_id)))


def training_expiry_notices(db: Session, now: datetime, *, public_url: str = "") -> int:
    """Mail opted-in members whose training expires within 14 days, once per expiry (commits)."""
    rows = db.execute(
        select(Authorization, Member)
        .join(Member, Member.id == Authorization.member_id)
        .join(NoticeOptIn, (NoticeOptIn.member_id == Member.id)
              & (NoticeOptIn.kind == "training_expiring"))
        .where(Authorization.revoked_at.is_(None), Authorization.expires_at.is_not(None),
               Authorization.expires_at > now, Authorization.expires_at <= now + EXPIRY_NOTICE,
               Member.active.is_(True), Member.email.is_not(None))).all()
    sent = 0
    for auth_row, member in rows:
        assert auth_row.expires_at is not None
        key = f"training_expiring:{auth_row.id}:{auth_row.expires_at.date().isoformat()}"
        if db.get(NoticeSent, key) is not None or not member.email:
            continue
        target = auth_row.machine.name if auth_row.machine else (
            auth_row.group.name if auth_row.group else "?")
        subject, text, html = mail_templates.render(
            "training_expiring", member_language(db, member.id), name=member.name, machine=target,
            date=auth_row.expires_at.date().isoformat(), link=public_url or "")
        mail.enqueue(db, member.email, subject, text, html, kind="training_expiring")
        db.add(NoticeSent(key=key, sent_at=now))
        sent += 1
    db.commit()
    return sent
