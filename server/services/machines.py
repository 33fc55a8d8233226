"""Machines, their nodes and groups, and the commands sent to nodes."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Iterable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from protocol import COMMANDS
from server.errors import N_, Conflict, Invalid
from server.models import (
    Machine,
    MachineGroup,
    MachineKind,
    Node,
    OutgoingCommand,
    Site,
)
from server.services.audit import audit
from server.services.common import (
    DEFAULT_PER_PAGE,
    Page,
    get_group,
    get_machine,
    get_site_by_slug,
    now_utc,
    paginate,
)
from server.services.dirty import machine_node_ids, mark_nodes_dirty
from server.services.identities import create_node, identity_slug
from server.services.validation import enum_field, slug_field, text_field, validate_policy

MACHINE_KINDS = tuple(k.value for k in MachineKind)


def _bind_node(db: Session, machine: Machine, node_slug: str | None, site: Site) -> None:
    if node_slug is None:
        machine.node_id = None
        return
    slug = slug_field(node_slug, "node")
    node = db.scalar(select(Node).where(Node.slug == slug))
    if node is None:
        node = create_node(db, slug, site.id)
    else:
        if node.site_id != site.id:
            raise Conflict(N_("node %(slug)r belongs to another site"), {"slug": slug},
                           fields={"node": N_("this node belongs to another site")})
        owner = db.scalar(select(Machine).where(Machine.node_id == node.id))
        if owner is not None and owner.id != machine.id:
            raise Conflict(N_("node %(slug)r already drives machine %(machine)r"),
                           {"slug": slug, "machine": owner.slug},
                           fields={"node": N_("this node already drives another machine")})
    machine.node_id = node.id


def create_machine(db: Session, slug: str, name: str, site: str, kind: str = "other",
                   node: str | None = None, requires_authorization: bool = True,
                   policy: dict[str, Any] | None = None, *, actor: str) -> Machine:
    slug = identity_slug(db, slug, kind="machine")
    name_ = text_field(name, "name")
    site_row = get_site_by_slug(db, site, "site")
    kind_ = enum_field(MachineKind, kind or "other", "kind")
    if not isinstance(requires_authorization, bool):
        raise Invalid(N_("requires_authorization must be a boolean"),
                      {"requires_authorization": "must be a boolean"})
    policy_ = validate_policy(policy)
    if db.scalar(select(Machine.id).where(Machine.slug == slug)) is not None:
        raise Conflict(N_("a machine with slug %(slug)r exists"), {"slug": slug},
                       fields={"slug": N_("another machine uses this short code")})
    machine = Machine(slug=slug, name=name_, site_id=site_row.id, kind=kind_,
                      requires_authorization=requires_authorization, policy=policy_)
    db.add(machine)
    db.flush()
    _bind_node(db, machine, node, site_row)
    db.flush()
    audit(db, actor, "machine.create", "machine", machine.id,
          {"slug": slug, "name": name_, "site": site, "kind": kind_.value, "node": node,
           "requires_authorization": requires_authorization, "policy": policy_})
    mark_nodes_dirty(db, [machine.node_id], "machine.create")
    db.flush()
    return machine


_MACHINE_FIELDS = ("name", "kind", "node", "requires_authorization", "policy", "hourly_rate",
                   "active")


def update_machine(db: Session, machine_id: int, *, actor: str, **fields: Any) -> Machine:
    unknown = set(fields) - set(_MACHINE_FIELDS)
    if unknown:
        raise Invalid(N_("unknown fields"), {k: "unknown field" for k in sorted(unknown)})
    machine = get_machine(db, machine_id)
    old_node = machine.node_id
    changes: dict[str, Any] = {}
    for key, value in fields.items():
        if key == "node":
            current = machine.node.slug if machine.node else None
            if value != current:
                _bind_node(db, machine, value, machine.site)
                changes["node"] = value
            continue
        if key == "name":
            new: Any = text_field(value, "name")
        elif key == "kind":
            new = enum_field(MachineKind, value, "kind")
        elif key in ("requires_authorization", "active"):
            if not isinstance(value, bool):
                raise Invalid(N_("%(field)s must be a boolean"), {key: N_("must be a boolean")},
                              {"field": key})
            new = value
        elif key == "policy":  # contract section 6: merged into the current policy
            new = {**(machine.policy or {}), **validate_policy(value)}
        else:  # hourly_rate
            if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)
                                      or value < 0):
                raise Invalid(N_("hourly_rate must be a non-negative number"),
                              {"hourly_rate": "must be a non-negative number"})
            new = None if value is None else float(value)
        if getattr(machine, key) != new:
            changes[key] = new
            setattr(machine, key, new)
    if changes:
        db.flush()
        audit(db, actor, "machine.update", "machine", machine.id, changes)
        mark_nodes_dirty(db, [old_node, machine.node_id], "machine.update")
    db.flush()
    return machine


def set_machine_lock(db: Session, machine_id: int, locked: bool, reason: str | None = None, *,
                     actor: str) -> Machine:
    machine = get_machine(db, machine_id)
    reason_ = text_field(reason, "reason", max_len=500, required=False)
    if machine.locked != locked or (locked and reason_ != machine.lock_reason):
        machine.locked = locked
        machine.lock_reason = reason_ if locked else None
        audit(db, actor, "machine.lock" if locked else "machine.unlock", "machine", machine.id,
              {"reason": reason_})
        mark_nodes_dirty(db, [machine.node_id], "machine.lock")
    db.flush()
    return machine


def list_machines(db: Session, site: str | None = None, page: int | None = 1,
                  per_page: int | None = DEFAULT_PER_PAGE,
                  site_ids: Collection[int] | None = None) -> Page[Machine]:
    stmt = (select(Machine).options(selectinload(Machine.node), selectinload(Machine.site))
            .order_by(Machine.slug))
    if site_ids is not None:
        stmt = stmt.where(Machine.site_id.in_(sorted(site_ids)))
    if site:
        stmt = stmt.where(Machine.site_id == get_site_by_slug(db, site, "site").id)
    return paginate(db, stmt, page, per_page)


def list_nodes(db: Session, page: int | None = 1, per_page: int | None = DEFAULT_PER_PAGE,
               site_ids: Collection[int] | None = None) -> Page[Node]:
    stmt = (select(Node).options(selectinload(Node.machine), selectinload(Node.site))
            .order_by(Node.slug))
    if site_ids is not None:
        stmt = stmt.where(Node.site_id.in_(sorted(site_ids)))
    return paginate(db, stmt, page, per_page)


def send_command(db: Session, machine_id: int, cmd: str, *, actor: str) -> OutgoingCommand:
    """Queue a command for the machine's node; the publisher sends it (QoS 1, not retained)."""
    machine = get_machine(db, machine_id)
    if cmd not in COMMANDS:
        raise Invalid(N_("unknown command %(cmd)r"), {"cmd": f"one of {', '.join(COMMANDS)}"},
                      {"cmd": cmd})
    if machine.node_id is None:
        raise Conflict(N_("machine %(slug)r has no node"), {"slug": machine.slug})
    row = OutgoingCommand(command_id=str(uuid.uuid4()), node_id=machine.node_id,
                          machine_id=machine.id, cmd=cmd, ts=now_utc(), actor=actor[:200])
    db.add(row)
    db.flush()
    audit(db, actor, "machine.command", "machine", machine.id,
          {"cmd": cmd, "command_id": row.command_id})
    db.info["fabpass_dirty"] = True
    db.flush()
    return row


def _machines_by_ids(db: Session, machine_ids: Iterable[int]) -> list[Machine]:
    ids = list(dict.fromkeys(machine_ids))
    machines = list(db.scalars(select(Machine).where(Machine.id.in_(ids)))) if ids else []
    missing = set(ids) - {m.id for m in machines}
    if missing:
        raise Invalid(N_("unknown machines"), {"machine_ids": f"unknown machine ids {sorted(missing)}"})
    return machines


def create_group(db: Session, slug: str, name: str, machine_ids: Iterable[int] = (), *,
                 actor: str) -> MachineGroup:
    slug = slug_field(slug)
    name_ = text_field(name, "name")
    if db.scalar(select(MachineGroup.id).where(MachineGroup.slug == slug)) is not None:
        raise Conflict(N_("a group with slug %(slug)r exists"), {"slug": slug},
                       fields={"slug": N_("another group uses this short code")})
    group = MachineGroup(slug=slug, name=name_, machines=_machines_by_ids(db, machine_ids))
    db.add(group)
    db.flush()
    audit(db, actor, "group.create", "group", group.id,
          {"slug": slug, "name": name_, "machine_ids": [m.id for m in group.machines]})
    db.flush()
    return group


def set_group_machines(db: Session, group_id: int, machine_ids: Iterable[int], *,
                       actor: str) -> MachineGroup:
    group = get_group(db, group_id)
    old_ids = {m.id for m in group.machines}
    machines = _machines_by_ids(db, machine_ids)
    new_ids = {m.id for m in machines}
    if old_ids != new_ids:
        group.machines = machines
        db.flush()
        audit(db, actor, "group.machines", "group", group.id,
              {"added": sorted(new_ids - old_ids), "removed": sorted(old_ids - new_ids)})
        mark_nodes_dirty(db, machine_node_ids(db, old_ids ^ new_ids), "group.machines")
    db.flush()
    return group


def list_groups(db: Session) -> list[MachineGroup]:
    return list(db.scalars(select(MachineGroup).order_by(MachineGroup.slug)))


def all_machines(db: Session, *, active_only: bool = False,
                 site_ids: Collection[int] | None = None) -> list[Machine]:
    """Machines by name with node, site and groups loaded; `site_ids`: on these sites only."""
    stmt = (select(Machine).options(selectinload(Machine.node), selectinload(Machine.site),
                                    selectinload(Machine.groups))
            .order_by(Machine.name, Machine.id))
    if active_only:
        stmt = stmt.where(Machine.active.is_(True))
    if site_ids is not None:
        stmt = stmt.where(Machine.site_id.in_(sorted(site_ids)))
    return list(db.scalars(stmt))


def machines_by_ids(db: Session, machine_ids: Iterable[int]) -> list[Machine]:
    ids = sorted(set(machine_ids))
    return list(db.scalars(select(Machine).where(Machine.id.in_(ids)))) if ids else []


def groups_with_machines(db: Session) -> list[MachineGroup]:
    """Groups by name with their machines loaded."""
    return list(db.scalars(select(MachineGroup).options(selectinload(MachineGroup.machines))
                           .order_by(MachineGroup.name)))


def all_nodes(db: Session, site_ids: Collection[int] | None = None) -> list[Node]:
    """Nodes by slug with machine and site loaded; `site_ids`: of these sites only."""
    stmt = (select(Node).options(selectinload(Node.machine), selectinload(Node.site))
            .order_by(Node.slug))
    if site_ids is not None:
        stmt = stmt.where(Node.site_id.in_(sorted(site_ids)))
    return list(db.scalars(stmt))


def save_group(db: Session, group_id: int | None, *, slug: str, name: str,
               machine_ids: Iterable[int], actor: str) -> MachineGroup:
    """Create a group, or change its machines, slug and name; each change is audited."""
    ids = list(machine_ids)
    if group_id is None:
        return create_group(db, slug, name, ids, actor=actor)
    group = set_group_machines(db, group_id, ids, actor=actor)
    slug = slug_field(slug)
    name_ = text_field(name, "name") or group.name
    if (slug, name_) != (group.slug, group.name):
        if slug != group.slug and db.scalar(
                select(MachineGroup.id).where(MachineGroup.slug == slug)) is not None:
            raise Conflict(N_("a group with slug %(slug)r exists"), {"slug": slug},
                       fields={"slug": N_("another group uses this short code")})
        audit(db, actor, "group.update", "group", group.id,
              {"slug": slug, "name": name_, "was": {"slug": group.slug, "name": group.name}})
        group.slug, group.name = slug, name_
        db.flush()
    return group
