"""`/api/v1/machines`.
"""

from __future__ import annotations

from typing import Any

from flask import jsonify, request
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from server import services
from server.api import ApiError, bp
from server.api.billing import current_tariff_json
from server.api.serializers import _open_sessions, machine_json
from server.api.support import (
    _actor,
    _body,
    _check_site,
    _created,
    _listing,
    _managed_machine,
    _no_nul,
    _page_args,
    _path_id,
    _scope,
)
from server.app import get_db
from server.models import (
    Machine,
)


@bp.post("/machines")
def create_machine() -> Any:
    b = _body(("slug", "name", "site", "kind", "node", "requires_authorization", "policy"))
    for key in ("slug", "name", "site"):
        if not isinstance(b.get(key), str):
            raise ApiError(400, f"{key} is required", {key: "required text"})
    for key in ("kind", "node"):
        if key in b and b[key] is not None and not isinstance(b[key], str):
            raise ApiError(400, f"{key} must be text", {key: "text"})
    db = get_db()
    _check_site(db, b["site"])
    m = services.create_machine(db, b["slug"], b["name"], b["site"], kind=b.get("kind") or "other",
                                node=b.get("node"),
                                requires_authorization=b.get("requires_authorization", True),
                                policy=b.get("policy"), actor=_actor())
    db.commit()
    return _created(machine_json(m))


@bp.get("/machines")
def list_machines() -> Any:
    page, per_page = _page_args()
    site = request.args.get("site") or None
    _no_nul(site, "site")
    db = get_db()
    pg = services.list_machines(db, site=site, page=page, per_page=per_page, site_ids=_scope())
    ids = [m.id for m in pg.items]
    if ids:  # nodes and sites in one query each
        db.scalars(select(Machine).where(Machine.id.in_(ids))
                   .options(selectinload(Machine.node), selectinload(Machine.site))).all()
    open_map = _open_sessions(db, ids)
    return _listing(pg, lambda m: machine_json(m, open_map))


@bp.get("/machines/<id:machine_id>")
def get_machine(machine_id: int) -> Any:
    m = _managed_machine(get_db(), _path_id(machine_id, "machine"))
    return jsonify({**machine_json(m), "tariff": current_tariff_json(m.id)})


@bp.patch("/machines/<id:machine_id>")
def patch_machine(machine_id: int) -> Any:
    mid = _path_id(machine_id, "machine")
    b = _body(("name", "kind", "node", "requires_authorization", "policy", "hourly_rate", "active",
               "locked", "lock_reason", "tariff"))
    db = get_db()
    _managed_machine(db, mid)
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
    m = services.update_machine(db, mid, actor=_actor(), **b)
    if locked is not None:
        m = services.set_machine_lock(db, mid, locked, reason, actor=_actor())
    if has_tariff:  # paid use: a new tariff version (server.api.billing)
        services.billing.set_tariff(db, mid, tariff, actor=_actor())
    db.commit()
    return jsonify({**machine_json(m), "tariff": current_tariff_json(mid)})
