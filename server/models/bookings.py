"""Bookings of machines (issue 17) and the secret iCal feeds that publish them.

A booking is never deleted: cancelling sets `cancelled_at`, so no-shows and "booked vs used"
reports stay computable. `source`/`external_id` name a booking made by another system (the
Fab-manager connector) so that a re-sync finds it again instead of booking twice.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from server.models.base import Base, utcnow
from server.models.core import Machine, Member


class Booking(Base):
    """`member` may use `machine` from `start` until `end` (UTC)."""

    __tablename__ = "bookings"

    id: Mapped[int] = mapped_column(primary_key=True)
    machine_id: Mapped[int] = mapped_column(ForeignKey("machines.id"))
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), index=True)
    start: Mapped[datetime] = mapped_column()
    end: Mapped[datetime] = mapped_column()
    training: Mapped[bool] = mapped_column(Boolean, default=False)  # the training session itself
    source: Mapped[str] = mapped_column(String(40), default="fabpass")
    external_id: Mapped[str | None] = mapped_column(String(200))
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    cancelled_at: Mapped[datetime | None] = mapped_column()
    cancelled_by: Mapped[str | None] = mapped_column(String(200))

    machine: Mapped[Machine] = relationship()
    member: Mapped[Member] = relationship()

    __table_args__ = (
        # overlap checks and the access list: one machine's bookings by time
        Index("ix_bookings_machine_start", "machine_id", "start"),
        UniqueConstraint("source", "external_id", name="uq_bookings_source_external"),
    )


class BookingFeed(Base):
    """A secret iCal address for one machine's or one member's bookings.

    Only a random salt is stored: the URL token is an HMAC of it under the server's secret
    key, so a copy of the database alone does not give the addresses away."""

    __tablename__ = "booking_feeds"

    id: Mapped[int] = mapped_column(primary_key=True)
    machine_id: Mapped[int | None] = mapped_column(ForeignKey("machines.id"), index=True)
    member_id: Mapped[int | None] = mapped_column(ForeignKey("members.id"), index=True)
    salt: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column()
