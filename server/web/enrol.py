"""Enrolment in one step: "new member with this badge" from an unknown badge, and "tap the badge
on any machine now" from a member page (rules in `server.services.enrolment`)."""

from __future__ import annotations

from datetime import UTC, datetime, time
from typing import Any

from flask import abort, flash, jsonify, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from wtforms import DateField, SelectField
from wtforms.validators import Optional

from server import auth
from server.app import get_db
from server.errors import ServerError
from server.services import enrolment, get_member
from server.web.blueprint import bp
from server.web.members import MANAGERS, MemberForm, _site_choices, flash_error
from server.web.trainings import _targets


class NewMemberForm(MemberForm):
    target = SelectField(_l("Training to record (optional)"), validators=[Optional()])
    role = SelectField(_l("What they may do"), choices=[
        ("user", _l("Use the machine")), ("trainer", _l("Use it and train others"))])
    expires_at = DateField(_l("Valid until (optional)"), validators=[Optional()])


def _unknown_or_404(unknown_id: int) -> Any:
    from server.services.members import open_unknown_badge

    ub = open_unknown_badge(get_db(), unknown_id)
    if ub is None:
        abort(404)
    return ub


@bp.route("/badges/unknown/<id:unknown_id>/new-member", methods=["GET", "POST"])
@auth.roles_required(*MANAGERS)
def unknown_badge_new_member(unknown_id: int) -> Any:
    db = get_db()
    me = auth.me()
    ub = _unknown_or_404(unknown_id)
    form = NewMemberForm()
    form.site.choices = _site_choices(me)
    form.target.choices = [("", _("No training now"))] + _targets(me)[1:]
    if form.validate_on_submit():
        kind, _sep, raw = (form.target.data or "").partition(":")
        target = int(raw) if raw.isdigit() else None
        expires = (datetime.combine(form.expires_at.data, time(23, 59, 59), tzinfo=UTC)
                   if form.expires_at.data else None)
        site = None
        if form.site.data:
            from server.services import get_site

            site = get_site(db, int(form.site.data)).slug
        try:
            m = enrolment.enrol_new_member(
                db, ub.uid, form.name.data or "", actor=me.actor, email=form.email.data or None,
                member_no=form.member_no.data or None, site=site,
                tags=[t.strip() for t in (form.tags.data or "").replace(";", ",").split(",")
                      if t.strip()],
                machine_id=target if kind == "machine" else None,
                group_id=target if kind == "group" else None, role=form.role.data or "user",
                expires_at=expires, granted_by_user_id=me.id if me.kind == "user" else None)
            db.commit()
        except ServerError as e:
            db.rollback()
            flash_error(e, form)
        else:
            flash(_("%(name)s is a member now, with badge %(uid)s.", name=m.name, uid=ub.uid),
                  "success")
            return redirect(url_for("web.member_detail", member_id=m.id))
    return render_template("members/enrol.html", form=form, ub=ub), 400 if form.errors else 200


def _managed_member(member_id: int) -> Any:
    db = get_db()
    try:
        m = get_member(db, member_id)
    except ServerError:
        abort(404)
    if not auth.can_manage_member(auth.me(), m):
        abort(403)
    return m


@bp.post("/members/<id:member_id>/badges/tap")
@auth.roles_required(*MANAGERS)
def member_badge_tap(member_id: int) -> Any:
    db = get_db()
    me = auth.me()
    m = _managed_member(member_id)
    try:
        pending = enrolment.start_pending(db, m.id, actor=me.actor,
                                          site_ids=auth.managed_site_ids(me))
        db.commit()
    except ServerError as e:
        db.rollback()
        flash_error(e)
    else:
        flash(_("Tap the badge on any machine now (until %(time)s).",
                time=pending.expires_at.strftime("%H:%M UTC")), "info")
    return redirect(url_for("web.member_detail", member_id=m.id))


@bp.get("/members/<id:member_id>/badges/tap.json")
@auth.roles_required(*MANAGERS)
def member_badge_tap_state(member_id: int) -> Any:
    """What the member page polls while it waits: open, done (with the UID) or over."""
    m = _managed_member(member_id)
    last = enrolment.last_pending(get_db(), m.id)
    if last is None:
        return jsonify({"state": "none"})
    if last.badge_uid:
        return jsonify({"state": "done", "uid": last.badge_uid})
    if last.cancelled or last.expires_at <= datetime.now(UTC):
        return jsonify({"state": "expired"})
    return jsonify({"state": "waiting", "until": last.expires_at.isoformat()})
