"""`/api/v1/sites`.
"""

from __future__ import annotations

from typing import Any

from flask import jsonify

from server import services
from server.api import bp
from server.api.serializers import site_json
from server.api.support import actor, created, json_body, require_admin
from server.app import get_db


@bp.post("/sites")
def create_site() -> Any:
    require_admin()
    b = json_body(("slug", "name", "timezone"))
    site = services.create_site(get_db(), b.get("slug"), b.get("name"),  # type: ignore[arg-type]
                                b.get("timezone"), actor=actor())
    get_db().commit()
    return created(site_json(site))


@bp.get("/sites")
def list_sites() -> Any:
    sites = services.list_sites(get_db())
    return jsonify({"items": [site_json(s) for s in sites], "total": len(sites), "page": 1,
                    "per_page": max(len(sites), 1)})
