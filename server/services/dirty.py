"""Which nodes need a new access list: `AclDirty` rows written in the changing transaction.

The rows make a publisher in another process see the change; `acl_changed` wakes the
in-process publisher right after the commit.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

from sqlalchemy import event as sa_event
from sqlalchemy import select
from sqlalchemy.orm import Session

from server.models import (
    AclDirty,
    Authorization,
    Machine,
    machine_group_members,
)

# Set after a commit that wrote AclDirty/OutgoingCommand rows: wakes the in-process publisher.
acl_changed = threading.Event()


@sa_event.listens_for(Session, "after_commit")
def _notify_after_commit(session: Session) -> None:
    if session.info.pop("fabpass_dirty", False):
        acl_changed.set()


@sa_event.listens_for(Session, "after_rollback")
def _forget_after_rollback(session: Session) -> None:
    session.info.pop("fabpass_dirty", None)


def mark_nodes_dirty(db: Session, node_ids: Iterable[int | None], reason: str) -> None:
    """Queue a republish of these nodes' lists (ignores None)."""
    ids = sorted({n for n in node_ids if n is not None})
    for node_id in ids:
        db.add(AclDirty(node_id=node_id, reason=reason[:100]))
    if ids:
        db.info["fabpass_dirty"] = True


def mark_all_dirty(db: Session, reason: str) -> None:
    """Queue a republish of every node's list."""
    db.add(AclDirty(node_id=None, reason=reason[:100]))
    db.info["fabpass_dirty"] = True


def machine_node_ids(db: Session, machine_ids: Iterable[int]) -> set[int]:
    ids = list(set(machine_ids))
    if not ids:
        return set()
    rows = db.scalars(select(Machine.node_id).where(Machine.id.in_(ids),
                                                    Machine.node_id.is_not(None)))
    return {r for r in rows if r is not None}


def group_machine_ids(db: Session, group_ids: Iterable[int]) -> set[int]:
    ids = list(set(group_ids))
    if not ids:
        return set()
    return set(db.scalars(select(machine_group_members.c.machine_id)
                          .where(machine_group_members.c.group_id.in_(ids))))


def member_node_ids(db: Session, member_id: int) -> set[int]:
    """Nodes whose list may contain this member: their authorized machines and open machines."""
    auths = db.execute(select(Authorization.machine_id, Authorization.group_id)
                       .where(Authorization.member_id == member_id,
                              Authorization.revoked_at.is_(None))).all()
    machine_ids = {m for m, _ in auths if m is not None}
    machine_ids |= group_machine_ids(db, [g for _, g in auths if g is not None])
    machine_ids |= set(db.scalars(select(Machine.id).where(
        Machine.requires_authorization.is_(False))))
    return machine_node_ids(db, machine_ids)


def authorization_node_ids(db: Session, auth: Authorization) -> set[int]:
    machine_ids = {auth.machine_id} if auth.machine_id is not None else set()
    if auth.group_id is not None:
        machine_ids |= group_machine_ids(db, [auth.group_id])
    return machine_node_ids(db, machine_ids)
