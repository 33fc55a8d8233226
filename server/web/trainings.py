"""Trainings (authorizations): list, grant with optional expiry, bulk grant, revoke with reason."""

from __future__ import annotations

from datetime import UTC, datetime, time
from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import DateField, SelectField, SelectMultipleField, StringField
from wtforms.validators import DataRequired, Length, Optional

from server import auth, services
from server.app import get_db
from server.errors import ServerError
from server.web import ops
from server.web.blueprint import arg_id, arg_page, bp
from server.web.members import flash_error

PER_PAGE = 50


class GrantForm(FlaskForm):
    members = SelectMultipleField(_l("Members trained (hold Ctrl or ⌘ to pick several)"), coerce=int,
                                  validators=[DataRequired()])
    target = SelectField(_l("Machine or group of machines"), validators=[DataRequired()])
    role = SelectField(_l("What they may do"), choices=[
        ("user", _l("Use the machine")), ("trainer", _l("Use it and train others"))])
    expires_at = DateField(_l("Valid until (optional)"), validators=[Optional()])


class RevokeForm(FlaskForm):
    reason = StringField(_l("Reason"), validators=[DataRequired(), Length(max=500)])


def _targets(me: auth.Principal) -> list[tuple[str, str]]:
    db = get_db()
    machines = services.all_machines(db, active_only=True)
    groups = services.groups_with_machines(db)
    out = [("", _("Choose…"))]
    out += [(f"machine:{m.id}", m.name) for m in machines if auth.can_grant_machine(db, me, m)]
    out += [(f"group:{g.id}", _("Group: %(name)s", name=g.name)) for g in groups
            if auth.can_grant_group(db, me, list(g.machines))]
    return out


@bp.get("/authorizations")
@auth.roles_required()
def authorizations() -> Any:
    db = get_db()
    me = auth.me()
    member_id = arg_id(request.args, "member_id")
    machine_id = arg_id(request.args, "machine_id")
    show_all = request.args.get("all") == "1"
    page = arg_page(request.args)
    pg = services.list_trainings(db, member_id=member_id, machine_id=machine_id,
                                 current_only=not show_all, page=page, per_page=PER_PAGE)
    rows, total = pg.items, pg.total
    machines = services.all_machines(db)
    return render_template("trainings/list.html", rows=rows, total=total, page=page,
                           per_page=PER_PAGE, machines=machines, machine_id=machine_id,
                           member_id=member_id, show_all=show_all, now=ops.now(),
                           can_change={a.id: auth.can_change_authorization(db, me, a) for a in rows})


@bp.route("/authorizations/new", methods=["GET", "POST"])
@auth.roles_required()
def authorization_new() -> Any:
    db = get_db()
    me = auth.me()
    form = GrantForm()
    form.target.choices = _targets(me)
    if me.role == auth.TRAINER:
        form.role.choices = [("user", _("Use the machine"))]
    members = services.active_members(db)
    form.members.choices = [(m.id, f"{m.name}" + (f" ({m.member_no})" if m.member_no else ""))
                            for m in members]
    if request.method == "GET":
        pre = [i for i in request.args.getlist("member_id", type=int) if 1 <= i < 2**31]
        if pre:
            form.members.data = pre
        if arg_id(request.args, "machine_id"):
            form.target.data = f"machine:{request.args.get('machine_id', type=int)}"
    status = 200
    if request.method == "POST":
        if form.validate_on_submit():
            kind, _sep, raw_id = (form.target.data or "").partition(":")
            target_id = int(raw_id)
            expires = (datetime.combine(form.expires_at.data, time(23, 59, 59), tzinfo=UTC)
                       if form.expires_at.data else None)
            if expires is not None and expires < ops.now():
                form.expires_at.errors = [_("This date is in the past.")]
                status = 400
            else:
                granted, already = 0, []
                for mid in form.members.data or []:
                    try:
                        ops.grant(db, me, member_id=mid,
                                  machine_id=target_id if kind == "machine" else None,
                                  group_id=target_id if kind == "group" else None,
                                  role=form.role.data or "user", expires_at=expires)
                        granted += 1
                    except ServerError as e:
                        db.rollback()
                        if e.code == "conflict":
                            already.append(services.member_names(db, [mid]).get(
                                mid, (str(mid), None))[0])
                        else:
                            flash_error(e)
                if granted:
                    flash(_("Training recorded for %(n)d member(s); their badges work now.",
                            n=granted), "success")
                if already:
                    flash(_("Already trained: %(names)s.", names=", ".join(already)), "error")
                return redirect(url_for("web.authorizations"))
        else:
            status = 400
    return render_template("trainings/grant.html", form=form), status


@bp.route("/authorizations/<id:auth_id>/revoke", methods=["GET", "POST"])
@auth.roles_required()
def authorization_revoke(auth_id: int) -> Any:
    db = get_db()
    a = services.get_authorization(db, auth_id)
    if not auth.can_change_authorization(db, auth.me(), a):
        abort(403)
    form = RevokeForm()
    status = 200
    if request.method == "POST":
        if a.revoked_at is not None:
            flash(_("This training was already revoked."), "error")
            return redirect(url_for("web.member_detail", member_id=a.member_id))
        if form.validate_on_submit():
            ops.revoke(db, auth.me(), a, form.reason.data or "")
            flash(_("Training revoked; the machine refuses this member from now on."), "success")
            return redirect(url_for("web.member_detail", member_id=a.member_id))
        status = 400
    return render_template("trainings/revoke.html", form=form, a=a), status
