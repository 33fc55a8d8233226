"""Password reset and invitations by mail: single-use, short-lived tokens (issue 20).

`request_reset` behaves the same whether or not the address belongs to a login (the page that
calls it answers the same either way, and the work done differs only by one queued mail), and
it mails at most `MAX_PER_HOUR` links per login per hour. A token is stored only as its SHA-256;
it works once, before it expires, and only for an active login. Every issued and used token is
in the audit log.
"""

from __future__ import annotations

import logging
import secrets
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from server.models import PasswordToken, User, utcnow
from server.security import hash_password, hash_token
from server.services import mail, mail_templates
from server.services.audit import audit
from server.services.logins import close_all_logins

log = logging.getLogger(__name__)

RESET_TTL = timedelta(hours=1)
INVITE_TTL = timedelta(days=7)
MAX_PER_HOUR = 3
MIN_PASSWORD = 8


def reset_link(public_url: str, token: str) -> str:
    return f"{public_url.rstrip('/')}/password/reset/{token}"


def _issue(db: Session, user: User, purpose: str, ttl: timedelta, now: datetime) -> str:
    token = secrets.token_urlsafe(32)
    db.add(PasswordToken(user_id=user.id, token_hash=hash_token(token), purpose=purpose,
                         created_at=now, expires_at=now + ttl))
    return token


def request_reset(db: Session, email: str, *, public_url: str, lang: str | None,
                  actor: str = "web", now: datetime | None = None) -> bool:
    """Queue a reset mail if `email` is an active login and it is under the hourly limit.

    Returns whether a mail was queued, for logs and tests only: the caller must not show it.
    """
    now = now or utcnow()
    user = db.scalar(select(User).where(User.email == email.strip().lower()))
    if user is None or not user.active:
        log.info("password reset asked for an address that is no active login")
        return False
    recent = db.scalar(select(func.count()).select_from(PasswordToken).where(
        PasswordToken.user_id == user.id, PasswordToken.created_at > now - timedelta(hours=1)))
    if (recent or 0) >= MAX_PER_HOUR:
        audit(db, actor, "password.reset_limited", "user", user.id)
        db.commit()
        return False
    token = _issue(db, user, "reset", RESET_TTL, now)
    subject, text, html = mail_templates.render(
        "password_reset", lang or user.locale, email=user.email,
        minutes=int(RESET_TTL.total_seconds() // 60), link=reset_link(public_url, token))
    mail.enqueue(db, user.email, subject, text, html, kind="password_reset")
    audit(db, actor, "password.reset_requested", "user", user.id)
    db.commit()
    return True


def invite(db: Session, user: User, *, public_url: str, lang: str | None, actor: str,
           now: datetime | None = None) -> None:
    """Mail a new login a link to choose its password (the caller commits)."""
    now = now or utcnow()
    token = _issue(db, user, "invite", INVITE_TTL, now)
    subject, text, html = mail_templates.render(
        "invitation", lang or user.locale, email=user.email,
        minutes=int(INVITE_TTL.total_seconds() // 60), link=reset_link(public_url, token))
    mail.enqueue(db, user.email, subject, text, html, kind="invitation")
    audit(db, actor, "password.invited", "user", user.id)


def valid_token(db: Session, token: str, now: datetime | None = None) -> PasswordToken | None:
    """The token row if it is unused, unexpired and for an active login; else None (one answer
    for every reason, so the page cannot tell them apart)."""
    now = now or utcnow()
    if not token or len(token) > 200:
        return None
    row = db.scalar(select(PasswordToken).where(PasswordToken.token_hash == hash_token(token)))
    if row is None or row.used_at is not None or row.expires_at <= now:
        return None
    user = db.get(User, row.user_id)
    if user is None or not user.active:
        return None
    return row


def complete_reset(db: Session, token: str, password: str, *, actor: str = "web",
                   now: datetime | None = None) -> bool:
    """Set the new password and spend the token (and every other open token of that login)."""
    now = now or utcnow()
    if len(password) < MIN_PASSWORD:
        raise ValueError("password too short")
    row = valid_token(db, token, now)
    if row is None:
        return False
    # one UPDATE that only the first of two racing requests wins
    spent = db.execute(update(PasswordToken).where(PasswordToken.id == row.id,
                                                   PasswordToken.used_at.is_(None))
                       .values(used_at=now))
    if getattr(spent, "rowcount", 1) != 1:
        db.rollback()
        return False
    db.execute(update(PasswordToken).where(PasswordToken.user_id == row.user_id,
                                           PasswordToken.used_at.is_(None))
               .values(used_at=now))
    user = db.get(User, row.user_id)
    assert user is not None
    user.password_hash = hash_password(password)
    close_all_logins(db, user.id)  # whoever held a session with the old password is out
    audit(db, actor, "password.reset_done", "user", user.id, {"purpose": row.purpose})
    db.commit()
    return True
