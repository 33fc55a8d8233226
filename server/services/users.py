"""Web logins and API tokens."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from server.errors import N_, Conflict, Invalid, NotFound
from server.models import (
    ApiToken,
    Site,
    User,
    UserRole,
)
from server.security import hash_password, hash_token, new_token
from server.services.audit import audit
from server.services.common import get_member, get_site_by_slug
from server.services.logins import close_all_logins
from server.services.validation import email_field, enum_field, text_field


def _sites_by_slug(db: Session, slugs: Sequence[str], field: str) -> list[Site]:
    return [get_site_by_slug(db, slug, field) for slug in dict.fromkeys(slugs)]


def create_user(db: Session, email: str, password: str, role: str, member_id: int | None = None,
                *, actor: str, sites: Sequence[str] = ()) -> User:
    """A new web login; a manager's `sites` (slugs) are the sites it looks after."""
    email_ = email_field(email)
    if email_ is None:
        raise Invalid(N_("email is required"), {"email": N_("required")})
    role_ = enum_field(UserRole, role, "role")
    if not isinstance(password, str) or len(password) < 8:
        raise Invalid(N_("the password is too short"), {"password": N_("at least 8 characters")})
    if db.scalar(select(User.id).where(func.lower(User.email) == email_)) is not None:
        raise Conflict(N_("a user with e-mail %(email)s exists"), {"email": email_},
                       fields={"email": N_("another login already uses this e-mail")})
    if member_id is not None:
        get_member(db, member_id)
    site_rows = _sites_by_slug(db, sites, "sites")
    user = User(email=email_, password_hash=hash_password(password), role=role_,
                member_id=member_id, active=True, sites=site_rows)
    db.add(user)
    db.flush()
    audit(db, actor, "user.create", "user", user.id,
          {"email": email_, "role": role_.value, "member_id": member_id,
           "sites": [s.slug for s in site_rows]})
    db.flush()
    return user


def update_user(db: Session, user_id: int, *, email: str, role: str, member_id: int | None,
                active: bool, site_ids: Sequence[int], password: str | None = None,
                actor: str, keep_login: str | None = None) -> User:
    """Change a login; an e-mail another login uses is a Conflict on the `email` field (the
    database's unique index would otherwise answer with an error page)."""
    user = get_user(db, user_id)
    email_ = email_field(email)
    if email_ is None:
        raise Invalid(N_("email is required"), {"email": N_("required")})
    if db.scalar(select(User.id).where(func.lower(User.email) == email_,
                                       User.id != user.id)) is not None:
        raise Conflict(N_("a user with e-mail %(email)s exists"), {"email": email_},
                       fields={"email": N_("another login already uses this e-mail")})
    role_ = enum_field(UserRole, role, "role")
    if member_id is not None:
        get_member(db, member_id)
    sites = list(db.scalars(select(Site).where(Site.id.in_(sorted(set(site_ids)))))) \
        if site_ids else []
    if password:
        if len(password) < 8:
            raise Invalid(N_("the password is too short"),
                          {"password": N_("at least 8 characters")})
        user.password_hash = hash_password(password)
    user.email, user.role, user.member_id, user.active = email_, role_, member_id, bool(active)
    if password or not user.active:
        # a new password (or a disabled login) ends the login's other sessions: whoever knew
        # the old one is out; `keep_login` is the session that made the change
        close_all_logins(db, user.id, keep=keep_login if user.active else None)
    user.sites = sites
    audit(db, actor, "user.update", "user", user.id, {
        "email": user.email, "role": role_.value, "sites": [s.slug for s in sites],
        "member_id": member_id, "active": user.active, "password_changed": bool(password)})
    db.flush()
    return user


def get_user(db: Session, user_id: int) -> User:
    user = db.get(User, user_id)
    if user is None:
        raise NotFound(N_("no login %(id)s"), {"id": user_id})
    return user


def list_users(db: Session) -> list[User]:
    return list(db.scalars(select(User).order_by(User.email)))


def find_login(db: Session, email: str) -> User | None:
    """The login with this e-mail (already lower-cased by the caller), or None."""
    return db.scalar(select(User).where(User.email == email))


def create_token(db: Session, name: str, role: str = "admin", sites: Sequence[str] = (), *,
                 actor: str) -> tuple[ApiToken, str]:
    """A new API token: the row (hash only) and the plaintext, to show once.

    A manager token is bound to `sites` (slugs, at least one) and reaches only their records
    and shared ones, like a manager login; an admin token reaches every site and takes none."""
    name_ = text_field(name, "name")
    role_ = enum_field(UserRole, role or "admin", "role")
    if role_ not in (UserRole.admin, UserRole.manager):
        raise Invalid(N_("a token's role is admin or manager"), {"role": "admin or manager"})
    slugs = list(dict.fromkeys(sites))
    if role_ == UserRole.manager and not slugs:
        raise Invalid(N_("a manager token needs at least one site"), {"sites": "at least one site"})
    if role_ == UserRole.admin and slugs:
        raise Invalid(N_("an admin token reaches every site: it takes no sites"),
                      {"sites": "none for an admin token"})
    site_rows = [get_site_by_slug(db, slug, "sites") for slug in slugs]
    plain = new_token()
    token = ApiToken(name=name_, token_hash=hash_token(plain), prefix=plain[:12], role=role_,
                     sites=site_rows)
    db.add(token)
    db.flush()
    audit(db, actor, "token.create", "token", token.id,
          {"name": name_, "role": role_.value, "sites": slugs})
    db.flush()
    return token, plain


def remember_language(db: Session, user_id: int, lang: str) -> None:
    """A login chose its language (FR/EN switch): kept on the login, so that mails written
    outside any request (notices to its member) use it too (the caller commits)."""
    user = db.get(User, user_id)
    if user is not None and user.locale != lang:
        user.locale = lang
