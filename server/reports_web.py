"""Report pages: usage over time (server-rendered SVG), denied attempts, member statement,
machine hours and maintenance, funder report. Managers and admins only; every table has CSV.

Scope: an admin reports on any site or on the whole consortium (no site, the default); a
manager only on their own sites (`server.auth.can_manage_site`, the rule of the other pages):
the site picker lists those, the first is the default, and asking for another site or for the
consortium is refused with 403 — as the other pages refuse another site's members and machines
(they do not silently fall back). A manager's member statements, machine pages and maintenance
list are limited the same way (`can_manage_member`, `can_manage_machine`). Trainers have no
report page.

No JavaScript library and no CDN: charts are SVG built here, tables sort by links.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from flask import (
    Blueprint,
    Flask,
    Response,
    abort,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from markupsafe import Markup, escape

from server import auth
from server import maintenance as mnt
from server import reports as rep
from server.auth import ADMIN, MANAGER, roles_required
from server.models import Machine, MaintenanceTask, Member, Site

log = logging.getLogger(__name__)

bp = Blueprint("reports", __name__, url_prefix="/reports")

_managers = roles_required(ADMIN, MANAGER)


@bp.after_request
def _keep_rollup_refresh(response: Any) -> Any:
    """A report brings the roll-ups up to date first (`server.rollups.refresh`): commit that
    work on a successful page so the next report does not redo it."""
    db = g.get("fabpass_db")
    if db is not None and request.method == "GET" and response.status_code < 400:
        db.commit()
    return response


def _db() -> Any:
    from server.app import get_db

    return get_db()


def _user_id() -> int | None:
    from flask_login import current_user

    if getattr(current_user, "kind", "user") != "user":
        return None
    uid = getattr(current_user, "id", None)
    try:
        return int(uid) if uid is not None else None
    except (TypeError, ValueError):
        return None


def _actor() -> str:
    from flask_login import current_user

    return str(getattr(current_user, "actor", None) or f"user:{_user_id()}")


# ---------------------------------------------------------------- period picker


def _tz(site: str | None) -> ZoneInfo:
    name = current_app.config.get("TIMEZONE") or "UTC"
    if site:
        tz = _db().scalar(sa.select(Site.timezone).where(Site.slug == site))
        name = tz or name
    try:
        return ZoneInfo(name)
    except (KeyError, ValueError):
        return ZoneInfo("UTC")


def _period(site: str | None, default_days: int = 365
            ) -> tuple[date, date, datetime, datetime, str | None]:
    """`from`/`to` dates (inclusive, in the site's or the server's zone) → UTC range."""
    zone = _tz(site)
    today = datetime.now(zone).date()

    def parse(name: str, default: date) -> date:
        raw = request.args.get(name, "")
        try:
            value = date.fromisoformat(raw) if raw else default
        except ValueError:
            value = None
        if value is None or not 1970 <= value.year < 2200:
            flash(_("%(field)s: not a date (YYYY-MM-DD)", field=name), "error")
            return default
        return value

    first = parse("from", date(today.year, 1, 1) if default_days >= 365
                  else today - timedelta(days=default_days))
    last = parse("to", today)
    if last < first:
        flash(_("The end of the period is before its start."), "error")
        first, last = last, first
    since = datetime(first.year, first.month, first.day, tzinfo=zone).astimezone(UTC)
    nxt = last + timedelta(days=1)
    until = datetime(nxt.year, nxt.month, nxt.day, tzinfo=zone).astimezone(UTC)
    return first, last, since, until, site


def _sites() -> list[tuple[str, str]]:
    """The sites the login may report on, by name: all for an admin, their own for a manager."""
    me = auth.me()
    rows = _db().execute(sa.select(Site.id, Site.slug, Site.name).order_by(Site.name, Site.id))
    return [(slug, name) for sid, slug, name in rows if auth.can_manage_site(me, sid)]


def _consortium_allowed() -> bool:
    """Only an admin sees the whole consortium (every site at once)."""
    return auth.me().is_admin


def _site_choice() -> tuple[str | None, list[tuple[str, str]]]:
    """(the site asked for, None = the consortium; the picker's choices). A manager gets their
    first site by default and 403 for another site, the consortium (`site=`) or no site at all."""
    sites = _sites()
    raw = request.args.get("site")
    if _consortium_allowed():
        return raw or None, sites
    if raw is None and sites:
        return sites[0][0], sites
    if raw not in dict(sites):
        abort(403)
    return raw, sites


def _machine_or_403(machine_id: int) -> Machine:
    """The machine (404 if none), if the login manages its site (403 otherwise)."""
    m = _db().get(Machine, machine_id)
    if m is None:
        abort(404)
    if not auth.can_manage_machine(auth.me(), m):
        abort(403)
    return m


def _sorted(rows: list[dict[str, Any]], allowed: Sequence[str]) -> tuple[list[dict[str, Any]], str, str]:
    key = request.args.get("sort", "")
    direction = "desc" if request.args.get("dir") == "desc" else "asc"
    if key not in allowed:
        return rows, "", direction

    def k(r: dict[str, Any]) -> tuple[int, Any]:
        v = r.get(key)
        if v is None or isinstance(v, str) and v.startswith("<"):
            return (0, 0)  # masked and empty values sort first
        return (1, v) if not isinstance(v, str) else (1, v.lower())

    return sorted(rows, key=k, reverse=direction == "desc"), key, direction


def _csv(body: str, name: str) -> Response:
    return Response(body, mimetype="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{name}.csv"'})


# ---------------------------------------------------------------- SVG


def svg_bar_chart(labels: Sequence[str], series: Sequence[tuple[str, Sequence[float], str]],
                  title: str, unit: str = "h", width: int = 760, height: int = 260) -> Markup:
    """Grouped bars, one group per label, with a y axis in `unit`: plain SVG, styled by CSS
    classes, with a <title> per bar so values read on hover and by screen readers."""
    pad_l, pad_r, pad_t, pad_b = 48, 8, 12, 44
    plot_w, plot_h = width - pad_l - pad_r, height - pad_t - pad_b
    top = max([v for _n, vals, _c in series for v in vals] + [0.0])
    step = _nice_step(top / 4 if top else 1)
    top = step * max(1, -(-top // step)) if top else step * 4
    parts = [f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
             f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">',
             f"<title>{escape(title)}</title>"]
    ticks = int(round(top / step))
    for i in range(ticks + 1):
        v = step * i
        y = pad_t + plot_h - plot_h * v / top
        parts.append(f'<line class="grid" x1="{pad_l}" x2="{width - pad_r}" y1="{y:.1f}" y2="{y:.1f}"/>')
        parts.append(f'<text class="axis" x="{pad_l - 6}" y="{y + 4:.1f}" text-anchor="end">'
                     f"{_fmt(v)}</text>")
    n = max(len(labels), 1)
    group_w = plot_w / n
    bar_w = max(group_w * 0.8 / max(len(series), 1), 1.0)
    every = max(1, n // 16)  # at most ~16 x labels
    for i, label in enumerate(labels):
        x0 = pad_l + group_w * i + group_w * 0.1
        for j, (name, vals, cls) in enumerate(series):
            v = vals[i] if i < len(vals) else 0.0
            h = plot_h * v / top if top else 0
            parts.append(f'<rect class="{cls}" x="{x0 + bar_w * j:.1f}" y="{pad_t + plot_h - h:.1f}" '
                         f'width="{bar_w:.1f}" height="{h:.1f}"><title>{escape(label)} — '
                         f"{escape(name)}: {_fmt(v)} {escape(unit)}</title></rect>")
        if i % every == 0:
            cx = pad_l + group_w * (i + 0.5)
            parts.append(f'<text class="axis" x="{cx:.1f}" y="{height - pad_b + 16}" '
                         f'text-anchor="middle">{escape(label)}</text>')
    lx = pad_l
    for name, _vals, cls in series:
        parts.append(f'<rect class="{cls}" x="{lx}" y="{height - 14}" width="10" height="10"/>'
                     f'<text class="axis" x="{lx + 14}" y="{height - 5}">{escape(name)}</text>')
        lx += 14 + 8 * len(name) + 24
    parts.append("</svg>")
    return Markup("".join(parts))


def _nice_step(raw: float) -> float:
    if raw <= 0:
        return 1.0
    mag = 10 ** len(str(int(raw))) / 10 if raw >= 1 else 0.1
    for m in (1, 2, 2.5, 5, 10):
        if raw <= m * mag:
            return m * mag
    return 10 * mag


def _fmt(v: float) -> str:
    return f"{v:,.0f}" if v >= 100 else f"{v:,.1f}".rstrip("0").rstrip(".") or "0"


# ---------------------------------------------------------------- usage

GROUPS = [("month", _l("Month")), ("week", _l("Week")), ("day", _l("Day")),
          ("machine", _l("Machine")), ("machine_group", _l("Machine group")),
          ("kind", _l("Machine family")), ("member", _l("Member")),
          ("member_tag", _l("Member category")), ("site", _l("Site"))]


@bp.get("/")
@_managers
def usage() -> Any:
    site, sites = _site_choice()
    first, last, since, until, site = _period(site)
    group = request.args.get("group_by", "month")
    if group not in dict(GROUPS):
        group = "month"
    db = _db()
    try:
        rows = rep.usage_report(db, group, since, until, site)
        if group in ("day", "month", "member"):
            visits = {r[group]: r["visits"]
                      for r in rep.visits_report(db, group, since, until, site)}
            for r in rows:
                r["visits"] = visits.get(r[group], 0)
    except rep.ReportError as exc:
        db.rollback()
        flash(str(exc), "error")
        rows = []
    openable: set[int] = set()  # members whose statement the login may open
    if group == "member":
        me = auth.me()
        found = db.execute(sa.select(Member.id, Member.name, Member.site_id).where(
            Member.id.in_([r["member"] for r in rows if r["member"] is not None]))).all()
        names = {mid: name for mid, name, _sid in found}
        openable = {mid for mid, _name, sid in found if auth.can_manage_site(me, sid)}
        for r in rows:
            r["name"] = names.get(r["member"])
    if request.args.get("format") == "csv":
        return _csv(rep.rows_to_csv(rows, group), f"usage-{group}-{first}-{last}")
    chart = None
    if rows:
        chart_rows = rows if group in rep.TIME_DIMENSIONS else sorted(
            rows, key=lambda r: -r["hours"])[:30]
        chart = svg_bar_chart(
            [str(r.get("name") or r[group]) for r in chart_rows],
            [(_("Session hours"), [r["hours"] for r in chart_rows], "s1"),
             (_("Active hours"), [r["active_hours"] for r in chart_rows], "s2")],
            title=_("Hours by %(group)s", group=str(dict(GROUPS)[group]).lower()))
    rows, sort, direction = _sorted(rows, [group, "sessions", "hours", "active_hours", "members",
                                           "visits"])
    open_count = _open_sessions(site)
    return render_template("reports/usage.html", rows=rows, chart=chart, group=group,
                           groups=GROUPS, first=first, last=last, site=site, sites=sites,
                           consortium=_consortium_allowed(), sort=sort, direction=direction,
                           open_count=open_count, openable=openable)


def _open_sessions(site: str | None) -> int:
    from server.models import UsageSession

    q = sa.select(sa.func.count()).select_from(UsageSession).where(UsageSession.ended_at.is_(None))
    if site:
        q = q.join(Machine, Machine.id == UsageSession.machine_id).join(
            Site, Site.id == Machine.site_id).where(Site.slug == site)
    return int(_db().scalar(q) or 0)


DENIED_GROUPS = [("reason", _l("Reason")), ("machine", _l("Machine")), ("site", _l("Site")),
                 ("day", _l("Day")), ("week", _l("Week")), ("month", _l("Month"))]


@bp.get("/denied")
@_managers
def denied() -> Any:
    site, sites = _site_choice()
    first, last, since, until, site = _period(site)
    group = request.args.get("group_by", "reason")
    if group not in dict(DENIED_GROUPS):
        group = "reason"
    try:
        rows = rep.denied_report(_db(), group, since, until, site)
    except rep.ReportError as exc:
        flash(str(exc), "error")
        rows = []
    if request.args.get("format") == "csv":
        return _csv(rep.rows_to_csv(rows, columns=[group, "denied"]), f"denied-{first}-{last}")
    rows, sort, direction = _sorted(rows, [group, "denied"])
    return render_template("reports/denied.html", rows=rows, group=group, groups=DENIED_GROUPS,
                           first=first, last=last, site=site, sites=sites,
                           consortium=_consortium_allowed(), sort=sort, direction=direction)


@bp.get("/members/<int:member_id>/statement")
@_managers
def statement(member_id: int) -> Any:
    db = _db()
    member = db.get(Member, member_id)
    if member is None:
        abort(404)
    if not auth.can_manage_member(auth.me(), member):
        abort(403)
    # no site picker: `site` only chooses the zone of the dates (the server's by default)
    first, last, since, until, site = _period(request.args.get("site") or None, default_days=31)
    basis = "active_hours" if request.args.get("basis") == "active_hours" else "hours"
    st = rep.member_statement(db, member_id, since, until, basis)
    if request.args.get("format") == "csv":
        cols = ["machine", "name", "sessions", "hours", "active_hours", "rate", "amount"]
        body = rep.rows_to_csv(st["rows"], columns=cols) + f"total,,,,,,{st['total']}\r\n"
        return _csv(body, f"statement-{member_id}-{first}-{last}")
    return render_template("reports/statement.html", member=member, st=st, first=first, last=last,
                           basis=basis, site=site, sites=[])


# ---------------------------------------------------------------- machines and maintenance


def machine_fragment(machine_id: int) -> Markup:
    """HTML for a machine page: total active hours, hours since maintenance, due tasks."""
    try:
        status = mnt.maintenance_status(_db(), machine_id)
    except mnt.MaintenanceError:
        return Markup("")
    from flask_login import current_user

    m = _db().get(Machine, machine_id)
    can_open = (m is not None and getattr(current_user, "is_authenticated", False)
                and auth.can_manage_machine(auth.me(), m))  # else the link would be a 403
    return Markup(render_template("reports/_machine_fragment.html", status=status,
                                  machine_id=machine_id, can_open=can_open))


@bp.get("/machines/<int:machine_id>")
@_managers
def machine(machine_id: int) -> Any:
    db = _db()
    m = _machine_or_403(machine_id)
    status = mnt.maintenance_status(db, machine_id)
    hist = mnt.history(db, machine_id, limit=200)
    if request.args.get("format") == "csv":
        rows = [{"done_at": h.done_at.isoformat(), "task": h.task.name if h.task else "",
                 "active_hours_at": h.active_hours_at, "done_by_user_id": h.done_by_user_id,
                 "note": h.note} for h in hist]
        return _csv(rep.rows_to_csv(rows, columns=["done_at", "task", "active_hours_at",
                                                   "done_by_user_id", "note"]),
                    f"maintenance-{m.slug}")
    return render_template("reports/machine.html", m=m, status=status, history=hist)


@bp.post("/machines/<int:machine_id>/tasks")
@_managers
def add_task(machine_id: int) -> Any:
    db = _db()
    _machine_or_403(machine_id)
    try:
        mnt.create_task(db, machine_id, request.form.get("name", ""),
                        request.form.get("interval", ""))  # type: ignore[arg-type]
        db.commit()
        flash(_("Task added."), "success")
    except mnt.MaintenanceError as exc:
        db.rollback()
        flash(_("Task not added: %(why)s", why=str(exc)), "error")
    return redirect(url_for("reports.machine", machine_id=machine_id))


@bp.post("/machines/<int:machine_id>/tasks/<int:task_id>/retire")
@_managers
def retire_task(machine_id: int, task_id: int) -> Any:
    db = _db()
    _machine_or_403(machine_id)
    task = db.get(MaintenanceTask, task_id)
    if task is None or task.machine_id != machine_id:
        abort(404)
    task.active = False
    db.commit()
    flash(_("Task removed (its history is kept)."), "success")
    return redirect(url_for("reports.machine", machine_id=machine_id))


@bp.post("/machines/<int:machine_id>/log")
@_managers
def log_intervention(machine_id: int) -> Any:
    db = _db()
    _machine_or_403(machine_id)
    raw_task = request.form.get("task_id") or ""
    try:
        task_id = int(raw_task) if raw_task else None
        mnt.log_intervention(db, machine_id, task_id, user_id=_user_id(),
                             note=request.form.get("note"),
                             lock=request.form.get("lock") == "1", actor=_actor())
        db.commit()
        flash(_("Intervention recorded."), "success")
    except (ValueError, mnt.MaintenanceError) as exc:
        db.rollback()
        flash(_("Not recorded: %(why)s", why=str(exc)), "error")
    return redirect(url_for("reports.machine", machine_id=machine_id))


@bp.post("/machines/<int:machine_id>/lock")
@_managers
def lock(machine_id: int) -> Any:
    db = _db()
    _machine_or_403(machine_id)
    raw_task = request.form.get("task_id") or ""
    try:
        mnt.lock_until_done(db, machine_id, int(raw_task) if raw_task else None, actor=_actor())
        db.commit()
        flash(_("Machine locked until the intervention is recorded."), "success")
    except (ValueError, mnt.MaintenanceError) as exc:
        db.rollback()
        flash(str(exc), "error")
    return redirect(url_for("reports.machine", machine_id=machine_id))


@bp.get("/maintenance")
@_managers
def maintenance() -> Any:
    db = _db()
    me = auth.me()
    due = mnt.due_maintenance(db)
    machines = {m.id: m for m in db.scalars(sa.select(Machine).where(Machine.id.in_(list(due))))
                if auth.can_manage_machine(me, m)}
    rows = [{"machine": machines[mid].slug, "machine_name": machines[mid].name, "machine_id": mid,
             **t} for mid, tasks in due.items() if mid in machines for t in tasks]
    rows.sort(key=lambda r: r["remaining_h"])
    if request.args.get("format") == "csv":
        return _csv(rep.rows_to_csv(rows, columns=["machine", "name", "state", "interval_h",
                                                   "hours_since", "remaining_h"]), "maintenance-due")
    totals = mnt.active_hours(db)
    all_machines = [m for m in db.scalars(sa.select(Machine).order_by(Machine.slug))
                    if auth.can_manage_machine(me, m)]
    return render_template("reports/maintenance.html", rows=rows, machines=all_machines,
                           totals=totals)


# ---------------------------------------------------------------- funder


@bp.get("/funder")
@_managers
def funder() -> Any:
    site, sites = _site_choice()
    first, last, since, until, site = _period(site)
    try:
        report = rep.funder_report(_db(), since, until, site)
    except rep.ReportError as exc:
        flash(str(exc), "error")
        return redirect(url_for("reports.funder"))
    if request.args.get("format") == "csv":
        return _csv(rep.rows_to_csv(report["rows"], columns=rep.FUNDER_COLUMNS),
                    f"activity-{site or 'all'}-{first}-{last}")
    chart = None
    numeric = [r for r in report["by_kind"] if not isinstance(r["hours"], str)]
    if numeric:
        chart = svg_bar_chart([str(KINDS.get(r["kind"], r["kind"])) for r in numeric],
                              [(_("Session hours"), [r["hours"] for r in numeric], "s1"),
                               (_("Active hours"), [r["active_hours"] for r in numeric], "s2")],
                              title=_("Hours by machine family"))
    return render_template("reports/funder.html", r=report, first=first, last=last, site=site,
                           sites=sites, consortium=_consortium_allowed(), chart=chart,
                           kinds=KINDS)


KINDS = {"laser_cutter": _l("Laser cutters"), "3d_printer": _l("3D printers"),
         "cnc": _l("CNC machines"), "other": _l("Other machines")}


# ---------------------------------------------------------------- wiring


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    nav = app.config.setdefault("NAV_EXTRA", [])
    roles = (ADMIN, MANAGER)
    nav.append(("reports.usage", _l("Reports"), roles))
    nav.append(("reports.maintenance", _l("Maintenance"), roles))
    app.jinja_env.globals["reports_machine_fragment"] = machine_fragment


__all__ = ["bp", "init_app", "machine_fragment", "svg_bar_chart"]
