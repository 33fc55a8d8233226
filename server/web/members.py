"""Members: search, create, edit, deactivate, badges; unknown badges with one-click assignment."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import EmailField, SelectField, StringField
from wtforms.validators import DataRequired, Length, Optional, Regexp

from server import auth, services
from server.app import get_db
from server.errors import Conflict, Invalid, NotFound, ServerError
from server.web import labels, ops
from server.web.blueprint import arg_id, arg_page, bp, id_url

if TYPE_CHECKING:
    from server.models import Member

MANAGERS = (auth.ADMIN, auth.MANAGER)
PER_PAGE = 50
EMAIL_RE = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"  # a light check; the email_validator package is not needed


class MemberForm(FlaskForm):
    name = StringField(_l("Full name"), validators=[DataRequired(), Length(max=200)])
    email = EmailField(_l("Email (optional)"), validators=[Optional(), Length(max=254),
                                 Regexp(EMAIL_RE, message=_l("This is not an email address."))])
    member_no = StringField(_l("Membership number (optional)"), validators=[Optional(), Length(max=64)])
    site = SelectField(_l("Home site"), coerce=str, validators=[Optional()])
    tags = StringField(_l("Tags (optional, separated by commas)"), validators=[Optional(), Length(max=500)])


class BadgeForm(FlaskForm):
    uid = StringField(_l("Badge number (UID)"), validators=[DataRequired(), Length(max=40)])


BADGE_STATUSES = ("active", "lost", "inactive")


def _site_choices(me: auth.Principal) -> list[tuple[str, str]]:
    sites = services.sites_by_name(get_db())
    choices = [("", _("No particular site"))]
    choices += [(str(s.id), s.name) for s in sites if auth.can_manage_site(me, s.id)]
    return choices


def _member_or_404(member_id: int) -> Member:
    return services.get_member(get_db(), member_id)  # NotFound: the 404 page


def _require_manage(member: Member) -> None:
    if not auth.can_edit_member(auth.me(), member):
        abort(403)


def badge_error(e: ServerError) -> str:
    """The volunteer-facing words for a refused badge enrolment."""
    if isinstance(e, Conflict):
        return _("This badge already belongs to another member. Declare it lost there first.")
    if isinstance(e, Invalid):
        return _("A badge number has 8, 14 or 20 hexadecimal digits (0-9, A-F).")
    return error_text(e)


def error_text(e: ServerError) -> str:
    """A service error in the user's language (its English template, translated and filled)."""
    return _(e.template, **e.params) if e.params else _(e.template)


def flash_error(e: ServerError, form: FlaskForm | None = None) -> None:
    """Show a service error; field messages go next to their field when the form has it."""
    fields = getattr(e, "fields", {}) or {}
    placed = False
    if form is not None:
        for name, msg in fields.items():
            f = getattr(form, name, None)
            if f is not None:
                f.errors = [*list(f.errors or []), _(msg)]
                placed = True
    if not placed:
        flash(error_text(e), "error")


@bp.get("/members")
@auth.roles_required()
def members() -> Any:
    """Every member of the consortium; e-mails only of those the login may contact."""
    me = auth.me()
    q = (request.args.get("q") or "").strip()[:200]
    show_inactive = request.args.get("inactive") == "1"
    page = arg_page(request.args)
    pg = services.list_member_rows(get_db(), q=q or None,
                                   active=None if show_inactive else True, page=page,
                                   per_page=PER_PAGE, contact_site_ids=auth.contact_sites(me))
    # each row's link, name and visible e-mail made here in one pass: the template only writes
    # them (a template call per cell cost more than the cells, issue 21)
    member_url = id_url("web.member_detail", "member_id")
    lines = [(member_url(m.id), labels.person(m), m.member_no or "",
              (m.email or "") if auth.can_read_contact(me, site_id=m.site_id) else "", m.active)
             for m in pg.items]
    return render_template("members/list.html", lines=lines, q=q, total=pg.total, page=page,
                           per_page=PER_PAGE, show_inactive=show_inactive,
                           can_create=me.role in MANAGERS)


@bp.route("/members/new", methods=["GET", "POST"])
@auth.roles_required(*MANAGERS)
def member_new() -> Any:
    me = auth.me()
    form = MemberForm()
    form.site.choices = _site_choices(me)
    if form.validate_on_submit():
        try:
            m = ops.create_member(get_db(), me, name=form.name.data or "", email=form.email.data or None,
                                  member_no=form.member_no.data or None,
                                  site_id=int(form.site.data) if form.site.data else None,
                                  tags=ops.split_tags(form.tags.data))
        except ServerError as e:
            get_db().rollback()
            flash_error(e, form)
        else:
            flash(_("Member %(name)s created.", name=m.name), "success")
            return redirect(url_for("web.member_detail", member_id=m.id))
    return render_template("members/form.html", form=form, member=None), 400 if form.errors else 200


@bp.get("/members/<id:member_id>")
@auth.roles_required()
def member_detail(member_id: int) -> Any:
    db = get_db()
    m = _member_or_404(member_id)
    me = auth.me()
    auths = services.member_trainings(db, m.id)
    # sessions on the machines of the login's sites only (contract section 6)
    sessions = services.member_sessions(db, m.id, site_ids=auth.read_sites(me))
    can_manage = auth.can_edit_member(me, m)
    return render_template("members/detail.html", m=m, auths=auths, sessions=sessions,
                           can_manage=can_manage, badge_form=BadgeForm(),
                           show_contact=auth.can_read_contact(me, m),
                           can_revoke={a.id: auth.can_change_authorization(db, me, a) for a in auths},
                           now=ops.now())


@bp.route("/members/<id:member_id>/edit", methods=["GET", "POST"])
@auth.roles_required(*MANAGERS)
def member_edit(member_id: int) -> Any:
    m = _member_or_404(member_id)
    _require_manage(m)
    me = auth.me()
    form = MemberForm(obj=None if request.method == "POST" else m)
    form.site.choices = _site_choices(me)
    if request.method == "GET":
        form.site.data = str(m.site_id) if m.site_id else ""
        form.tags.data = ", ".join(m.tags or [])
    if form.validate_on_submit():
        try:
            ops.update_member(get_db(), me, m, name=form.name.data or "", email=form.email.data or None,
                              member_no=form.member_no.data or None,
                              site_id=int(form.site.data) if form.site.data else None,
                              tags=ops.split_tags(form.tags.data))
        except ServerError as e:
            get_db().rollback()
            flash_error(e, form)
        else:
            flash(_("Changes saved."), "success")
            return redirect(url_for("web.member_detail", member_id=m.id))
    return render_template("members/form.html", form=form, member=m), 400 if form.errors else 200


@bp.post("/members/<id:member_id>/deactivate")
@auth.roles_required(*MANAGERS)
def member_deactivate(member_id: int) -> Any:
    m = _member_or_404(member_id)
    _require_manage(m)
    ops.set_member_active(get_db(), auth.me(), m, False)
    flash(_("%(name)s is deactivated: their badges no longer open any machine.", name=m.name), "success")
    return redirect(url_for("web.member_detail", member_id=m.id))


@bp.post("/members/<id:member_id>/reactivate")
@auth.roles_required(*MANAGERS)
def member_reactivate(member_id: int) -> Any:
    m = _member_or_404(member_id)
    _require_manage(m)
    try:
        ops.set_member_active(get_db(), auth.me(), m, True)
    except ServerError as e:  # an erased member stays erased
        get_db().rollback()
        flash_error(e)
        return redirect(url_for("web.member_detail", member_id=m.id))
    flash(_("%(name)s is active again.", name=m.name), "success")
    return redirect(url_for("web.member_detail", member_id=m.id))


@bp.post("/members/<id:member_id>/badges")
@auth.roles_required(*MANAGERS)
def member_add_badge(member_id: int) -> Any:
    m = _member_or_404(member_id)
    _require_manage(m)
    form = BadgeForm()
    if form.validate_on_submit():
        try:
            b = ops.enrol_badge(get_db(), auth.me(), m, form.uid.data or "")
        except ServerError as e:
            get_db().rollback()
            flash(badge_error(e), "error")
        else:
            flash(_("Badge %(uid)s now belongs to %(name)s.", uid=b.uid, name=m.name), "success")
    else:
        flash(_("Please type the badge number."), "error")
    return redirect(url_for("web.member_detail", member_id=m.id))


@bp.post("/badges/<uid>/status")
@auth.roles_required(*MANAGERS)
def badge_status(uid: str) -> Any:
    db = get_db()
    try:
        b = services.get_badge(db, uid)
    except Invalid:  # not even a UID
        abort(404)
    _require_manage(b.member)
    status = request.form.get("status", "")
    if status not in BADGE_STATUSES:
        abort(400)
    member_id = b.member_id
    try:
        ops.set_badge_status(db, auth.me(), b, status)
    except ServerError as e:  # the badge of an erased member stays off
        db.rollback()
        flash_error(e)
        return redirect(url_for("web.member_detail", member_id=member_id))
    flash(_("Badge %(uid)s updated.", uid=b.uid), "success")
    return redirect(url_for("web.member_detail", member_id=b.member_id))


@bp.get("/badges/unknown")
@auth.roles_required(*MANAGERS)
def unknown_badges() -> Any:
    db = get_db()
    rows = services.pending_unknown_badges(db)
    me = auth.me()
    members = [m for m in services.active_members(db) if auth.can_edit_member(me, m)]
    return render_template("members/unknown.html", rows=rows, members=members)


def _find_member(member_id: int | None) -> Member | None:
    if member_id is None:
        return None
    try:
        return services.get_member(get_db(), member_id)
    except NotFound:
        return None


@bp.post("/badges/unknown/<id:unknown_id>/assign")
@auth.roles_required(*MANAGERS)
def unknown_badge_assign(unknown_id: int) -> Any:
    db = get_db()
    ub = services.get_unknown_badge(db, unknown_id)
    member_id = arg_id(request.form, "member_id")
    m = _find_member(member_id)
    if m is None:
        flash(_("Choose the member this badge belongs to."), "error")
        return redirect(url_for("web.unknown_badges"))
    _require_manage(m)
    try:
        ops.enrol_badge(db, auth.me(), m, ub.uid)
    except ServerError as e:
        db.rollback()
        flash(badge_error(e), "error")
        return redirect(url_for("web.unknown_badges"))
    flash(_("Badge %(uid)s now belongs to %(name)s.", uid=ub.uid, name=m.name), "success")
    return redirect(url_for("web.unknown_badges"))

