"""Server bookkeeping: the audit log, settings, and the publisher's queues.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    ForeignKey,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from server.models.base import Base, utcnow


class AuditLog(Base):
    """Every change to authorizations, badges, machines and users: who, what, when."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(200))  # "user:3 a@b", "token:2", "cli", "node:laser-1"
    action: Mapped[str] = mapped_column(String(50))  # e.g. authorization.grant
    entity_type: Mapped[str] = mapped_column(String(50))
    entity_id: Mapped[str | None] = mapped_column(String(64))
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class Setting(Base):
    """Small server-wide key/value state (e.g. the last issued access-list version)."""

    __tablename__ = "settings"

    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class AclDirty(Base):
    """A pending access-list republish, written in the same transaction as the change.

    `node_id` NULL means every node. The publisher (possibly in another process)
    polls this table, republishes, then deletes the rows it handled.
    """

    __tablename__ = "acl_dirty"

    id: Mapped[int] = mapped_column(primary_key=True)
    node_id: Mapped[int | None] = mapped_column(ForeignKey("nodes.id", ondelete="CASCADE"))
    reason: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class OutgoingCommand(Base):
    """A command for a node (`stop`, `lock`…), queued by the UI/API, published by the server."""

    __tablename__ = "outgoing_commands"

    id: Mapped[int] = mapped_column(primary_key=True)
    command_id: Mapped[str] = mapped_column(String(36), unique=True)
    node_id: Mapped[int] = mapped_column(ForeignKey("nodes.id"), index=True)
    machine_id: Mapped[int | None] = mapped_column(ForeignKey("machines.id"))
    cmd: Mapped[str] = mapped_column(String(20))
    ts: Mapped[datetime] = mapped_column(default=utcnow)
    actor: Mapped[str | None] = mapped_column(String(200))
    published_at: Mapped[datetime | None] = mapped_column(index=True)
