"""`/api/v1/machines`.
"""

from __future__ import annotations

from typing import Any

from flask import jsonify, request

from server import auth, services
from server.api import ApiError, bp
from server.api.billing import current_tariff_json
from server.api.serializers import machine_json
from server.api.support import (
    actor,
    check_site,
    created,
    forbidden,
    json_body,
    listing,
    managed_machine,
    no_nul,
    page_args,
    path_id,
)
from server.app import get_db


@bp.post("/machines")
def create_machine() -> Any:
    b = json_body(("slug", "name", "site", "kind", "node", "requires_authorization", "policy"))
    for key in ("slug", "name", "site"):
        if not isinstance(b.get(key), str):
            raise ApiError(400, f"{key} is required", {key: "required text"})
    for key in ("kind", "node"):
        if key in b and b[key] is not None and not isinstance(b[key], str):
            raise ApiError(400, f"{key} must be text", {key: "text"})
    db = get_db()
    check_site(db, b["site"])
    m = services.create_machine(db, b["slug"], b["name"], b["site"], kind=b.get("kind") or "other",
                                node=b.get("node"),
                                requires_authorization=b.get("requires_authorization", True),
                                policy=b.get("policy"), actor=actor())
    db.commit()
    return created(machine_json(m))


@bp.get("/machines")
def list_machines() -> Any:
    page, per_page = page_args()
    site = request.args.get("site") or None
    no_nul(site, "site")
    db = get_db()
    pg = services.list_machines(db, site=site, page=page, per_page=per_page,
                                site_ids=auth.read_sites(auth.me()))
    open_map = services.open_sessions_by_machine(db, [m.id for m in pg.items])
    return listing(pg, lambda m: machine_json(m, open_map))


@bp.get("/machines/<id:machine_id>")
def get_machine(machine_id: int) -> Any:
    m = services.get_machine(get_db(), path_id(machine_id, "machine"))
    if not auth.can_read_site(auth.me(), m.site_id):
        raise forbidden(f"machine {m.id}")
    return jsonify({**machine_json(m), "tariff": current_tariff_json(m.id)})


@bp.patch("/machines/<id:machine_id>")
def patch_machine(machine_id: int) -> Any:
    mid = path_id(machine_id, "machine")
    b = json_body(("name", "kind", "node", "requires_authorization", "policy", "hourly_rate", "active",
               "locked", "lock_reason", "tariff"))
    db = get_db()
    managed_machine(db, mid)
    if "node" in b and b["node"] is not None and not isinstance(b["node"], str):
        raise ApiError(400, "node must be a slug or null", {"node": "a node slug or null"})
    if "kind" in b and not isinstance(b["kind"], str):
        raise ApiError(400, "kind must be text", {"kind": "text"})
    locked = b.pop("locked", None)
    reason = b.pop("lock_reason", None)
    if locked is not None and not isinstance(locked, bool):
        raise ApiError(400, "locked must be a boolean", {"locked": "true or false"})
    if reason is not None and not isinstance(reason, str):
        raise ApiError(400, "lock_reason must be text", {"lock_reason": "text"})
    has_tariff, tariff = "tariff" in b, b.pop("tariff", None)
    m = services.update_machine(db, mid, actor=actor(), **b)
    if locked is not None:
        m = services.set_machine_lock(db, mid, locked, reason, actor=actor())
    if has_tariff:  # paid use: a new tariff version (server.api.billing)
        services.billing.set_tariff(db, mid, tariff, actor=actor())
    db.commit()
    return jsonify({**machine_json(m), "tariff": current_tariff_json(mid)})
