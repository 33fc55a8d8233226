"""Web UI for managers: pages, login, i18n (FR/EN), CSRF and secure cookies.

`init_app(app)` wires Flask-Login (server.auth), Flask-WTF's CSRFProtect,
Flask-Babel (browser language by default, FR/EN switch kept in the session)
and the page blueprint. Other parts add nav entries by appending
`(endpoint, label)` or `(endpoint, label, roles)` to `app.config["NAV_EXTRA"]`.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, flash, redirect, render_template, request, session, url_for
from flask.sessions import SecureCookieSessionInterface
from flask_babel import Babel, lazy_gettext
from flask_login import current_user
from flask_wtf.csrf import CSRFError, CSRFProtect
from werkzeug.exceptions import HTTPException
from werkzeug.routing import IntegerConverter

from server import auth
from server.errors import Forbidden, NotFound, ServerError
from server.web.blueprint import bp
from server.web.tokens import csrf_token

log = logging.getLogger(__name__)

LANGUAGES = ("en", "fr")
csrf = CSRFProtect()
babel = Babel()


class WebError(ServerError):
    """A web-only error; like every error of the server, a `server.errors.ServerError`."""


class IdConverter(IntegerConverter):
    """`<id:…>`: a database id (1..2^31-1); anything else is a plain 404, never an overflow."""

    def __init__(self, url_map: Any) -> None:
        super().__init__(url_map, min=1, max=2**31 - 1)


def register_converters(app: Flask) -> None:
    app.url_map.converters.setdefault("id", IdConverter)


class _SecureWhenHttps(SecureCookieSessionInterface):
    """Session cookie `Secure` when configured, or when the request came over https."""

    def get_cookie_secure(self, app: Flask) -> bool:
        if app.config.get("SESSION_COOKIE_SECURE"):
            return True
        if app.config.get("TESTING"):
            return False
        try:
            return bool(request.is_secure)
        except RuntimeError:
            return False


def select_locale() -> str:
    lang = session.get("lang")
    if lang in LANGUAGES:
        return str(lang)
    return request.accept_languages.best_match(LANGUAGES) or "en"


# (endpoint, label, roles); roles empty = every logged-in user
NAV: list[tuple[str, Any, tuple[str, ...]]] = [
    ("web.dashboard", lazy_gettext("Dashboard"), ()),
    ("web.members", lazy_gettext("Members"), ()),
    ("web.unknown_badges", lazy_gettext("Unknown badges"), (auth.ADMIN, auth.MANAGER)),
    ("web.machines", lazy_gettext("Machines"), ()),
    ("web.authorizations", lazy_gettext("Trainings"), ()),
    ("web.sessions", lazy_gettext("Sessions"), (auth.ADMIN, auth.MANAGER)),
    ("web.nodes", lazy_gettext("Nodes"), (auth.ADMIN, auth.MANAGER)),
    ("web.audit", lazy_gettext("Audit log"), (auth.ADMIN, auth.MANAGER)),
    ("web.me_page", lazy_gettext("My page"), (auth.TRAINER,)),
    ("web.sites", lazy_gettext("Sites"), (auth.ADMIN,)),
    ("web.users", lazy_gettext("Web logins"), (auth.ADMIN,)),
    ("web.notifications", lazy_gettext("Notifications"), ()),
]


def _nav_items() -> list[dict[str, Any]]:
    from flask import current_app

    if not getattr(current_user, "is_authenticated", False):
        return []
    endpoint_now = request.endpoint
    return [{"href": href, "label": label, "active": endpoint_now == endpoint}
            for endpoint, href, label in _nav_entries(current_app, current_user.role)]


_NAV_CACHE_KEY = "fabpass.web.nav"


def _nav_entries(app: Flask, role: str) -> list[tuple[str, str, Any]]:
    """(endpoint, href, translated label) of the entries `role` sees, made once per role,
    language and script root rather than on every page (URLs and translations per entry)."""
    from flask_babel import get_locale
    from flask_babel import gettext as _
    from markupsafe import Markup

    extra = [tuple(e) for e in app.config.get("NAV_EXTRA", [])]
    key = (role, str(get_locale()), request.script_root, tuple(extra))
    cache: dict[Any, list[tuple[str, str, Any]]] = app.extensions.setdefault(_NAV_CACHE_KEY, {})
    entries = cache.get(key)
    if entries is not None:
        return entries
    entries = []
    for entry in [*NAV, *extra]:
        endpoint, label = entry[0], entry[1]
        roles = tuple(entry[2]) if len(entry) > 2 else ()
        if roles and role not in roles:
            continue
        try:
            href = url_for(endpoint)
        except Exception:  # an entry whose view is not registered: skip, never break pages
            continue
        # what the template's `_(label|string)` rendered: translated, not escaped
        entries.append((endpoint, href, Markup(_(str(label)))))
    if len(cache) > 64:
        cache.clear()
    cache[key] = entries
    return entries


def _base_urls() -> dict[str, str]:
    """The URLs base.html links on every page (its stylesheet, script, language switch…), built
    once per script root instead of five `url_for` per page."""
    from flask import current_app, has_request_context

    if not has_request_context():  # a mail or report rendered by a job: no page around it
        return {}
    cache: dict[str, dict[str, str]] = current_app.extensions.setdefault("fabpass.web.base_urls", {})
    urls = cache.get(request.script_root)
    if urls is None:
        urls = cache[request.script_root] = {
            "css": url_for("static", filename="fabpass.css"),
            "js": url_for("static", filename="fabpass.js"),
            "home": url_for("web.dashboard"), "lang": url_for("web.set_language"),
            "logout": url_for("web.logout")}
    return urls


def init_app(app: Flask) -> None:
    app.config.setdefault("BABEL_DEFAULT_LOCALE", "en")
    # dates on pages in the zone the lab lives in (FABPASS_TIMEZONE), as the reports use
    app.config.setdefault("BABEL_DEFAULT_TIMEZONE", app.config.get("TIMEZONE") or "UTC")
    app.config.setdefault(
        "BABEL_TRANSLATION_DIRECTORIES", "translations;translations_reports;translations_demo"
    )
    app.config.setdefault("NAV_EXTRA", [])
    app.config.setdefault("WTF_CSRF_TIME_LIMIT", None)  # valid for the session's lifetime
    # Flask's defaults already hold these keys (SAMESITE=None), so setdefault is not enough.
    if not app.config.get("SESSION_COOKIE_SAMESITE"):
        app.config["SESSION_COOKIE_SAMESITE"] = "Lax"
    app.config["SESSION_COOKIE_HTTPONLY"] = True
    app.config.setdefault("REMEMBER_COOKIE_HTTPONLY", True)
    app.config.setdefault("REMEMBER_COOKIE_SAMESITE", "Lax")
    app.session_interface = _SecureWhenHttps()

    register_converters(app)
    babel.init_app(app, locale_selector=select_locale)
    from server.web import i18n

    i18n.install(app)
    csrf.init_app(app)
    auth.init_app(app)

    from server.web import (  # noqa: F401  (routes)
        admin,
        enrol,
        logs,
        machines,
        members,
        nodes,
        notify,
        pages,
        passwords,
        privacy,
        refusals,
        trainings,
    )

    app.register_blueprint(bp)
    refusals.init_app(app)
    from server.web import labels

    app.jinja_env.globals.update(label=labels.label, fmt_when=labels.when, fmt_day=labels.day,
                                 fmt_number=labels.number, person=labels.person)

    @app.context_processor
    def _inject() -> dict[str, Any]:
        from flask_babel import get_locale

        return {
            "nav_items": _nav_items(),
            "current_lang": str(get_locale() or "en"),
            "languages": LANGUAGES,
            "csrf_token": csrf_token,
            "base_urls": _base_urls(),
        }

    @app.errorhandler(CSRFError)
    def _csrf_error(e: CSRFError) -> Any:
        if request.path.startswith("/api/"):
            return e  # the API is exempt; kept for safety
        return render_template("error.html", code=400,
                               message=lazy_gettext("The form expired or was not sent by this "
                                                    "site. Please try again.")), 400

    @app.errorhandler(NotFound)
    def _not_found(_e: NotFound) -> Any:
        """A service found no such record for a page: the 404 page (the API has its own)."""
        from werkzeug.exceptions import NotFound as HttpNotFound

        return _http_error(HttpNotFound())

    @app.errorhandler(Forbidden)
    def _forbidden(_e: Forbidden) -> Any:
        from werkzeug.exceptions import Forbidden as HttpForbidden

        return _http_error(HttpForbidden())

    @app.errorhandler(HTTPException)
    def _http_error(e: HTTPException) -> Any:
        if request.path.startswith("/api/"):
            from server.api import json_http_error

            return json_http_error(e)
        if e.code is None or e.code < 400:
            return e
        messages = {
            403: lazy_gettext("You are not allowed to do this."),
            404: lazy_gettext("This page does not exist."),
            405: lazy_gettext("This action is not available here."),
            429: lazy_gettext("Too many attempts. Please wait a minute and try again."),
        }
        msg = messages.get(e.code, e.description)
        return render_template("error.html", code=e.code, message=msg), e.code


__all__ = ["LANGUAGES", "WebError", "babel", "bp", "csrf", "flash", "init_app", "redirect"]
