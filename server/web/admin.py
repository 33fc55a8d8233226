"""Admin pages: web logins (role, sites of a manager, trainer's member), sites, new machines."""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    EmailField,
    PasswordField,
    SelectField,
    SelectMultipleField,
    StringField,
)
from wtforms.validators import DataRequired, Length, Optional, Regexp

from server import auth, services
from server.app import get_db
from server.errors import Conflict, ServerError
from server.web.blueprint import bp
from server.web.members import EMAIL_RE, flash_error

SLUG = r"^[a-z0-9][a-z0-9-]{0,62}$"
ROLE_CHOICES = [("manager", _l("Manager: members, badges, machines and trainings of their sites")),
                ("trainer", _l("Trainer: records trainings on the machines they teach")),
                ("admin", _l("Admin: everything"))]


class UserForm(FlaskForm):
    email = EmailField(_l("Email"), validators=[DataRequired(), Length(max=254),
                                                Regexp(EMAIL_RE, message=_l("This is not an email address."))])
    password = PasswordField(_l("Password (at least 8 characters)"),
                             validators=[Optional(), Length(min=8, max=1000)])
    role = SelectField(_l("Role"), choices=ROLE_CHOICES, default="manager")
    sites = SelectMultipleField(_l("Sites this manager looks after"), coerce=int)
    member = SelectField(_l("Member linked to this login (trainers)"), coerce=str, default="")
    active = BooleanField(_l("This login works"), default=True)


class SiteForm(FlaskForm):
    slug = StringField(_l("Short code (a-z, 0-9, -)"), validators=[DataRequired(), Regexp(SLUG)])
    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=200)])
    timezone = StringField(_l("Time zone"), default="Europe/Paris",
                           validators=[DataRequired(), Length(max=64)])


class MachineForm(FlaskForm):
    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=200)])
    slug = StringField(_l("Short code (a-z, 0-9, -)"), validators=[DataRequired(), Regexp(SLUG)])
    site = SelectField(_l("Site"), coerce=str)
    kind = SelectField(_l("Kind of machine"), choices=[
        ("laser_cutter", _l("Laser cutter")), ("3d_printer", _l("3D printer")),
        ("cnc", _l("CNC machine")), ("other", _l("Other"))], default="other")
    node = StringField(_l("Node name (optional)"), validators=[Optional(), Regexp(SLUG)])
    requires_authorization = BooleanField(_l("Only trained members may use it"), default=True)


def _fill_user_choices(form: UserForm) -> None:
    db = get_db()
    form.sites.choices = [(s.id, s.name) for s in services.sites_by_name(db)]
    members = services.active_members(db)
    form.member.choices = [("", _("None"))] + [(str(m.id), m.name) for m in members]


@bp.get("/users")
@auth.roles_required(auth.ADMIN)
def users() -> Any:
    rows = services.list_users(get_db())
    return render_template("admin/users.html", rows=rows)


@bp.route("/users/new", methods=["GET", "POST"], defaults={"user_id": None})
@bp.route("/users/<id:user_id>", methods=["GET", "POST"])
@auth.roles_required(auth.ADMIN)
def user_edit(user_id: int | None) -> Any:
    db = get_db()
    user = services.get_user(db, user_id) if user_id is not None else None
    form = UserForm(obj=None if request.method == "POST" else user)
    _fill_user_choices(form)
    if request.method == "GET" and user is not None:
        form.role.data = user.role.value
        form.sites.data = [s.id for s in user.sites]
        form.member.data = str(user.member_id) if user.member_id else ""
    status = 200
    if request.method == "POST":
        if form.validate_on_submit():
            me = auth.me()
            member_id = int(form.member.data) if form.member.data else None
            try:
                if user is None:
                    if not form.password.data:
                        form.password.errors = [_("A new login needs a password.")]
                        raise _FormError
                    slugs = [s.slug for s in services.sites_by_name(db)
                             if s.id in set(form.sites.data or [])]
                    user = services.create_user(db, form.email.data or "", form.password.data,
                                                form.role.data or "manager", member_id,
                                                actor=me.actor, sites=slugs)
                else:
                    if user.id == me.id and (form.role.data != "admin" or not form.active.data):
                        form.role.errors = [_("You cannot remove your own admin access.")]
                        raise _FormError
                    user = services.update_user(
                        db, user.id, email=form.email.data or "", role=form.role.data or "",
                        member_id=member_id, active=bool(form.active.data),
                        site_ids=list(form.sites.data or []),
                        password=form.password.data or None, actor=me.actor,
                        keep_login=session.get(auth.LOGIN_KEY) if user.id == me.id else None)
                db.commit()
            except _FormError:
                db.rollback()
                status = 400
            except Conflict as e:
                db.rollback()
                if "email" in e.fields:
                    form.email.errors = [_("Another login already uses this email.")]
                else:
                    flash_error(e, form)
                status = 400
            except ServerError as e:
                db.rollback()
                flash_error(e, form)
                status = 400
            else:
                flash(_("Login %(email)s saved.", email=user.email), "success")
                return redirect(url_for("web.users"))
        else:
            status = 400
    return render_template("admin/user.html", form=form, user=user), status


class _FormError(Exception):
    """A field error was set; re-display the form."""


@bp.route("/sites", methods=["GET", "POST"])
@auth.roles_required(auth.ADMIN)
def sites() -> Any:
    db = get_db()
    form = SiteForm()
    status = 200
    if request.method == "POST":
        if form.validate_on_submit():
            try:
                site = services.create_site(db, form.slug.data or "", form.name.data or "",
                                            form.timezone.data, actor=auth.me().actor)
                db.commit()
            except Conflict:
                db.rollback()
                form.slug.errors = [_("This short code is already used by another site.")]
                status = 400
            except ServerError as e:
                db.rollback()
                if "timezone" in e.fields:
                    form.timezone.errors = [_("Unknown time zone (e.g. Europe/Paris).")]
                else:
                    flash_error(e, form)
                status = 400
            else:
                flash(_("Site %(name)s created.", name=site.name), "success")
                return redirect(url_for("web.sites"))
        else:
            status = 400
    rows = services.sites_by_name(db)
    return render_template("admin/sites.html", rows=rows, form=form), status


@bp.route("/machines/new", methods=["GET", "POST"])
@auth.roles_required(auth.ADMIN, auth.MANAGER)
def machine_new() -> Any:
    db = get_db()
    me = auth.me()
    form = MachineForm()
    form.site.choices = [(s.slug, s.name) for s in services.sites_by_name(db)
                         if auth.can_manage_site(me, s.id)]
    status = 200
    if request.method == "POST":
        if form.validate_on_submit():
            try:
                m = services.create_machine(
                    db, form.slug.data or "", form.name.data or "", form.site.data or "",
                    kind=form.kind.data or "other", node=form.node.data or None,
                    requires_authorization=bool(form.requires_authorization.data),
                    actor=me.actor)
                db.commit()
            except Conflict as e:
                db.rollback()
                if "node" in e.fields:
                    form.node.errors = [_("This node already drives another machine or "
                                          "belongs to another site.")]
                else:
                    form.slug.errors = [_("This short code is already used by another machine.")]
                status = 400
            except ServerError as e:
                db.rollback()
                flash_error(e, form)
                status = 400
            else:
                flash(_("Machine %(name)s added.", name=m.name), "success")
                return redirect(url_for("web.machine_detail", machine_id=m.id))
        else:
            status = 400
    return render_template("admin/machine_new.html", form=form), status
