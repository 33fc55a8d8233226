"""Read-only logs: sessions (with filters), audit log, nodes, a trainer's own page.

Scope (`server.services.access`): a manager reads the sessions, audit entries and nodes of
their sites only; the lists come filtered from the services.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any

from flask import render_template, request

from server import auth, services
from server.app import get_db
from server.web.blueprint import arg_id, arg_page, bp

MANAGERS = (auth.ADMIN, auth.MANAGER)
PER_PAGE = 50


def _date_arg(name: str, end: bool = False) -> datetime | None:
    """A `YYYY-MM-DD` argument as UTC midnight; `end`: the midnight after it (exclusive)."""
    raw = request.args.get(name) or ""
    try:
        d = datetime.strptime(raw, "%Y-%m-%d").date()
    except ValueError:
        return None
    if end:
        d += timedelta(days=1)
    return datetime.combine(d, time.min, tzinfo=UTC)


@bp.get("/sessions")
@auth.roles_required(*MANAGERS)
def sessions() -> Any:
    """Sessions overlapping the range, as the API lists them (one service, one rule)."""
    db = get_db()
    me = auth.me()
    scope = auth.read_sites(me)
    machine_id = arg_id(request.args, "machine_id")
    member_id = arg_id(request.args, "member_id")
    page = arg_page(request.args)
    pg = services.list_sessions(
        db, site_ids=scope, machine_id=machine_id, member_id=member_id,
        since=_date_arg("since"), until=_date_arg("until", end=True),
        open_only=request.args.get("open") == "1", page=page, per_page=PER_PAGE)
    machines = services.all_machines(db, site_ids=scope)
    member = services.get_member(db, member_id) if member_id else None
    return render_template("logs/sessions.html", rows=pg.items, total=pg.total, page=page,
                           per_page=PER_PAGE, machines=machines, machine_id=machine_id,
                           member=member, args=request.args)


@bp.get("/audit")
@auth.roles_required(*MANAGERS)
def audit() -> Any:
    """The change log as sentences, filterable by kind of change and by the person who made it."""
    from server.services.audit_names import audit_actions, audit_facts, audit_people
    from server.web import labels
    from server.web.audit_text import sentence

    db = get_db()
    known = audit_actions(db)
    action = (request.args.get("action") or "").strip()[:50]
    if action not in known:
        action = ""
    people = audit_people(db)
    by = arg_id(request.args, "by")
    if not (by and by in dict(people)):
        by = None
    page = arg_page(request.args)
    pg = services.list_audit(db, action=action or None, actor_user_id=by, page=page,
                             per_page=PER_PAGE, site_ids=auth.read_sites(auth.me()))
    entries = [(f.row, sentence(f)) for f in audit_facts(db, pg.items)]
    kinds = sorted(((a, labels.label("action", a)) for a in known), key=lambda kv: kv[1].lower())
    return render_template("logs/audit.html", entries=entries, total=pg.total, page=page,
                           per_page=PER_PAGE, action=action, kinds=kinds, people=people, by=by)


@bp.get("/nodes")
@auth.roles_required(*MANAGERS)
def nodes() -> Any:
    rows = services.all_nodes(get_db(), site_ids=auth.read_sites(auth.me()))
    from server.services.plugs import plug_specs

    return render_template("logs/nodes.html", rows=rows,
                           plugs=plug_specs(get_db(), [n.id for n in rows]))


@bp.get("/me")
@auth.roles_required()
def me_page() -> Any:
    """Self-service: the trainings and hours of the member linked to this login."""
    db = get_db()
    p = auth.me()
    member = services.get_member(db, p.member_id) if p.member_id else None
    auths: list[Any] = []
    hours: list[Any] = []
    if member is not None:
        auths = services.member_trainings(db, member.id, current_only=True)
        since = datetime.now(UTC).replace(microsecond=0) - timedelta(days=365)
        hours = services.hours_by_machine(db, member.id, since)
    return render_template("logs/me.html", member=member, auths=auths, hours=hours,
                           now=datetime.now(UTC))
