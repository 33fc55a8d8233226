"""Maintenance pages: a machine's hours and interventions, its tasks, the due list.

Managers and admins, on the machines of their sites (`can_manage_machine`); URLs under
/reports/ as before. The rules (when a task is due, locking until done) are in
`server.services.maintenance`.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import (
    Blueprint,
    Flask,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from markupsafe import Markup

from server import auth, services
from server.auth import ADMIN, MANAGER
from server.errors import N_
from server.services import maintenance as mnt
from server.web.members import error_text
from server.web.reports import (
    actor,
    keep_rollup_refresh,
    machine_or_403,
    managers,
    page_db,
    user_id,
    web_csv,
)

log = logging.getLogger(__name__)

bp = Blueprint("maintenance", __name__, url_prefix="/reports")
bp.after_request(keep_rollup_refresh)


def machine_fragment(machine_id: int) -> Markup:
    """HTML for a machine page: total active hours, hours since maintenance, due tasks."""
    try:
        status = mnt.maintenance_status(page_db(), machine_id)
    except mnt.MaintenanceError:
        return Markup("")
    from flask_login import current_user

    m = services.get_machine(page_db(), machine_id)  # maintenance_status found it
    can_open = (getattr(current_user, "is_authenticated", False)
                and auth.can_manage_machine(auth.me(), m))  # else the link would be a 403
    return Markup(render_template("reports/_machine_fragment.html", status=status,
                                  machine_id=machine_id, can_open=can_open))


@bp.get("/machines/<int:machine_id>")
@managers
def machine(machine_id: int) -> Any:
    db = page_db()
    m = machine_or_403(machine_id)
    status = mnt.maintenance_status(db, machine_id)
    hist = mnt.history(db, machine_id, limit=200)
    if request.args.get("format") == "csv":
        rows = [{"done_at": h.done_at.isoformat(), "task": h.task.name if h.task else "",
                 "active_hours_at": h.active_hours_at, "done_by_user_id": h.done_by_user_id,
                 "note": h.note} for h in hist]
        return web_csv(rows, f"maintenance-{m.slug}",
                       columns=["done_at", "task", "active_hours_at", "done_by_user_id", "note"])
    return render_template("reports/machine.html", m=m, status=status, history=hist)


def _task_arg() -> int | None:
    """The form's task id (none: the machine as a whole); not a number: an unknown task."""
    raw = request.form.get("task_id") or ""
    if not raw:
        return None
    if not raw.isdigit() or len(raw) > 9:
        raise mnt.MaintenanceError(N_("no task %(task)s on this machine"), {"task": raw[:20]})
    return int(raw)


@bp.post("/machines/<int:machine_id>/tasks")
@managers
def add_task(machine_id: int) -> Any:
    db = page_db()
    machine_or_403(machine_id)
    try:
        mnt.create_task(db, machine_id, request.form.get("name", ""),
                        request.form.get("interval", ""), actor=actor())  # type: ignore[arg-type]
        db.commit()
        flash(_("Task added."), "success")
    except mnt.MaintenanceError as exc:
        db.rollback()
        flash(_("Task not added: %(why)s", why=error_text(exc)), "error")
    return redirect(url_for("maintenance.machine", machine_id=machine_id))


@bp.post("/machines/<int:machine_id>/tasks/<int:task_id>/retire")
@managers
def retire_task(machine_id: int, task_id: int) -> Any:
    db = page_db()
    machine_or_403(machine_id)
    mnt.retire_task(db, machine_id, task_id, actor=actor())  # NotFound: the 404 page
    db.commit()
    flash(_("Task removed (its history is kept)."), "success")
    return redirect(url_for("maintenance.machine", machine_id=machine_id))


@bp.post("/machines/<int:machine_id>/log")
@managers
def log_intervention(machine_id: int) -> Any:
    db = page_db()
    machine_or_403(machine_id)
    try:
        task_id = _task_arg()
        mnt.log_intervention(db, machine_id, task_id, user_id=user_id(),
                             note=request.form.get("note"),
                             lock=request.form.get("lock") == "1", actor=actor())
        db.commit()
        flash(_("Intervention recorded."), "success")
    except mnt.MaintenanceError as exc:
        db.rollback()
        flash(_("Not recorded: %(why)s", why=error_text(exc)), "error")
    return redirect(url_for("maintenance.machine", machine_id=machine_id))


@bp.post("/machines/<int:machine_id>/lock")
@managers
def lock(machine_id: int) -> Any:
    db = page_db()
    machine_or_403(machine_id)
    try:
        mnt.lock_until_done(db, machine_id, _task_arg(), actor=actor())
        db.commit()
        flash(_("Machine locked until the intervention is recorded."), "success")
    except mnt.MaintenanceError as exc:
        db.rollback()
        flash(error_text(exc), "error")
    return redirect(url_for("maintenance.machine", machine_id=machine_id))


@bp.get("/maintenance")
@managers
def maintenance() -> Any:
    db = page_db()
    me = auth.me()
    due = mnt.due_maintenance(db)
    machines = {m.id: m for m in services.machines_by_ids(db, due)
                if auth.can_manage_machine(me, m)}
    rows = [{"machine": machines[mid].slug, "machine_name": machines[mid].name, "machine_id": mid,
             **t} for mid, tasks in due.items() if mid in machines for t in tasks]
    rows.sort(key=lambda r: r["remaining_h"])
    if request.args.get("format") == "csv":
        return web_csv(rows, "maintenance-due", columns=["machine", "name", "state", "interval_h",
                                                         "hours_since", "remaining_h"])
    totals = mnt.active_hours(db)
    all_machines = sorted((m for m in services.all_machines(db) if auth.can_manage_machine(me, m)),
                          key=lambda m: m.slug)
    return render_template("reports/maintenance.html", rows=rows, machines=all_machines,
                           totals=totals)


# ---------------------------------------------------------------- wiring


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    nav = app.config.setdefault("NAV_EXTRA", [])
    nav.append(("maintenance.maintenance", _l("Maintenance"), (ADMIN, MANAGER)))
    app.jinja_env.globals["reports_machine_fragment"] = machine_fragment


__all__ = ["bp", "init_app", "machine_fragment"]
