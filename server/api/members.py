"""`/api/v1/members` and `/api/v1/badges`: members and their badges.
"""

from __future__ import annotations

from typing import Any

from flask import jsonify, request

from server import auth, services
from server.api import ApiError, bp
from server.api.serializers import badge_json, member_json
from server.api.support import (
    actor,
    check_site,
    created,
    forbidden,
    json_body,
    listing,
    managed_member,
    no_nul,
    page_args,
    path_id,
)
from server.app import get_db


@bp.post("/members")
def create_member() -> Any:
    b = json_body(("name", "email", "member_no", "site", "tags", "active_until"))
    db = get_db()
    site = _site_arg(b.get("site"))
    check_site(db, site)
    m = services.create_member(db, b.get("name"), email=b.get("email"),  # type: ignore[arg-type]
                               member_no=b.get("member_no"), site=site,
                               tags=b.get("tags"), active_until=b.get("active_until"),
                               actor=actor())
    db.commit()
    return created(member_json(m))


def _site_arg(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ApiError(400, "site must be a slug", {"site": "a site slug"})
    return value


@bp.get("/members")
def list_members() -> Any:
    page, per_page = page_args()
    active_raw = request.args.get("active")
    active = None if active_raw in (None, "") else active_raw.lower() in ("1", "true", "yes")
    q = request.args.get("q") or None
    site = request.args.get("site") or None
    no_nul(q, "q")
    no_nul(site, "site")
    # the member base is shared: every member is listed; e-mails only where the token may
    # contact (and matched by `q` only there)
    p = auth.me()
    pg = services.list_members(get_db(), q=q, active=active, site=site, page=page,
                               per_page=per_page, contact_site_ids=auth.contact_sites(p))
    return listing(pg, lambda m: member_json(m, auth.can_read_contact(p, m)))


@bp.get("/members/<id:member_id>")
def get_member(member_id: int) -> Any:
    m = services.get_member(get_db(), path_id(member_id, "member"))
    return jsonify(member_json(m, auth.can_read_contact(auth.me(), m)))


@bp.patch("/members/<id:member_id>")
def patch_member(member_id: int) -> Any:
    mid = path_id(member_id, "member")
    b = json_body(("name", "email", "member_no", "site", "tags", "active_until", "active"))
    db = get_db()
    managed_member(db, mid)
    if "site" in b:
        b["site"] = _site_arg(b["site"])
        check_site(db, b["site"])
    m = services.update_member(db, mid, actor=actor(), **b)
    db.commit()
    return jsonify(member_json(m))


@bp.delete("/members/<id:member_id>")
def delete_member(member_id: int) -> Any:
    db = get_db()
    mid = path_id(member_id, "member")
    managed_member(db, mid)
    services.deactivate_member(db, mid, actor=actor())
    db.commit()
    return "", 204


@bp.post("/members/<id:member_id>/badges")
def add_badge(member_id: int) -> Any:
    mid = path_id(member_id, "member")
    b = json_body(("uid",))
    if not isinstance(b.get("uid"), str):
        raise ApiError(400, "uid is required", {"uid": "8, 14 or 20 hex digits"})
    db = get_db()
    managed_member(db, mid)
    badge = services.enrol_badge(db, mid, b["uid"], actor=actor())
    db.commit()
    return created(badge_json(badge) | {"id": badge.id})


@bp.patch("/badges/<uid>")
def patch_badge(uid: str) -> Any:
    no_nul(uid, "uid")
    b = json_body(("status",))
    if not isinstance(b.get("status"), str):
        raise ApiError(400, "status is required", {"status": "active, lost or inactive"})
    db = get_db()
    if not auth.can_edit_member(auth.me(), services.get_badge(db, uid).member):
        raise forbidden(f"badge {uid}")
    badge = services.set_badge_status(db, uid, b["status"], actor=actor())
    db.commit()
    return jsonify(badge_json(badge) | {"id": badge.id})
