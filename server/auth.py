"""Who is asking and what they may do: web logins (Flask-Login), API tokens, roles and sites.

The rule itself (who may do what) is `server.services.access`; this module is the Flask side.

Roles (contract issue 4 and section 6):
- admin: everything;
- manager: members, badges, machines and authorizations of their site(s) (`User.sites`, or
  `ApiToken.sites` for a manager API token: the same rules); members without a site are shared
  and manageable by every manager;
- trainer: grant/revoke only on machines where their linked member holds a valid trainer
  authorization (directly or through a machine group); may read members.

Reading (dashboard, members, machines, authorizations) is open to every logged-in role;
writing is checked here so web pages and the API apply the same rules.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import wraps
from typing import Any, TypeVar, cast

from flask import Flask, abort, current_app, request
from flask_login import LoginManager, current_user
from sqlalchemy import select
from sqlalchemy.orm import Session

from server.models import ApiToken, Machine, Member, User
from server.security import hash_token
from server.services.access import (
    ADMIN,
    ALL_ROLES,
    MANAGER,
    TRAINER,
    Principal,
    can_change_authorization,
    can_change_trainings,
    can_edit_member,
    can_manage_machine,
    can_manage_site,
    can_read_contact,
    can_read_site,
    contact_sites,
    managed_site_ids,
    read_sites,
)

F = TypeVar("F", bound=Callable[..., Any])

def principal_from_user(user: User) -> Principal:
    return Principal(
        id=user.id,
        email=user.email,
        role=str(user.role.value if hasattr(user.role, "value") else user.role),
        site_ids=frozenset(s.id for s in user.sites),
        member_id=user.member_id,
    )


def principal_from_token(tok: ApiToken) -> Principal:
    role = str(tok.role.value if hasattr(tok.role, "value") else tok.role)
    return Principal(id=tok.id, email=tok.name, role=role, kind="token",
                     site_ids=frozenset(s.id for s in tok.sites))


# ---------------------------------------------------------------- login manager


login_manager = LoginManager()
login_manager.login_view = "web.login"
login_manager.login_message = None  # type: ignore[assignment]
login_manager.session_protection = "strong"


@login_manager.user_loader
def _load_user(user_id: str) -> Principal | None:
    from server.app import get_db
    from server.models import user_sites

    try:
        uid = int(user_id)
    except ValueError:
        return None
    # one statement for the user and its sites (this runs on every web request): columns, not
    # ORM objects, so no identity map and no lazy load of `User.sites`
    rows = get_db().execute(
        select(User.id, User.email, User.role, User.member_id, User.active, user_sites.c.site_id)
        .outerjoin(user_sites, user_sites.c.user_id == User.id)
        .where(User.id == uid)
    ).all()
    if not rows or not rows[0].active:
        return None
    first = rows[0]
    return Principal(
        id=first.id,
        email=first.email,
        role=str(first.role.value if hasattr(first.role, "value") else first.role),
        site_ids=frozenset(r.site_id for r in rows if r.site_id is not None),
        member_id=first.member_id,
    )


def me() -> Principal:
    """The current principal (web user or API token); only call behind a login check."""
    from flask import g

    p = g.get("api_principal")
    if p is not None:
        return cast(Principal, p)
    return cast(Principal, current_user._get_current_object())


def roles_required(*roles: str) -> Callable[[F], F]:
    """Web view decorator: anonymous → redirect to /login, wrong role → 403."""

    def deco(fn: F) -> F:
        @wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if not current_user.is_authenticated:
                return login_manager.unauthorized()
            if roles and current_user.role not in roles:
                abort(403)
            return fn(*args, **kwargs)

        return cast(F, wrapper)

    return deco


# ---------------------------------------------------------------- API tokens


def principal_from_bearer(db: Session) -> Principal | None:
    """The ApiToken named by `Authorization: Bearer …`, if valid and not revoked."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    tok = db.scalar(select(ApiToken).where(ApiToken.token_hash == hash_token(token.strip())))
    if tok is None or tok.revoked_at is not None:
        return None
    role = str(tok.role.value if hasattr(tok.role, "value") else tok.role)
    if role not in (ADMIN, MANAGER):
        return None
    now = datetime.now(UTC)
    if tok.last_used is None or now - tok.last_used > timedelta(minutes=1):
        tok.last_used = now  # at most one write a minute per token: reads stay read-only
        db.commit()
    return principal_from_token(tok)


# ---------------------------------------------------------------- permissions
#
# The rule is `server.services.access` (imported above); the names the views used are kept.


def can_manage_member(p: Principal, member: Member) -> bool:
    return can_edit_member(p, member)


def can_grant_machine(db: Session, p: Principal, machine: Machine) -> bool:
    """Grant or revoke a training on this machine (for any member)."""
    return can_change_trainings(db, p, [machine])


def can_grant_group(db: Session, p: Principal, machines: list[Machine]) -> bool:
    """A group grant needs the right on every machine of the group."""
    return can_change_trainings(db, p, machines)


# ---------------------------------------------------------------- login rate limit


class LoginRateLimiter:
    """In-memory failed-attempt counter per (IP, email): `limit` per `window_s` seconds.

    In memory is enough: one server process runs the web UI (contract section 1).
    """

    def __init__(self, limit: int = 5, window_s: float = 60.0) -> None:
        self.limit = limit
        self.window_s = window_s
        self._hits: dict[tuple[str, str], deque[float]] = {}
        self._lock = threading.Lock()

    def _prune(self, key: tuple[str, str], now: float) -> deque[float]:
        q = self._hits.setdefault(key, deque())
        while q and now - q[0] > self.window_s:
            q.popleft()
        return q

    def blocked(self, ip: str, email: str) -> bool:
        now = time.monotonic()
        with self._lock:
            return len(self._prune((ip, email.lower()), now)) >= self.limit

    def failed(self, ip: str, email: str) -> None:
        now = time.monotonic()
        with self._lock:
            self._prune((ip, email.lower()), now).append(now)
            if len(self._hits) > 10_000:  # bound memory under a spray of emails
                for k in [k for k, v in self._hits.items() if not v]:
                    del self._hits[k]

    def reset(self, ip: str, email: str) -> None:
        with self._lock:
            self._hits.pop((ip, email.lower()), None)


def rate_limiter() -> LoginRateLimiter:
    return cast(LoginRateLimiter, current_app.extensions["fabpass.login_limiter"])


def init_app(app: Flask) -> None:
    login_manager.init_app(app)
    app.extensions["fabpass.login_limiter"] = LoginRateLimiter(
        int(app.config.get("LOGIN_RATE_LIMIT", 5)), float(app.config.get("LOGIN_RATE_WINDOW_S", 60))
    )


__all__ = ["ADMIN", "ALL_ROLES", "MANAGER", "TRAINER", "Principal", "can_change_authorization",
           "can_change_trainings", "can_edit_member", "can_grant_group", "can_grant_machine",
           "can_manage_machine", "can_manage_member", "can_manage_site", "can_read_contact",
           "can_read_site", "contact_sites", "init_app", "managed_site_ids", "me", "principal_from_bearer",
           "principal_from_token", "principal_from_user", "rate_limiter", "read_sites",
           "roles_required"]
