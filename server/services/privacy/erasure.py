"""Erasure (right to erasure): identity goes, the anonymous member row and its usage stay."""

from __future__ import annotations

import logging
import secrets
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import delete, or_, select
from sqlalchemy.orm import Session

from server.errors import N_, Conflict
from server.models import (
    Authorization,
    Badge,
    BadgeStatus,
    PendingEnrolment,
    TrainingSignoff,
    UnknownBadge,
    UsageSession,
    User,
)
from server.services.audit import audit
from server.services.common import get_member, now_utc
from server.services.dirty import mark_nodes_dirty, member_node_ids
from server.services.logins import close_all_logins
from server.services.privacy.common import (
    _AUDIT_KEEP,
    _UID_LEN,
    ERASED_NAME,
    _deleted,
    _is_replaced,
    _replace_uids,
)
from server.services.privacy.export import (
    _matcher,
    _member_audit,
    _member_dead_letters,
    _member_events,
    _member_nodes,
    _member_refusals,
    open_session_machines,
)

log = logging.getLogger(__name__)


# ---------------------------------------------------------------- erasure


@dataclass
class ErasureResult:
    member_id: int
    badges: int = 0
    sessions: int = 0
    events: int = 0
    signoffs: int = 0
    audit_entries: int = 0
    web_users: int = 0
    dead_letters: int = 0
    unknown_badges: int = 0
    refusals: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def _erased_uid() -> str:
    return "E" + secrets.token_hex(10)[: _UID_LEN - 1].upper()


def _scrub_labels(data: Any, name: str) -> Any:
    if isinstance(data, dict):
        return {k: (None if k == "label" and v == name else _scrub_labels(v, name))
                for k, v in data.items()}
    if isinstance(data, list):
        return [_scrub_labels(v, name) for v in data]
    return data


def erase_member(db: Session, member_id: int, *, actor: str) -> ErasureResult:
    """Remove a member's identity, keep anonymous usage (right to erasure).

    The member is deactivated (their badges leave every access list), identifying
    fields are cleared, each badge UID is replaced by a random one wherever it was
    copied, audit details about them are emptied, linked web logins are disabled and
    anonymised, and raw payloads naming their badges are deleted. Sessions keep
    their machine, times and durations, so reports do not change. Callers commit.
    """
    member = get_member(db, member_id)
    busy = open_session_machines(db, member.id)
    if busy:
        raise Conflict(N_("%(name)s has a session open on %(machines)s: end it first (badge out "
                          "on the machine, or Stop on the machine page), then erase."),
                       {"name": member.name, "machines": ", ".join(busy)})
    result = ErasureResult(member_id=member.id)
    nodes = member_node_ids(db, member.id)
    old_name = member.name
    badges = list(db.scalars(select(Badge).where(Badge.member_id == member.id)))
    mapping = {b.uid: _erased_uid() for b in badges if not _is_replaced(b.uid)}
    auth_ids = list(db.scalars(select(Authorization.id).where(or_(
        Authorization.member_id == member.id, Authorization.granted_by_member_id == member.id))))
    users = list(db.scalars(select(User).where(User.member_id == member.id)))
    matcher = _matcher(member, mapping, users)

    # Audit entries first: they are found through the original UIDs, texts and logins.
    for entry in _member_audit(db, member.id, set(mapping), auth_ids, users, matcher):
        entry.entity_id = matcher.replace(entry.entity_id, mapping, ERASED_NAME)
        entry.actor = matcher.replace(entry.actor, mapping, ERASED_NAME)
        if entry.entity_type in ("member", "badge") or (
                entry.entity_type == "user" and entry.entity_id in {str(u.id) for u in users}):
            entry.details = {"erased": True}
        elif entry.entity_type == "authorization" and isinstance(entry.details, dict):
            # keep the structure, drop free text
            entry.details = {k: v for k, v in entry.details.items() if k in _AUDIT_KEEP}
        else:  # any other entity (a refused sign-off keeping the trainer's UID, ...)
            entry.details = matcher.replace(entry.details, mapping, ERASED_NAME)
        result.audit_entries += 1
    for row in _member_dead_letters(db, matcher):
        db.delete(row)
        result.dead_letters += 1
    for ev in _member_events(db, member.id, set(mapping)):
        ev.data = _replace_uids(ev.data, mapping)
        result.events += 1
    for refusal in _member_refusals(db, member.id, set(mapping)):
        refusal.uid = mapping.get(refusal.uid, refusal.uid)
        result.refusals += 1
    db.execute(delete(PendingEnrolment).where(PendingEnrolment.member_id == member.id))
    if mapping:
        result.unknown_badges = _deleted(
            db, delete(UnknownBadge).where(UnknownBadge.uid.in_(list(mapping))))
        for sess in db.scalars(select(UsageSession).where(
                or_(UsageSession.member_id == member.id,
                    UsageSession.badge_uid.in_(list(mapping))))):
            sess.badge_uid = mapping.get(sess.badge_uid, sess.badge_uid)
            result.sessions += 1
        for so in db.scalars(select(TrainingSignoff).where(or_(
                TrainingSignoff.trainer_uid.in_(list(mapping)),
                TrainingSignoff.trainee_uid.in_(list(mapping))))):
            so.trainer_uid = mapping.get(so.trainer_uid, so.trainer_uid)
            so.trainee_uid = mapping.get(so.trainee_uid, so.trainee_uid)
            result.signoffs += 1
        for node in _member_nodes(db, set(mapping)):
            node.last_status = _scrub_labels(_replace_uids(node.last_status, mapping), old_name)
    for badge in badges:
        badge.uid = mapping.get(badge.uid, badge.uid)
        badge.status = BadgeStatus.inactive
        result.badges += 1
    for auth in db.scalars(select(Authorization).where(Authorization.member_id == member.id)):
        auth.revoke_reason = None
    for user in users:
        user.email = f"erased-user-{user.id}@invalid"
        user.password_hash = "!erased"
        user.active = False
        user.member_id = None
        close_all_logins(db, user.id)
        result.web_users += 1

    member.name = ERASED_NAME
    member.email = None
    member.member_no = None
    member.active = False
    member.active_until = None
    member.erased_at = now_utc()
    db.flush()
    audit(db, actor, "member.erase", "member", member.id,
          {k: v for k, v in result.as_dict().items() if k != "member_id"})
    mark_nodes_dirty(db, nodes, "member.erase")
    db.flush()
    log.info("erased member %s: %s", member.id, result.as_dict())  # an id, never a name
    return result


