"""Shared plumbing of the services: the clock, pagination and the lookups that raise NotFound.

Each service takes the SQLAlchemy Session and an `actor` ("user:3 alice@x", "token:2 erp",
"cli", "node:laser-1"), validates its input (raising the errors of `server.errors`), writes an
AuditLog row for every change, marks the access lists it affects as dirty and flushes.
Callers commit.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from server.errors import N_, Invalid, NotFound
from server.models import (
    Authorization,
    Badge,
    Machine,
    MachineGroup,
    Member,
    Node,
    Site,
)
from server.services.validation import uid_field

T = TypeVar("T")


MAX_PER_PAGE = 500


DEFAULT_PER_PAGE = 50


def now_utc() -> datetime:
    return datetime.now(UTC)


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
    badge = db.scalar(select(Badge).where(Badge.uid == uid_field(uid)))
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


def replace_kind_rows(db: Session, model: Any, owner_col: str, owner_id: int,
                      wanted: set[str]) -> None:
    """Make the (owner, kind) preference rows of `model` exactly `wanted`: rows no longer
    wanted go, new ones are added, the others stay (alert opt-outs, notice opt-ins)."""
    current = set(db.scalars(select(model.kind).where(getattr(model, owner_col) == owner_id)))
    for kind in current - wanted:
        row = db.get(model, (owner_id, kind))
        if row is not None:
            db.delete(row)
    for kind in wanted - current:
        db.add(model(**{owner_col: owner_id, "kind": kind}))
