"""Web login sessions: opened at login, closed at logout, checked on every request.

The session cookie is signed, not remembered: a copy taken before logout used to work after
it (issue 13). A login now opens a `WebLogin` row whose random id the cookie carries; the user
loader accepts a cookie only while that row exists and is younger than `MAX_AGE`; logout
deletes it. Rows store the id's SHA-256, never the id.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from sqlalchemy import delete
from sqlalchemy.orm import Session

from server.models import WebLogin
from server.services.common import now_utc

MAX_AGE = timedelta(days=31)  # Flask's PERMANENT_SESSION_LIFETIME default


def login_key(token: str) -> str:
    """What the database stores for the cookie's login id."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def open_login(db: Session, user_id: int) -> str:
    """A new login session for `user_id`; returns the id for the cookie. The caller commits."""
    now = now_utc()
    db.execute(delete(WebLogin).where(WebLogin.created_at < now - MAX_AGE))  # housekeeping
    token = secrets.token_urlsafe(32)
    db.add(WebLogin(id=login_key(token), user_id=user_id, created_at=now))
    db.flush()
    return token


def close_login(db: Session, token: str | None) -> bool:
    """End the login session `token` for good (logout). The caller commits."""
    if not token:
        return False
    result = db.execute(delete(WebLogin).where(WebLogin.id == login_key(token)))
    return bool(getattr(result, "rowcount", 0))


def close_all_logins(db: Session, user_id: int, keep: str | None = None) -> None:
    """End every login session of a user (password changed, deactivated, erased), but `keep`
    (the cookie's login id of the request that changed the password: its author stays logged
    in). A browser that knew the old password, or a copied cookie, is logged out. The caller
    commits."""
    stmt = delete(WebLogin).where(WebLogin.user_id == user_id)
    if keep:
        stmt = stmt.where(WebLogin.id != login_key(keep))
    db.execute(stmt)


__all__ = ["MAX_AGE", "close_all_logins", "close_login", "login_key", "open_login"]
