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
    filters: dict[str, Any] = {
        "site_ids": scope, "machine_id": machine_id, "member_id": member_id,
        "since": _date_arg("since"), "until": _date_arg("until", end=True),
        "open_only": request.args.get("open") == "1"}
    if request.args.get("format") == "csv":
        return _sessions_csv(filters)
    pg = services.list_sessions(db, page=page, per_page=PER_PAGE, **filters)
    machines = services.all_machines(db, site_ids=scope)
    member = services.get_member(db, member_id) if member_id else None
    return render_template("logs/sessions.html", rows=pg.items, total=pg.total, page=page,
                           per_page=PER_PAGE, machines=machines, machine_id=machine_id,
                           member=member, args=request.args,
                           csv_args={**{k: v for k, v in request.args.items()
                                        if k not in ("format", "page")}, "format": "csv"})


EXPORT_PAGES = 40  # a session CSV holds at most 40 pages of 500 rows: a bound on one request


def _sessions_csv(filters: dict[str, Any]) -> Any:
    """The filtered sessions as CSV, newest first; `clock_untrusted` (1) marks a session the
    server placed from the receive time because the node's clock was far off (issue 13)."""
    from server.services.common import MAX_PER_PAGE
    from server.web.reports import web_csv

    rows: list[dict[str, Any]] = []
    for n in range(1, EXPORT_PAGES + 1):
        pg = services.list_sessions(get_db(), page=n, per_page=MAX_PER_PAGE, **filters)
        rows.extend(_session_row(s) for s in pg.items)
        if n * MAX_PER_PAGE >= pg.total:
            break
    return web_csv(rows, "sessions", columns=SESSION_COLUMNS)


SESSION_COLUMNS = ["machine", "member", "started_at", "ended_at", "hours", "active_hours",
                   "end_reason", "clock_untrusted"]


def _session_row(s: Any) -> dict[str, Any]:
    def hours(v: float | None) -> float | None:
        return None if v is None else round(v / 3600.0, 4)

    return {"machine": s.machine.slug if s.machine else None, "member": s.member_id,
            "started_at": s.started_at.isoformat() if s.started_at else None,
            "ended_at": s.ended_at.isoformat() if s.ended_at else None,
            "hours": hours(s.duration_s), "active_hours": hours(s.active_s),
            "end_reason": s.end_reason, "clock_untrusted": int(bool(s.clock_untrusted))}


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
