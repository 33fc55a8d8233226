"""Node provisioning downloads (admin only): a node's config file, new credentials, the broker's
files. The same library functions as `fabpass node provision` / `fabpass broker config`.

A GET here never changes anything: the config download carries no password (only its hash is
stored). New credentials are a POST whose answer shows the password once and never again.
"""

from __future__ import annotations

import io
import logging
import zipfile
from typing import TYPE_CHECKING, Any

from flask import Response, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _

from firmware_config.broker_users import BrokerIdentityError
from firmware_config.provisioning import ProvisioningError
from server import auth, services
from server.app import get_db
from server.services.provisioning import (
    render_broker_files,
    render_node_config,
    rotate_credentials,
    set_plug,
)
from server.web.blueprint import bp

if TYPE_CHECKING:
    from server.models import Node

log = logging.getLogger(__name__)

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def _node_or_404(slug: str) -> Node:
    return services.get_node_by_slug(get_db(), slug)  # NotFound: the 404 page


def _attachment(body: bytes | str, filename: str, mimetype: str) -> Response:
    r = Response(body, mimetype=mimetype)
    r.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    r.headers.update(NO_STORE)
    return r


@bp.get("/nodes/<slug>/config.toml")
@auth.roles_required(auth.ADMIN)
def node_config(slug: str) -> Any:
    """The node's config file without its password (the node reads it from its environment)."""
    node = _node_or_404(slug)
    try:
        text = render_node_config(get_db(), node.slug)
    except ProvisioningError as exc:
        flash(_("No config file for this node: %(why)s", why=exc.message), "error")
        return redirect(url_for("web.nodes"))
    return _attachment(text, f"{node.slug}.toml", "application/toml")


@bp.post("/nodes/<slug>/credentials")
@auth.roles_required(auth.ADMIN)
def node_credentials(slug: str) -> Any:
    """New MQTT password for a node: the old one stops working once the broker files are
    updated. The full config (with the password) is shown on this answer only."""
    db = get_db()
    node = _node_or_404(slug)
    p = auth.me()
    try:
        result = rotate_credentials(db, node.slug, actor=p.actor)
    except ProvisioningError as exc:
        db.rollback()
        flash(_("No new credentials: %(why)s", why=exc.message), "error")
        return redirect(url_for("web.nodes"))
    db.commit()
    log.info("node %s: new MQTT credentials by %s", node.slug, p.actor)
    body = render_template("logs/node_credentials.html", node=node, result=result)
    return Response(body, headers=NO_STORE)


@bp.post("/nodes/<slug>/plug")
@auth.roles_required(auth.ADMIN)
def node_plug(slug: str) -> Any:
    """Set the smart plug a node drives (`shelly:DEVICE`, `tasmota:DEVICE`, `gpio`): the
    answer shows the plug's new broker password once, and the config with `[actuator]`."""
    db = get_db()
    node = _node_or_404(slug)
    p = auth.me()
    try:
        result = set_plug(db, node.slug, (request.form.get("plug") or "").strip() or "gpio",
                          actor=p.actor)
    except ProvisioningError as exc:
        db.rollback()
        flash(_("The plug was not set: %(why)s", why=exc.message), "error")
        return redirect(url_for("web.nodes"))
    db.commit()
    log.info("node %s: plug %s set by %s", node.slug, result.plug_device or "none", p.actor)
    body = render_template("logs/node_plug.html", node=node, result=result)
    return Response(body, headers=NO_STORE)


@bp.post("/nodes/broker-files")
@auth.roles_required(auth.ADMIN)
def broker_files() -> Any:
    """A zip of the broker's `passwd`, `acl` and `mosquitto.conf` (only password hashes)."""
    db = get_db()
    try:
        files = render_broker_files(db)
    except (ProvisioningError, BrokerIdentityError) as exc:
        db.rollback()
        flash(_("The broker files cannot be made yet: %(why)s", why=exc.message), "error")
        return redirect(url_for("web.nodes"))
    db.commit()  # may record the server user's hash taken from FABPASS_MQTT_URL
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name in sorted(files):
            z.writestr(name, files[name])
    return _attachment(buf.getvalue(), "fabpass-broker.zip", "application/zip")
