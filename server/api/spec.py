"""`GET /api/v1/openapi.json`: the OpenAPI document (`server.api.openapi`).
"""

from __future__ import annotations

from flask import Response, jsonify

from server.api import bp
from server.api.openapi import document


@bp.get("/openapi.json")
def openapi() -> Response:
    return jsonify(document())
