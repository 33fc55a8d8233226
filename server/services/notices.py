"""Notices for members (opt-in): "tell me when the <machine> is free" (issue 20).

A request is for one member and one machine; when a session on that machine ends (the ingest
calls `machine_freed` through `server.services.notifications`), every open request gets one
mail and is spent. A request that sees no session end expires after `WATCH_TTL`.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.errors import N_, Invalid
from server.models import Machine, MachineWatch, Member, utcnow
from server.services import mail, mail_templates
from server.services.audit import audit

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


def machine_freed(db: Session, machine_id: int | None, *, public_url: str = "",
                  now: datetime | None = None) -> int:
    """A session on this machine ended: mail every open request once (the caller commits)."""
    if machine_id is None:
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
            "machine_free", None,
            name=member.name, machine=machine.name,
            link=f"{public_url.rstrip('/')}/machines/{machine.id}" if public_url else "")
        mail.enqueue(db, member.email, subject, text, html, kind="machine_free")
    return len(rows)
