"""Who and what an audit row is about, by name: the facts a readable change log needs.

An audit row names its actor and entity by code (`user:3 a@b`, `authorization 12`,
`member_id: 9`) because codes survive renames. A person reads names: this module resolves, in
a few queries for a whole page, the actor's name (the linked member's, else the login's e-mail),
the member, machine, group, site and node each row is about. The wording of the sentence (in
the page's language) is the web's job (`server.web.audit_text`); the kinds of actor and the
erased placeholder are returned as codes for it to label.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.models import (
    ApiToken,
    AuditLog,
    Authorization,
    Badge,
    Machine,
    MachineGroup,
    Member,
    Node,
    Site,
    User,
)


@dataclass
class AuditFacts:
    """One audit row with names: `actor_kind` is user, token, node, cli or system."""

    actor_kind: str
    row: AuditLog | None = None
    actor_name: str = ""
    member: str | None = None
    member_erased: bool = False
    machine: str | None = None
    group: str | None = None
    site: str | None = None
    node: str | None = None
    other: str | None = None  # a second person (a sign-off's trainee)
    extra: dict[str, Any] = field(default_factory=dict)


def _ids(values: Any) -> set[int]:
    out: set[int] = set()
    for v in values:
        try:
            out.add(int(v))
        except (TypeError, ValueError):
            continue
    return out


def _int(v: Any) -> int | None:
    try:
        return int(v)
    except (TypeError, ValueError):
        return None


def audit_facts(db: Session, rows: Sequence[AuditLog]) -> list[AuditFacts]:
    """Names for every row of a page, in one query per kind of thing named."""
    d = [r.details or {} for r in rows]
    auth_ids = _ids(r.entity_id for r in rows if r.entity_type == "authorization")
    auths = {a.id: a for a in db.scalars(select(Authorization).where(Authorization.id.in_(auth_ids)))}
    uids = {str(r.entity_id) for r in rows if r.entity_type == "badge" and r.entity_id}
    uids |= {str(x.get(k)) for x in d for k in ("trainer_uid", "trainee_uid") if x.get(k)}
    badges = {b.uid: b.member_id for b in db.scalars(select(Badge).where(Badge.uid.in_(uids)))}
    user_ids = _ids(r.actor.split(" ", 1)[0].removeprefix("user:") for r in rows
                    if r.actor.startswith("user:"))
    user_ids |= _ids(r.entity_id for r in rows if r.entity_type == "user")
    users = {u.id: u for u in db.scalars(select(User).where(User.id.in_(user_ids)))}
    member_ids = _ids([*(x.get("member_id") for x in d),
                       *(r.entity_id for r in rows if r.entity_type == "member"),
                       *(a.member_id for a in auths.values()),
                       *(u.member_id for u in users.values()), *badges.values()])
    members = {m.id: m for m in db.scalars(select(Member).where(Member.id.in_(member_ids)))}
    machine_ids = _ids([*(x.get("machine_id") for x in d),
                        *(r.entity_id for r in rows if r.entity_type == "machine"),
                        *(a.machine_id for a in auths.values())])
    machines = dict(db.execute(select(Machine.id, Machine.name).where(Machine.id.in_(machine_ids))).all())
    machine_slugs = {str(x.get("machine")) for x in d if x.get("machine")}
    by_slug = dict(db.execute(select(Machine.slug, Machine.name).where(Machine.slug.in_(machine_slugs))).all())
    group_ids = _ids([*(x.get("group_id") for x in d),
                      *(r.entity_id for r in rows if r.entity_type == "group"),
                      *(a.group_id for a in auths.values())])
    groups = dict(db.execute(select(MachineGroup.id, MachineGroup.name)
                             .where(MachineGroup.id.in_(group_ids))).all())
    site_ids = _ids(r.entity_id for r in rows if r.entity_type == "site")
    sites = dict(db.execute(select(Site.id, Site.name).where(Site.id.in_(site_ids))).all())
    token_ids = _ids([*(r.actor.removeprefix("token:").split(" ", 1)[0] for r in rows
                        if r.actor.startswith("token:")),
                      *(r.entity_id for r in rows if r.entity_type == "token")])
    tokens = dict(db.execute(select(ApiToken.id, ApiToken.name).where(ApiToken.id.in_(token_ids))).all())
    node_ids = _ids(r.entity_id for r in rows if r.entity_type == "node")
    node_slugs = {r.actor.removeprefix("node:") for r in rows if r.actor.startswith("node:")}
    nodes = list(db.execute(select(Node.id, Node.slug, Machine.name).outerjoin(
        Machine, Machine.node_id == Node.id).where(Node.id.in_(node_ids) | Node.slug.in_(node_slugs))))
    node_by_id = {n.id: n.name or n.slug for n in nodes}
    node_by_slug = {n.slug: n.name or n.slug for n in nodes}

    def member_name(mid: Any) -> tuple[str | None, bool]:
        m = members.get(_int(mid) or -1)
        if m is None:
            return None, False
        return (None, True) if m.erased_at is not None else (m.name, False)

    out: list[AuditFacts] = []
    for r, x in zip(rows, d, strict=True):
        f = _actor(r.actor, users, members, tokens, node_by_slug)
        f.row = r
        mid: Any = x.get("member_id")
        if r.entity_type == "member":
            mid = r.entity_id
        a = auths.get(_int(r.entity_id) or -1) if r.entity_type == "authorization" else None
        if a is not None:
            mid = a.member_id
        if r.entity_type == "badge":
            mid = badges.get(str(r.entity_id), mid)
        if r.entity_type == "signoff":
            mid = badges.get(str(x.get("trainer_uid")))
            f.other, _gone = member_name(badges.get(str(x.get("trainee_uid"))))
        f.member, f.member_erased = member_name(mid)
        mach: Any = x.get("machine_id")
        if r.entity_type == "machine":
            mach = r.entity_id
        if a is not None:
            mach = a.machine_id
        f.machine = machines.get(_int(mach) or -1) or by_slug.get(str(x.get("machine")))
        grp: Any = r.entity_id if r.entity_type == "group" else (a.group_id if a else x.get("group_id"))
        f.group = groups.get(_int(grp) or -1) or (x.get("name") if r.entity_type == "group" else None)
        if r.entity_type == "site":
            f.site = sites.get(_int(r.entity_id) or -1) or x.get("name")
        if r.entity_type == "node":
            f.node = node_by_id.get(_int(r.entity_id) or -1) or x.get("slug")
        if r.entity_type == "user":
            u = users.get(_int(r.entity_id) or -1)
            f.extra["login"] = u.email if u else x.get("email")
        if r.entity_type == "token":
            f.extra["token"] = tokens.get(_int(r.entity_id) or -1) or x.get("name")
        out.append(f)
    return out


def _actor(actor: str, users: dict[int, User], members: dict[int, Member],
           tokens: dict[int, str], nodes: dict[str, str]) -> AuditFacts:
    head = actor.split(" ", 1)[0]
    if head.startswith("user:"):
        u = users.get(_int(head.removeprefix("user:")) or -1)
        m = members.get(u.member_id) if u is not None and u.member_id else None
        if m is not None and m.erased_at is None:
            return AuditFacts(actor_kind="user", actor_name=m.name)
        name = u.email if u is not None else actor.split(" ", 1)[-1]
        return AuditFacts(actor_kind="user", actor_name=name)
    if head.startswith("token:"):
        tid = _int(head.removeprefix("token:")) or -1
        return AuditFacts(actor_kind="token", actor_name=tokens.get(tid, ""))
    if head.startswith("node:"):
        slug = head.removeprefix("node:")
        return AuditFacts(actor_kind="node", actor_name=nodes.get(slug, slug))
    if head == "cli":
        return AuditFacts(actor_kind="cli")
    return AuditFacts(actor_kind="system", actor_name="")


def audit_actions(db: Session) -> list[str]:
    """The kinds of change present in the log, for the filter."""
    return sorted(a for (a,) in db.execute(select(AuditLog.action).distinct()) if a)


__all__ = ["AuditFacts", "audit_actions", "audit_facts"]


def audit_people(db: Session) -> list[tuple[int, str]]:
    """(login id, e-mail) of every login, for the change log's "made by" filter."""
    return [(u.id, u.email) for u in db.scalars(select(User).order_by(User.email))]
