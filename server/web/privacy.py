"""GDPR requests from the web UI (admins only): a member's export (JSON download and a readable
summary) and erasure with a typed confirmation. The rules are the privacy service's
(`server.services.privacy`), the same the `fabpass member export|erase` commands use."""

from __future__ import annotations

from typing import Any

from flask import Response, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _

from server import auth
from server.app import get_db
from server.errors import ServerError
from server.services import audit, get_member, privacy
from server.web.blueprint import bp
from server.web.members import error_text

# the export's sections, as the summary page names them
SECTIONS = ("badges", "authorizations", "sessions", "refusals", "events", "training_signoffs",
            "web_users", "audit_log", "dead_letters", "node_statuses")


def _admin_member(member_id: int) -> Any:
    try:
        m = get_member(get_db(), member_id)
    except ServerError:
        abort(404)
    if not auth.can_manage_member(auth.me(), m):
        abort(403)
    return m


def _confirmed(member: Any, typed: str) -> bool:
    """The typed confirmation: the member's full name or number, case and spaces aside."""
    typed = " ".join(typed.split()).casefold()
    names = {" ".join((member.name or "").split()).casefold(), (member.member_no or "").casefold()}
    return bool(typed) and typed in names - {""}


@bp.get("/members/<id:member_id>/privacy")
@auth.roles_required(auth.ADMIN)
def member_privacy(member_id: int) -> Any:
    db = get_db()
    m = _admin_member(member_id)
    data = privacy.export_member(db, m.id)
    counts = {k: len(data.get(k) or []) for k in SECTIONS}
    return render_template("members/privacy.html", m=m, data=data, counts=counts,
                           busy=privacy.open_session_machines(db, m.id))


@bp.post("/members/<id:member_id>/privacy/export.json")
@auth.roles_required(auth.ADMIN)
def member_privacy_export(member_id: int) -> Any:
    """A POST (with CSRF), not a link: every export is written to the change log."""
    db = get_db()
    m = _admin_member(member_id)
    body = privacy.export_member_json(db, m.id)
    audit(db, auth.me().actor, "member.export", "member", m.id, {"via": "web"})
    db.commit()
    return Response(body, mimetype="application/json", headers={
        "Content-Disposition": f'attachment; filename="member-{m.id}-export.json"'})


@bp.post("/members/<id:member_id>/privacy/erase")
@auth.roles_required(auth.ADMIN)
def member_privacy_erase(member_id: int) -> Any:
    db = get_db()
    m = _admin_member(member_id)
    if m.erased_at is not None:
        flash(_("This member's personal data is already erased."), "info")
        return redirect(url_for("web.member_detail", member_id=m.id))
    if not _confirmed(m, request.form.get("confirm", "")):
        flash(_("Type the member's full name or number exactly to confirm."), "error")
        return redirect(url_for("web.member_privacy", member_id=m.id))
    try:
        privacy.erase_member(db, m.id, actor=auth.me().actor)
        db.commit()
    except ServerError as e:
        db.rollback()
        flash(error_text(e), "error")
        return redirect(url_for("web.member_privacy", member_id=m.id))
    flash(_("Personal data of member no. %(id)s erased. Anonymous usage totals are kept.",
            id=m.id), "success")
    return redirect(url_for("web.member_detail", member_id=m.id))
