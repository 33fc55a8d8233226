"""Paid use over the API (contract section 6): top-ups, balances, charges, waivers.

The tariff itself is set with `PATCH /machines/{id}` (`server.api.machines` hands the
`tariff` key to `services.billing.set_tariff`); `GET /machines/{id}/tariffs` lists its versions.
Scope: top-ups and balances are the member's (`can_manage_member`), charges are read like
sessions (machines of the token's sites) and changed by those who manage the machine.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flask import jsonify

from server import auth, services
from server.api import ApiError, bp
from server.api.support import (
    actor,
    created,
    forbidden,
    iso,
    json_body,
    listing,
    managed_machine,
    managed_member,
    page_args,
    path_id,
    query_int,
    query_time,
    token_scope,
)
from server.app import get_db

if TYPE_CHECKING:
    from server.models import Charge, Tariff, TopUp


def tariff_json(t: Tariff | None) -> dict[str, Any] | None:
    """A version as set (`spec` fields flat, as in the request), with its number and start."""
    if t is None:
        return None
    return {"version": t.version, "valid_from": iso(t.valid_from),
            **({"free": True} if t.spec is None else dict(t.spec))}


def charge_json(c: Charge) -> dict[str, Any]:
    return {"id": c.id, "session": c.session.session_uuid,
            "machine": c.machine.slug if c.machine else None, "member": c.member_id,
            "amount_cents": c.amount_cents, "minutes_billed": c.minutes_billed,
            "tariff_version": c.tariff_version, "computed_cents": c.computed_cents,
            "category": c.category, "free": c.free_reason, "override": c.override,
            "reason": c.reason, "started": iso(c.started_at)}


def topup_json(t: TopUp) -> dict[str, Any]:
    return {"id": t.id, "member": t.member_id, "amount_cents": t.amount_cents,
            "method": t.method, "reference": t.reference, "at": iso(t.at)}


def current_tariff_json(machine_id: int) -> dict[str, Any] | None:
    return tariff_json(services.billing.current_tariff(get_db(), machine_id))


@bp.get("/machines/<id:machine_id>/tariffs")
def list_tariffs(machine_id: int) -> Any:
    db = get_db()
    m = managed_machine(db, path_id(machine_id, "machine"))
    versions = services.billing.tariff_versions(db, m.id)
    return jsonify({"items": [tariff_json(t) for t in versions], "total": len(versions),
                    "page": 1, "per_page": max(len(versions), 1)})


@bp.post("/members/<id:member_id>/topups")
def create_topup(member_id: int) -> Any:
    b = json_body(("amount_cents", "method", "reference"))
    db = get_db()
    m = managed_member(db, path_id(member_id, "member"))
    row = services.billing.add_topup(db, m.id, b.get("amount_cents"), b.get("method"),
                                     b.get("reference"), actor=actor())
    db.commit()
    return created(topup_json(row))


@bp.get("/members/<id:member_id>/balance")
def member_balance(member_id: int) -> Any:
    db = get_db()
    m = managed_member(db, path_id(member_id, "member"))
    return jsonify(services.billing.balance(db, m.id))


@bp.get("/charges")
def list_charges() -> Any:
    page, per_page = page_args()
    pg = services.billing.list_charges(
        get_db(), member_id=query_int("member_id"), machine_id=query_int("machine_id"),
        since=query_time("since"), until=query_time("until"), page=page, per_page=per_page,
        site_ids=token_scope())
    return listing(pg, charge_json)


@bp.post("/charges/<id:charge_id>/adjust")
def adjust_charge(charge_id: int) -> Any:
    """`{"reason", "waive"?: true}` or `{"reason", "amount_cents"}`; neither: back to the tariff."""
    b = json_body(("reason", "waive", "amount_cents"))
    db = get_db()
    charge = services.billing.get_charge(db, path_id(charge_id, "charge"))
    if charge.machine is None or not auth.can_manage_machine(auth.me(), charge.machine):
        raise forbidden(f"charge {charge.id}")
    waive = b.get("waive", False)
    if not isinstance(waive, bool):
        raise ApiError(400, "waive must be a boolean", {"waive": "true or false"})
    charge = services.billing.adjust_charge(db, charge.id, reason=b.get("reason"), waive=waive,
                                            amount_cents=b.get("amount_cents"), actor=actor())
    db.commit()
    return jsonify(charge_json(charge))


__all__ = ["charge_json", "current_tariff_json", "tariff_json", "topup_json"]
