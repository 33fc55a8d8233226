"""`/api/v1/bookings` (contract section 6): book a machine, list, cancel.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flask import jsonify

from server import auth, services
from server.api import ApiError, bp
from server.api.support import (
    check_id,
    created,
    forbidden,
    iso,
    json_body,
    listing,
    page_args,
    path_id,
    query_int,
    query_time,
    token_scope,
)
from server.app import get_db
from server.reports.bookings import booking_usage as usage_rows
from server.services import bookings

if TYPE_CHECKING:
    from server.models import Booking


def booking_json(b: Booking) -> dict[str, Any]:
    return {"id": b.id, "machine_id": b.machine_id, "machine": b.machine.slug,
            "member_id": b.member_id, "start": iso(b.start), "end": iso(b.end),
            "training": bool(b.training), "source": b.source, "external_id": b.external_id,
            "hit_by_lock": bookings.hit_by_lock(b), "created_at": iso(b.created_at),
            "cancelled_at": iso(b.cancelled_at)}


@bp.post("/bookings")
def create_booking() -> Any:
    b = json_body(("machine_id", "member_id", "start", "end", "training", "external_id", "source"))
    machine_id = int(check_id(b.get("machine_id"), "machine_id") or 0)
    member_id = int(check_id(b.get("member_id"), "member_id") or 0)
    training = b.get("training", False)
    if not isinstance(training, bool):
        raise ApiError(400, "training must be a boolean", {"training": "true or false"})
    for key in ("start", "end"):
        if not isinstance(b.get(key), str):
            raise ApiError(400, f"{key} must be an RFC 3339 time",
                           {key: "e.g. 2026-11-22T19:20:50Z"})
    db = get_db()
    machine = services.get_machine(db, machine_id)  # 404 before 403: the id is not secret
    if not auth.can_book(db, auth.me(), machine, member_id, training):
        raise forbidden(f"machine {machine_id}")
    booking = bookings.create_booking(
        db, machine_id=machine_id, member_id=member_id, start=b["start"], end=b["end"],
        training=training, source=b.get("source") or "fabpass",
        external_id=b.get("external_id"), actor=auth.me().actor)
    db.commit()
    return created(booking_json(booking))


@bp.get("/bookings")
def list_bookings() -> Any:
    page, per_page = page_args()
    pg = bookings.list_bookings(
        get_db(), machine_id=query_int("machine_id"), member_id=query_int("member_id"),
        since=query_time("since"), until=query_time("until"), site_ids=token_scope(),
        page=page, per_page=per_page)
    return listing(pg, booking_json)


@bp.get("/bookings/usage")
def booking_usage() -> Any:
    """Booked vs used per machine: booked hours, hours used by the booker, no-shows."""
    rows = usage_rows(get_db(), since=query_time("since"), until=query_time("until"),
                      site_ids=token_scope())
    for r in rows:
        r["no_shows_by_member"] = {str(k): v for k, v in r["no_shows_by_member"].items()}
    return jsonify({"rows": rows})


@bp.get("/bookings/<id:booking_id>")
def get_booking(booking_id: int) -> Any:
    db = get_db()
    booking = bookings.get_booking(db, path_id(booking_id, "booking"))
    if not auth.can_manage_machine(auth.me(), booking.machine):
        raise forbidden(f"booking {booking.id}")
    return jsonify(booking_json(booking))


@bp.delete("/bookings/<id:booking_id>")
def delete_booking(booking_id: int) -> Any:
    db = get_db()
    booking = bookings.get_booking(db, path_id(booking_id, "booking"))
    if not auth.can_book(db, auth.me(), booking.machine, booking.member_id, booking.training):
        raise forbidden(f"booking {booking.id}")
    bookings.cancel_booking(db, booking.id, actor=auth.me().actor)
    db.commit()
    return "", 204
