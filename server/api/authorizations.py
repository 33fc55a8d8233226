"""`/api/v1/authorizations`: trainings granted and revoked.
"""

from __future__ import annotations

from typing import Any

from flask import jsonify, request

from server import auth, services
from server.api import ApiError, bp
from server.api.serializers import authorization_json
from server.api.support import (
    actor,
    check_id,
    created,
    forbidden,
    json_body,
    listing,
    managed_authorization,
    no_nul,
    page_args,
    path_id,
    query_int,
)
from server.app import get_db


@bp.post("/authorizations")
def create_authorization() -> Any:
    b = json_body(("member_id", "machine_id", "group_id", "role", "expires_at"))
    member_id = check_id(b.get("member_id"), "member_id")
    machine_id = check_id(b.get("machine_id"), "machine_id", required=False)
    group_id = check_id(b.get("group_id"), "group_id", required=False)
    role = b.get("role", "user")
    if not isinstance(role, str):
        raise ApiError(400, "role must be user or trainer", {"role": "user or trainer"})
    expires = b.get("expires_at")
    if expires is not None and not isinstance(expires, str):
        raise ApiError(400, "expires_at must be an RFC 3339 time", {"expires_at": "RFC 3339"})
    db = get_db()
    p = auth.me()
    if not p.is_admin:  # the machine or every machine of the group, for any member
        if machine_id is not None and group_id is None and not auth.can_grant_machine(
                db, p, services.get_machine(db, machine_id)):
            raise forbidden(f"machine {machine_id}")
        if group_id is not None and machine_id is None and not auth.can_grant_group(
                db, p, list(services.get_group(db, group_id).machines)):
            raise forbidden(f"group {group_id}")
    a = services.grant(db, int(member_id or 0), machine_id=machine_id, group_id=group_id,
                       role=role, expires_at=expires, via="api", actor=p.actor)
    db.commit()
    return created(authorization_json(a))


@bp.get("/authorizations")
def list_authorizations() -> Any:
    page, per_page = page_args()
    member_id = query_int("member_id")
    machine_id = query_int("machine_id")
    valid = (request.args.get("valid") or "").lower() in ("1", "true", "yes")
    # every member's trainings are readable (contract section 6): no site filter
    pg = services.list_authorizations(get_db(), member_id=member_id, machine_id=machine_id,
                                      valid_only=valid, page=page, per_page=per_page)
    return listing(pg, authorization_json)


@bp.get("/authorizations/<id:authorization_id>")
def get_authorization(authorization_id: int) -> Any:
    a = services.get_authorization(get_db(), path_id(authorization_id, "authorization"))
    return jsonify(authorization_json(a))


@bp.delete("/authorizations/<id:authorization_id>")
def delete_authorization(authorization_id: int) -> Any:
    aid = path_id(authorization_id, "authorization")
    reason = request.args.get("reason") or None
    no_nul(reason, "reason")
    db = get_db()
    managed_authorization(db, aid)
    services.revoke(db, aid, reason=reason[:500] if reason else None, actor=actor())
    db.commit()
    return "", 204
