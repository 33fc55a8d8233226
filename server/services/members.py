"""Members and their badges, and the badges nobody knows yet."""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Sequence
from datetime import date, datetime
from typing import Any, NamedTuple, cast

from sqlalchemy import ColumnElement, Select, and_, delete, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from server.errors import N_, Conflict, Invalid, NotFound
from server.models import (
    Badge,
    BadgeStatus,
    Member,
    UnknownBadge,
)
from server.services.access import member_in_sites
from server.services.audit import audit
from server.services.common import (
    DEFAULT_PER_PAGE,
    Page,
    check_page,
    get_badge,
    get_member,
    get_site_by_slug,
    now_utc,
    paginate,
)
from server.services.dirty import mark_nodes_dirty, member_node_ids
from server.services.validation import (
    date_field,
    email_field,
    enum_field,
    tags_field,
    text_field,
    uid_field,
)

_MEMBER_FIELDS = ("name", "email", "member_no", "site", "tags", "active_until", "active")


def create_member(db: Session, name: str, email: str | None = None, member_no: str | None = None,
                  site: str | None = None, tags: Sequence[str] | str | None = None,
                  active_until: date | str | None = None, *, actor: str) -> Member:
    member = Member(
        name=text_field(name, "name"), email=email_field(email),
        member_no=text_field(member_no, "member_no", max_len=64, required=False),
        site_id=get_site_by_slug(db, site, "site").id if site else None,
        tags=tags_field(tags), active=True, active_until=date_field(active_until, "active_until"),
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
    refuse_if_erased(member)
    changes: dict[str, Any] = {}
    for key, value in fields.items():
        if key == "name":
            new: Any = text_field(value, "name")
        elif key == "email":
            new = email_field(value)
        elif key == "member_no":
            new = text_field(value, "member_no", max_len=64, required=False)
        elif key == "tags":
            new = tags_field(value)
        elif key == "active_until":
            new = date_field(value, "active_until")
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


def refuse_if_erased(member: Member) -> None:
    """Erasure is final: an erased member (and so its badges) is never edited, re-activated or
    given a badge again, whichever path asks (web, API, CLI)."""
    if member.erased_at is not None:
        raise Conflict(N_("member %(id)s was erased: this cannot be undone"), {"id": member.id})


def deactivate_member(db: Session, member_id: int, *, actor: str) -> Member:
    member = get_member(db, member_id)
    if member.active:
        member.active = False
        audit(db, actor, "member.deactivate", "member", member.id, {})
        mark_nodes_dirty(db, member_node_ids(db, member.id), "member.deactivate")
    db.flush()
    return member


def _member_query(db: Session, stmt: Select[Any], q: str | None, active: bool | None,
                  site: str | None, site_ids: Collection[int] | None,
                  contact_site_ids: Collection[int] | None) -> Select[Any]:
    """The filters of the members list, on `stmt` (ORM objects or columns)."""
    stmt = stmt.order_by(Member.name, Member.id)
    if site_ids is not None:
        stmt = stmt.where(member_in_sites(site_ids))
    if q:
        like = f"%{q.strip().lower()}%"
        uid_like = re.sub(r"[\s:\-._]", "", q).upper()
        email_match: ColumnElement[bool] = func.lower(Member.email).like(like)
        if contact_site_ids is not None:
            email_match = and_(email_match, member_in_sites(contact_site_ids))
        conds = [func.lower(Member.name).like(like), email_match,
                 func.lower(Member.member_no).like(like)]
        if uid_like:
            conds.append(Member.id.in_(select(Badge.member_id)
                                       .where(Badge.uid.like(f"%{uid_like}%"))))
        stmt = stmt.where(or_(*conds))
    if active is not None:
        stmt = stmt.where(Member.active.is_(active))
    if site:
        stmt = stmt.where(Member.site_id == get_site_by_slug(db, site, "site").id)
    return stmt


def list_members(db: Session, q: str | None = None, active: bool | None = None,
                 site: str | None = None, page: int | None = 1,
                 per_page: int | None = DEFAULT_PER_PAGE,
                 site_ids: Collection[int] | None = None,
                 contact_site_ids: Collection[int] | None = None) -> Page[Member]:
    """Members by name. `site_ids`: homed at these sites (or shared) only. `contact_site_ids`:
    the sites whose members' contact details the reader sees (None: all); `q` matches an
    e-mail only there, so a search cannot reveal a hidden address."""
    stmt = select(Member).options(selectinload(Member.badges), selectinload(Member.site))
    return paginate(db, _member_query(db, stmt, q, active, site, site_ids, contact_site_ids),
                    page, per_page)


MEMBER_ROW_COLUMNS = (Member.id, Member.name, Member.member_no, Member.email, Member.active,
                      Member.site_id, Member.erased_at)


def list_member_rows(db: Session, q: str | None = None, active: bool | None = None,
                     site: str | None = None, page: int | None = 1,
                     per_page: int | None = DEFAULT_PER_PAGE,
                     site_ids: Collection[int] | None = None,
                     contact_site_ids: Collection[int] | None = None) -> Page[Any]:
    """`list_members` as rows of `MEMBER_ROW_COLUMNS` (and `total`, the count of every match),
    for the members page: no ORM objects and no badges or sites loaded (the ORM loading was a
    third of that page's CPU).

    The count rides along in the page's statement as an uncorrelated scalar subquery (computed
    once by both databases), not a second statement: a statement's own cost in Python was most
    of what the count cost (issue 21). A window `count(*) over ()` would make SQLite
    materialise every match: ten times slower here. A page past the end has no row to carry
    the count: only then is it asked alone."""
    page, per_page = check_page(page, per_page)
    stmt = _member_query(db, cast(Select[Any], select(*MEMBER_ROW_COLUMNS)), q, active, site, site_ids,
                         contact_site_ids)
    # the same FROM and WHERE, counted (no subquery object to build: that was most of the
    # count's Python); never correlated to the outer members, or each row would count itself
    count = stmt.with_only_columns(func.count(), maintain_column_froms=True).order_by(None)
    paged = (stmt.add_columns(count.correlate(None).scalar_subquery().label("total"))
             .limit(per_page).offset((page - 1) * per_page))
    rows: list[Any]
    if db.get_bind().dialect.name == "sqlite":
        rows = _sqlite_rows_in_one(db, paged)
    else:
        rows = list(db.execute(paged).all())
    if rows:
        total = rows[0].total
    else:
        total = db.scalar(count) if page > 1 else 0
    return Page(items=rows, total=int(total or 0), page=page, per_page=per_page)


class MemberRow(NamedTuple):
    """A row of the members page (`MEMBER_ROW_COLUMNS` and the total); `erased_at` is only
    tested for None by the page."""

    id: int
    name: str
    member_no: str | None
    email: str | None
    active: bool
    site_id: int | None
    erased_at: Any
    total: int


def _sqlite_rows_in_one(db: Session, paged: Select[Any]) -> list[MemberRow]:
    """The page's rows as one row of JSON (`json_group_array`), sorted back by (name, id).

    Why: Python's sqlite3 lets go of the GIL around every row it steps through and must win
    it back; under 10 concurrent page loads each of the 50 rows waited behind the other
    threads, and this page's p95 was three times its CPU (issue 21). One row is one wait.
    SQLite's text order (BINARY: UTF-8 bytes) is Python's code point order, so the sort
    gives the statement's order whatever order the aggregate saw."""
    sub = paged.subquery()
    agg = select(func.json_group_array(func.json_array(*sub.c)))
    text = db.scalar(agg)
    out = [MemberRow(int(r[0]), r[1], r[2], r[3], bool(r[4]), r[5], r[6], int(r[7]))
           for r in json.loads(text or "[]")]
    out.sort(key=lambda r: (r.name, r.id))
    return out


def enrol_badge(db: Session, member_id: int, uid: str, *, actor: str) -> Badge:
    """Give a badge to a member (idempotent for the same member; reactivates it)."""
    member = get_member(db, member_id)
    refuse_if_erased(member)
    uid = uid_field(uid)
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
    new = enum_field(BadgeStatus, status, "status")
    if badge.member is not None and badge.status != new:
        refuse_if_erased(badge.member)
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
                         seen: datetime | None = None, *, enrolled: bool | None = None) -> None:
    """Upsert the UnknownBadge row for a UID tapped but not enrolled (ingest). `enrolled`:
    whether a badge of that UID exists, when the caller already knows (asked otherwise)."""
    seen = seen or now_utc()
    if enrolled is None:
        enrolled = db.scalar(select(Badge.id).where(Badge.uid == uid)) is not None
    if enrolled:
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


def pending_unknown_badges(db: Session, limit: int = 200) -> list[UnknownBadge]:
    """Unknown badges nobody has enrolled since, most recently seen first."""
    return list(db.scalars(select(UnknownBadge)
                           .where(UnknownBadge.uid.not_in(select(Badge.uid)))
                           .order_by(UnknownBadge.last_seen.desc()).limit(limit)))


def get_unknown_badge(db: Session, unknown_id: int) -> UnknownBadge:
    row = db.get(UnknownBadge, unknown_id)
    if row is None:
        raise NotFound(N_("no unknown badge %(id)s"), {"id": unknown_id})
    return row


def active_members(db: Session, site_ids: Collection[int] | None = None) -> list[Member]:
    """Active members by name (for choice lists); `site_ids`: homed there or shared only."""
    stmt = select(Member).where(Member.active.is_(True)).order_by(Member.name, Member.id)
    if site_ids is not None:
        stmt = stmt.where(member_in_sites(site_ids))
    return list(db.scalars(stmt))


def member_names(db: Session, member_ids: Collection[int]) -> dict[int, tuple[str, int | None]]:
    """id -> (name, home site id) for these members, in one query."""
    if not member_ids:
        return {}
    rows = db.execute(select(Member.id, Member.name, Member.site_id)
                      .where(Member.id.in_(sorted(member_ids)))).all()
    return {r.id: (r.name, r.site_id) for r in rows}


def badge_holders(db: Session) -> list[tuple[str, Any, str]]:
    """(uid, status, member name) of every enrolled badge, by member name."""
    return [tuple(r) for r in db.execute(  # type: ignore[misc]
        select(Badge.uid, Badge.status, Member.name)
        .join(Member, Badge.member_id == Member.id)
        .order_by(Member.name, Badge.uid)).all()]


def all_member_names(db: Session) -> dict[int, str]:
    return dict(db.execute(select(Member.id, Member.name)).all())  # type: ignore[arg-type]


def open_unknown_badge(db: Session, unknown_id: int) -> UnknownBadge | None:
    """An unknown badge that nobody holds yet (None: gone, or enrolled meanwhile)."""
    row = db.get(UnknownBadge, unknown_id)
    if row is None or db.scalar(select(Badge.id).where(Badge.uid == row.uid)) is not None:
        return None
    return row
