"""The virtual-badges panel: only in `fabpass demo` (app.config["DEMO"]).

It stands in for a member holding a card in front of a reader: each action
writes one simulation line (contract section 5) to a simulated node's stdin
through `app.config["DEMO_NODES"]` (an object with `send(node_slug, line)`,
`slugs()`, and optionally `busy(slug)`, `alive(slug)`, `output(slug, n)`).
What happens next is the real system: the node decides from its access list,
publishes over MQTT, the server ingests; the panel only reads the result back
from the database.
"""

from __future__ import annotations

import logging
import re
import time
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from flask import (
    Blueprint,
    Flask,
    Response,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_babel import gettext, lazy_gettext

from server import services
from server.errors import ServerError

log = logging.getLogger(__name__)

bp = Blueprint("demo", __name__, url_prefix="/demo")

ACTIONS = ("tap", "double_tap", "place", "remove")
DOUBLE_TAP_GAP_S = 0.8  # a trainer's two taps: after the first card is removed, within 3 s


class DemoPanelError(ServerError):
    """A bad panel request (a `server.errors.ServerError`, like every error of the server)."""


def _nodes() -> Any:
    registry = current_app.config.get("DEMO_NODES")
    if registry is None:
        abort(503)
    return registry


def _login_required(fn: Any) -> Any:
    """Any logged-in role (server.auth.roles_required with no role)."""
    from server.auth import roles_required

    return roles_required()(fn)


def _badge_choices(db: Any) -> list[dict[str, Any]]:
    info = current_app.config.get("DEMO_INFO", {})
    notes = info.get("members", {})
    rows = services.badge_holders(db)
    choices = [{"uid": uid, "label": name, "status": str(getattr(status, "value", status)),
                "note": notes.get(uid, "")} for uid, status, name in rows]
    unknown = info.get("unknown_uid")
    if unknown:
        choices.append({"uid": unknown, "label": gettext("Unknown card"), "status": "unknown",
                        "note": gettext("not enrolled: shows up under Unknown badges")})
    return choices


_LOG_PREFIX = re.compile(r"^\d{4}-\d\d-\d\d (\d\d:\d\d:\d\d),\d+ \w+ [\w.]+: ")


def _short(line: str) -> str:
    """`2026-11-22 20:58:23,239 INFO controller.hardware: relay on` → `20:58:23 relay on`."""
    return _LOG_PREFIX.sub(r"\1 ", line)


def _state(db: Any) -> dict[str, Any]:
    """Machines with their node's live status, recent events, node output."""
    registry = _nodes()
    plugs = current_app.config.get("DEMO_PLUGS") or {}
    names = services.all_member_names(db)
    machines = []
    for machine in sorted(services.all_machines(db), key=lambda mc: mc.slug):
        node = machine.node
        status = (node.last_status or {}) if node else {}
        session = status.get("session") if node and node.online else None
        slug = node.slug if node else machine.slug
        machines.append({
            "slug": machine.slug, "name": machine.name, "node": slug,
            "site": machine.site.name if machine.site else "",
            "online": bool(node and node.online),
            "state": (node.state if node and node.online else "offline") or "offline",
            "relay": bool(node and node.online and node.relay),
            "locked": machine.locked,
            "session": session,
            "session_member": names.get(session.get("member")) if session else None,
            "busy": bool(getattr(registry, "busy", lambda _s: False)(slug)),
            "running": bool(getattr(registry, "alive", lambda _s: True)(slug)),
            "output": [_short(line) for line in
                       getattr(registry, "output", lambda _s, _n: [])(slug, 8)],
            "plug": _plug_state(plugs.get(slug)),
        })
    zone = ZoneInfo(current_app.config.get("TIMEZONE") or "UTC")
    recent = services.recent_events(db, 12)
    events = []
    for ev in recent:
        data = ev.data or {}
        member_id = data.get("member")
        events.append({
            "at": ev.received_at.astimezone(zone) if ev.received_at else None, "node": ev.node_slug, "type": ev.type,
            "uid": data.get("uid") or data.get("trainee_uid") or "",
            "member": names.get(member_id) if isinstance(member_id, int) else None,
            "reason": data.get("reason") or "",
        })
    return {"machines": machines, "events": events, "now": datetime.now(UTC)}


PLUG_PHASES = ("idle", "heating", "printing", "done")


def _plug_state(plug: Any) -> dict[str, Any] | None:
    """A simulated plug's switch, phase and power for its card (None: the machine has a relay)."""
    if plug is None:
        return None
    return {"device": plug.device, "on": bool(plug.output), "phase": plug.phase,
            "power_w": round(float(plug.power_w))}


@bp.post("/plug")
@_login_required
def plug_phase() -> ResponseReturnValue:
    """What the machine on a simulated plug is doing: its power follows (the node's busy signal
    and the session's kWh come from that power)."""
    plugs = current_app.config.get("DEMO_PLUGS") or {}
    machine = request.form.get("machine", "")
    phase = request.form.get("phase", "")
    if machine not in plugs or phase not in PLUG_PHASES:
        flash(gettext("Choose a machine and an action."), "error")
        return redirect(url_for("demo.panel"))
    plugs[machine].set_phase(phase)
    flash(gettext("%(node)s: the machine is now %(phase)s.", node=machine,
                  phase=str(PHASE_LABELS[phase])), "success")
    return redirect(url_for("demo.panel", machine=machine))


PHASE_LABELS = {"idle": lazy_gettext("idle"), "heating": lazy_gettext("heating"),
                "printing": lazy_gettext("printing"), "done": lazy_gettext("done")}


@bp.get("/")
@_login_required
def panel() -> str:
    from server.app import get_db

    db = get_db()
    return render_template(
        "demo/panel.html", badges=_badge_choices(db), info=current_app.config.get("DEMO_INFO", {}),
        **_state(db),
    )


@bp.get("/state")
@_login_required
def state() -> str:
    """The live part of the panel, re-fetched every two seconds by panel.js."""
    from server.app import get_db

    return render_template("demo/_state.html", **_state(get_db()))


@bp.post("/badge")
@_login_required
def badge() -> ResponseReturnValue:
    from protocol.errors import ProtocolError
    from protocol.uid import normalize_uid

    registry = _nodes()
    machine = request.form.get("machine", "")
    action = request.form.get("action", "")
    if machine not in registry.slugs() or action not in ACTIONS:
        flash(gettext("Choose a machine and an action."), "error")
        return redirect(url_for("demo.panel"))
    if action == "remove":
        lines = ["remove"]
    else:
        raw = (request.form.get("uid_other") or "").strip() or request.form.get("uid", "")
        try:
            uid = normalize_uid(raw)
        except ProtocolError:
            flash(gettext("Not a badge UID: %(uid)s (8, 14 or 20 hex digits).", uid=raw), "error")
            return redirect(url_for("demo.panel", machine=machine))
        lines = [f"tap {uid}", f"tap {uid}"] if action == "double_tap" else [f"{action} {uid}"]
    try:
        for i, line in enumerate(lines):
            if i:
                time.sleep(DOUBLE_TAP_GAP_S)  # the card leaves the reader between the two taps
            registry.send(machine, line)
    except Exception as exc:  # the registry's own error: node stopped or not reading
        log.warning("demo panel: %s", exc)
        flash(gettext("The node %(node)s did not take the badge: %(error)s", node=machine,
                      error=str(exc)), "error")
        return redirect(url_for("demo.panel", machine=machine))
    flash(gettext("Sent to %(node)s: %(what)s", node=machine, what=" + ".join(lines)), "success")
    return redirect(url_for("demo.panel", machine=machine, uid=request.form.get("uid", "")))


@bp.post("/busy")
@_login_required
def busy() -> ResponseReturnValue:
    registry = _nodes()
    machine = request.form.get("machine", "")
    value = request.form.get("busy", "")
    if machine not in registry.slugs() or value not in ("on", "off"):
        flash(gettext("Choose a machine and an action."), "error")
        return redirect(url_for("demo.panel"))
    try:
        registry.send(machine, f"busy {value}")
    except Exception as exc:
        log.warning("demo panel: %s", exc)
        flash(gettext("The node %(node)s did not take the badge: %(error)s", node=machine,
                      error=str(exc)), "error")
        return redirect(url_for("demo.panel", machine=machine))
    flash(gettext("%(node)s: the machine is now busy.", node=machine) if value == "on"
          else gettext("%(node)s: the machine is now idle.", node=machine), "success")
    return redirect(url_for("demo.panel", machine=machine))


PANEL_JS = """\
// Re-fetch the live part of the virtual-badges panel every two seconds.
(function () {
  var box = document.getElementById("demo-state");
  if (!box || !window.fetch) { return; }
  function refresh() {
    fetch(box.getAttribute("data-src"), {credentials: "same-origin"})
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) { if (html !== null) { box.innerHTML = html; } })
      .catch(function () {});
  }
  setInterval(refresh, 2000);
})();
"""


@bp.get("/panel.js")
@_login_required
def panel_js() -> Response:
    return Response(PANEL_JS, mimetype="text/javascript")


def init_app(app: Flask) -> None:
    """Register the panel only in the demo; nothing is reachable otherwise."""
    if not app.config.get("DEMO"):
        return
    app.register_blueprint(bp)
    app.config.setdefault("NAV_EXTRA", []).append(("demo.panel", lazy_gettext("Virtual badges")))


__all__ = ["ACTIONS", "DemoPanelError", "bp", "init_app"]
