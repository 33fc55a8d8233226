"""Login, logout, language switch and the live dashboard."""

from __future__ import annotations

import math
import re
import threading
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from flask import (
    abort,
    flash,
    jsonify,
    make_response,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import format_decimal
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_user, logout_user
from flask_wtf import FlaskForm
from markupsafe import Markup
from wtforms import EmailField, PasswordField
from wtforms.validators import DataRequired, Length

from server import auth, services
from server.app import get_db
from server.security import verify_password
from server.services import logins, machine_state
from server.web import labels
from server.web.blueprint import WRITES_KEY, bp, id_url, writes_count
from server.web.first_run import guide_steps
from server.web.notify import BUSY_STATES


class LoginForm(FlaskForm):
    email = EmailField(_l("Email"), validators=[DataRequired(), Length(max=254)])
    password = PasswordField(_l("Password"), validators=[DataRequired(), Length(max=1000)])


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _safe_next(target: str | None) -> str | None:
    """Where to go after login: a same-site path, normalised before it is checked.

    Browsers drop tabs and newlines inside a URL and read `\\` as `/`, so `/%09/evil.test`
    became `//evil.test` (another host) once a browser had it (issue 13). So: a control
    character anywhere is a bad request (400, never a 500 from a header with CR/LF); the value
    is split as a URL and rebuilt from its path, query and fragment only when it has neither
    scheme nor host (`https:evil.test` has a scheme) and its path is `/…` but not `//…`;
    anything with a backslash is refused. A refused target means the dashboard."""
    if not target:
        return None
    if _CONTROL.search(target):
        abort(400)
    if "\\" in target or target.startswith("//"):
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return None
    if not parts.path.startswith("/") or parts.path.startswith("//"):
        return None
    return urlunsplit(("", "", parts.path, parts.query, parts.fragment))


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    form = LoginForm()
    target = _safe_next(request.args.get("next"))  # a bad `next` is a 400 before anything else
    if request.method == "POST":
        ip = request.remote_addr or "?"  # the client's, through FABPASS_TRUSTED_PROXIES
        email = (request.form.get("email") or "").strip().lower()
        limiter = auth.rate_limiter()
        wait = limiter.retry_after(ip, email)
        if wait > 0:
            resp = make_response(render_template("login.html", form=form,
                                                 wait_s=math.ceil(wait)), 429)
            resp.headers["Retry-After"] = str(math.ceil(wait))
            return resp
        if form.validate_on_submit():
            db = get_db()
            user = services.find_login(db, email)
            if user is not None and user.active and verify_password(
                user.password_hash, form.password.data or ""
            ):
                limiter.reset(ip, email)
                lang = session.get("lang")
                session.clear()  # a fresh session on login (no fixation)
                if lang:
                    session["lang"] = lang
                    services.remember_language(db, user.id, lang)
                user.last_login = datetime.now(UTC)
                session[auth.LOGIN_KEY] = logins.open_login(db, user.id)
                db.commit()
                login_user(auth.principal_from_user(user))
                flash(_("Welcome, you are logged in."), "success")
                return redirect(target or url_for("web.dashboard"))
            limiter.failed(ip, email)
            flash(_("Wrong email or password."), "error")
        return render_template("login.html", form=form), 200
    return render_template("login.html", form=form)


@bp.post("/logout")
def logout() -> Any:
    lang = session.get("lang")
    db = get_db()
    logins.close_login(db, session.get(auth.LOGIN_KEY))  # a copy of this cookie dies too
    db.commit()
    logout_user()
    session.clear()
    if lang:
        session["lang"] = lang
    flash(_("You are logged out."), "success")
    return redirect(url_for("web.login"))


@bp.post("/lang")
def set_language() -> Any:
    """The FR/EN switch: a POST (never a state-changing GET), kept in the session."""
    from server.web import LANGUAGES

    lang = request.form.get("lang", "")
    if lang not in LANGUAGES:
        abort(400)
    session["lang"] = lang
    if current_user.is_authenticated:  # a web login (session), never an API token
        db = get_db()
        services.remember_language(db, int(current_user.id), lang)
        db.commit()
    return redirect(_safe_next(request.form.get("next")) or url_for("web.dashboard"))


# ---------------------------------------------------------------- dashboard


def _iso(dt: datetime | None) -> str | None:
    if dt is None:
        return None
    return dt.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


STATES_TTL_S = 1.0
_WRITES_KEY = WRITES_KEY
_STATES_KEY = "fabpass.web.machine_states"
_STATES_LOCK_KEY = "fabpass.web.machine_states.lock"


@bp.after_app_request
def _count_writes(response: Any) -> Any:
    """Any non-GET request may have changed a machine: the next dashboard recomputes."""
    if request.method not in ("GET", "HEAD", "OPTIONS"):
        from flask import current_app

        current_app.extensions[_WRITES_KEY] = current_app.extensions.get(_WRITES_KEY, 0) + 1
    return response


def machine_states(copy: bool = True) -> list[dict[str, Any]]:
    """Every active machine's live state, shared for `STATES_TTL_S` by every open dashboard.

    The dashboard polls every 2 s from each browser: without this, 10 open dashboards cost
    10 times the queries. A change made through this app (lock, stop…) shows at once;
    node statuses received by the ingest show within the TTL. One thread recomputes an
    expired entry while the others wait for it (not one computation each). `copy=False`
    hands out the shared dicts: only for callers that do not change them.
    """
    import time

    from flask import current_app
    from flask_babel import get_locale

    ttl = float(current_app.config.get("DASHBOARD_STATES_TTL_S", STATES_TTL_S))
    key = (writes_count(), str(get_locale()))
    cached = current_app.extensions.get(_STATES_KEY)
    if cached is None or cached[0] != key or time.monotonic() - cached[1] >= ttl:
        lock = current_app.extensions.setdefault(_STATES_LOCK_KEY, threading.Lock())
        with lock:
            cached = current_app.extensions.get(_STATES_KEY)
            if cached is None or cached[0] != key or time.monotonic() - cached[1] >= ttl:
                now = time.monotonic()
                cached = (key, now, _compute_machine_states())
                current_app.extensions[_STATES_KEY] = cached
    states: list[dict[str, Any]] = cached[2]
    return [dict(item) for item in states] if copy else states


def _compute_machine_states() -> list[dict[str, Any]]:
    """Every active machine's live state (`server.services.machine_state`), with due maintenance
    worded for the cards."""
    db = get_db()
    states = machine_state.live_machine_states(db, _due_maintenance(db))
    for it in states:
        it["plug"] = plug_note(it)
    return states


def plug_note(state: dict[str, Any]) -> str:
    """The card's smart-plug line: offline, found on alone, or the live power ('' for a relay)."""
    parts = []
    if state.get("plug_online") is False:
        parts.append(_("Plug offline: new sessions refused"))
    if state.get("plug_unexpected_at"):
        parts.append(_("Plug found on without a session (switched off)"))
    if state.get("power_w") is not None:
        parts.append(_("%(watts)s W now", watts=format_decimal(round(state["power_w"]))))
    return " · ".join(parts)


MAINTENANCE_TTL_S = 30.0


def _cached_due(db: Any) -> dict[int, list[dict[str, Any]]]:
    """`due_maintenance` sums every closed session's active time: too much for every 2 s poll
    of every open dashboard. Skipped when no task exists; otherwise kept for
    `MAINTENANCE_TTL_S`, and recomputed at once when a task or an intervention is added."""
    import time

    from flask import current_app

    from server.services.maintenance import due_maintenance, tasks_fingerprint

    key = tasks_fingerprint(db)
    if key is None:
        return {}
    ttl = float(current_app.config.get("DASHBOARD_MAINTENANCE_TTL_S", MAINTENANCE_TTL_S))
    cached = current_app.extensions.get("fabpass.web.due_maintenance")
    now = time.monotonic()
    if cached is not None and cached[0] == key and now - cached[1] < ttl:
        return cached[2]  # type: ignore[no-any-return]
    due = due_maintenance(db)
    current_app.extensions["fabpass.web.due_maintenance"] = (key, now, due)
    return due


def _due_maintenance(db: Any) -> dict[int, list[dict[str, str]]]:
    """Due/overdue maintenance tasks per machine, each with a sentence for the card."""
    out: dict[int, list[dict[str, str]]] = {}
    for machine_id, tasks in _cached_due(db).items():
        out[machine_id] = [{
            "task": t["name"],
            "state": t["state"],
            "label": (_("Maintenance overdue: %(task)s", task=t["name"]) if t["state"] == "overdue"
                      else _("Maintenance due: %(task)s", task=t["name"])),
        } for t in tasks]
    return out


STATE_LABELS = labels.STATES  # one label per state, shared with the other pages


@bp.get("/")
@auth.roles_required()
def dashboard() -> Any:
    # translations and URLs made once per page, not once per card
    return render_template(
        "dashboard.html", machines=machine_states(copy=False), labels=state_labels(),
        used_by=Markup(_("Used by %(name)s since %(since)s")),
        machine_url=id_url("web.machine_detail", "machine_id"), first_run=guide_steps(),
        busy_states=BUSY_STATES)


def state_labels() -> dict[str, Markup]:
    """`STATE_LABELS` translated once per language (not once per render), rendered as the lazy
    strings were (not escaped)."""
    from flask import current_app
    from flask_babel import get_locale

    cache: dict[str, dict[str, Markup]] = current_app.extensions.setdefault(
        "fabpass.web.state_labels", {})
    lang = str(get_locale())
    labels_now = cache.get(lang)
    if labels_now is None:
        labels_now = cache[lang] = {k: Markup(str(v)) for k, v in STATE_LABELS.items()}
    return labels_now


@bp.get("/dashboard/state.json")
@auth.roles_required()
def dashboard_state() -> Any:
    items = machine_states()
    for it in items:
        it["label"] = str(STATE_LABELS.get(it["state"], it["state"]))
    return jsonify({"machines": items, "now": _iso(datetime.now(UTC))})


@bp.before_app_request
def _refuse_nul_characters() -> None:
    """NUL cannot be stored by PostgreSQL: refuse it up front (400) rather than fail later."""
    if request.path.startswith("/api/"):
        return  # the API answers its own JSON 400
    for values in (request.args, request.form):
        for v in values.values():
            if "\x00" in v:
                abort(400)
