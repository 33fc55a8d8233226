"""`/api/v1/nodes`.
"""

from __future__ import annotations

from typing import Any

from server import auth, services
from server.api import bp
from server.api.serializers import node_json
from server.api.support import listing, page_args
from server.app import get_db


@bp.get("/nodes")
def list_nodes() -> Any:
    page, per_page = page_args()
    pg = services.list_nodes(get_db(), page=page, per_page=per_page,
                             site_ids=auth.read_sites(auth.me()))
    return listing(pg, node_json)
