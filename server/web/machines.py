"""Machines and machine groups: policy with plain-language help, lock/unlock, remote stop."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import BooleanField, IntegerField, SelectField, SelectMultipleField, StringField
from wtforms.validators import DataRequired, Length, NumberRange, Optional, Regexp

from server import auth, services
from server.app import get_db
from server.errors import Conflict, ServerError
from server.web import ops
from server.web.blueprint import bp
from server.web.members import flash_error
from server.web.notify import BUSY_STATES

if TYPE_CHECKING:
    from server.models import Machine

MANAGERS = (auth.ADMIN, auth.MANAGER)
SLUG = r"^[a-z0-9][a-z0-9-]{0,62}$"

TRI = [("", _l("Node default")), ("true", _l("Yes")), ("false", _l("No"))]


class PolicyForm(FlaskForm):
    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=200)])
    requires_authorization = BooleanField(_l("Only trained members may use it"))
    mode = SelectField(_l("How members badge"), choices=[
        ("", _l("Node default")), ("tap", _l("Tap once to start, tap again to stop")),
        ("present", _l("Leave the badge on the reader while working"))], default="")
    max_session_s = IntegerField(_l("Longest session (seconds)"),
                                 validators=[Optional(), NumberRange(min=60, max=7 * 86400)])
    warn_before_s = IntegerField(_l("Warning before the end (seconds)"),
                                 validators=[Optional(), NumberRange(min=0, max=3600)])
    grace_s = IntegerField(_l("Time to put the badge back (seconds)"),
                           validators=[Optional(), NumberRange(min=0, max=3600)])
    idle_end_s = IntegerField(_l("End the session after the machine is idle for (seconds)"),
                              validators=[Optional(), NumberRange(min=0, max=86400)])
    power_off = SelectField(_l("When the session ends"), choices=[
        ("", _l("Node default")), ("immediate", _l("Cut the power at once")),
        ("when_idle", _l("Keep the power on until the machine has finished"))], default="")
    handover = SelectField(_l("Another trained member may take over a running session"),
                           choices=TRI, default="")
    end_on_revoke = SelectField(_l("Revoking a training stops a running session"), choices=TRI,
                                default="")
    on_stale = SelectField(_l("If the node has not heard from the server for too long"), choices=[
        ("", _l("Node default")), ("deny", _l("Refuse everyone (safest)")),
        ("known_badges", _l("Keep accepting the badges it knows"))], default="")


POLICY_HELP = {
    "mode": _l("Tap suits laser cutters; 'leave the badge' suits machines you must watch."),
    "max_session_s": _l("Empty: no limit. 3600 = one hour."),
    "warn_before_s": _l("The node beeps this long before the limit."),
    "grace_s": _l("With the badge left on the reader: how long it may be lifted without stopping."),
    "idle_end_s": _l("Needs a busy-signal wire on the node. Empty: never."),
    "power_off": _l("3D printers should keep power until the print is done."),
}


class LockForm(FlaskForm):
    reason = StringField(_l("Reason (shown to managers)"), validators=[Optional(), Length(max=500)])


class GroupForm(FlaskForm):
    slug = StringField(_l("Short code (a-z, 0-9, -)"), validators=[DataRequired(), Regexp(SLUG)])
    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=200)])
    machines = SelectMultipleField(_l("Machines covered by this training"), coerce=int)


def _machine_or_404(machine_id: int) -> Machine:
    """The machine (404 if none) if the login reads its site (403: a manager of other sites)."""
    m = services.get_machine(get_db(), machine_id)
    if not auth.can_read_site(auth.me(), m.site_id):
        abort(403)
    return m


@bp.get("/machines")
@auth.roles_required()
def machines() -> Any:
    from server.web.pages import STATE_LABELS, machine_states

    db = get_db()
    rows = services.all_machines(db, site_ids=auth.read_sites(auth.me()))
    states = {s["id"]: s for s in machine_states()}
    groups = sorted(services.list_groups(db), key=lambda g: (g.name, g.id))
    return render_template("machines/list.html", machines=rows, states=states, labels=STATE_LABELS,
                           groups=groups, can_manage=auth.me().role in MANAGERS)


@bp.route("/machines/<id:machine_id>", methods=["GET", "POST"])
@auth.roles_required()
def machine_detail(machine_id: int) -> Any:
    from server.web.pages import STATE_LABELS, machine_states

    db = get_db()
    m = _machine_or_404(machine_id)
    me = auth.me()
    can_manage = auth.can_manage_machine(me, m)
    if request.method == "POST" and not can_manage:
        abort(403)
    form = PolicyForm(obj=None if request.method == "POST" else m)
    if request.method == "GET":
        pol = m.policy or {}
        for key in ("mode", "power_off", "on_stale"):
            getattr(form, key).data = pol.get(key) or ""
        for key in ("max_session_s", "warn_before_s", "grace_s", "idle_end_s"):
            getattr(form, key).data = pol.get(key)
        for key in ("handover", "end_on_revoke"):
            v = pol.get(key)
            getattr(form, key).data = "" if v is None else ("true" if v else "false")
    status = 200
    if request.method == "POST":
        if form.validate_on_submit():
            policy: dict[str, Any] = dict(m.policy or {})
            for key in ("mode", "power_off", "on_stale"):
                val = getattr(form, key).data
                if val:
                    policy[key] = val
                else:
                    policy.pop(key, None)
            for key in ("max_session_s", "warn_before_s", "grace_s", "idle_end_s"):
                val = getattr(form, key).data
                if val is None:
                    policy.pop(key, None)
                else:
                    policy[key] = int(val)
            for key in ("handover", "end_on_revoke"):
                val = getattr(form, key).data
                if val:
                    policy[key] = val == "true"
                else:
                    policy.pop(key, None)
            try:
                ops.update_machine(db, me, m, name=form.name.data or m.name,
                                   requires_authorization=bool(form.requires_authorization.data),
                                   policy=policy)
            except ServerError as e:
                db.rollback()
                flash_error(e, form)
                status = 400
            else:
                flash(_("Machine settings saved; the node receives them now."), "success")
                return redirect(url_for("web.machine_detail", machine_id=m.id))
        else:
            status = 400
    state = next((s for s in machine_states() if s["id"] == m.id), None)
    auths = services.machine_trainings(db, m.id)
    sessions = services.machine_sessions(db, m.id)
    return render_template("machines/detail.html", m=m, form=form, lock_form=LockForm(),
                           state=state, labels=STATE_LABELS, can_manage=can_manage,
                           help=POLICY_HELP, auths=auths, sessions=sessions, now=ops.now(),
                           busy_states=BUSY_STATES), status


@bp.post("/machines/<id:machine_id>/lock")
@auth.roles_required(*MANAGERS)
def machine_lock(machine_id: int) -> Any:
    m = _machine_or_404(machine_id)
    if not auth.can_manage_machine(auth.me(), m):
        abort(403)
    form = LockForm()
    if not form.validate_on_submit():
        abort(400)
    ops.set_lock(get_db(), auth.me(), m, True, form.reason.data or None)
    flash(_("%(name)s is locked: nobody can start it until it is unlocked. A running session "
            "may finish.", name=m.name), "success")
    return redirect(url_for("web.machine_detail", machine_id=m.id))


@bp.post("/machines/<id:machine_id>/unlock")
@auth.roles_required(*MANAGERS)
def machine_unlock(machine_id: int) -> Any:
    m = _machine_or_404(machine_id)
    if not auth.can_manage_machine(auth.me(), m):
        abort(403)
    ops.set_lock(get_db(), auth.me(), m, False, None)
    flash(_("%(name)s is unlocked.", name=m.name), "success")
    return redirect(url_for("web.machine_detail", machine_id=m.id))


@bp.post("/machines/<id:machine_id>/stop")
@auth.roles_required(*MANAGERS)
def machine_stop(machine_id: int) -> Any:
    m = _machine_or_404(machine_id)
    if not auth.can_manage_machine(auth.me(), m):
        abort(403)
    try:
        ops.send_command(get_db(), auth.me(), m, "stop")
    except ServerError as e:
        get_db().rollback()
        flash_error(e)
    else:
        flash(_("Stop sent to %(name)s.", name=m.name), "success")
    return redirect(url_for("web.machine_detail", machine_id=m.id))


@bp.route("/groups/new", methods=["GET", "POST"], defaults={"group_id": None})
@bp.route("/groups/<id:group_id>", methods=["GET", "POST"])
@auth.roles_required(*MANAGERS)
def group_edit(group_id: int | None) -> Any:
    db = get_db()
    me = auth.me()
    group = services.get_group(db, group_id) if group_id is not None else None
    form = GroupForm(obj=None if request.method == "POST" else group)
    all_machines = services.all_machines(db)
    form.machines.choices = [(m.id, m.name) for m in all_machines]
    if request.method == "GET" and group is not None:
        form.machines.data = [m.id for m in group.machines]
    status = 200
    if request.method == "POST":
        if form.validate_on_submit():
            chosen = [m for m in all_machines if m.id in set(form.machines.data or [])]
            before = set() if group is None else {m.id for m in group.machines}
            changed = [m for m in all_machines if (m.id in before) != (m in chosen)]
            if not all(auth.can_manage_machine(me, m) for m in changed):
                abort(403)
            try:
                group = ops.save_group(db, me, group, slug=form.slug.data or "",
                                       name=form.name.data or "", machines=chosen)
            except ServerError as e:
                db.rollback()
                if isinstance(e, Conflict) and "slug" in e.fields:
                    form.slug.errors = [_("This short code is already used by another group.")]
                else:
                    flash_error(e, form)
                status = 400
            else:
                flash(_("Group saved."), "success")
                return redirect(url_for("web.machines"))
        else:
            status = 400
    return render_template("machines/group.html", form=form, group=group), status
