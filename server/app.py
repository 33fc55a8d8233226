"""Flask application factory (`create_app(test_config=None)`, as in Flask's tutorial).

Settings come from the environment (`server.settings`), then an optional
`fabpass.cfg` in the data dir, then `test_config`. The database session is
one per request (`server.app.get_db()`), removed at teardown.
"""

from __future__ import annotations

import importlib
import logging
from typing import Any

from flask import Flask, current_app, g
from sqlalchemy.orm import Session
from werkzeug.middleware.proxy_fix import ProxyFix

from server.db import make_engine, make_sessionmaker
from server.settings import ConfigurationError, settings_from_env

log = logging.getLogger(__name__)

# Each module exposes init_app(app); they register blueprints, extensions, CLI hooks.
PARTS = (
    "server.web",          # login, pages, i18n, CSRF (web UI helper)
    "server.api",          # REST API v1 + OpenAPI (web UI helper)
    "server.web.reports",  # report pages
    "server.web.maintenance",  # maintenance pages
    "server.web.bookings",  # booking week views and iCal feeds
    "server.web.billing",  # paid use: tariffs, credit, statements, accounts
    "server.web.integrations",  # the Fab-manager connector's page
    "server.web.demo",     # virtual badges panel, active only when DEMO
)


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    settings = settings_from_env()
    app = Flask(__name__, instance_path=settings["DATA_DIR"], instance_relative_config=True)
    app.config.from_mapping(settings)
    app.config.from_pyfile("fabpass.cfg", silent=True)
    if test_config is not None:
        app.config.update(test_config)
    if not app.config.get("SECRET_KEY"):
        if app.config.get("TESTING"):
            app.config["SECRET_KEY"] = "test-secret-key"
        else:
            raise ConfigurationError(
                "FABPASS_SECRET_KEY is not set: the server refuses to start without a secret key "
                "(e.g. export FABPASS_SECRET_KEY=$(python3 -c 'import secrets; print(secrets.token_hex(32))'))"
            )
    app.config.setdefault("SESSION_COOKIE_HTTPONLY", True)
    app.config.setdefault("SESSION_COOKIE_SAMESITE", "Lax")
    proxies = int(app.config.get("TRUSTED_PROXIES") or 0)
    if proxies:  # the client's address and scheme, as the trusted proxies saw them
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies,  # type: ignore[method-assign]
                                x_host=proxies, x_port=proxies, x_prefix=proxies)

    engine = app.config.get("ENGINE") or make_engine(app.config["DATABASE_URL"],
                                                     **_pool_options(app.config["DATABASE_URL"]))
    app.extensions["fabpass.engine"] = engine
    app.extensions["fabpass.sessionmaker"] = make_sessionmaker(engine)

    @app.teardown_appcontext
    def _close_db(_exc: BaseException | None) -> None:
        db = g.pop("fabpass_db", None)
        if db is not None:
            db.close()

    for name in PARTS:
        importlib.import_module(name).init_app(app)
    return app


DB_POOL_SIZE = 12  # waitress' 8 threads, the ingest, the publisher, the jobs, and a spare


def _pool_options(url: str) -> dict[str, Any]:
    """Connections kept open between requests: as many as the server's threads use at once.

    SQLAlchemy keeps 5 by default: under 10 clients the 8 web threads opened and closed the
    others on every request (for SQLite a connect and four PRAGMAs, for PostgreSQL a new
    session each time; issue 21's profile). An in-memory SQLite URL keeps its own pool."""
    if url.startswith("sqlite") and (":memory:" in url or url.rstrip("/") in ("sqlite:", "sqlite:/")):
        return {}
    return {"pool_size": DB_POOL_SIZE}


def get_db() -> Session:
    """The request's database session (created on first use, closed at teardown)."""
    if "fabpass_db" not in g:
        g.fabpass_db = current_app.extensions["fabpass.sessionmaker"]()
    db: Session = g.fabpass_db
    return db


__all__ = ["ConfigurationError", "create_app", "get_db", "settings_from_env"]
