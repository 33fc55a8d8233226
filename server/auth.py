"""Who is asking and what they may do: web logins (Flask-Login), API tokens, roles and sites.

Roles (contract issue 4):
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
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import wraps
from typing import Any, TypeVar, cast

from flask import Flask, abort, current_app, request
from flask_login import LoginManager, current_user
from sqlalchemy import select
from sqlalchemy.orm import Session

from server.models import (
    ApiToken,
    Authorization,
    Machine,
    Member,
    User,
    UserRole,
)
from server.security import hash_token

F = TypeVar("F", bound=Callable[..., Any])

ADMIN = UserRole.admin.value
MANAGER = UserRole.manager.value
TRAINER = UserRole.trainer.value
ALL_ROLES = (ADMIN, MANAGER, TRAINER)


@dataclass
class Principal:
    """A snapshot of the logged-in user (or API token) for one request.

    Kept detached from the ORM so templates and checks never hit a closed session.
    """

    id: int
    email: str
    role: str
    site_ids: frozenset[int] = field(default_factory=frozenset)
    member_id: int | None = None
    kind: str = "user"  # user | token

    # Flask-Login's protocol
    is_authenticated = True
    is_active = True
    is_anonymous = False

    def get_id(self) -> str:
        return str(self.id)

    @property
    def actor(self) -> str:
        """How the audit log names this principal."""
        return f"{self.kind}:{self.id} {self.email}"

    @property
    def is_admin(self) -> bool:
        return self.role == ADMIN

    @property
    def is_manager(self) -> bool:
        return self.role in (ADMIN, MANAGER)


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


def can_manage_site(p: Principal, site_id: int | None) -> bool:
    """Members, badges, machines of this site (None: shared, any manager)."""
    if p.role == ADMIN:
        return True
    if p.role != MANAGER:
        return False
    return site_id is None or site_id in p.site_ids


def managed_site_ids(p: Principal) -> frozenset[int] | None:
    """The sites whose records this principal manages, for filtering lists in SQL: None means
    every site (admin); a manager also manages shared (site-less) members. Same rule as
    `can_manage_site`."""
    if p.role == ADMIN:
        return None
    return p.site_ids if p.role == MANAGER else frozenset()


def can_manage_member(p: Principal, member: Member) -> bool:
    return can_manage_site(p, member.site_id)


def can_manage_machine(p: Principal, machine: Machine) -> bool:
    return can_manage_site(p, machine.site_id)


def trainer_machine_ids(db: Session, member_id: int | None) -> set[int]:
    """Machines on which this member holds a valid trainer authorization (direct or group)."""
    if member_id is None:
        return set()
    from server.services import trainer_machine_ids as _trainer_machines

    return _trainer_machines(db, member_id)


def can_grant_machine(db: Session, p: Principal, machine: Machine) -> bool:
    """Grant or revoke a training on this machine."""
    if p.role in (ADMIN, MANAGER):
        return can_manage_machine(p, machine)
    if p.role == TRAINER:
        return machine.id in trainer_machine_ids(db, p.member_id)
    return False


def can_grant_group(db: Session, p: Principal, machines: list[Machine]) -> bool:
    """A group grant needs the right on every machine of the group."""
    if p.role == ADMIN:
        return True
    return bool(machines) and all(can_grant_machine(db, p, m) for m in machines)


def can_change_authorization(db: Session, p: Principal, auth: Authorization) -> bool:
    if auth.machine is not None:
        return can_grant_machine(db, p, auth.machine)
    if auth.group is not None:
        return can_grant_group(db, p, list(auth.group.machines))
    return p.role == ADMIN


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
