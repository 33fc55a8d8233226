"""The organisation: sites, members and their badges, machines, groups, nodes, trainings.

Nothing that an audit or a report relies on is ever deleted: authorizations are revoked,
members deactivated, badges marked lost.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Date,
    Float,
    ForeignKey,
    Index,
    String,
    Table,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from server.models.base import Base, enum_column, utcnow
from server.models.enums import AuthRole, BadgeStatus, MachineKind


class Site(Base):
    __tablename__ = "sites"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(63), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    machines: Mapped[list[Machine]] = relationship(back_populates="site")


class Member(Base):
    __tablename__ = "members"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(254), index=True)
    member_no: Mapped[str | None] = mapped_column(String(64), index=True)
    site_id: Mapped[int | None] = mapped_column(ForeignKey("sites.id"))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    active_until: Mapped[date | None] = mapped_column(Date)
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    erased_at: Mapped[datetime | None] = mapped_column()

    site: Mapped[Site | None] = relationship()
    badges: Mapped[list[Badge]] = relationship(back_populates="member")
    authorizations: Mapped[list[Authorization]] = relationship(
        back_populates="member", foreign_keys="Authorization.member_id"
    )

    # the members page: active members by name, a page at a time, without sorting them all
    __table_args__ = (Index("ix_members_active_name", "active", "name"),)


class Badge(Base):
    __tablename__ = "badges"

    id: Mapped[int] = mapped_column(primary_key=True)
    uid: Mapped[str] = mapped_column(String(20), unique=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), index=True)
    status: Mapped[BadgeStatus] = mapped_column(enum_column(BadgeStatus, "badge_status"),
                                                default=BadgeStatus.active)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    member: Mapped[Member] = relationship(back_populates="badges")


machine_group_members = Table(
    "machine_group_members",
    Base.metadata,
    Column("group_id", ForeignKey("machine_groups.id", ondelete="CASCADE"), primary_key=True),
    Column("machine_id", ForeignKey("machines.id", ondelete="CASCADE"), primary_key=True),
)


class MachineGroup(Base):
    """One training covering several machines (e.g. "all laser cutters", across sites)."""

    __tablename__ = "machine_groups"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(63), unique=True)
    name: Mapped[str] = mapped_column(String(200))

    machines: Mapped[list[Machine]] = relationship(
        secondary=machine_group_members, back_populates="groups"
    )


class Node(Base):
    __tablename__ = "nodes"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(63), unique=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"))
    online: Mapped[bool] = mapped_column(Boolean, default=False)
    state: Mapped[str | None] = mapped_column(String(20))
    relay: Mapped[bool | None] = mapped_column(Boolean)
    last_status: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    acl_version: Mapped[int | None] = mapped_column(BigInteger)  # as reported by the node
    acl_published_version: Mapped[int | None] = mapped_column(BigInteger)
    acl_published_at: Mapped[datetime | None] = mapped_column()
    software: Mapped[str | None] = mapped_column(String(40))
    last_seen: Mapped[datetime | None] = mapped_column()
    clock_ok: Mapped[bool | None] = mapped_column(Boolean)
    mqtt_username: Mapped[str | None] = mapped_column(String(100), unique=True)
    mqtt_password_hash: Mapped[str | None] = mapped_column(String(300))
    revoked_at: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    site: Mapped[Site] = relationship()
    machine: Mapped[Machine | None] = relationship(back_populates="node", uselist=False)


class Machine(Base):
    __tablename__ = "machines"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(63), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"), index=True)
    kind: Mapped[MachineKind] = mapped_column(enum_column(MachineKind, "machine_kind"),
                                              default=MachineKind.other)
    node_id: Mapped[int | None] = mapped_column(ForeignKey("nodes.id"), unique=True)
    requires_authorization: Mapped[bool] = mapped_column(Boolean, default=True)
    policy: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    locked: Mapped[bool] = mapped_column(Boolean, default=False)
    lock_reason: Mapped[str | None] = mapped_column(String(500))
    hourly_rate: Mapped[float | None] = mapped_column(Float)  # for member statements
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    site: Mapped[Site] = relationship(back_populates="machines")
    node: Mapped[Node | None] = relationship(back_populates="machine")
    groups: Mapped[list[MachineGroup]] = relationship(
        secondary=machine_group_members, back_populates="machines"
    )


class Authorization(Base):
    """Member × machine (or group), never deleted: revocation sets `revoked_at`."""

    __tablename__ = "authorizations"

    id: Mapped[int] = mapped_column(primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), index=True)
    machine_id: Mapped[int | None] = mapped_column(ForeignKey("machines.id"), index=True)
    group_id: Mapped[int | None] = mapped_column(ForeignKey("machine_groups.id"), index=True)
    role: Mapped[AuthRole] = mapped_column(enum_column(AuthRole, "auth_role"), default=AuthRole.user)
    granted_at: Mapped[datetime] = mapped_column(default=utcnow)
    granted_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    granted_by_member_id: Mapped[int | None] = mapped_column(ForeignKey("members.id"))
    granted_via: Mapped[str] = mapped_column(String(20), default="web")  # web|api|cli|signoff|import
    expires_at: Mapped[datetime | None] = mapped_column()
    revoked_at: Mapped[datetime | None] = mapped_column()
    revoked_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    revoke_reason: Mapped[str | None] = mapped_column(String(500))

    member: Mapped[Member] = relationship(back_populates="authorizations",
                                          foreign_keys=[member_id])
    machine: Mapped[Machine | None] = relationship()
    group: Mapped[MachineGroup | None] = relationship()
    granted_by_member: Mapped[Member | None] = relationship(foreign_keys=[granted_by_member_id])
