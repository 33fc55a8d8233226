"""Trainings (authorizations): grant, revoke, trainer sign-off, and who is trained on what now."""

from __future__ import annotations

import logging
from collections.abc import Collection
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session, selectinload

from server.errors import N_, Conflict, Invalid, ServerError
from server.models import (
    Authorization,
    AuthRole,
    Badge,
    BadgeStatus,
    Node,
    TrainingSignoff,
    machine_group_members,
)
from server.services.access import authorization_in_sites
from server.services.audit import audit
from server.services.common import (
    DEFAULT_PER_PAGE,
    Page,
    get_authorization,
    get_group,
    get_machine,
    get_member,
    now_utc,
    paginate,
)
from server.services.dirty import authorization_node_ids, group_machine_ids, mark_nodes_dirty
from server.services.members import record_unknown_badge, refuse_if_erased
from server.services.personal import log_ref
from server.services.validation import datetime_field, enum_field, text_field

log = logging.getLogger(__name__)


def valid_authorization_clause(now: datetime) -> Any:
    """SQL condition: not revoked and not expired at `now`."""
    return and_(Authorization.revoked_at.is_(None),
                or_(Authorization.expires_at.is_(None), Authorization.expires_at > now))


def grant(db: Session, member_id: int, machine_id: int | None = None, group_id: int | None = None,
          role: str = "user", expires_at: datetime | date | str | None = None,
          granted_by_user_id: int | None = None, via: str = "web", *, actor: str,
          granted_by_member_id: int | None = None) -> Authorization:
    member = get_member(db, member_id)
    refuse_if_erased(member)  # erasure is final: no path trains an erased member again
    if (machine_id is None) == (group_id is None):
        raise Invalid(N_("give either a machine or a group"),
                      {"machine_id": "give either machine_id or group_id"})
    if machine_id is not None:
        get_machine(db, machine_id)
    if group_id is not None:
        get_group(db, group_id)
    role_ = enum_field(AuthRole, role or "user", "role")
    expires = datetime_field(expires_at, "expires_at")
    now = now_utc()
    if expires is not None and expires <= now:
        raise Invalid(N_("expires_at is in the past"), {"expires_at": "must be in the future"})
    dup = db.scalar(select(Authorization.id).where(
        Authorization.member_id == member.id,
        Authorization.machine_id.is_(None) if machine_id is None
        else Authorization.machine_id == machine_id,
        Authorization.group_id.is_(None) if group_id is None
        else Authorization.group_id == group_id,
        Authorization.role == role_, valid_authorization_clause(now)))
    if dup is not None:
        raise Conflict(N_("member %(member)s already holds this authorization (id %(id)s)"),
                       {"member": member.id, "id": dup})
    auth = Authorization(member_id=member.id, machine_id=machine_id, group_id=group_id,
                         role=role_, granted_at=now, granted_by_user_id=granted_by_user_id,
                         granted_by_member_id=granted_by_member_id, granted_via=via[:20],
                         expires_at=expires)
    db.add(auth)
    db.flush()
    audit(db, actor, "authorization.grant", "authorization", auth.id,
          {"member_id": member.id, "machine_id": machine_id, "group_id": group_id,
           "role": role_.value, "expires_at": expires, "via": via,
           "granted_by_member_id": granted_by_member_id})
    mark_nodes_dirty(db, authorization_node_ids(db, auth), "authorization.grant")
    db.flush()
    return auth


def revoke(db: Session, authorization_id: int, by_user_id: int | None = None,
           reason: str | None = None, *, actor: str) -> Authorization:
    auth = get_authorization(db, authorization_id)
    if auth.revoked_at is not None:
        return auth
    auth.revoked_at = now_utc()
    auth.revoked_by_user_id = by_user_id
    auth.revoke_reason = text_field(reason, "reason", max_len=500, required=False)
    audit(db, actor, "authorization.revoke", "authorization", auth.id,
          {"member_id": auth.member_id, "reason": auth.revoke_reason})
    mark_nodes_dirty(db, authorization_node_ids(db, auth), "authorization.revoke")
    db.flush()
    return auth


def list_authorizations(db: Session, member_id: int | None = None, machine_id: int | None = None,
                        group_id: int | None = None, valid_only: bool = False,
                        page: int | None = 1,
                        per_page: int | None = DEFAULT_PER_PAGE,
                        site_ids: Collection[int] | None = None) -> Page[Authorization]:
    """Authorizations filtered; `machine_id` also matches groups containing that machine."""
    stmt = select(Authorization).order_by(Authorization.id.desc())
    if site_ids is not None:
        stmt = stmt.where(authorization_in_sites(site_ids))
    if member_id is not None:
        stmt = stmt.where(Authorization.member_id == member_id)
    if machine_id is not None:
        group_ids = select(machine_group_members.c.group_id).where(
            machine_group_members.c.machine_id == machine_id)
        stmt = stmt.where(or_(Authorization.machine_id == machine_id,
                              Authorization.group_id.in_(group_ids)))
    if group_id is not None:
        stmt = stmt.where(Authorization.group_id == group_id)
    if valid_only:
        stmt = stmt.where(valid_authorization_clause(now_utc()))
    return paginate(db, stmt, page, per_page)


def valid_machine_ids_for(db: Session, member_id: int, role: str | None = None,
                          now: datetime | None = None) -> set[int]:
    """Machines where the member holds a valid authorization (direct or via a group)."""
    now = now or now_utc()
    stmt = select(Authorization.machine_id, Authorization.group_id).where(
        Authorization.member_id == member_id, valid_authorization_clause(now))
    if role is not None:
        stmt = stmt.where(Authorization.role == AuthRole(role))
    rows = db.execute(stmt).all()
    ids = {m for m, _ in rows if m is not None}
    return ids | group_machine_ids(db, [g for _, g in rows if g is not None])


def trainer_machine_ids(db: Session, member_id: int, now: datetime | None = None) -> set[int]:
    """Machines where the member holds a valid trainer authorization, directly or via a group."""
    return valid_machine_ids_for(db, member_id, "trainer", now)


def sign_off(db: Session, event_id: str, node: Node, trainer_uid: str, trainee_uid: str, *,
             at: datetime) -> TrainingSignoff:
    """A trainer's sign-off at a node: grant the trainee the node's machine, or say why not.

    The training policy lives here, not in the ingest: the trainer must hold an active badge
    and be a trainer on this machine; the trainee must be another active member with an
    enrolled, active badge. Every outcome is a `TrainingSignoff` row; a refusal is audited.
    """
    actor = f"node:{node.slug}"
    row = TrainingSignoff(event_id=event_id, machine_id=node.machine.id if node.machine else None,
                          trainer_uid=trainer_uid, trainee_uid=trainee_uid,
                          outcome="refused", created_at=at)
    db.add(row)
    trainer = db.scalar(select(Badge).where(Badge.uid == trainer_uid))
    trainee = db.scalar(select(Badge).where(Badge.uid == trainee_uid))
    row.trainer_member_id = trainer.member_id if trainer else None
    row.trainee_member_id = trainee.member_id if trainee else None
    machine = node.machine
    now = datetime.now(UTC)
    if machine is None:
        row.reason = "node drives no machine"
    elif trainer is None or trainer.status != BadgeStatus.active or not trainer.member.active:
        row.reason = "trainer badge unknown or inactive"
    elif machine.id not in trainer_machine_ids(db, trainer.member_id, now):
        row.reason = "not a trainer for this machine"
    elif trainee is None or trainee.status != BadgeStatus.active:
        row.reason = "trainee badge not enrolled" if trainee is None else "trainee badge inactive"
        if trainee is None:
            record_unknown_badge(db, trainee_uid, node.id, at)
    elif not trainee.member.active:
        row.reason = "trainee is not an active member"
    elif trainee.member_id == trainer.member_id:
        row.reason = "a trainer cannot sign themselves off"
    elif machine.id in valid_machine_ids_for(db, trainee.member_id, None, now):
        row.outcome, row.reason = "already", "already authorized on this machine"
    else:
        try:
            auth = grant(db, trainee.member_id, machine_id=machine.id, role="user",
                         via="signoff", granted_by_member_id=trainer.member_id, actor=actor)
        except ServerError as exc:
            row.reason = exc.message[:200]
        else:
            row.outcome, row.reason, row.authorization_id = "granted", None, auth.id
    if row.outcome == "refused":
        audit(db, actor, "training.refused", "signoff", event_id,
              {"trainer_uid": trainer_uid, "trainee_uid": trainee_uid, "reason": row.reason})
    log.info("sign-off on %s by %s for %s: %s %s", node.slug, log_ref(trainer_uid),
             log_ref(trainee_uid),
             row.outcome, row.reason or "")
    db.flush()
    return row


def list_trainings(db: Session, *, member_id: int | None = None, machine_id: int | None = None,
                   current_only: bool = True, page: int | None = 1,
                   per_page: int | None = DEFAULT_PER_PAGE) -> Page[Authorization]:
    """Trainings for the trainings page, newest first, with member, machine and group loaded.
    Every login reads every member's trainings (contract section 6); `current_only` hides the
    revoked ones."""
    stmt = (select(Authorization)
            .options(selectinload(Authorization.member), selectinload(Authorization.machine),
                     selectinload(Authorization.group))
            .order_by(Authorization.granted_at.desc(), Authorization.id.desc()))
    if member_id:
        stmt = stmt.where(Authorization.member_id == member_id)
    if machine_id:
        stmt = stmt.where(Authorization.machine_id == machine_id)
    if current_only:
        stmt = stmt.where(Authorization.revoked_at.is_(None))
    return paginate(db, stmt, page, per_page)


def member_trainings(db: Session, member_id: int, *, current_only: bool = False
                     ) -> list[Authorization]:
    stmt = (select(Authorization).where(Authorization.member_id == member_id)
            .order_by(Authorization.granted_at.desc()))
    if current_only:
        stmt = stmt.where(Authorization.revoked_at.is_(None))
    return list(db.scalars(stmt))


def machine_trainings(db: Session, machine_id: int) -> list[Authorization]:
    """Current trainings given directly on this machine (an expired or revoked one is history)."""
    now = datetime.now(UTC)
    return list(db.scalars(select(Authorization).where(
        Authorization.machine_id == machine_id, Authorization.revoked_at.is_(None),
        or_(Authorization.expires_at.is_(None), Authorization.expires_at > now))
        .order_by(Authorization.granted_at.desc())))
