"""Read-only logs: sessions (with filters), audit log, nodes."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any

from flask import render_template, request
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from server import auth
from server.app import get_db
from server.models import AuditLog, Machine, Member, Node, UsageSession, User
from server.web.blueprint import arg_id, arg_page, bp

MANAGERS = (auth.ADMIN, auth.MANAGER)
PER_PAGE = 50


def _date_arg(name: str, end: bool = False) -> datetime | None:
    raw = request.args.get(name) or ""
    try:
        d = datetime.strptime(raw, "%Y-%m-%d").date()
    except ValueError:
        return None
    return datetime.combine(d, time.max if end else time.min, tzinfo=UTC)


@bp.get("/sessions")
@auth.roles_required(*MANAGERS)
def sessions() -> Any:
    db = get_db()
    stmt = select(UsageSession).options(selectinload(UsageSession.member),
                                        selectinload(UsageSession.machine))
    machine_id = arg_id(request.args, "machine_id")
    member_id = arg_id(request.args, "member_id")
    since, until = _date_arg("since"), _date_arg("until", end=True)
    open_only = request.args.get("open") == "1"
    if machine_id:
        stmt = stmt.where(UsageSession.machine_id == machine_id)
    if member_id:
        stmt = stmt.where(UsageSession.member_id == member_id)
    if since:
        stmt = stmt.where(UsageSession.started_at >= since)
    if until:
        stmt = stmt.where(UsageSession.started_at <= until)
    if open_only:
        stmt = stmt.where(UsageSession.ended_at.is_(None))
    page = arg_page(request.args)
    total = db.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    rows = db.scalars(stmt.order_by(UsageSession.started_at.desc())
                      .offset((page - 1) * PER_PAGE).limit(PER_PAGE)).all()
    machines = db.scalars(select(Machine).order_by(Machine.name)).all()
    member = db.get(Member, member_id) if member_id else None
    return render_template("logs/sessions.html", rows=rows, total=total, page=page,
                           per_page=PER_PAGE, machines=machines, machine_id=machine_id,
                           member=member, args=request.args)


@bp.get("/audit")
@auth.roles_required(*MANAGERS)
def audit() -> Any:
    """The change log as sentences, filterable by kind of change and by the person who made it."""
    from server.services.audit_names import audit_actions, audit_facts
    from server.web import labels
    from server.web.audit_text import sentence

    db = get_db()
    stmt = select(AuditLog)
    known = audit_actions(db)
    action = (request.args.get("action") or "").strip()[:50]
    if action in known:
        stmt = stmt.where(AuditLog.action == action)
    else:
        action = ""
    people = [(u.id, u.email) for u in db.scalars(select(User).order_by(User.email))]
    by = arg_id(request.args, "by")
    if by and by in dict(people):
        stmt = stmt.where(AuditLog.actor.like(f"user:{by} %") | (AuditLog.actor == f"user:{by}"))
    else:
        by = None
    page = arg_page(request.args)
    total = db.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    rows = db.scalars(stmt.order_by(AuditLog.at.desc(), AuditLog.id.desc())
                      .offset((page - 1) * PER_PAGE).limit(PER_PAGE)).all()
    entries = [(f.row, sentence(f)) for f in audit_facts(db, rows)]
    kinds = sorted(((a, labels.label("action", a)) for a in known), key=lambda kv: kv[1].lower())
    return render_template("logs/audit.html", entries=entries, total=total, page=page,
                           per_page=PER_PAGE, action=action, kinds=kinds, people=people, by=by)


@bp.get("/nodes")
@auth.roles_required(*MANAGERS)
def nodes() -> Any:
    db = get_db()
    rows = db.scalars(select(Node).options(selectinload(Node.machine), selectinload(Node.site))
                      .order_by(Node.slug)).all()
    return render_template("logs/nodes.html", rows=rows)


@bp.get("/me")
@auth.roles_required()
def me_page() -> Any:
    """Self-service: the trainings and hours of the member linked to this login."""
    from sqlalchemy import func as f

    from server.models import Authorization

    db = get_db()
    p = auth.me()
    member = db.get(Member, p.member_id) if p.member_id else None
    auths: list[Any] = []
    hours: list[Any] = []
    if member is not None:
        auths = list(db.scalars(select(Authorization).where(
            Authorization.member_id == member.id, Authorization.revoked_at.is_(None))
            .order_by(Authorization.granted_at.desc())))
        since = datetime.now(UTC).replace(microsecond=0) - timedelta(days=365)
        hours = list(db.execute(
            select(Machine.name, f.count(UsageSession.id),
                   f.coalesce(f.sum(UsageSession.duration_s), 0) / 3600.0)
            .join(Machine, Machine.id == UsageSession.machine_id)
            .where(UsageSession.member_id == member.id, UsageSession.started_at >= since,
                   UsageSession.ended_at.is_not(None))
            .group_by(Machine.name).order_by(Machine.name)).all())
    return render_template("logs/me.html", member=member, auths=auths, hours=hours,
                           now=datetime.now(UTC))
