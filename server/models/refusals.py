"""Refusals as the server explains them, and enrolments waiting for the next unknown badge.

A node refuses from its own list, which holds only the badges allowed on its machine: a
registered member whose training expired, was revoked or never existed is refused there as
`unknown_badge`. The server knows why, so at receive time it records its own explanation
(`reason`) beside the node's (`node_reason`, kept as sent). The explanation is frozen then: a
training granted later does not rewrite yesterday's refusal.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from server.models.base import Base, utcnow
from server.models.core import Machine, Member, Node


class Refusal(Base):
    """One `badge.denied` event, explained (contract 6, "Refusals explained")."""

    __tablename__ = "refusals"

    id: Mapped[int] = mapped_column(primary_key=True)
    event_uuid: Mapped[str] = mapped_column(String(36), unique=True)  # the event's id
    at: Mapped[datetime] = mapped_column(index=True)  # the node's timestamp
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    node_id: Mapped[int | None] = mapped_column(ForeignKey("nodes.id"))
    machine_id: Mapped[int | None] = mapped_column(ForeignKey("machines.id"))
    member_id: Mapped[int | None] = mapped_column(ForeignKey("members.id"))
    uid: Mapped[str] = mapped_column(String(20))
    node_reason: Mapped[str] = mapped_column(String(40))
    reason: Mapped[str] = mapped_column(String(40))
    # what the explanation rests on: {"authorization": id, "expired_at" | "revoked_at": RFC 3339};
    # who revoked and why are read from that authorization, so erasure has one copy to clear
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSON)

    node: Mapped[Node | None] = relationship()
    machine: Mapped[Machine | None] = relationship()
    member: Mapped[Member | None] = relationship()

    __table_args__ = (Index("ix_refusals_member_at", "member_id", "at"),
                      Index("ix_refusals_machine_at", "machine_id", "at"))


class PendingEnrolment(Base):
    """"Tap the badge on any machine now": the next unknown UID refused on a machine of `site_ids`
    before `expires_at` becomes this member's badge (once; `badge_uid` then says which)."""

    __tablename__ = "pending_enrolments"

    id: Mapped[int] = mapped_column(primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), index=True)
    actor: Mapped[str] = mapped_column(String(200))  # who asked, for the audit entry
    site_ids: Mapped[list[int] | None] = mapped_column(JSON)  # None: any site (an admin)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(index=True)
    done_at: Mapped[datetime | None] = mapped_column()
    badge_uid: Mapped[str | None] = mapped_column(String(20))
    cancelled: Mapped[bool] = mapped_column(default=False)

    member: Mapped[Member] = relationship()
