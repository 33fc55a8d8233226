"""Refusals explained: why the server thinks a badge was refused, recorded when it hears of it.

A node's list holds only the badges allowed on its machine, so a registered member whose training
expired, was revoked or never existed is refused by the node as `unknown_badge`. The node cannot
say more; the server can. `record` runs in the ingest for every `badge.denied` event and keeps
both: `node_reason` as sent, `reason` the server's explanation at that moment (contract 6):

- the node's reason, unless it is `unknown_badge` for a UID the server knows; then, first match:
- `badge_lost` / `badge_inactive`: the badge's status;
- `member_inactive`: the member is deactivated (or past `active_until`);
- `revoked` / `expired`: the member's latest training on this machine (direct or through a group)
  that would cover it, revoked or expired before the tap, with its date;
- `not_authorized`: no training on this machine at all.

A member who is authorized by the server's records but was refused `unknown_badge` (the node's list
was older than the grant) keeps the node's reason: it is the true one.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Select, or_, select
from sqlalchemy.orm import Session, selectinload
from sqlalchemy.orm.attributes import set_committed_value

from server.models import (
    Authorization,
    Badge,
    BadgeStatus,
    Machine,
    Member,
    Node,
    Refusal,
    User,
    machine_group_members,
)
from server.services.access import machine_record_filters
from server.services.common import DEFAULT_PER_PAGE, Page, now_utc, paginate

log = logging.getLogger(__name__)

UNKNOWN = "unknown_badge"
# the explanations the server adds (contract 6), in the order they are checked
SERVER_REASONS = ("badge_lost", "badge_inactive", "member_inactive", "revoked", "expired",
                  "not_authorized")


def _iso(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _machine_authorizations(db: Session, member_id: int, machine: Machine) -> list[Authorization]:
    """The member's trainings (user or trainer) that cover this machine, directly or by group."""
    groups = select(machine_group_members.c.group_id).where(
        machine_group_members.c.machine_id == machine.id)
    return list(db.scalars(select(Authorization).where(
        Authorization.member_id == member_id,
        or_(Authorization.machine_id == machine.id, Authorization.group_id.in_(groups)))))


class Lookups:
    """What explaining refusals reads, loaded once for a whole ingest batch: the badges of the
    refused UIDs with their members, and those members' trainings on the batch's machines
    (directly or through a group). `record` without it asks per refusal."""

    def __init__(self, db: Session, uids: Collection[str], machine_ids: Collection[int]) -> None:
        self._db = db
        self.badges: dict[str, Badge] = {}
        self._auths: dict[int, list[tuple[int | None, int | None, Authorization]]] = {}
        self._groups: dict[int, set[int]] = {}
        self._machines = set(machine_ids)
        self._members: set[int] = set()
        if not uids:
            return
        self.badges = {b.uid: b for b in db.scalars(
            select(Badge).where(Badge.uid.in_(sorted(uids))).options(selectinload(Badge.member)))}
        members = {b.member_id for b in self.badges.values()}
        if not members or not machine_ids:
            return
        self._members = members
        for gid, mid in db.execute(select(machine_group_members.c.group_id,
                                          machine_group_members.c.machine_id)
                                   .where(machine_group_members.c.machine_id.in_(
                                       sorted(machine_ids)))):
            self._groups.setdefault(mid, set()).add(gid)
        groups = sorted({g for gs in self._groups.values() for g in gs})
        for auth in db.scalars(select(Authorization).where(
                Authorization.member_id.in_(sorted(members)),
                or_(Authorization.machine_id.in_(sorted(machine_ids)),
                    Authorization.group_id.in_(groups or [0])))):
            self._auths.setdefault(auth.member_id, []).append(
                (auth.machine_id, auth.group_id, auth))

    def add_badge(self, badge: Badge) -> None:
        """A badge enrolled during the batch (a pending enrolment honoured)."""
        self.badges[badge.uid] = badge

    def authorizations(self, member_id: int, machine: Machine) -> list[Authorization]:
        """As `_machine_authorizations`, from what was loaded (asked for anyone else)."""
        if member_id not in self._members or machine.id not in self._machines:
            return _machine_authorizations(self._db, member_id, machine)
        groups = self._groups.get(machine.id, set())
        return [a for mid, gid, a in self._auths.get(member_id, [])
                if mid == machine.id or (gid is not None and gid in groups)]


def explain(db: Session, badge: Badge | None, machine: Machine | None, node_reason: str,
            at: datetime, lookups: Lookups | None = None) -> tuple[str, dict[str, Any] | None]:
    """(reason, detail) for a refusal of `badge` on `machine` at `at` (see the module)."""
    if node_reason != UNKNOWN or badge is None:
        return node_reason, None
    if badge.status == BadgeStatus.lost:
        return "badge_lost", None
    if badge.status != BadgeStatus.active:
        return "badge_inactive", None
    member = badge.member
    if not member.active or (member.active_until is not None
                             and member.active_until < at.date()):
        return "member_inactive", None
    if machine is None:
        return node_reason, None
    ended: list[tuple[datetime, str, Authorization]] = []
    auths = (lookups.authorizations(member.id, machine) if lookups is not None
             else _machine_authorizations(db, member.id, machine))
    for auth in auths:
        if auth.granted_at > at:
            continue  # granted after the tap: did not exist then
        if auth.revoked_at is not None and auth.revoked_at <= at:
            ended.append((auth.revoked_at, "revoked", auth))
        elif auth.expires_at is not None and auth.expires_at <= at:
            ended.append((auth.expires_at, "expired", auth))
        else:
            return node_reason, None  # valid then: the node's list was older than the grant
    if not ended:
        return "not_authorized", None
    when, reason, auth = max(ended, key=lambda e: e[0])
    return reason, {"authorization": auth.id, f"{reason}_at": _iso(when)}


def record(db: Session, event_uuid: str, node: Node, data: dict[str, Any],
           at: datetime, lookups: Lookups | None = None) -> Refusal:
    """Store one `badge.denied` event with the server's explanation (called by the ingest;
    `lookups` holds the batch's badges and trainings, loaded at once)."""
    uid = str(data.get("uid") or "")[:20]
    node_reason = str(data.get("reason") or "")[:40]
    if lookups is not None:
        badge = lookups.badges.get(uid)
    else:
        badge = db.scalar(select(Badge).where(Badge.uid == uid)) if uid else None
    machine = node.machine
    reason, detail = explain(db, badge, machine, node_reason, at, lookups)
    row = Refusal(event_uuid=event_uuid, at=at, received_at=now_utc(), node_id=node.id,
                  machine_id=machine.id if machine else None,
                  member_id=badge.member_id if badge is not None else None, uid=uid,
                  node_reason=node_reason, reason=reason, detail=detail)
    db.add(row)
    if reason != node_reason:
        log.info("refusal on %s explained: %s (node said %s)", node.slug, reason, node_reason)
    return row


def list_refusals(db: Session, member_id: int | None = None, machine_id: int | None = None,
                  since: datetime | None = None, until: datetime | None = None,
                  page: int | None = 1, per_page: int | None = DEFAULT_PER_PAGE,
                  site_ids: Collection[int] | None = None) -> Page[Refusal]:
    """Refusals in [since, until) by the node's time, newest first; `site_ids` scopes them to
    machines of those sites, as sessions are scoped (None: every site)."""
    stmt = machine_record_filters(
        select(Refusal).options(selectinload(Refusal.machine))
        .order_by(Refusal.at.desc(), Refusal.id.desc()),
        machine_col=Refusal.machine_id, member_col=Refusal.member_id, time_col=Refusal.at,
        site_ids=site_ids, member_id=member_id, machine_id=machine_id, since=since, until=until)
    return paginate(db, stmt, page, per_page)


def last_refusals(db: Session, *, member_id: int | None = None, machine_id: int | None = None,
                  site_ids: Collection[int] | None = None, limit: int = 5) -> list[Refusal]:
    """The few latest refusals for a member page, a machine page or the dashboard card.

    The order and filters of `list_refusals`, without its page count: a COUNT(*) over every
    refusal just to show five was a seventh of the dashboard's CPU. Machine and member come in
    the same statement, as entities of their own rather than a loader option (the option's
    per-query machinery cost more than the rows), set on each refusal as loaded values (the
    identity map alone holds them weakly: they were gone, and lazily loaded again, by the time
    the sentence named them)."""
    stmt = machine_record_filters(
        cast(Select[Any], select(Refusal, Machine, Member))
        .outerjoin(Machine, Machine.id == Refusal.machine_id)
        .outerjoin(Member, Member.id == Refusal.member_id)
        .order_by(Refusal.at.desc(), Refusal.id.desc()),
        machine_col=Refusal.machine_id, member_col=Refusal.member_id, time_col=Refusal.at,
        site_ids=site_ids, member_id=member_id, machine_id=machine_id, since=None, until=None)
    out = []
    for refusal, machine, member in db.execute(stmt.limit(limit)):
        set_committed_value(refusal, "machine", machine)
        set_committed_value(refusal, "member", member)
        out.append(refusal)
    return out


def describe(db: Session, refusal: Refusal) -> dict[str, Any]:
    """What a page says about a refusal, as data (the page words it in its language): the
    reason, the date it rests on (a `date`), and for a revocation who revoked and why."""
    detail = refusal.detail or {}
    out: dict[str, Any] = {"reason": refusal.reason, "node_reason": refusal.node_reason,
                           "at": refusal.at, "machine": refusal.machine, "member": refusal.member,
                           "date": None, "by": None, "why": None}
    for key in ("expired_at", "revoked_at"):
        if isinstance(detail.get(key), str):
            try:
                out["date"] = datetime.fromisoformat(detail[key].replace("Z", "+00:00"))
            except ValueError:
                out["date"] = None
    auth_id = detail.get("authorization")
    if refusal.reason == "revoked" and isinstance(auth_id, int):
        auth = db.get(Authorization, auth_id)
        if auth is not None:
            out["why"] = auth.revoke_reason
            if auth.revoked_by_user_id is not None:
                user = db.get(User, auth.revoked_by_user_id)
                out["by"] = user.email if user is not None else None
    return out
