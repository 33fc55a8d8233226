"""Bookings through the API (contract section 6), on SQLite and PostgreSQL: the rules, the
scope, and what the node's access list carries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from protocol import AccessList
from server.app import get_db
from server.models import AclDirty, Node, Setting
from server.services import bookings as booking_service
from server.services.acl import compute_acl


def _ts(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat().replace("+00:00", "Z")


# One "now" for the whole module: slots computed a second apart must still just touch.
NOW = datetime.now(UTC).replace(microsecond=0)


def _slot(h0: float, h1: float) -> tuple[str, str]:
    return _ts(NOW + timedelta(hours=h0)), _ts(NOW + timedelta(hours=h1))


def _book(api: Any, seed: Any, h0: float, h1: float, member: int | None = None,
          **extra: Any) -> Any:
    start, end = _slot(h0, h1)
    machine, token = extra.pop("machine", seed.laser), extra.pop("token", None)
    return api("POST", "/bookings", {"machine_id": machine, "member_id": member or seed.alice,
                                     "start": start, "end": end, **extra}, token=token)


def _err(r: Any, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.get_data(as_text=True)
    return dict(r.get_json()["error"])


def test_create_list_conflict_cancel(api: Any, seed: Any) -> None:
    r = _book(api, seed, 1, 3)
    assert r.status_code == 201, r.get_data(as_text=True)
    b = r.get_json()
    assert b["id"] and b["machine_id"] == seed.laser and b["member_id"] == seed.alice
    assert b["start"].endswith("Z") and b["hit_by_lock"] is False
    e = _err(_book(api, seed, 2, 4, member=seed.tom), 409)  # overlaps
    assert e["code"] == "conflict"
    assert _book(api, seed, 3, 4, member=seed.tom).status_code == 201  # touching is fine
    page = api("GET", f"/bookings?machine_id={seed.laser}").get_json()
    assert set(page) == {"items", "total", "page", "per_page"} and page["total"] == 2
    assert [i["member_id"] for i in page["items"]] == [seed.alice, seed.tom]
    since, until = _slot(3.5, 10)
    page = api("GET", f"/bookings?since={since}&until={until}").get_json()
    assert [i["member_id"] for i in page["items"]] == [seed.tom]
    assert api("GET", f"/bookings?member_id={seed.alice}").get_json()["total"] == 1
    r = api("DELETE", f"/bookings/{b['id']}")
    assert r.status_code == 204 and r.get_data() == b""
    assert api("GET", f"/bookings?member_id={seed.alice}").get_json()["total"] == 0
    assert _book(api, seed, 2, 3, member=seed.alice).status_code == 201  # the slot is free again


def test_bad_input_names_the_field(api: Any, seed: Any) -> None:
    assert "end" in _err(_book(api, seed, 3, 2), 400)["fields"]
    assert "end" in _err(_book(api, seed, 2, 2), 400)["fields"]
    assert "end" in _err(_book(api, seed, -3, -1), 400)["fields"]  # over already
    assert _book(api, seed, -1, 1).status_code == 201  # started, not over: allowed
    assert "end" in _err(_book(api, seed, 5, 30), 400)["fields"]  # over the 12 h default
    e = _err(api("POST", "/bookings", {"machine_id": seed.laser, "member_id": seed.alice,
                                       "start": "tomorrow", "end": "later"}), 400)
    assert "start" in e["fields"]
    _err(_book(api, seed, 1, 2, machine=999999), 404)
    e = _err(_book(api, seed, 1, 2, member=seed.bob), 400)  # bob is not trained on the laser
    assert "member_id" in e["fields"]
    # ... unless the booking is his training (an admin/manager/trainer asks for it)
    assert _book(api, seed, 8, 9, member=seed.bob, training=True).status_code == 201


def test_manager_scope_and_lock(api: Any, seed: Any) -> None:
    _err(_book(api, seed, 1, 2, member=seed.bob, machine=seed.printer,
               token=seed.manager_token), 403)  # printer is on the other site
    r = _book(api, seed, 1, 2, token=seed.manager_token)
    assert r.status_code == 201
    booked = r.get_json()["id"]
    assert _book(api, seed, 1, 2, member=seed.bob, machine=seed.printer).status_code == 201
    listed = api("GET", "/bookings", token=seed.manager_token).get_json()
    assert [i["machine_id"] for i in listed["items"]] == [seed.laser]  # own sites only
    r = api("PATCH", f"/machines/{seed.laser}", {"locked": True, "lock_reason": "maintenance: tube"})
    assert r.status_code == 200
    e = _err(_book(api, seed, 4, 5), 409)
    assert "locked" in e["message"]
    assert api("GET", f"/bookings/{booked}").get_json()["hit_by_lock"] is True  # flagged


def test_policy_booking_is_merged(api: Any, seed: Any) -> None:
    r = api("PATCH", f"/machines/{seed.laser}", {"policy": {"mode": "present"}})
    assert r.status_code == 200
    r = api("PATCH", f"/machines/{seed.laser}", {"policy": {"booking": "required",
                                                            "booking_early_s": 600}})
    assert r.status_code == 200, r.get_data(as_text=True)
    policy = r.get_json()["policy"]
    assert policy["booking"] == "required" and policy["mode"] == "present"
    e = _err(api("PATCH", f"/machines/{seed.laser}", {"policy": {"booking": "always"}}), 400)
    assert "policy.booking" in e["fields"]


def test_access_list_carries_the_next_24_hours(api: Any, api_app: Any, seed: Any) -> None:
    app = api_app[0]
    assert _book(api, seed, -1, 1).status_code == 201
    assert _book(api, seed, 20, 22, member=seed.tom).status_code == 201
    assert _book(api, seed, 30, 31).status_code == 201  # beyond the window
    api("PATCH", f"/machines/{seed.laser}", {"policy": {"booking": "optional"}})
    with app.app_context():
        db = get_db()
        node = db.scalar(select(Node).where(Node.slug == "laser-1"))
        assert node is not None
        dirty = {d.reason for d in db.scalars(select(AclDirty).where(AclDirty.node_id == node.id))}
        assert "booking.create" in dirty
        now = datetime.now(UTC)
        acl = compute_acl(db, node, now)
        assert acl is not None
        wire = AccessList.decode(acl.encode())  # what the node reads
        assert wire.booking_mode == "optional"
        assert [(b.member, round((b.end - b.start).total_seconds())) for b in wire.bookings] == [
            (seed.alice, 7200), (seed.tom, 7200)]
        # the window moves on: the periodic job marks the node when the 30 h booking enters it
        db.execute(AclDirty.__table__.delete())
        assert booking_service.advance_window(db, now) == 1  # first run: the whole window
        db.execute(AclDirty.__table__.delete())
        assert booking_service.advance_window(db, now + timedelta(hours=1)) == 0
        assert booking_service.advance_window(db, now + timedelta(hours=7)) == 1
        assert db.get(Setting, booking_service.WINDOW_KEY) is not None
        later = compute_acl(db, node, now + timedelta(hours=7))
        assert later is not None and len(later.bookings) == 2  # alice's first slot is over
        db.commit()


def test_external_lookup_for_connectors(api: Any, api_app: Any, seed: Any) -> None:
    r = _book(api, seed, 1, 2, source="fabmanager", external_id="slot-42")
    assert r.status_code == 201
    with api_app[0].app_context():
        db = get_db()
        found = booking_service.find_external(db, "fabmanager", "slot-42")
        assert found is not None and found.id == r.get_json()["id"]
        booking_service.cancel_booking(db, found.id, actor="sync")
        db.commit()
    assert api("GET", "/bookings").get_json()["total"] == 0


def test_booked_vs_used_and_no_shows(api: Any, api_app: Any, seed: Any) -> None:
    """Alice used 1 h of her 2 h slot; Tom never came: one no-show, counted for him."""
    import uuid

    from server.models import UsageSession

    with api_app[0].app_context():
        db = get_db()
        now = datetime.now(UTC)
        t0 = now - timedelta(hours=5)
        booking_service.create_booking(db, machine_id=seed.laser, member_id=seed.alice,
                                       start=t0, end=t0 + timedelta(hours=2), actor="test",
                                       now=t0 - timedelta(minutes=1))
        booking_service.create_booking(db, machine_id=seed.laser, member_id=seed.tom,
                                       start=t0 + timedelta(hours=2),
                                       end=t0 + timedelta(hours=3), actor="test",
                                       now=t0 - timedelta(minutes=1))
        db.add(UsageSession(session_uuid=str(uuid.uuid4()), machine_id=seed.laser,
                            member_id=seed.alice, badge_uid="04A1B2C3",
                            started_at=t0 + timedelta(minutes=10),
                            ended_at=t0 + timedelta(minutes=70), duration_s=3600.0,
                            active_s=3000.0))
        db.commit()
    rows = api("GET", "/bookings/usage").get_json()["rows"]
    assert rows == [{"machine": "laser-1", "bookings": 2, "booked_hours": 3.0,
                     "used_hours": 1.0, "no_shows": 1,
                     "no_shows_by_member": {str(seed.tom): 1}}]
    assert api("GET", "/bookings/usage", token=seed.manager_token).get_json()["rows"][0][
        "no_shows"] == 1


def test_who_may_book(api_app: Any, seed: Any) -> None:
    """Managers of the site and trainers of the machine book for anyone; a member books for
    themself only where the machine's policy has `booking_self`; training bookings need the
    grant right."""
    from server import auth, services

    with api_app[0].app_context():
        db = get_db()
        laser, printer = services.get_machine(db, seed.laser), services.get_machine(db, seed.printer)
        manager = auth.Principal(id=1, email="m", role=auth.MANAGER, site_ids=frozenset({seed.lab}))
        trainer = auth.Principal(id=2, email="t", role=auth.TRAINER, member_id=seed.tom)
        bob_login = auth.Principal(id=3, email="b", role=auth.TRAINER, member_id=seed.bob)
        assert auth.can_book(db, manager, laser, seed.bob, training=True)
        assert not auth.can_book(db, manager, printer, seed.bob)
        assert auth.can_book(db, trainer, laser, seed.alice, training=True)
        assert not auth.can_book(db, bob_login, printer, seed.bob)  # booking_self is off
        services.update_machine(db, seed.printer, policy={"booking_self": True}, actor="test")
        assert auth.can_book(db, bob_login, printer, seed.bob)
        assert not auth.can_book(db, bob_login, printer, seed.alice)  # only for himself
        assert not auth.can_book(db, bob_login, printer, seed.bob, training=True)
        db.rollback()
