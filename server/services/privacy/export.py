"""Export (right of access): everything the database holds about one member."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from server.models import (
    AuditLog,
    Authorization,
    Badge,
    DeadLetter,
    Event,
    Member,
    Node,
    Refusal,
    TrainingSignoff,
    UsageSession,
    User,
)
from server.services.common import get_member, now_utc
from server.services.personal import IdentityMatcher
from server.services.privacy.common import (
    BATCH,
    EXPORT_FORMAT,
    _data_uids,
    _is_replaced,
    _mentions,
    _plain,
    _row,
)

log = logging.getLogger(__name__)


# ---------------------------------------------------------------- export


def export_member(db: Session, member_id: int) -> dict[str, Any]:
    """Everything stored about one member, JSON-ready (right of access)."""
    member = get_member(db, member_id)
    badges = list(db.scalars(select(Badge).where(Badge.member_id == member.id).order_by(Badge.id)))
    uids = {b.uid for b in badges}
    auths = list(db.scalars(select(Authorization).where(
        or_(Authorization.member_id == member.id,
            Authorization.granted_by_member_id == member.id)).order_by(Authorization.id)))
    sessions = list(db.scalars(select(UsageSession).where(
        or_(UsageSession.member_id == member.id, UsageSession.badge_uid.in_(uids) if uids
            else UsageSession.member_id == member.id))
        .order_by(UsageSession.started_at, UsageSession.id)))
    events = _member_events(db, member.id, uids)
    signoffs = list(db.scalars(select(TrainingSignoff).where(or_(
        TrainingSignoff.trainer_member_id == member.id,
        TrainingSignoff.trainee_member_id == member.id,
        TrainingSignoff.trainer_uid.in_(uids), TrainingSignoff.trainee_uid.in_(uids)))
        .order_by(TrainingSignoff.id)))
    users = list(db.scalars(select(User).where(User.member_id == member.id).order_by(User.id)))
    matcher = _matcher(member, uids, users)
    audits = _member_audit(db, member.id, uids, [a.id for a in auths], users, matcher)
    dead = _member_dead_letters(db, matcher)
    nodes = _member_nodes(db, uids)
    refusals = _member_refusals(db, member.id, uids)
    return {
        "format": EXPORT_FORMAT,
        "exported_at": _plain(now_utc()),
        "member": {**_row(member), "site": member.site.slug if member.site else None},
        "badges": [_row(b) for b in badges],
        "authorizations": [
            {**_row(a), "machine": a.machine.slug if a.machine else None,
             "group": a.group.slug if a.group else None} for a in auths],
        "sessions": [
            {**_row(s), "machine": s.machine.slug if s.machine else None} for s in sessions],
        "events": [_row(e) for e in events],
        "refusals": [{**_row(r), "machine": r.machine.slug if r.machine else None}
                     for r in refusals],
        "training_signoffs": [_row(t) for t in signoffs],
        "web_users": [_row(u, exclude=("password_hash",)) for u in users],
        "audit_log": [_row(a) for a in audits],
        "dead_letters": [_row(d) for d in dead],
        "node_statuses": [{"id": n.id, "node": n.slug, "last_status": _plain(n.last_status)}
                          for n in nodes],
    }


def export_member_json(db: Session, member_id: int) -> str:
    return json.dumps(export_member(db, member_id), indent=2, ensure_ascii=False, sort_keys=True)


def _member_events(db: Session, member_id: int, uids: set[str]) -> list[Event]:
    if not uids:
        return []
    cond = _mentions(Event.data, uids)
    out = []
    for ev in db.scalars(select(Event).where(cond).order_by(Event.id)):
        if _data_uids(ev.data) & uids or (isinstance(ev.data, dict)
                                          and ev.data.get("member") == member_id):
            out.append(ev)
    return out


def _matcher(member: Member, uids: Iterable[str], users: Iterable[User]) -> IdentityMatcher:
    """The one matcher of this member's identity: their UIDs in any spelling, and their name,
    e-mail, number and login e-mails (not the placeholders an earlier erasure left)."""
    texts = [] if member.erased_at is not None else [member.name, member.email, member.member_no]
    texts += [u.email for u in users if not u.email.endswith("@invalid")]
    return IdentityMatcher([u for u in uids if not _is_replaced(u)], texts)
def _member_refusals(db: Session, member_id: int, uids: set[str]) -> list[Refusal]:
    cond = Refusal.member_id == member_id
    if uids:
        cond = or_(cond, Refusal.uid.in_(sorted(uids)))
    return list(db.scalars(select(Refusal).where(cond).order_by(Refusal.at, Refusal.id)))


def open_session_machines(db: Session, member_id: int) -> list[str]:
    """Names of the machines where the member has a session open now (erasure waits for them)."""
    rows = db.scalars(select(UsageSession).where(UsageSession.member_id == member_id,
                                                 UsageSession.ended_at.is_(None)))
    return sorted({s.machine.name if s.machine else "?" for s in rows})


def _member_audit(db: Session, member_id: int, uids: set[str], auth_ids: list[int],
                  users: Iterable[User] = (), matcher: IdentityMatcher | None = None,
                  ) -> list[AuditLog]:
    """Audit entries about the member, their badges, authorizations and linked logins, and
    every other entry (any entity type) whose id, actor or details the matcher finds."""
    conds: list[Any] = [(AuditLog.entity_type == "member") & (AuditLog.entity_id == str(member_id))]
    for user in users:
        conds.append((AuditLog.entity_type == "user") & (AuditLog.entity_id == str(user.id)))
        conds.append(AuditLog.actor.like(f"user:{user.id} %"))
    if uids:
        conds.append((AuditLog.entity_type == "badge") & AuditLog.entity_id.in_(uids))
    if auth_ids:
        conds.append((AuditLog.entity_type == "authorization")
                     & AuditLog.entity_id.in_([str(i) for i in auth_ids]))
    found = {a.id: a for a in db.scalars(select(AuditLog).where(or_(*conds)))}
    if matcher:
        for entry in db.scalars(select(AuditLog).execution_options(yield_per=BATCH)):
            if entry.id not in found and matcher.search(entry.entity_id, entry.actor,
                                                        entry.details):
                found[entry.id] = entry
    return [found[k] for k in sorted(found)]


def _member_nodes(db: Session, uids: set[str]) -> list[Node]:
    """Nodes whose last status shows one of these badges (a session running now)."""
    if not uids:
        return []
    return [n for n in db.scalars(select(Node).where(_mentions(Node.last_status, uids))
                                  .order_by(Node.id))
            if _data_uids((n.last_status or {}).get("session")) & uids]


def _member_dead_letters(db: Session, matcher: IdentityMatcher) -> list[DeadLetter]:
    """Dead letters whose payload or reason holds the member's identity in any spelling."""
    if not matcher:
        return []
    return [row for row in db.scalars(select(DeadLetter).order_by(DeadLetter.id)
                                      .execution_options(yield_per=BATCH))
            if matcher.search(row.payload, row.reason)]


