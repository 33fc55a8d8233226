"""REST API v1 against contract section 3, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from server.app import get_db
from server.models import AclDirty, UsageSession


def _err(r: Any, status: int, code: str | None = None) -> dict[str, Any]:
    assert r.status_code == status, r.get_data(as_text=True)
    assert r.is_json, r.get_data(as_text=True)
    body = r.get_json()["error"]
    assert set(body) == {"code", "message", "fields"}
    if code:
        assert body["code"] == code
    return dict(body)


def test_token_required(api: Any) -> None:
    r = api.client.get("/api/v1/members")
    _err(r, 401, "unauthorized")
    _err(api("GET", "/members", token="fp_not-a-token"), 401)
    assert api.client.get("/api/v1/openapi.json").status_code == 200  # the document is public


def test_sites(api: Any, seed: Any) -> None:
    r = api("POST", "/sites", {"slug": "amiens", "name": "Amiens", "timezone": "Europe/Paris"})
    assert r.status_code == 201 and r.get_json()["slug"] == "amiens" and r.get_json()["id"]
    _err(api("POST", "/sites", {"slug": "amiens", "name": "Again"}), 409, "conflict")
    e = _err(api("POST", "/sites", {"slug": "Bad Slug", "name": "x"}), 400, "invalid")
    assert "slug" in e["fields"]
    _err(api("POST", "/sites", {"slug": "zone", "name": "x", "timezone": "Mars/Base"}), 400)
    _err(api("POST", "/sites", {"slug": "mgr", "name": "x"}, token=seed.manager_token), 403)


def test_members_lifecycle(api: Any, seed: Any) -> None:
    r = api("POST", "/members", {"name": "Zoé Petit", "email": "zoe@example.org",
                                 "member_no": "M-7", "site": "lab", "tags": ["student"]})
    assert r.status_code == 201, r.get_data(as_text=True)
    m = r.get_json()
    assert m["id"] and m["site"] == "lab" and m["tags"] == ["student"] and m["active"] is True
    _err(api("POST", "/members", {"name": "X", "site": "nowhere"}), 400)
    _err(api("POST", "/members", {"email": "x@example.org"}), 400)
    _err(api("POST", "/members", {"name": "X", "bogus": 1}), 400)
    _err(api("POST", "/members", ["not", "an", "object"]), 400)
    r = api("PATCH", f"/members/{m['id']}", {"name": "Zoé P.", "tags": "a, b"})
    assert r.status_code == 200 and r.get_json()["name"] == "Zoé P."
    assert r.get_json()["tags"] == ["a", "b"]
    assert api("GET", f"/members/{m['id']}").get_json()["email"] == "zoe@example.org"
    _err(api("GET", "/members/999999"), 404, "not_found")
    _err(api("GET", "/members/99999999999999999999"), 404)
    r = api("DELETE", f"/members/{m['id']}")
    assert r.status_code == 204 and r.get_data() == b""
    assert api("GET", f"/members/{m['id']}").get_json()["active"] is False  # kept
    page = api("GET", "/members?per_page=2&page=1").get_json()
    assert set(page) == {"items", "total", "page", "per_page"}
    assert page["per_page"] == 2 and len(page["items"]) == 2 and page["total"] == 4
    _err(api("GET", "/members?per_page=501"), 400)
    _err(api("GET", "/members?page=0"), 400)
    _err(api("GET", "/members?page=abc"), 400)
    found = api("GET", "/members?q=04a1b2").get_json()["items"]
    assert [x["name"] for x in found] == ["Alice Martin"]


def test_badges(api: Any, seed: Any) -> None:
    r = api("POST", f"/members/{seed.bob}/badges", {"uid": "04:aa:bb:cc"})
    assert r.status_code == 201 and r.get_json()["uid"] == "04AABBCC" and r.get_json()["id"]
    _err(api("POST", f"/members/{seed.alice}/badges", {"uid": "04AABBCC"}), 409, "conflict")
    e = _err(api("POST", f"/members/{seed.bob}/badges", {"uid": "xyz"}), 400)
    assert "uid" in e["fields"]
    _err(api("POST", "/members/999999/badges", {"uid": "04AABBCD"}), 404)
    r = api("PATCH", "/badges/04-AA-BB-CC", {"status": "lost"})
    assert r.status_code == 200 and r.get_json()["status"] == "lost"
    _err(api("PATCH", "/badges/04AABBCC", {"status": "stolen"}), 400)
    _err(api("PATCH", "/badges/04999999", {"status": "lost"}), 404)


def test_machines(api: Any, seed: Any) -> None:
    r = api("POST", "/machines", {"slug": "cnc-1", "name": "CNC", "site": "lab", "kind": "cnc",
                                  "node": "cnc-node", "policy": {"mode": "tap",
                                                                 "max_session_s": 3600}})
    assert r.status_code == 201, r.get_data(as_text=True)
    m = r.get_json()
    assert m["node"] == "cnc-node" and m["requires_authorization"] is True
    assert m["status"]["state"] == "offline"
    _err(api("POST", "/machines", {"slug": "cnc-1", "name": "CNC", "site": "lab"}), 409)
    e = _err(api("POST", "/machines", {"slug": "cnc-2", "name": "CNC", "site": "lab",
                                       "policy": {"mode": "sideways"}}), 400)
    assert "policy.mode" in e["fields"]
    _err(api("POST", "/machines", {"slug": "cnc-3", "name": "CNC", "site": "lab",
                                   "kind": "spaceship"}), 400)
    r = api("PATCH", f"/machines/{m['id']}", {"locked": True, "lock_reason": "broken belt"})
    assert r.status_code == 200 and r.get_json()["locked"] is True
    assert r.get_json()["status"]["state"] == "locked"
    listing = api("GET", "/machines").get_json()
    assert listing["total"] == 3 and all("status" in x for x in listing["items"])
    laser = api("GET", f"/machines/{seed.laser}").get_json()
    assert laser["status"]["online"] is True and laser["status"]["state"] == "idle"


def test_authorizations(api: Any, api_app: Any, seed: Any) -> None:
    app = api_app[0]
    with app.app_context():
        before = len(get_db().scalars(select(AclDirty)).all())
    expires = (datetime.now(UTC) + timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    r = api("POST", "/authorizations", {"member_id": seed.bob, "machine_id": seed.laser,
                                        "role": "user", "expires_at": expires})
    assert r.status_code == 201, r.get_data(as_text=True)
    a = r.get_json()
    assert a["id"] and a["valid"] is True and a["expires_at"].startswith(expires[:19])
    with app.app_context():  # the laser's node list is queued for republishing
        assert len(get_db().scalars(select(AclDirty)).all()) > before
    _err(api("POST", "/authorizations", {"member_id": seed.bob, "machine_id": seed.laser}), 409)
    _err(api("POST", "/authorizations", {"member_id": seed.bob}), 400)
    _err(api("POST", "/authorizations", {"member_id": "1", "machine_id": seed.laser}), 400)
    _err(api("POST", "/authorizations", {"member_id": 999999, "machine_id": seed.laser}), 404)
    _err(api("POST", "/authorizations", {"member_id": seed.bob, "group_id": seed.group,
                                         "expires_at": "2001-01-01T00:00:00Z"}), 400)
    r = api("POST", "/authorizations", {"member_id": seed.bob, "group_id": seed.group,
                                        "role": "trainer"})
    assert r.status_code == 201
    items = api("GET", f"/authorizations?member_id={seed.bob}").get_json()["items"]
    assert len(items) == 3
    r = api("DELETE", f"/authorizations/{a['id']}")
    assert r.status_code == 204
    got = api("GET", f"/authorizations/{a['id']}").get_json()
    assert got["revoked_at"] and got["valid"] is False  # kept for the audit trail
    assert api("DELETE", f"/authorizations/{a['id']}").status_code == 204  # idempotent
    _err(api("DELETE", "/authorizations/999999"), 404)
    by_machine = api("GET", f"/authorizations?machine_id={seed.laser}&valid=1").get_json()
    assert {x["member_id"] for x in by_machine["items"]} == {seed.alice, seed.tom, seed.bob}


def test_sessions_and_nodes(api: Any, api_app: Any, seed: Any) -> None:
    app = api_app[0]
    t0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
    with app.app_context():
        db = get_db()
        db.add(UsageSession(session_uuid="11111111-1111-4111-8111-111111111111",
                            machine_id=seed.laser, member_id=seed.alice, badge_uid="04A1B2C3",
                            started_at=t0, ended_at=t0 + timedelta(hours=1), duration_s=3600,
                            active_s=1800, end_reason="badge_out"))
        db.add(UsageSession(session_uuid="22222222-2222-4222-8222-222222222222",
                            machine_id=seed.laser, member_id=seed.alice, badge_uid="04A1B2C3",
                            started_at=t0 + timedelta(days=1)))
        db.commit()
    items = api("GET", "/sessions").get_json()["items"]
    assert len(items) == 2
    assert items[0]["ended"] is None  # newest first; open
    closed = items[1]
    assert closed["duration_s"] == 3600 and closed["active_s"] == 1800
    assert closed["reason"] == "badge_out" and closed["machine"] == "laser-1"
    assert closed["started"] == "2026-11-20T10:00:00.000Z"
    r = api("GET", "/sessions?until=2026-11-21T00:00:00Z")
    assert [x["session"][:2] for x in r.get_json()["items"]] == ["11"]
    r = api("GET", f"/sessions?since=2026-11-21T00:00:00%2B01:00&member_id={seed.alice}")
    assert [x["session"][:2] for x in r.get_json()["items"]] == ["22"]
    _err(api("GET", "/sessions?since=yesterday"), 400)
    _err(api("GET", "/sessions?since=2026-11-21"), 400)
    assert api("GET", f"/sessions?machine_id={seed.printer}").get_json()["total"] == 0
    nodes = api("GET", "/nodes").get_json()["items"]
    assert {n["node"] for n in nodes} == {"laser-1", "printer-1"}
    assert set(nodes[0]) >= {"node", "machine", "online", "state", "acl_version", "last_seen"}


def test_usage_report(api: Any, api_app: Any, seed: Any) -> None:
    t0 = datetime(2026, 10, 31, 23, 0, tzinfo=UTC)
    with api_app[0].app_context():
        db = get_db()
        db.add(UsageSession(session_uuid="33333333-3333-4333-8333-333333333333",
                            machine_id=seed.laser, member_id=seed.alice, badge_uid="04A1B2C3",
                            started_at=t0, ended_at=t0 + timedelta(hours=2), duration_s=7200,
                            active_s=3600, end_reason="badge_out"))
        db.commit()
    r = api("GET", "/reports/usage?group_by=machine")
    assert r.status_code == 200, r.get_data(as_text=True)
    rows = r.get_json()["rows"]
    assert rows[0]["machine"] == "laser-1" and rows[0]["sessions"] == 1
    assert abs(rows[0]["hours"] - 2) < 1e-6
    r = api("GET", "/reports/usage?group_by=machine&format=csv")
    assert r.status_code == 200 and r.mimetype == "text/csv"
    assert r.get_data(as_text=True).splitlines()[0].startswith("machine,sessions,hours")
    _err(api("GET", "/reports/usage?group_by=planet"), 400)
    _err(api("GET", "/reports/usage"), 400)
    _err(api("GET", "/reports/usage?group_by=machine&format=xml"), 400)


def test_errors_are_json(api: Any) -> None:
    _err(api("GET", "/nowhere"), 404, "not_found")
    _err(api("PUT", "/members"), 405, "method_not_allowed")
    r = api.client.post("/api/v1/members", data="{not json",
                        headers={"Authorization": f"Bearer {api.token}",
                                 "Content-Type": "application/json"})
    _err(r, 400)
    _err(api("POST", "/members", {"name": "a\x00b"}), 400)
    _err(api("POST", "/members", {"name": "x" * 500}), 400)
