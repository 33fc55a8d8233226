"""Paid use over the REST API (contract section 6), on SQLite and PostgreSQL: tariffs through
`PATCH /machines/{id}`, top-ups, balances, the charges list, waivers, scope and bad input."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from server.app import get_db
from server.models import UsageSession
from server.services.billing import month_start


def _err(r: Any, status: int, field: str | None = None) -> dict[str, Any]:
    assert r.status_code == status, r.get_data(as_text=True)
    body = r.get_json()["error"]
    if field is not None:
        assert field in body["fields"], body
    return dict(body)


def _v1_from() -> datetime:
    """A little in the past, but in this month (earlier months are closed)."""
    now = datetime.now(UTC).replace(microsecond=0)
    return max(now - timedelta(minutes=10), month_start(now, "Europe/Paris"))


def _closed_session(app: Any, machine: int, member: int, minutes: float,
                    start: datetime | None = None) -> str:
    sid = str(uuid.uuid4())
    start = start or datetime.now(UTC) + timedelta(seconds=1)
    with app.app_context():
        db = get_db()
        db.add(UsageSession(session_uuid=sid, machine_id=machine, member_id=member,
                            badge_uid="04A1B2C3", started_at=start,
                            ended_at=start + timedelta(minutes=minutes),
                            duration_s=minutes * 60, active_s=minutes * 60, end_reason="badge_out"))
        db.commit()
    return sid


def test_tariff_topup_balance_charges(api: Any, seed: Any, api_app: Any) -> None:
    v1_from = _v1_from()
    r = api("PATCH", f"/machines/{seed.laser}", {"tariff": {
        "valid_from": v1_from.strftime("%Y-%m-%dT%H:%M:%SZ"), "per_minute_cents": 20, "round_minutes": 5, "session_cents": 50, "min_balance_cents": 200,
        "categories": {"student": {"per_minute_cents": 10}}}})
    assert r.status_code == 200, r.get_data(as_text=True)
    tariff = r.get_json()["tariff"]
    assert tariff["version"] == 1 and tariff["per_minute_cents"] == 20
    assert api("GET", f"/machines/{seed.laser}").get_json()["tariff"]["round_minutes"] == 5
    r = api("POST", f"/members/{seed.alice}/topups",
            {"amount_cents": 1000, "method": "HelloAsso", "reference": "HA-2026-17"})
    assert r.status_code == 201 and r.get_json()["id"] and r.get_json()["method"] == "HelloAsso"
    sid = _closed_session(api_app[0], seed.laser, seed.alice, 11,  # 3 blocks of 5 min
                          start=v1_from + timedelta(seconds=1))
    assert api("GET", f"/members/{seed.alice}/balance").get_json() == {
        "balance_cents": 1000 - 350, "topups_cents": 1000, "charges_cents": 350}
    body = api("GET", f"/charges?member_id={seed.alice}").get_json()
    assert set(body) == {"items", "total", "page", "per_page"} and body["total"] == 1
    item = body["items"][0]
    assert {k: item[k] for k in ("session", "machine", "member", "amount_cents",
                                 "minutes_billed", "tariff_version")} == {
        "session": sid, "machine": "laser-1", "member": seed.alice, "amount_cents": 350,
        "minutes_billed": 15, "tariff_version": 1}
    since = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert api("GET", f"/charges?since={since}").get_json()["total"] == 0
    r = api("POST", f"/charges/{item['id']}/adjust", {"waive": True, "reason": "laser fault"})
    assert r.status_code == 200 and r.get_json()["amount_cents"] == 0
    assert api("GET", f"/members/{seed.alice}/balance").get_json()["balance_cents"] == 1000
    # a new version: the past charge keeps version 1
    r = api("PATCH", f"/machines/{seed.laser}", {"tariff": {"per_minute_cents": 99}})
    assert r.get_json()["tariff"]["version"] == 2
    versions = api("GET", f"/machines/{seed.laser}/tariffs").get_json()["items"]
    assert [v["version"] for v in versions] == [1, 2]
    assert api("GET", "/charges").get_json()["items"][0]["tariff_version"] == 1
    r = api("PATCH", f"/machines/{seed.laser}", {"tariff": None})
    assert r.get_json()["tariff"] == {"version": 3, "valid_from": r.get_json()["tariff"][
        "valid_from"], "free": True}


def test_bad_input_names_the_field(api: Any, seed: Any) -> None:
    m = f"/machines/{seed.laser}"
    _err(api("PATCH", m, {"tariff": {"per_minute_cents": -5}}), 400, "tariff.per_minute_cents")
    _err(api("PATCH", m, {"tariff": {"session_cents": 2.5}}), 400, "tariff.session_cents")
    _err(api("PATCH", m, {"tariff": {"round_minutes": 0}}), 400, "tariff.round_minutes")
    _err(api("PATCH", m, {"tariff": {"valid_from": "2020-01-01T00:00:00Z"}}), 400,
         "tariff.valid_from")
    _err(api("PATCH", m, {"tariff": {"categories": {"student": {"minimum_cents": -1}}}}), 400,
         "tariff.categories.student.minimum_cents")
    _err(api("PATCH", m, {"tariff": "cheap"}), 400, "tariff")
    assert api("GET", f"/machines/{seed.laser}/tariffs").get_json()["total"] == 0
    t = f"/members/{seed.alice}/topups"
    _err(api("POST", t, {"amount_cents": 0, "method": "cash"}), 400, "amount_cents")
    _err(api("POST", t, {"amount_cents": 10.5, "method": "cash"}), 400, "amount_cents")
    _err(api("POST", t, {"amount_cents": 100, "method": "bitcoin"}), 400, "method")
    _err(api("POST", t, {"amount_cents": 100, "method": "cash", "tip": 1}), 400, "tip")
    _err(api("POST", "/members/999999/topups", {"amount_cents": 100, "method": "cash"}), 404)


def test_scope_of_a_manager_token(api: Any, seed: Any, api_app: Any) -> None:
    tok = seed.manager_token  # manages "lab"; bob is homed at "other", the printer is there
    _err(api("POST", f"/members/{seed.bob}/topups", {"amount_cents": 100, "method": "cash"},
             token=tok), 403)
    _err(api("GET", f"/members/{seed.bob}/balance", token=tok), 403)
    _err(api("PATCH", f"/machines/{seed.printer}", {"tariff": {"per_minute_cents": 1}},
             token=tok), 403)
    api("PATCH", f"/machines/{seed.printer}", {"tariff": {"per_minute_cents": 1}})
    _closed_session(api_app[0], seed.printer, seed.bob, 3)
    assert api("GET", "/charges").get_json()["total"] == 1
    assert api("GET", "/charges", token=tok).get_json()["total"] == 0
    charge = api("GET", "/charges").get_json()["items"][0]["id"]
    _err(api("POST", f"/charges/{charge}/adjust", {"waive": True, "reason": "x"}, token=tok), 403)
