"""Web logins and API tokens, with the sites a manager's login or token covers.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    Boolean,
    Column,
    ForeignKey,
    String,
    Table,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from server.models.base import Base, enum_column, utcnow
from server.models.core import Member, Site
from server.models.enums import UserRole

user_sites = Table(
    "user_sites",
    Base.metadata,
    Column("user_id", ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("site_id", ForeignKey("sites.id", ondelete="CASCADE"), primary_key=True),
)


class User(Base):
    """A web login. A trainer is linked to the member whose trainer authorizations it uses."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(300))
    role: Mapped[UserRole] = mapped_column(enum_column(UserRole, "user_role"))
    member_id: Mapped[int | None] = mapped_column(ForeignKey("members.id"))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    locale: Mapped[str | None] = mapped_column(String(10))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_login: Mapped[datetime | None] = mapped_column()

    member: Mapped[Member | None] = relationship()
    sites: Mapped[list[Site]] = relationship(secondary=user_sites)


api_token_sites = Table(
    "api_token_sites",
    Base.metadata,
    Column("token_id", ForeignKey("api_tokens.id", ondelete="CASCADE"), primary_key=True),
    Column("site_id", ForeignKey("sites.id", ondelete="CASCADE"), primary_key=True),
)


class ApiToken(Base):
    """A REST API token. A manager token reaches only its `sites` (and shared, site-less
    records), like a manager login; an admin token reaches everything and has no sites."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    token_hash: Mapped[str] = mapped_column(String(128), unique=True)  # sha256 of a random token
    prefix: Mapped[str] = mapped_column(String(12))
    role: Mapped[UserRole] = mapped_column(enum_column(UserRole, "token_role"), default=UserRole.admin)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used: Mapped[datetime | None] = mapped_column()
    revoked_at: Mapped[datetime | None] = mapped_column()

    sites: Mapped[list[Site]] = relationship(secondary=api_token_sites)
