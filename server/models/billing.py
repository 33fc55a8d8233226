"""Paid use: tariff versions per machine, charges derived from closed sessions, top-ups.

A member's balance is never stored: it is `sum(top-ups) - sum(charges)`, so it cannot drift
from the rows an accountant reads. A tariff is never edited: a new version with a later
`valid_from` replaces it, so a past charge keeps the price it was computed with.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from server.models.base import Base, utcnow
from server.models.core import Machine, Member
from server.models.usage import UsageSession


class Tariff(Base):
    """One version of a machine's prices, in effect from `valid_from` until the next version.

    `spec` is the validated contract object (integer cents, categories by member tag); None
    means "free from this date" (`"tariff": null`)."""

    __tablename__ = "tariffs"

    id: Mapped[int] = mapped_column(primary_key=True)
    machine_id: Mapped[int] = mapped_column(ForeignKey("machines.id"), index=True)
    version: Mapped[int] = mapped_column(Integer)  # 1, 2, … per machine
    valid_from: Mapped[datetime] = mapped_column()
    spec: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(200))

    machine: Mapped[Machine] = relationship()

    __table_args__ = (UniqueConstraint("machine_id", "version", name="uq_tariffs_machine_version"),
                      Index("ix_tariffs_machine_valid_from", "machine_id", "valid_from"))


class Charge(Base):
    """What one closed session costs: exactly one row per session, updated (and audited) when the
    session is corrected. `amount_cents` is what the member owes: the tariff's result
    (`computed_cents`) unless a manager waived it or set another amount (`override`)."""

    __tablename__ = "charges"

    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("sessions.id"), unique=True)
    member_id: Mapped[int | None] = mapped_column(ForeignKey("members.id"), index=True)
    machine_id: Mapped[int | None] = mapped_column(ForeignKey("machines.id"), index=True)
    started_at: Mapped[datetime] = mapped_column(index=True)  # the session's, for periods
    tariff_id: Mapped[int | None] = mapped_column(ForeignKey("tariffs.id"))
    tariff_version: Mapped[int | None] = mapped_column(Integer)
    category: Mapped[str | None] = mapped_column(String(64))  # member tag used, None: default
    minutes_billed: Mapped[int] = mapped_column(Integer, default=0)
    computed_cents: Mapped[int] = mapped_column(Integer, default=0)
    override: Mapped[str | None] = mapped_column(String(10))  # None | "waived" | "adjusted"
    amount_cents: Mapped[int] = mapped_column(Integer, default=0)
    free_reason: Mapped[str | None] = mapped_column(String(20))  # "trainer" | "signoff"
    reason: Mapped[str | None] = mapped_column(String(500))  # the manager's, with `override`
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    session: Mapped[UsageSession] = relationship()
    member: Mapped[Member | None] = relationship()
    machine: Mapped[Machine | None] = relationship()


class TopUp(Base):
    """Money a manager received for a member's prepaid credit (negative: a refund)."""

    __tablename__ = "topups"

    id: Mapped[int] = mapped_column(primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), index=True)
    site_id: Mapped[int | None] = mapped_column(ForeignKey("sites.id"), index=True)
    amount_cents: Mapped[int] = mapped_column(Integer)
    method: Mapped[str] = mapped_column(String(20))  # cash | card | HelloAsso | transfer
    reference: Mapped[str | None] = mapped_column(String(200))
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(200))
    voided: Mapped[bool] = mapped_column(Boolean, default=False)

    member: Mapped[Member] = relationship()
