"""The web UI's thin layer over server.services: the principal becomes the audit actor,
and each operation commits (services only flush)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from server import services
from server.auth import Principal

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from server.models import Authorization, Badge, Machine, MachineGroup, Member


def now() -> datetime:
    return datetime.now(UTC)


def split_tags(raw: str | None) -> list[str]:
    return [t.strip() for t in (raw or "").replace(";", ",").split(",") if t.strip()]


def _site_slug(db: Session, site_id: int | None) -> str | None:
    return services.get_site(db, site_id).slug if site_id else None


def create_member(db: Session, p: Principal, *, name: str, email: str | None,
                  member_no: str | None, site_id: int | None, tags: list[str]) -> Member:
    m = services.create_member(db, name, email=email, member_no=member_no,
                               site=_site_slug(db, site_id), tags=tags, actor=p.actor)
    db.commit()
    return m


def update_member(db: Session, p: Principal, member: Member, **fields: Any) -> Member:
    if "site_id" in fields:
        fields["site"] = _site_slug(db, fields.pop("site_id"))
    m = services.update_member(db, member.id, actor=p.actor, **fields)
    db.commit()
    return m


def set_member_active(db: Session, p: Principal, member: Member, active: bool) -> Member:
    if active:
        m = services.update_member(db, member.id, actor=p.actor, active=True)
    else:
        m = services.deactivate_member(db, member.id, actor=p.actor)
    db.commit()
    return m


def enrol_badge(db: Session, p: Principal, member: Member, uid: str) -> Badge:
    b = services.enrol_badge(db, member.id, uid, actor=p.actor)
    db.commit()
    return b


def set_badge_status(db: Session, p: Principal, badge: Badge, status: str) -> Badge:
    b = services.set_badge_status(db, badge.uid, status, actor=p.actor)
    db.commit()
    return b


def update_machine(db: Session, p: Principal, machine: Machine, **fields: Any) -> Machine:
    m = services.update_machine(db, machine.id, actor=p.actor, **fields)
    db.commit()
    return m


def set_lock(db: Session, p: Principal, machine: Machine, locked: bool,
             reason: str | None) -> Machine:
    m = services.set_machine_lock(db, machine.id, locked, reason, actor=p.actor)
    db.commit()
    return m


def send_command(db: Session, p: Principal, machine: Machine, cmd: str) -> None:
    services.send_command(db, machine.id, cmd, actor=p.actor)
    db.commit()


def save_group(db: Session, p: Principal, group: MachineGroup | None, *, slug: str, name: str,
               machines: list[Machine]) -> MachineGroup:
    g = services.save_group(db, group.id if group is not None else None, slug=slug, name=name,
                            machine_ids=[m.id for m in machines], actor=p.actor)
    db.commit()
    return g


def grant(db: Session, p: Principal, *, member_id: int, machine_id: int | None,
          group_id: int | None, role: str, expires_at: datetime | None,
          via: str = "web") -> Authorization:
    a = services.grant(db, member_id, machine_id=machine_id, group_id=group_id, role=role,
                       expires_at=expires_at,
                       granted_by_user_id=p.id if p.kind == "user" else None, via=via,
                       granted_by_member_id=p.member_id, actor=p.actor)
    db.commit()
    return a


def revoke(db: Session, p: Principal, a: Authorization, reason: str) -> Authorization:
    out = services.revoke(db, a.id, by_user_id=p.id if p.kind == "user" else None,
                          reason=reason, actor=p.actor)
    db.commit()
    return out
