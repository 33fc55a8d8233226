"""`/api/v1/sessions`.
"""

from __future__ import annotations

from typing import Any

from server import auth, services
from server.api import bp
from server.api.serializers import session_json
from server.api.support import listing, page_args, query_int, query_time
from server.app import get_db


@bp.get("/sessions")
def list_sessions() -> Any:
    page, per_page = page_args()
    since, until = query_time("since"), query_time("until")
    pg = services.list_sessions(get_db(), machine_id=query_int("machine_id"),
                                member_id=query_int("member_id"), since=since, until=until,
                                page=page, per_page=per_page,
                                site_ids=auth.read_sites(auth.me()))
    return listing(pg, session_json)
