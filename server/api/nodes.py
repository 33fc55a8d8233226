"""`/api/v1/nodes`.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from server import services
from server.api import bp
from server.api.serializers import node_json
from server.api.support import _listing, _page_args, _scope
from server.app import get_db
from server.models import (
    Node,
)


@bp.get("/nodes")
def list_nodes() -> Any:
    page, per_page = _page_args()
    db = get_db()
    pg = services.list_nodes(db, page=page, per_page=per_page, site_ids=_scope())
    ids = [n.id for n in pg.items]
    if ids:
        db.scalars(select(Node).where(Node.id.in_(ids))
                   .options(selectinload(Node.machine), selectinload(Node.site))).all()
    return _listing(pg, node_json)
