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
from collections.abc import Callable
from dataclasses import dataclass
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


LOGIN_KEY = "fabpass_login"  # the session key holding the login id (server.services.logins)


@login_manager.user_loader
def _load_user(user_id: str) -> Principal | None:
    from flask import session

    from server.app import get_db
    from server.services.logins import login_key

    try:
        uid = int(user_id)
    except ValueError:
        return None
    token = session.get(LOGIN_KEY)
    if not isinstance(token, str) or not token:
        return None  # a cookie from before server-side logins, or forged: log in again
    cache: PrincipalCache | None = current_app.extensions.get("fabpass.principals")
    key = (uid, login_key(token))
    if cache is not None:
        hit = cache.get(key)
        if hit is not None:
            return hit
    principal = _principal_of_login(get_db(), uid, token)
    if cache is not None and principal is not None:
        cache.put(key, principal)
    return principal


class PrincipalCache:
    """Principals of open logins for `ttl_s` seconds (issue 21: the login's statement was a sixth
    of a page's CPU). Bounded in time so that a login closed or a user deactivated by another
    process (`fabpass` CLI) is refused within `ttl_s`; every write request of this process
    clears it when it ends, so that a change made here (logout, deactivation) holds at once."""

    def __init__(self, ttl_s: float = 0.5, max_entries: int = 1024) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._lock = threading.Lock()
        self._rows: dict[tuple[int, str], tuple[float, Principal]] = {}

    def get(self, key: tuple[int, str]) -> Principal | None:
        with self._lock:
            hit = self._rows.get(key)
            if hit is None:
                return None
            if time.monotonic() >= hit[0]:
                del self._rows[key]
                return None
            return hit[1]

    def put(self, key: tuple[int, str], principal: Principal) -> None:
        with self._lock:
            if len(self._rows) >= self.max_entries:
                self._rows.clear()
            self._rows[key] = (time.monotonic() + self.ttl_s, principal)

    def clear(self) -> None:
        with self._lock:
            self._rows.clear()


def _principal_of_login(db: Session, uid: int, token: str) -> Principal | None:
    """The principal of this open login (None: closed, expired or user inactive)."""
    from server.models import WebLogin, user_sites
    from server.services.logins import MAX_AGE, login_key

    # one statement for the user, its open login and its sites (this runs on every web
    # request): columns, not ORM objects, so no identity map and no lazy load of `User.sites`
    rows = db.execute(
        select(User.id, User.email, User.role, User.member_id, User.active, user_sites.c.site_id)
        .join(WebLogin, (WebLogin.user_id == User.id) & (WebLogin.id == login_key(token))
              & (WebLogin.created_at > datetime.now(UTC) - MAX_AGE))
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


# ---------------------------------------------------------------- login throttling


def can_book(db: Session, p: Principal, machine: Machine, member_id: int,
             training: bool = False) -> bool:
    """Book (or cancel a booking of) this machine for this member: whoever may grant on the
    machine (its site's managers, its trainers), or the member themself where the machine's
    policy has `booking_self`. A training booking needs the grant right."""
    if can_grant_machine(db, p, machine):
        return True
    return (not training and p.member_id is not None and p.member_id == member_id
            and bool((machine.policy or {}).get("booking_self")))


# ---------------------------------------------------------------- login rate limit


@dataclass
class _Failures:
    count: int = 0
    last: float = 0.0


class LoginThrottle:
    """Failed logins per (client address, account), with an increasing delay.

    The first `free` failures cost nothing; after that, the next attempt is allowed only
    `base_delay_s * 2**(failures - free)` seconds (at most `max_delay_s`) after the last
    failure, the right password included, and a success clears the count. The key is the pair:
    an attacker guessing an admin's password from elsewhere slows only their own attempts, and
    the owner, from their own address, logs in at once (a per-account lock-out let anyone lock
    an admin out, issue 13). Behind a reverse proxy this needs the client's real address:
    `FABPASS_TRUSTED_PROXIES` (see `server.app`). Failures are forgotten after `forget_s` quiet
    seconds. In memory is enough: one server process runs the web UI (contract section 1).
    `clock` is injected so tests can step time.
    """

    MAX_KEYS = 10_000

    def __init__(self, free: int = 5, base_delay_s: float = 1.0, max_delay_s: float = 300.0,
                 forget_s: float = 3600.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.free = free
        self.base_delay_s = base_delay_s
        self.max_delay_s = max_delay_s
        self.forget_s = forget_s
        self.clock = clock
        self._failures: dict[tuple[str, str], _Failures] = {}
        self._lock = threading.Lock()

    def _delay(self, count: int) -> float:
        if count < self.free:
            return 0.0
        return float(min(self.max_delay_s, self.base_delay_s * 2 ** min(count - self.free, 32)))

    def retry_after(self, ip: str, email: str) -> float:
        """Seconds to wait before this address may try this account again (0: now)."""
        now = self.clock()
        with self._lock:
            f = self._failures.get((ip, email.lower()))
            if f is None:
                return 0.0
            if now - f.last > self.forget_s:
                del self._failures[(ip, email.lower())]
                return 0.0
            return max(0.0, f.last + self._delay(f.count) - now)

    def failed(self, ip: str, email: str) -> None:
        now = self.clock()
        with self._lock:
            f = self._failures.setdefault((ip, email.lower()), _Failures())
            f.count += 1
            f.last = now
            if len(self._failures) > self.MAX_KEYS:  # bound memory under a spray of emails
                for k in [k for k, v in self._failures.items() if now - v.last > self.forget_s]:
                    del self._failures[k]
                while len(self._failures) > self.MAX_KEYS:  # still full: drop the oldest
                    del self._failures[min(self._failures, key=lambda k: self._failures[k].last)]

    def reset(self, ip: str, email: str) -> None:
        with self._lock:
            self._failures.pop((ip, email.lower()), None)


def rate_limiter() -> LoginThrottle:
    return cast(LoginThrottle, current_app.extensions["fabpass.login_limiter"])


def init_app(app: Flask) -> None:
    login_manager.init_app(app)
    cache = PrincipalCache(float(app.config.get("PRINCIPAL_CACHE_S", 0.5)))
    app.extensions["fabpass.principals"] = cache

    @app.teardown_request
    def _forget_principals_after_writes(_exc: BaseException | None) -> None:
        if request.method not in ("GET", "HEAD", "OPTIONS"):
            cache.clear()  # a logout, a deactivation, a role or site change: at once here
    app.extensions["fabpass.login_limiter"] = LoginThrottle(
        free=int(app.config.get("LOGIN_FREE_ATTEMPTS", 5)),
        base_delay_s=float(app.config.get("LOGIN_DELAY_BASE_S", 1.0)),
        max_delay_s=float(app.config.get("LOGIN_DELAY_MAX_S", 300.0)))


__all__ = ["ADMIN", "ALL_ROLES", "MANAGER", "TRAINER", "Principal", "can_change_authorization",
           "can_change_trainings", "can_edit_member", "can_grant_group", "can_grant_machine",
           "can_manage_machine", "can_manage_member", "can_manage_site", "can_read_contact",
           "can_read_site", "contact_sites", "init_app", "managed_site_ids", "me", "principal_from_bearer",
           "principal_from_token", "principal_from_user", "rate_limiter", "read_sites",
           "roles_required"]
