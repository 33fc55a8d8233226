"""Maintenance tasks per machine and the interventions logged against them.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    Boolean,
    Float,
    ForeignKey,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from server.models.base import Base, utcnow
from server.models.core import Machine


class MaintenanceTask(Base):
    """A recurring job on a machine, due every `interval_active_h` active hours."""

    __tablename__ = "maintenance_tasks"

    id: Mapped[int] = mapped_column(primary_key=True)
    machine_id: Mapped[int] = mapped_column(ForeignKey("machines.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    interval_active_h: Mapped[float] = mapped_column(Float)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    machine: Mapped[Machine] = relationship()


class MaintenanceLog(Base):
    __tablename__ = "maintenance_logs"

    id: Mapped[int] = mapped_column(primary_key=True)
    machine_id: Mapped[int] = mapped_column(ForeignKey("machines.id"), index=True)
    task_id: Mapped[int | None] = mapped_column(ForeignKey("maintenance_tasks.id"))
    done_at: Mapped[datetime] = mapped_column(default=utcnow)
    done_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    note: Mapped[str | None] = mapped_column(Text)
    active_hours_at: Mapped[float | None] = mapped_column(Float)  # machine's total at that time

    task: Mapped[MaintenanceTask | None] = relationship()
