"""The Fab-manager connector (issue 18): its settings, the users it linked, and its runs.

Fab-manager's Open API has no "changed since", so each run re-reads the lists and diffs them
against what the last run saw. `FabmanagerLink` remembers, per Fab-manager user, the member it
matched and the name and e-mail as last synced: a member changed here *and* upstream since then
is a conflict to report, not something to overwrite silently.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from server.models.base import Base, utcnow


class FabmanagerConfig(Base):
    """The one row (id 1) of connector settings. The token is stored, never shown back."""

    __tablename__ = "fabmanager_config"

    id: Mapped[int] = mapped_column(primary_key=True)
    url: Mapped[str] = mapped_column(String(500))
    token: Mapped[str] = mapped_column(String(500))
    site: Mapped[str | None] = mapped_column(String(64))  # home site slug of members it creates
    trainings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # fm id -> target
    machines: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # fm id -> machine slug
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class FabmanagerLink(Base):
    """A Fab-manager user matched to a member, with the values the last run synced."""

    __tablename__ = "fabmanager_links"

    fm_user_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str] = mapped_column(String(254))
    vanished_at: Mapped[datetime | None] = mapped_column()  # gone upstream (reported, kept)


class FabmanagerRun(Base):
    """One sync run: its outcome, counts and problems, for the status page."""

    __tablename__ = "fabmanager_runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column()
    dry_run: Mapped[bool] = mapped_column(Boolean, default=False)
    ok: Mapped[bool] = mapped_column(Boolean, default=False)
    message: Mapped[str | None] = mapped_column(Text)
    counts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    problems: Mapped[list[Any]] = mapped_column(JSON, default=list)
