"""Domain operations shared by the web UI, the REST API, the CLI and the ingest.

Each operation takes the SQLAlchemy Session and an `actor` ("user:3 alice@x",
"token:2 erp", "cli", "node:laser-1"), validates its input (raising the errors
of `server.errors`), writes an AuditLog row for every change, marks the access
lists it affects as dirty (`AclDirty` rows, in the same transaction, so a
publisher in another process sees them) and flushes. Callers commit.
"""

from __future__ import annotations

import os
import re
import threading
import uuid
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Generic, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import ColumnElement, Select, and_, delete, func, or_, select
from sqlalchemy import event as sa_event
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from protocol import COMMANDS, ProtocolError, check_policy, is_slug, normalize_uid
from server.errors import N_, Conflict, Invalid, NotFound
from server.models import (
    AclDirty,
    ApiToken,
    AuditLog,
    Authorization,
    AuthRole,
    Badge,
    BadgeStatus,
    DeadLetter,
    Machine,
    MachineGroup,
    MachineKind,
    Member,
    Node,
    OutgoingCommand,
    Site,
    UnknownBadge,
    UsageSession,
    User,
    UserRole,
    machine_group_members,
)
from server.security import hash_password, hash_token, new_token

T = TypeVar("T")

MAX_PER_PAGE = 500
DEFAULT_PER_PAGE = 50
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")

# Set after a commit that wrote AclDirty/OutgoingCommand rows: wakes the in-process publisher.
acl_changed = threading.Event()


@sa_event.listens_for(Session, "after_commit")
def _notify_after_commit(session: Session) -> None:
    if session.info.pop("fabpass_dirty", False):
        acl_changed.set()


@sa_event.listens_for(Session, "after_rollback")
def _forget_after_rollback(session: Session) -> None:
    session.info.pop("fabpass_dirty", None)


def now_utc() -> datetime:
    return datetime.now(UTC)


# ---------------------------------------------------------------- audit and dirty marks


def audit(db: Session, actor: str, action: str, entity_type: str, entity_id: Any,
          details: dict[str, Any] | None = None) -> AuditLog:
    row = AuditLog(actor=actor[:200], action=action, entity_type=entity_type,
                   entity_id=None if entity_id is None else str(entity_id),
                   details=_jsonable(details or {}))
    db.add(row)
    return row


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


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


def _authorization_node_ids(db: Session, auth: Authorization) -> set[int]:
    machine_ids = {auth.machine_id} if auth.machine_id is not None else set()
    if auth.group_id is not None:
        machine_ids |= group_machine_ids(db, [auth.group_id])
    return machine_node_ids(db, machine_ids)


# ---------------------------------------------------------------- pagination


@dataclass
class Page(Generic[T]):
    items: list[T]
    total: int
    page: int
    per_page: int


def check_page(page: int | None, per_page: int | None) -> tuple[int, int]:
    page = 1 if page is None else page
    per_page = DEFAULT_PER_PAGE if per_page is None else per_page
    fields = {}
    if page < 1:
        fields["page"] = "must be 1 or more"
    if per_page < 1 or per_page > MAX_PER_PAGE:
        fields["per_page"] = f"must be between 1 and {MAX_PER_PAGE}"
    if fields:
        raise Invalid(N_("bad pagination"), fields)
    return page, per_page


def paginate(db: Session, stmt: Select[Any], page: int | None = 1,
             per_page: int | None = DEFAULT_PER_PAGE) -> Page[Any]:
    page, per_page = check_page(page, per_page)
    total = db.scalar(select(func.count()).select_from(stmt.order_by(None).subquery())) or 0
    items = list(db.scalars(stmt.limit(per_page).offset((page - 1) * per_page)))
    return Page(items=items, total=int(total), page=page, per_page=per_page)


# ---------------------------------------------------------------- validation helpers


def _text(value: Any, field: str, *, max_len: int = 200, required: bool = True) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise Invalid(N_("%(field)s is required"), {field: N_("required")}, {"field": field})
        return None
    if not isinstance(value, str):
        raise Invalid(N_("%(field)s must be text"), {field: N_("must be text")}, {"field": field})
    value = value.strip()
    if len(value) > max_len:
        raise Invalid(N_("%(field)s is too long"), {field: f"at most {max_len} characters"},
                      {"field": field})
    return value


def _slug_field(value: Any, field: str = "slug") -> str:
    if not is_slug(value):
        raise Invalid(N_("%(field)s %(value)r is not a slug"),
                      {field: N_("lowercase letters, digits and '-', 1-63 characters, "
                                 "starting with a letter or digit")},
                      {"field": field, "value": value})
    return str(value)


def _email(value: Any, field: str = "email") -> str | None:
    text = _text(value, field, max_len=254, required=False)
    if text is None:
        return None
    if not _EMAIL.match(text):
        raise Invalid(N_("%(field)s %(value)r is not an e-mail address"),
                      {field: N_("not an e-mail address")}, {"field": field, "value": text})
    return text.lower()


def _tags(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        value = [t for t in re.split(r"[;,]", value)]
    if not isinstance(value, list | tuple) or not all(isinstance(t, str) for t in value):
        raise Invalid(N_("tags must be a list of text"), {"tags": N_("must be a list of text")})
    out: list[str] = []
    for t in value:
        t = t.strip()
        if t and t not in out:
            if len(t) > 64:
                raise Invalid(N_("a tag is too long"), {"tags": N_("each tag at most 64 characters")})
            out.append(t)
    return out


def _date(value: Any, field: str) -> date | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise Invalid(N_("%(field)s must be a date (YYYY-MM-DD)"),
                  {field: N_("must be a date (YYYY-MM-DD)")}, {"field": field})


def _datetime(value: Any, field: str) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, 23, 59, 59, tzinfo=UTC)
    if isinstance(value, str):
        text = value.strip()
        try:
            if len(text) == 10:
                d = date.fromisoformat(text)
                return datetime(d.year, d.month, d.day, 23, 59, 59, tzinfo=UTC)
            dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
            return dt if dt.tzinfo else dt.replace(tzinfo=UTC)
        except ValueError:
            pass
    raise Invalid(N_("%(field)s must be a date or an RFC 3339 time"),
                  {field: N_("must be a date or an RFC 3339 time")}, {"field": field})


def _timezone(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise Invalid(N_("timezone must be an IANA zone name"),
                      {"timezone": N_("e.g. Europe/Paris")})
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise Invalid(N_("unknown time zone %(value)r"),
                      {"timezone": N_("unknown time zone (e.g. Europe/Paris)")},
                      {"value": value}) from None
    return value


def validate_policy(policy: Any) -> dict[str, Any]:
    """Check a machine policy; Invalid names each bad key as `policy.<key>`."""
    if policy is None:
        return {}
    if not isinstance(policy, dict):
        raise Invalid(N_("policy must be an object"), {"policy": N_("must be an object")})
    fields: dict[str, str] = {}
    out: dict[str, Any] = {}
    for key, value in policy.items():
        try:
            out.update(check_policy({key: value}))
        except ProtocolError as exc:
            fields[f"policy.{key}"] = str(exc).removeprefix("policy: ")
    if fields:
        raise Invalid(N_("invalid policy"), fields)
    return out


def _uid(value: Any, field: str = "uid") -> str:
    try:
        return normalize_uid(value)
    except ProtocolError as exc:
        raise Invalid(str(exc), {field: N_("8, 14 or 20 hex digits (a 4-, 7- or 10-byte UID)")}) from None


def _enum_value(enum_cls: Any, value: Any, field: str) -> Any:
    try:
        return enum_cls(value)
    except ValueError:
        choices = ", ".join(m.value for m in enum_cls)
        raise Invalid(N_("%(field)s %(value)r is not one of %(choices)s"),
                      {field: f"one of {choices}"},
                      {"field": field, "value": value, "choices": choices}) from None


# ---------------------------------------------------------------- getters


def get_site(db: Session, site_id: int) -> Site:
    site = db.get(Site, site_id)
    if site is None:
        raise NotFound(N_("site %(id)s not found"), {"id": site_id})
    return site


def get_site_by_slug(db: Session, slug: str, field: str | None = None) -> Site:
    site = db.scalar(select(Site).where(Site.slug == slug))
    if site is None:
        if field:
            raise Invalid(N_("unknown site %(slug)r"), {field: N_("unknown site")}, {"slug": slug})
        raise NotFound(N_("site %(slug)r not found"), {"slug": slug})
    return site


def get_member(db: Session, member_id: int) -> Member:
    member = db.get(Member, member_id)
    if member is None:
        raise NotFound(N_("member %(id)s not found"), {"id": member_id})
    return member


def find_member(db: Session, ref: str | int) -> Member:
    """A member by id or e-mail (for the CLI)."""
    if isinstance(ref, int) or (isinstance(ref, str) and ref.isdigit()):
        return get_member(db, int(ref))
    member = db.scalar(select(Member).where(func.lower(Member.email) == str(ref).lower())
                       .order_by(Member.id))
    if member is None:
        raise NotFound(N_("no member with e-mail %(email)r"), {"email": ref})
    return member


def get_machine(db: Session, machine_id: int) -> Machine:
    machine = db.get(Machine, machine_id)
    if machine is None:
        raise NotFound(N_("machine %(id)s not found"), {"id": machine_id})
    return machine


def get_machine_by_slug(db: Session, slug: str) -> Machine:
    machine = db.scalar(select(Machine).where(Machine.slug == slug))
    if machine is None:
        raise NotFound(N_("machine %(slug)r not found"), {"slug": slug})
    return machine


def get_group(db: Session, group_id: int) -> MachineGroup:
    group = db.get(MachineGroup, group_id)
    if group is None:
        raise NotFound(N_("group %(id)s not found"), {"id": group_id})
    return group


def get_group_by_slug(db: Session, slug: str) -> MachineGroup:
    group = db.scalar(select(MachineGroup).where(MachineGroup.slug == slug))
    if group is None:
        raise NotFound(N_("group %(slug)r not found"), {"slug": slug})
    return group


def get_badge(db: Session, uid: str) -> Badge:
    badge = db.scalar(select(Badge).where(Badge.uid == _uid(uid)))
    if badge is None:
        raise NotFound(N_("badge %(uid)s not found"), {"uid": uid})
    return badge


def get_authorization(db: Session, authorization_id: int) -> Authorization:
    auth = db.get(Authorization, authorization_id)
    if auth is None:
        raise NotFound(N_("authorization %(id)s not found"), {"id": authorization_id})
    return auth


def get_node_by_slug(db: Session, slug: str) -> Node:
    node = db.scalar(select(Node).where(Node.slug == slug))
    if node is None:
        raise NotFound(N_("node %(slug)r not found"), {"slug": slug})
    return node


# ---------------------------------------------------------------- site scope
#
# `site_ids` in the list functions below: None lists every site (an admin); otherwise only the
# records a manager of these sites manages. The SQL form of server.auth's `can_manage_member`,
# `can_manage_machine` and `can_change_authorization`, so that lists are filtered before they
# are paginated (`server.auth.managed_site_ids` gives the ids).


def member_in_sites(site_ids: Collection[int]) -> ColumnElement[bool]:
    """Members of these sites, or shared (without a site)."""
    return or_(Member.site_id.is_(None), Member.site_id.in_(sorted(site_ids)))


def machine_ids_in_sites(site_ids: Collection[int]) -> Select[Any]:
    """Machines of these sites."""
    return select(Machine.id).where(Machine.site_id.in_(sorted(site_ids)))


def group_ids_in_sites(site_ids: Collection[int]) -> Select[Any]:
    """Machine groups with at least one machine, all of them on these sites."""
    outside = (select(machine_group_members.c.group_id)
               .join(Machine, Machine.id == machine_group_members.c.machine_id)
               .where(Machine.site_id.not_in(sorted(site_ids))))
    return (select(machine_group_members.c.group_id)
            .where(machine_group_members.c.group_id.not_in(outside)))


def authorization_in_sites(site_ids: Collection[int]) -> ColumnElement[bool]:
    """Authorizations whose member and machine (or whole group) are managed on these sites."""
    return and_(Authorization.member_id.in_(select(Member.id).where(member_in_sites(site_ids))),
                or_(Authorization.machine_id.in_(machine_ids_in_sites(site_ids)),
                    Authorization.group_id.in_(group_ids_in_sites(site_ids))))


# ---------------------------------------------------------------- sites


def create_site(db: Session, slug: str, name: str, timezone: str | None = None, *,
                actor: str) -> Site:
    """A new site; without `timezone`, FABPASS_TIMEZONE (contract) or UTC."""
    slug = _slug_field(slug)
    name_ = _text(name, "name")
    tz = _timezone(timezone or os.environ.get("FABPASS_TIMEZONE") or "UTC")
    if db.scalar(select(Site.id).where(Site.slug == slug)) is not None:
        raise Conflict(N_("a site with slug %(slug)r exists"), {"slug": slug})
    site = Site(slug=slug, name=name_, timezone=tz)
    db.add(site)
    db.flush()
    audit(db, actor, "site.create", "site", site.id, {"slug": slug, "name": name_, "timezone": tz})
    db.flush()
    return site


def list_sites(db: Session) -> list[Site]:
    return list(db.scalars(select(Site).order_by(Site.slug)))


# ---------------------------------------------------------------- members


_MEMBER_FIELDS = ("name", "email", "member_no", "site", "tags", "active_until", "active")


def create_member(db: Session, name: str, email: str | None = None, member_no: str | None = None,
                  site: str | None = None, tags: Sequence[str] | str | None = None,
                  active_until: date | str | None = None, *, actor: str) -> Member:
    member = Member(
        name=_text(name, "name"), email=_email(email),
        member_no=_text(member_no, "member_no", max_len=64, required=False),
        site_id=get_site_by_slug(db, site, "site").id if site else None,
        tags=_tags(tags), active=True, active_until=_date(active_until, "active_until"),
    )
    db.add(member)
    db.flush()
    audit(db, actor, "member.create", "member", member.id,
          {"name": member.name, "email": member.email, "member_no": member.member_no,
           "site": site, "tags": member.tags, "active_until": member.active_until})
    mark_nodes_dirty(db, member_node_ids(db, member.id), "member.create")
    db.flush()
    return member


def update_member(db: Session, member_id: int, *, actor: str, **fields: Any) -> Member:
    unknown = set(fields) - set(_MEMBER_FIELDS)
    if unknown:
        raise Invalid(N_("unknown fields"), {k: "unknown field" for k in sorted(unknown)})
    member = get_member(db, member_id)
    changes: dict[str, Any] = {}
    for key, value in fields.items():
        if key == "name":
            new: Any = _text(value, "name")
        elif key == "email":
            new = _email(value)
        elif key == "member_no":
            new = _text(value, "member_no", max_len=64, required=False)
        elif key == "tags":
            new = _tags(value)
        elif key == "active_until":
            new = _date(value, "active_until")
        elif key == "active":
            if not isinstance(value, bool):
                raise Invalid(N_("active must be true or false"), {"active": "must be a boolean"})
            new = value
        else:  # site
            new_site = get_site_by_slug(db, value, "site").id if value else None
            if new_site != member.site_id:
                changes["site"] = value
                member.site_id = new_site
            continue
        if getattr(member, key) != new:
            changes[key] = new
            setattr(member, key, new)
    if changes:
        audit(db, actor, "member.update", "member", member.id, changes)
        mark_nodes_dirty(db, member_node_ids(db, member.id), "member.update")
    db.flush()
    return member


def deactivate_member(db: Session, member_id: int, *, actor: str) -> Member:
    member = get_member(db, member_id)
    if member.active:
        member.active = False
        audit(db, actor, "member.deactivate", "member", member.id, {})
        mark_nodes_dirty(db, member_node_ids(db, member.id), "member.deactivate")
    db.flush()
    return member


def list_members(db: Session, q: str | None = None, active: bool | None = None,
                 site: str | None = None, page: int | None = 1,
                 per_page: int | None = DEFAULT_PER_PAGE,
                 site_ids: Collection[int] | None = None) -> Page[Member]:
    stmt = select(Member).order_by(Member.name, Member.id)
    if site_ids is not None:
        stmt = stmt.where(member_in_sites(site_ids))
    if q:
        like = f"%{q.strip().lower()}%"
        uid_like = re.sub(r"[\s:\-._]", "", q).upper()
        conds = [func.lower(Member.name).like(like), func.lower(Member.email).like(like),
                 func.lower(Member.member_no).like(like)]
        if uid_like:
            conds.append(Member.id.in_(select(Badge.member_id)
                                       .where(Badge.uid.like(f"%{uid_like}%"))))
        stmt = stmt.where(or_(*conds))
    if active is not None:
        stmt = stmt.where(Member.active.is_(active))
    if site:
        stmt = stmt.where(Member.site_id == get_site_by_slug(db, site, "site").id)
    return paginate(db, stmt, page, per_page)


# ---------------------------------------------------------------- badges


def enrol_badge(db: Session, member_id: int, uid: str, *, actor: str) -> Badge:
    """Give a badge to a member (idempotent for the same member; reactivates it)."""
    member = get_member(db, member_id)
    uid = _uid(uid)
    badge = db.scalar(select(Badge).where(Badge.uid == uid))
    if badge is not None and badge.member_id != member.id:
        raise Conflict(N_("badge %(uid)s belongs to another member"), {"uid": uid})
    if badge is None:
        badge = Badge(uid=uid, member_id=member.id, status=BadgeStatus.active)
        db.add(badge)
        db.flush()
        audit(db, actor, "badge.enrol", "badge", uid, {"member_id": member.id})
    elif badge.status != BadgeStatus.active:
        old = badge.status
        badge.status = BadgeStatus.active
        audit(db, actor, "badge.status", "badge", uid, {"from": old.value, "to": "active"})
    db.execute(delete(UnknownBadge).where(UnknownBadge.uid == uid))
    mark_nodes_dirty(db, member_node_ids(db, member.id), "badge.enrol")
    db.flush()
    return badge


def set_badge_status(db: Session, uid: str, status: str, *, actor: str) -> Badge:
    badge = get_badge(db, uid)
    new = _enum_value(BadgeStatus, status, "status")
    if badge.status != new:
        old = badge.status
        badge.status = new
        audit(db, actor, "badge.status", "badge", badge.uid, {"from": old.value, "to": new.value})
        mark_nodes_dirty(db, member_node_ids(db, badge.member_id), "badge.status")
    db.flush()
    return badge


def list_unknown_badges(db: Session, page: int | None = 1,
                        per_page: int | None = DEFAULT_PER_PAGE) -> Page[UnknownBadge]:
    return paginate(db, select(UnknownBadge).order_by(UnknownBadge.last_seen.desc()),
                    page, per_page)


def record_unknown_badge(db: Session, uid: str, node_id: int | None,
                         seen: datetime | None = None) -> None:
    """Upsert the UnknownBadge row for a UID tapped but not enrolled (ingest)."""
    seen = seen or now_utc()
    if db.scalar(select(Badge.id).where(Badge.uid == uid)) is not None:
        return
    row = db.scalar(select(UnknownBadge).where(UnknownBadge.uid == uid))
    if row is None:
        try:
            with db.begin_nested():
                db.add(UnknownBadge(uid=uid, first_seen=seen, last_seen=seen,
                                    last_node_id=node_id, count=1))
            return
        except IntegrityError:  # another ingest worker inserted it first
            row = db.scalar(select(UnknownBadge).where(UnknownBadge.uid == uid))
            if row is None:
                raise
    row.count += 1
    if row.last_seen is None or seen >= row.last_seen:
        row.last_seen = seen
        row.last_node_id = node_id


# ---------------------------------------------------------------- machines and nodes


def _bind_node(db: Session, machine: Machine, node_slug: str | None, site: Site) -> None:
    if node_slug is None:
        machine.node_id = None
        return
    slug = _slug_field(node_slug, "node")
    node = db.scalar(select(Node).where(Node.slug == slug))
    if node is None:
        node = Node(slug=slug, site_id=site.id)
        db.add(node)
        db.flush()
    else:
        if node.site_id != site.id:
            raise Conflict(N_("node %(slug)r belongs to another site"), {"slug": slug})
        owner = db.scalar(select(Machine).where(Machine.node_id == node.id))
        if owner is not None and owner.id != machine.id:
            raise Conflict(N_("node %(slug)r already drives machine %(machine)r"),
                           {"slug": slug, "machine": owner.slug})
    machine.node_id = node.id


def create_machine(db: Session, slug: str, name: str, site: str, kind: str = "other",
                   node: str | None = None, requires_authorization: bool = True,
                   policy: dict[str, Any] | None = None, *, actor: str) -> Machine:
    slug = _slug_field(slug)
    name_ = _text(name, "name")
    site_row = get_site_by_slug(db, site, "site")
    kind_ = _enum_value(MachineKind, kind or "other", "kind")
    if not isinstance(requires_authorization, bool):
        raise Invalid(N_("requires_authorization must be a boolean"),
                      {"requires_authorization": "must be a boolean"})
    policy_ = validate_policy(policy)
    if db.scalar(select(Machine.id).where(Machine.slug == slug)) is not None:
        raise Conflict(N_("a machine with slug %(slug)r exists"), {"slug": slug})
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
            new: Any = _text(value, "name")
        elif key == "kind":
            new = _enum_value(MachineKind, value, "kind")
        elif key in ("requires_authorization", "active"):
            if not isinstance(value, bool):
                raise Invalid(N_("%(field)s must be a boolean"), {key: N_("must be a boolean")},
                              {"field": key})
            new = value
        elif key == "policy":
            new = validate_policy(value)
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
    reason_ = _text(reason, "reason", max_len=500, required=False)
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
    stmt = select(Machine).order_by(Machine.slug)
    if site_ids is not None:
        stmt = stmt.where(Machine.site_id.in_(sorted(site_ids)))
    if site:
        stmt = stmt.where(Machine.site_id == get_site_by_slug(db, site, "site").id)
    return paginate(db, stmt, page, per_page)


def list_nodes(db: Session, page: int | None = 1, per_page: int | None = DEFAULT_PER_PAGE,
               site_ids: Collection[int] | None = None) -> Page[Node]:
    stmt = select(Node).order_by(Node.slug)
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


# ---------------------------------------------------------------- groups


def _machines_by_ids(db: Session, machine_ids: Iterable[int]) -> list[Machine]:
    ids = list(dict.fromkeys(machine_ids))
    machines = list(db.scalars(select(Machine).where(Machine.id.in_(ids)))) if ids else []
    missing = set(ids) - {m.id for m in machines}
    if missing:
        raise Invalid(N_("unknown machines"), {"machine_ids": f"unknown machine ids {sorted(missing)}"})
    return machines


def create_group(db: Session, slug: str, name: str, machine_ids: Iterable[int] = (), *,
                 actor: str) -> MachineGroup:
    slug = _slug_field(slug)
    name_ = _text(name, "name")
    if db.scalar(select(MachineGroup.id).where(MachineGroup.slug == slug)) is not None:
        raise Conflict(N_("a group with slug %(slug)r exists"), {"slug": slug})
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


# ---------------------------------------------------------------- authorizations


def valid_authorization_clause(now: datetime) -> Any:
    """SQL condition: not revoked and not expired at `now`."""
    return and_(Authorization.revoked_at.is_(None),
                or_(Authorization.expires_at.is_(None), Authorization.expires_at > now))


def grant(db: Session, member_id: int, machine_id: int | None = None, group_id: int | None = None,
          role: str = "user", expires_at: datetime | date | str | None = None,
          granted_by_user_id: int | None = None, via: str = "web", *, actor: str,
          granted_by_member_id: int | None = None) -> Authorization:
    member = get_member(db, member_id)
    if (machine_id is None) == (group_id is None):
        raise Invalid(N_("give either a machine or a group"),
                      {"machine_id": "give either machine_id or group_id"})
    if machine_id is not None:
        get_machine(db, machine_id)
    if group_id is not None:
        get_group(db, group_id)
    role_ = _enum_value(AuthRole, role or "user", "role")
    expires = _datetime(expires_at, "expires_at")
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
    mark_nodes_dirty(db, _authorization_node_ids(db, auth), "authorization.grant")
    db.flush()
    return auth


def revoke(db: Session, authorization_id: int, by_user_id: int | None = None,
           reason: str | None = None, *, actor: str) -> Authorization:
    auth = get_authorization(db, authorization_id)
    if auth.revoked_at is not None:
        return auth
    auth.revoked_at = now_utc()
    auth.revoked_by_user_id = by_user_id
    auth.revoke_reason = _text(reason, "reason", max_len=500, required=False)
    audit(db, actor, "authorization.revoke", "authorization", auth.id,
          {"member_id": auth.member_id, "reason": auth.revoke_reason})
    mark_nodes_dirty(db, _authorization_node_ids(db, auth), "authorization.revoke")
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


# ---------------------------------------------------------------- sessions, logs


def list_sessions(db: Session, machine_id: int | None = None, member_id: int | None = None,
                  since: datetime | None = None, until: datetime | None = None,
                  open_only: bool = False, site: str | None = None, page: int | None = 1,
                  per_page: int | None = DEFAULT_PER_PAGE,
                  site_ids: Collection[int] | None = None) -> Page[UsageSession]:
    """Sessions overlapping [since, until), newest first."""
    stmt = select(UsageSession).order_by(UsageSession.started_at.desc(), UsageSession.id.desc())
    if site_ids is not None:
        stmt = stmt.where(UsageSession.machine_id.in_(machine_ids_in_sites(site_ids)))
    if machine_id is not None:
        stmt = stmt.where(UsageSession.machine_id == machine_id)
    if member_id is not None:
        stmt = stmt.where(UsageSession.member_id == member_id)
    if until is not None:
        stmt = stmt.where(UsageSession.started_at < until)
    if since is not None:
        stmt = stmt.where(or_(UsageSession.ended_at.is_(None), UsageSession.ended_at >= since))
    if open_only:
        stmt = stmt.where(UsageSession.ended_at.is_(None))
    if site:
        stmt = stmt.where(UsageSession.machine_id.in_(
            select(Machine.id).where(Machine.site_id == get_site_by_slug(db, site, "site").id)))
    return paginate(db, stmt, page, per_page)


def list_audit(db: Session, entity_type: str | None = None, entity_id: str | None = None,
               page: int | None = 1, per_page: int | None = DEFAULT_PER_PAGE) -> Page[AuditLog]:
    stmt = select(AuditLog).order_by(AuditLog.id.desc())
    if entity_type:
        stmt = stmt.where(AuditLog.entity_type == entity_type)
    if entity_id is not None:
        stmt = stmt.where(AuditLog.entity_id == str(entity_id))
    return paginate(db, stmt, page, per_page)


def list_dead_letters(db: Session, page: int | None = 1,
                      per_page: int | None = DEFAULT_PER_PAGE) -> Page[DeadLetter]:
    return paginate(db, select(DeadLetter).order_by(DeadLetter.id.desc()), page, per_page)


def dead_letter_counts(db: Session, since: datetime | None = None) -> dict[str | None, int]:
    """Rejected payloads per node slug (None: no readable node), e.g. for the nodes page."""
    stmt = select(DeadLetter.node_slug, func.count()).group_by(DeadLetter.node_slug)
    if since is not None:
        stmt = stmt.where(DeadLetter.received_at >= since)
    return {slug: int(n) for slug, n in db.execute(stmt).all()}


# ---------------------------------------------------------------- users and tokens


def create_user(db: Session, email: str, password: str, role: str, member_id: int | None = None,
                *, actor: str) -> User:
    email_ = _email(email)
    if email_ is None:
        raise Invalid(N_("email is required"), {"email": "required"})
    role_ = _enum_value(UserRole, role, "role")
    if not isinstance(password, str) or len(password) < 8:
        raise Invalid(N_("the password is too short"), {"password": "at least 8 characters"})
    if db.scalar(select(User.id).where(func.lower(User.email) == email_)) is not None:
        raise Conflict(N_("a user with e-mail %(email)s exists"), {"email": email_})
    if member_id is not None:
        get_member(db, member_id)
    user = User(email=email_, password_hash=hash_password(password), role=role_,
                member_id=member_id, active=True)
    db.add(user)
    db.flush()
    audit(db, actor, "user.create", "user", user.id,
          {"email": email_, "role": role_.value, "member_id": member_id})
    db.flush()
    return user


def create_token(db: Session, name: str, role: str = "admin", sites: Sequence[str] = (), *,
                 actor: str) -> tuple[ApiToken, str]:
    """A new API token: the row (hash only) and the plaintext, to show once.

    A manager token is bound to `sites` (slugs, at least one) and reaches only their records
    and shared ones, like a manager login; an admin token reaches every site and takes none."""
    name_ = _text(name, "name")
    role_ = _enum_value(UserRole, role or "admin", "role")
    if role_ not in (UserRole.admin, UserRole.manager):
        raise Invalid(N_("a token's role is admin or manager"), {"role": "admin or manager"})
    slugs = list(dict.fromkeys(sites))
    if role_ == UserRole.manager and not slugs:
        raise Invalid(N_("a manager token needs at least one site"), {"sites": "at least one site"})
    if role_ == UserRole.admin and slugs:
        raise Invalid(N_("an admin token reaches every site: it takes no sites"),
                      {"sites": "none for an admin token"})
    site_rows = [get_site_by_slug(db, slug, "sites") for slug in slugs]
    plain = new_token()
    token = ApiToken(name=name_, token_hash=hash_token(plain), prefix=plain[:12], role=role_,
                     sites=site_rows)
    db.add(token)
    db.flush()
    audit(db, actor, "token.create", "token", token.id,
          {"name": name_, "role": role_.value, "sites": slugs})
    db.flush()
    return token, plain


__all__ = [
    "Page", "acl_changed", "audit", "authorization_in_sites", "check_page", "create_group",
    "create_machine", "create_member", "create_site", "create_token", "create_user",
    "dead_letter_counts", "deactivate_member",
    "enrol_badge", "find_member", "get_authorization", "get_badge", "get_group",
    "get_group_by_slug", "get_machine", "get_machine_by_slug", "get_member", "get_node_by_slug",
    "get_site", "get_site_by_slug", "grant", "group_ids_in_sites", "list_audit",
    "list_authorizations", "list_dead_letters", "list_groups", "list_machines", "list_members",
    "list_nodes", "list_sessions", "list_sites", "list_unknown_badges", "machine_ids_in_sites",
    "machine_node_ids", "mark_all_dirty", "mark_nodes_dirty", "member_in_sites",
    "member_node_ids", "paginate", "record_unknown_badge", "revoke",
    "send_command", "set_badge_status", "set_group_machines", "set_machine_lock",
    "trainer_machine_ids", "update_machine", "update_member", "valid_authorization_clause",
    "valid_machine_ids_for", "validate_policy",
]
