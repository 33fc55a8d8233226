"""Report pages: usage over time (server-rendered SVG), denied attempts, member statement,
funder report. Managers and admins only; every table has CSV (through `server.reports.csv`).

Scope: an admin reports on any site or on the whole consortium (no site, the default); a
manager only on their own sites (`server.auth.can_manage_site`, the rule of the other pages):
the site picker lists those, the first is the default, and asking for another site or for the
consortium is refused with 403 — as the other pages refuse another site's members and machines
(they do not silently fall back). A manager's member statements are limited the same way
(`can_manage_member`). Trainers have no report page. Maintenance pages: `server.web.maintenance`.

No JavaScript library and no CDN: charts are SVG (`server.reports.charts`), tables sort by links.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

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

from server import auth, services
from server import reports as rep
from server.auth import ADMIN, MANAGER, roles_required
from server.reports.charts import svg_bar_chart
from server.web import labels
from server.web.members import error_text

if TYPE_CHECKING:
    from server.models import Machine

log = logging.getLogger(__name__)

bp = Blueprint("reports", __name__, url_prefix="/reports")

managers = roles_required(ADMIN, MANAGER)


@bp.after_request
def keep_rollup_refresh(response: Any) -> Any:
    """A report brings the roll-ups up to date first (`server.reports.rollups.refresh`): commit that
    work on a successful page so the next report does not redo it."""
    db = g.get("fabpass_db")
    if db is not None and request.method == "GET" and response.status_code < 400:
        db.commit()
    return response


def page_db() -> Any:
    from server.app import get_db

    return get_db()


def user_id() -> int | None:
    from flask_login import current_user

    if getattr(current_user, "kind", "user") != "user":
        return None
    uid = getattr(current_user, "id", None)
    try:
        return int(uid) if uid is not None else None
    except (TypeError, ValueError):
        return None


def actor() -> str:
    from flask_login import current_user

    return str(getattr(current_user, "actor", None) or f"user:{user_id()}")


# ---------------------------------------------------------------- period picker


def _tz(site: str | None) -> ZoneInfo:
    name = current_app.config.get("TIMEZONE") or "UTC"
    if site:
        tz = services.site_timezone(page_db(), site)
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
    rows = [(s.id, s.slug, s.name) for s in services.sites_by_name(page_db())]
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


def machine_or_403(machine_id: int) -> Machine:
    """The machine (404 if none), if the login manages its site (403 otherwise)."""
    m = services.get_machine(page_db(), machine_id)  # NotFound: the 404 page
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


def csv_response(body: str, name: str) -> Response:
    return Response(body, mimetype="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{name}.csv"'})


LABELLED_VALUES = {"reason": "deny_reason", "kind": "kind", "end_reason": "end_reason"}  # code columns a person reads


def web_csv(rows: Sequence[dict[str, Any]], name: str, group_by: str | None = None,
            columns: Sequence[str] | None = None, footer: Sequence[Any] | None = None) -> Response:
    """A web export in the page's spreadsheet format: French (`;`, BOM, decimal comma, French
    headings and labels) in a French UI, the raw machine format with `raw=1` or in English."""
    from flask_babel import get_locale

    from server.web import labels

    raw = request.args.get("raw") == "1" or str(get_locale() or "en") != "fr"
    if raw:
        return csv_response(rep.rows_to_csv(rows, group_by, columns, footer=footer), name)
    cols = list(columns) if columns is not None else None
    if cols is None:
        dims = [group_by] if group_by else []
        extra = [k for r in rows[:1] for k in r if k not in dims and k not in rep.METRICS]
        cols = [*dims, *rep.METRICS, *extra]
    shown = [{k: (labels.label(LABELLED_VALUES[k], v) if k in LABELLED_VALUES and v else v)
              for k, v in r.items()} for r in rows]
    return csv_response(rep.rows_to_csv(shown, columns=cols, fmt=rep.FRENCH, footer=footer,
                                        headers=labels.column_headers(cols)), name)


# ---------------------------------------------------------------- usage

GROUPS = [("month", _l("Month")), ("week", _l("Week")), ("day", _l("Day")),
          ("machine", _l("Machine")), ("machine_group", _l("Machine group")),
          ("kind", _l("Machine family")), ("member", _l("Member")),
          ("member_tag", _l("Member category")), ("site", _l("Site"))]


@bp.get("/")
@managers
def usage() -> Any:
    site, sites = _site_choice()
    first, last, since, until, site = _period(site)
    group = request.args.get("group_by", "month")
    if group not in dict(GROUPS):
        group = "month"
    db = page_db()
    try:
        rows = rep.usage_report(db, group, since, until, site)
        if group in ("day", "month", "member"):
            visits = {r[group]: r["visits"]
                      for r in rep.visits_report(db, group, since, until, site)}
            for r in rows:
                r["visits"] = visits.get(r[group], 0)
    except rep.ReportError as exc:
        db.rollback()
        flash(error_text(exc), "error")
        rows = []
    openable: set[int] = set()  # members whose statement the login may open
    if group == "member":
        me = auth.me()
        found = services.member_names(db, {r["member"] for r in rows if r["member"] is not None})
        names = {mid: name for mid, (name, _sid) in found.items()}
        openable = {mid for mid, (_name, sid) in found.items() if auth.can_manage_site(me, sid)}
        for r in rows:
            r["name"] = names.get(r["member"])
    elif group == "site":
        site_names = _site_names()
        for r in rows:
            r["name"] = site_names.get(r["site"])
    if request.args.get("format") == "csv":
        return web_csv(rows, f"usage-{group}-{first}-{last}", group_by=group)
    chart = None
    if rows:
        chart_rows = rows if group in rep.TIME_DIMENSIONS else sorted(
            rows, key=lambda r: -r["hours"])[:30]
        chart = svg_bar_chart(
            [str(r.get("name") or (labels.label("kind", r[group]) if group == "kind" else r[group]))
             for r in chart_rows],
            [(_("Session hours"), [r["hours"] for r in chart_rows], "s1"),
             (_("Active hours"), [r["active_hours"] for r in chart_rows], "s2")],
            title=_("Hours by %(group)s", group=str(dict(GROUPS)[group]).lower()))
    rows, sort, direction = _sorted(rows, [group, "sessions", "hours", "active_hours", "members",
                                           "kwh", "visits"])
    open_count = _open_sessions(site)
    return render_template("reports/usage.html", rows=rows, chart=chart, group=group,
                           groups=GROUPS, first=first, last=last, site=site, sites=sites,
                           consortium=_consortium_allowed(), sort=sort, direction=direction,
                           open_count=open_count, openable=openable,
                           site_name=_site_title(site))


def _site_names() -> dict[str, str]:
    """Site slug -> name: a person reads the name (rows grouped by site, report titles)."""
    return {s.slug: s.name for s in services.sites_by_name(page_db())}


def _site_title(site: str | None) -> str:
    """What a report's title says it covers: the site's name, or every site."""
    return _site_names().get(site, site) if site else _("all sites")


def _open_sessions(site: str | None) -> int:
    return services.open_session_count(page_db(), site)


DENIED_GROUPS = [("reason", _l("Reason")), ("member", _l("Member")), ("machine", _l("Machine")),
                 ("site", _l("Site")),
                 ("day", _l("Day")), ("week", _l("Week")), ("month", _l("Month"))]


@bp.get("/denied")
@managers
def denied() -> Any:
    site, sites = _site_choice()
    first, last, since, until, site = _period(site)
    group = request.args.get("group_by", "reason")
    if group not in dict(DENIED_GROUPS):
        group = "reason"
    try:
        rows = rep.denied_report(page_db(), group, since, until, site)
    except rep.ReportError as exc:
        flash(error_text(exc), "error")
        rows = []
    if request.args.get("format") == "csv":
        return web_csv(rows, f"denied-{first}-{last}", columns=[group, "denied"])
    rows, sort, direction = _sorted(rows, [group, "denied"])
    return render_template("reports/denied.html", rows=rows, group=group, groups=DENIED_GROUPS,
                           names=_member_names(rows) if group == "member" else {},
                           site_names=_site_names() if group == "site" else {},
                           site_name=_site_title(site),
                           first=first, last=last, site=site, sites=sites,
                           consortium=_consortium_allowed(), sort=sort, direction=direction)


def _member_names(rows: list[dict[str, Any]]) -> dict[int, str]:
    """Member names for the rows grouped by member (names are readable across sites)."""
    ids = sorted({r["member"] for r in rows if r.get("member") is not None})
    if not ids:
        return {}
    return {i: name for i, (name, _site) in services.member_names(page_db(), ids).items()}


@bp.get("/members/<int:member_id>/statement")
@managers
def statement(member_id: int) -> Any:
    db = page_db()
    member = services.get_member(db, member_id)  # NotFound: the 404 page
    if not auth.can_manage_member(auth.me(), member):
        abort(403)
    # no site picker: `site` only chooses the zone of the dates (the server's by default)
    first, last, since, until, site = _period(request.args.get("site") or None, default_days=31)
    basis = "active_hours" if request.args.get("basis") == "active_hours" else "hours"
    st = rep.member_statement(db, member_id, since, until, basis)
    if request.args.get("format") == "csv":
        cols = ["machine", "name", "sessions", "hours", "active_hours", "kwh", "rate", "amount"]
        return web_csv(st["rows"], f"statement-{member_id}-{first}-{last}", columns=cols,
                       footer=[_("total"), "", "", "", "", "", "", st["total"]])
    return render_template("reports/statement.html", member=member, st=st, first=first, last=last,
                           basis=basis, site=site, sites=[])


# ---------------------------------------------------------------- funder


@bp.get("/funder")
@managers
def funder() -> Any:
    site, sites = _site_choice()
    first, last, since, until, site = _period(site)
    try:
        report = rep.funder_report(page_db(), since, until, site)
    except rep.ReportError as exc:
        flash(error_text(exc), "error")
        return redirect(url_for("reports.funder"))
    if request.args.get("format") == "csv":
        return web_csv(report["rows"], f"activity-{site or 'all'}-{first}-{last}",
                       columns=list(rep.FUNDER_COLUMNS))
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
    nav.append(("reports.usage", _l("Reports"), (ADMIN, MANAGER)))


__all__ = ["actor", "bp", "keep_rollup_refresh", "csv_response", "web_csv", "init_app", "machine_or_403", "managers", "page_db",
           "user_id"]
