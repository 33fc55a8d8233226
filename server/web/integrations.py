"""The Fab-manager page (admin): the last runs with their counts and problems, the settings
and the mapping editor, and buttons for a dry run and a run. Rules are in
`server.services.fabmanager`; this page parses, calls and renders."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import PasswordField, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length

from server import auth, services
from server.app import get_db
from server.errors import ServerError
from server.services import fabmanager
from server.web.members import flash_error

bp = Blueprint("integrations", __name__)


class FabmanagerForm(FlaskForm):
    url = StringField(_l("Fab-manager address"), validators=[DataRequired(), Length(max=500)])
    token = PasswordField(_l("Open API key (leave empty to keep the stored one)"),
                          validators=[Length(max=500)])
    site = SelectField(_l("Home site of the members it creates"), coerce=str, default="")
    trainings = TextAreaField(_l("Trainings: one '<Fab-manager id> = machine:<slug>' or "
                                 "'= group:<slug>' a line"))
    machines = TextAreaField(_l("Machines: one '<Fab-manager id> = <machine slug>' a line"))


def _status(form: FabmanagerForm, code: int = 200) -> Any:
    db = get_db()
    cfg = fabmanager.get_config(db)
    return render_template("integrations/fabmanager.html", form=form, cfg=cfg,
                           runs=fabmanager.last_runs(db, 10)), code


@bp.get("/integrations/fabmanager")
@auth.roles_required(auth.ADMIN)
def fabmanager_page() -> Any:
    db = get_db()
    form = FabmanagerForm()
    form.site.choices = [("", _("none"))] + [(s.slug, s.name) for s in services.sites_by_name(db)]
    cfg = fabmanager.get_config(db)
    if cfg is not None:
        form.url.data = cfg.url
        form.site.data = cfg.site or ""
        form.trainings.data = fabmanager.mapping_lines(cfg.trainings)
        form.machines.data = fabmanager.mapping_lines(cfg.machines)
    return _status(form)


@bp.post("/integrations/fabmanager")
@auth.roles_required(auth.ADMIN)
def fabmanager_save() -> Any:
    db = get_db()
    form = FabmanagerForm()
    form.site.choices = [("", _("none"))] + [(s.slug, s.name) for s in services.sites_by_name(db)]
    if not form.validate_on_submit():
        return _status(form, 400)
    cfg = fabmanager.get_config(db)
    token = form.token.data or (cfg.token if cfg is not None else "")
    try:
        body = {"url": form.url.data, "token": token, "site": form.site.data or None,
                "trainings": fabmanager.parse_mapping_lines(form.trainings.data or "",
                                                            "trainings", targets=True),
                "machines": fabmanager.parse_mapping_lines(form.machines.data or "",
                                                           "machines", targets=False)}
        fabmanager.save_config(db, body, actor=auth.me().actor)
        db.commit()
    except ServerError as e:
        db.rollback()
        flash_error(e, form)
        return _status(form, 400)
    flash(_("Fab-manager settings saved."), "success")
    return redirect(url_for("integrations.fabmanager_page"))


@bp.post("/integrations/fabmanager/run")
@auth.roles_required(auth.ADMIN)
def fabmanager_run() -> Any:
    dry = request.form.get("dry_run") == "1"
    result = fabmanager.run_sync(get_db(), dry_run=dry)
    if result.ok:
        flash(_("Dry run done: nothing was applied.") if dry else _("Sync done."), "success")
    else:
        flash(_("The sync stopped and applied nothing: %(why)s", why=result.message), "error")
    return redirect(url_for("integrations.fabmanager_page"))


COUNT_LABELS = {
    "members_created": _l("members created"), "members_updated": _l("members updated"),
    "authorizations_granted": _l("trainings granted"),
    "authorizations_revoked": _l("trainings withdrawn"),
    "bookings_created": _l("bookings created"), "bookings_cancelled": _l("bookings cancelled"),
}


def count_label(key: str) -> str:
    return str(COUNT_LABELS.get(key, key))


def problem_text(p: dict[str, Any]) -> str:
    """One problem of a run, said in the page's language."""
    kind = p.get("kind")
    if kind == "edited_both_sides":
        return _("%(email)s was edited here and in Fab-manager: left as it is here",
                 email=p.get("email", ""))
    if kind == "vanished_upstream":
        return _("%(email)s is no longer in Fab-manager (kept here)", email=p.get("email", ""))
    if kind == "unmapped_training":
        return _("training %(id)s (%(name)s) is not mapped", id=p.get("id"), name=p.get("name", ""))
    if kind == "unmapped_machine":
        return _("machine %(id)s (%(name)s) is not mapped", id=p.get("id"), name=p.get("name", ""))
    if kind == "member_erased":
        return _("%(email)s was erased here: not synced", email=p.get("email", ""))
    if kind == "booking_refused":
        return _("reservation %(id)s could not become a booking: %(why)s",
                 id=p.get("reservation"), why=p.get("reason", ""))
    return str(kind)


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    app.jinja_env.globals.update(fm_count_label=count_label, fm_problem_text=problem_text)
    app.config.setdefault("NAV_EXTRA", []).append(
        ("integrations.fabmanager_page", _l("Fab-manager"), (auth.ADMIN,)))
