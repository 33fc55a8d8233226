"""`/api/v1/refusals`: refused badges with the server's explanation (contract 6).

Scoped like sessions: a manager token sees refusals on machines of its sites.
"""

from __future__ import annotations

from typing import Any

from server import auth
from server.api import bp
from server.api.openapi import ID, PATHS, SCHEMAS, TIME, _errors, _list, _page_params, _q
from server.api.support import iso, listing, page_args, query_int, query_time
from server.app import get_db
from server.services import refusals as refusal_service

SCHEMAS["Refusal"] = {
    "type": "object", "required": ["id", "at", "machine", "member", "uid", "node_reason", "reason"],
    "properties": {
        "id": ID, "at": TIME, "machine": {"type": ["string", "null"]},
        "member": {"type": ["integer", "null"]}, "uid": {"type": "string"},
        "node_reason": {"type": "string"},
        "reason": {"type": "string", "description": "the node's reason, or for unknown_badge on "
                   "a known UID: not_authorized, expired, revoked, badge_lost, badge_inactive or "
                   "member_inactive"}}}
PATHS["/refusals"] = {
    "get": {"summary": "Refused badges, explained by the server at receive time", "parameters": [
        _q("member_id", ID), _q("machine_id", ID), _q("since", TIME), _q("until", TIME),
        *_page_params()], "responses": {**_list("Refusal"), **_errors()}},
}


def refusal_json(r: Any) -> dict[str, Any]:
    return {"id": r.id, "at": iso(r.at), "machine": r.machine.slug if r.machine else None,
            "member": r.member_id, "uid": r.uid, "node_reason": r.node_reason, "reason": r.reason}


@bp.get("/refusals")
def list_refusals() -> Any:
    page, per_page = page_args()
    pg = refusal_service.list_refusals(
        get_db(), member_id=query_int("member_id"), machine_id=query_int("machine_id"),
        since=query_time("since"), until=query_time("until"), page=page, per_page=per_page,
        site_ids=auth.read_sites(auth.me()))
    return listing(pg, refusal_json)
