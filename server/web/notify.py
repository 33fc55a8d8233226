"""The notifications page: a login's alert switches, "tell me when free" requests of its
member, and (managers) the webhooks of its sites with their delivery log.

Rules are in `server.services.alerts`, `notices` and `webhooks`; the site scope is the one of
`server.auth` (`managed_site_ids`, `can_manage_site`).
"""

from __future__ import annotations

from typing import Any

from flask import abort, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from server import auth, services
from server.app import get_db
from server.errors import Invalid, NotFound
from server.services import alerts, notices, passwords, webhooks
from server.web.blueprint import arg_id, bp

# machine states in which "tell me when it is free" is offered (`machine_state` folds the
# node's finishing, grace and sign-off states into in_use)
BUSY_STATES = ("in_use",)

KIND_LABELS = {
    "node_offline": _l("A node is offline"),
    "node_clock": _l("A node's clock is not synchronised"),
    "node_backlog": _l("Events pile up on a node"),
    "plug_offline": _l("A node's smart plug is offline"),
    "plug_unexpected_on": _l("A smart plug was on without a session"),
    "maintenance_due": _l("A maintenance is due soon"),
    "maintenance_overdue": _l("A maintenance is overdue"),
    "dead_letters": _l("Messages from nodes were rejected"),
    "weekly_summary": _l("The weekly summary"),
}


@bp.get("/notifications")
@auth.roles_required()
def notifications() -> Any:
    p = auth.me()
    db = get_db()
    off = alerts.optouts(db, p.id)
    scope = auth.managed_site_ids(p)
    hooks = webhooks.list_webhooks(db, scope) if p.is_manager else []
    log = {h.id: webhooks.deliveries(db, h.id, limit=20) for h in hooks}
    sites = {s.id: s for s in services.list_sites(db)}
    machines = services.all_machines(db, active_only=True) if p.member_id else []
    watches = notices.open_watches(db, p.member_id) if p.member_id else []
    member_optins = notices.optins(db, p.member_id) if p.member_id else set()
    return render_template("notify/index.html", kinds=alerts.KINDS, labels=KIND_LABELS, off=off,
                           hooks=hooks, log=log, sites=sites, events=webhooks.EVENTS,
                           machines=machines, watches=watches, optins=member_optins,
                           machine_names={m.id: m.name for m in machines})


@bp.post("/notifications/alerts")
@auth.roles_required()
def notifications_alerts() -> Any:
    p = auth.me()
    db = get_db()
    wanted = set(request.form.getlist("kind"))
    alerts.set_optouts(db, p.id, [k for k in alerts.KINDS if k not in wanted])
    db.commit()
    flash(_("Your alert choices are saved."), "success")
    return redirect(url_for("web.notifications"))


@bp.post("/notifications/notices")
@auth.roles_required()
def notifications_notices() -> Any:
    p = auth.me()
    if p.member_id is None:
        abort(400)
    db = get_db()
    notices.set_optins(db, p.member_id, request.form.getlist("notice"), actor=p.actor)
    db.commit()
    flash(_("Your notice choices are saved."), "success")
    return redirect(url_for("web.notifications"))


@bp.post("/notifications/watch")
@auth.roles_required()
def notifications_watch() -> Any:
    """"Tell me when it is free", from this page, the machine page or a dashboard card (`next`
    brings the member back where the button was)."""
    from server.web.pages import _safe_next

    p = auth.me()
    machine_id = arg_id(request.form, "machine_id")
    back = _safe_next(request.form.get("next")) or url_for("web.notifications")
    if p.member_id is None or machine_id is None:
        abort(400)
    db = get_db()
    try:
        machine = services.get_machine(db, machine_id)
    except NotFound:
        abort(404)
    if not auth.can_read_site(p, machine.site_id):
        abort(403)
    try:
        notices.watch(db, p.member_id, machine_id, actor=p.actor)
    except Invalid as exc:
        flash(_(exc.template, **exc.params), "error")
        return redirect(back)
    db.commit()
    flash(_("You will get one mail when this machine is free."), "success")
    return redirect(back)


@bp.post("/notifications/webhooks")
@auth.roles_required(auth.ADMIN, auth.MANAGER)
def notifications_webhook_new() -> Any:
    p = auth.me()
    db = get_db()
    site_id = arg_id(request.form, "site_id")
    if site_id is None and not p.is_admin:
        abort(403)
    if site_id is not None and not auth.can_manage_site(p, site_id):
        abort(403)
    try:
        webhooks.create_webhook(db, request.form.get("url"), request.form.get("secret"),
                                request.form.getlist("events"), site_id,
                                allow_hosts=current_app.config.get("WEBHOOK_ALLOW_HOSTS", []),
                                actor=p.actor)
    except Invalid as exc:
        db.rollback()
        flash(_("The webhook was not saved: %(why)s", why=exc.message), "error")
        return redirect(url_for("web.notifications"))
    db.commit()
    flash(_("The webhook is saved."), "success")
    return redirect(url_for("web.notifications"))


@bp.post("/notifications/webhooks/<id:webhook_id>/delete")
@auth.roles_required(auth.ADMIN, auth.MANAGER)
def notifications_webhook_delete(webhook_id: int) -> Any:
    p = auth.me()
    db = get_db()
    try:
        hook = webhooks.get_webhook(db, webhook_id)
    except NotFound:
        abort(404)
    scope = auth.managed_site_ids(p)
    if scope is not None and hook.site_id not in scope:
        abort(404)
    webhooks.delete_webhook(db, hook, actor=p.actor)
    db.commit()
    flash(_("The webhook is deleted."), "success")
    return redirect(url_for("web.notifications"))


@bp.post("/users/<id:user_id>/invite")
@auth.roles_required(auth.ADMIN)
def user_invite(user_id: int) -> Any:
    """Mail a login a single-use link to choose its password (7 days)."""
    db = get_db()
    try:
        user = services.get_user(db, user_id)
    except NotFound:
        abort(404)
    passwords.invite(db, user, public_url=current_app.config.get("PUBLIC_URL", ""),
                     lang=user.locale, actor=auth.me().actor)
    db.commit()
    flash(_("The invitation is queued for %(email)s.", email=user.email), "success")
    return redirect(url_for("web.user_edit", user_id=user_id))
