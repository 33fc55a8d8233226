"""REST API v1 (contract section 3): JSON in and out, Bearer tokens, contract error bodies.

Every error under /api/ is JSON `{"error": {"code", "message", "fields"}}` — also 404/405
from routing and 400 from malformed bodies — never HTML, never a 500 on bad input.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException

from server.db import UniqueViolation
from server.errors import ServerError

log = logging.getLogger(__name__)

bp = Blueprint("api", __name__, url_prefix="/api/v1")

HTTP_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
              405: "method_not_allowed", 409: "conflict", 413: "too_large",
              415: "unsupported_media_type", 429: "too_many_requests", 501: "not_implemented"}
STATUS_OF = {"not_found": 404, "conflict": 409, "forbidden": 403, "invalid": 400,
             "database": 503, "mqtt": 503, "configuration": 500}


class ApiError(ServerError):
    """An error answered as-is: HTTP status, contract code, message, fields."""

    def __init__(self, status: int, message: str, fields: dict[str, str] | None = None,
                 code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code or HTTP_CODES.get(status, "error")
        self.fields = dict(fields or {})


def error_response(status: int, code: str, message: str,
                   fields: dict[str, str] | None = None) -> Response:
    resp = jsonify({"error": {"code": code, "message": message, "fields": fields or {}}})
    resp.status_code = status
    if status == 401:
        resp.headers["WWW-Authenticate"] = 'Bearer realm="fabpass"'
    return resp


def json_http_error(e: HTTPException) -> Response:
    status = e.code or 500
    message = {404: "no such resource", 405: "method not allowed here"}.get(status) or (
        e.description or "error")
    resp = error_response(status, HTTP_CODES.get(status, "error"), message)
    if status == 405 and hasattr(e, "valid_methods") and e.valid_methods:
        resp.headers["Allow"] = ", ".join(e.valid_methods)
    return resp


@bp.errorhandler(ServerError)
def _server_error(e: ServerError) -> Response:
    from server.app import get_db

    get_db().rollback()
    if isinstance(e, ApiError):
        return error_response(e.status, e.code, e.message, e.fields)
    return error_response(STATUS_OF.get(e.code, 400), e.code, e.message,
                          getattr(e, "fields", None))

@bp.errorhandler(UniqueViolation)
def _integrity(_e: UniqueViolation) -> Response:
    """Two requests racing for the same unique value: the loser gets a 409, not a 500."""
    from server.app import get_db

    get_db().rollback()
    return error_response(409, "conflict", "this conflicts with an existing record")


@bp.errorhandler(Exception)
def _unexpected(e: Exception) -> Any:
    if isinstance(e, HTTPException):
        return json_http_error(e)
    log.exception("API error on %s %s", request.method, request.path)
    return error_response(500, "internal", "internal error")


# The resource modules: each registers its routes on `bp` when imported. A new resource is one
# new module `server/api/<resource>.py` (routes over services, serializers beside them) and one
# entry here.
RESOURCES = (
    "server.api.spec",
    "server.api.sites",
    "server.api.members",
    "server.api.machines",
    "server.api.authorizations",
    "server.api.sessions",
    "server.api.refusals",
    "server.api.nodes",
    "server.api.reports",
    "server.api.bookings",
    "server.api.billing",
    "server.api.webhooks",
    "server.api.integrations",
)


def init_app(app: Flask) -> None:
    import importlib

    from server.web import register_converters

    importlib.import_module("server.api.support")  # authentication (before_request)
    for name in RESOURCES:
        importlib.import_module(name)

    register_converters(app)

    app.register_blueprint(bp)
    csrf = app.extensions.get("csrf")
    if csrf is not None:
        csrf.exempt(bp)  # token auth, no cookies: CSRF does not apply


__all__ = ["RESOURCES", "ApiError", "bp", "error_response", "init_app", "json_http_error"]
