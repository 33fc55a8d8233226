"""Web login sessions held on the server, so that logging out ends the session for good.

Flask keeps its session in a signed cookie: without a server-side record, a cookie copied
before logout kept working after it (issue 13). Each login makes one `WebLogin` row; the
cookie carries its random id, the row stores only the id's SHA-256 (a database leak gives no
usable session), and logout deletes the row.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from server.models.base import Base, utcnow


class WebLogin(Base):
    """One logged-in browser session of a web user."""

    __tablename__ = "web_logins"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha256 hex of the cookie's id
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
