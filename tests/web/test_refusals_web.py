"""Refusals on the pages and in the API, enrolment in one step, GDPR from the web UI."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from server import services
from server.models import (
    AuditLog,
    Authorization,
    Badge,
    Event,
    Member,
    Node,
    PendingEnrolment,
    UsageSession,
)
from server.services import refusals as refusal_service


def _db(app: Flask) -> Any:
    return app.extensions["fabpass.sessionmaker"]()


def _deny(app: Flask, uid: str, node: str = "laser-1", at: datetime | None = None) -> None:
    with _db(app) as db:
        n = db.scalar(select(Node).where(Node.slug == node))
        eid, data, ts = str(uuid.uuid4()), {"uid": uid, "reason": "unknown_badge"}, \
            at or datetime.now(UTC)
        db.add(Event(event_id=eid, node_id=n.id, node_slug=n.slug, type="badge.denied", ts=ts,
                     boot=str(uuid.uuid4()), seq=1, data=data))  # as the ingest stores it
        refusal_service.record(db, eid, n, data, ts)
        db.commit()


def _fr(actions: Any, email: str = "admin@example.org") -> None:
    actions.login(email)
    with actions.client.session_transaction() as sess:
        sess["lang"] = "fr"


def test_revoked_training_shown_in_french_on_member_machine_and_dashboard(
        app: Flask, seed: Any, actions: Any, client: FlaskClient) -> None:
    with _db(app) as db:
        services.revoke(db, seed.alice_laser, reason="usage dangereux", actor="test")
        db.commit()
    _deny(app, "04A1B2C3")
    _fr(actions)
    page = client.get(f"/members/{seed.alice}").get_data(as_text=True)
    today = datetime.now(UTC)
    assert "Refusé sur Laser cutter le" in page
    assert "formation retirée le" in page and "usage dangereux" in page
    assert str(today.day) in page
    machine = client.get(f"/machines/{seed.laser}").get_data(as_text=True)
    assert "Alice Martin — Refusé sur Laser cutter" in machine
    dash = client.get("/").get_data(as_text=True)
    assert "Dernier refus" in dash and "formation retirée" in dash
    report = client.get("/reports/denied?group_by=member").get_data(as_text=True)
    assert "Alice Martin" in report
    report = client.get("/reports/denied?group_by=reason").get_data(as_text=True)
    assert "formation retirée" in report and "revoked" not in report


def test_api_refusals_contract_and_scope(app: Flask, seed: Any, client: FlaskClient) -> None:
    _deny(app, "04B0B0B0")                     # nobody's badge, on the laser (lab)
    _deny(app, "04A1B2C3", node="printer-1")   # alice is not trained on the printer (other)
    h = {"Authorization": f"Bearer {seed.token}"}
    body = client.get("/api/v1/refusals", headers=h).get_json()
    assert body["total"] == 2 and body["page"] == 1 and body["per_page"] == 50
    item = body["items"][0]
    assert set(item) == {"id", "at", "machine", "member", "uid", "node_reason", "reason"}
    assert (item["machine"], item["member"], item["uid"], item["node_reason"], item["reason"]) == (
        "printer-1", seed.alice, "04A1B2C3", "unknown_badge", "not_authorized")
    assert item["at"].endswith("Z")
    mine = client.get(f"/api/v1/refusals?member_id={seed.alice}", headers=h).get_json()
    assert [i["uid"] for i in mine["items"]] == ["04A1B2C3"]
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    assert client.get(f"/api/v1/refusals?since={later}", headers=h).get_json()["total"] == 0
    mh = {"Authorization": f"Bearer {seed.manager_token}"}
    scoped = client.get("/api/v1/refusals", headers=mh).get_json()
    assert [i["machine"] for i in scoped["items"]] == ["laser-1"]
    assert client.get("/api/v1/refusals?machine_id=x", headers=h).status_code == 400


def test_new_member_with_this_badge_in_one_form(app: Flask, seed: Any, actions: Any,
                                                client: FlaskClient) -> None:
    actions.login("manager@example.org")
    path = f"/badges/unknown/{seed.unknown_badge}/new-member"
    r = actions.post(path, {"name": "Zoé Lambert", "email": "zoe@example.org", "member_no": "",
                            "site": str(seed.lab), "tags": "étudiante",
                            "target": f"machine:{seed.laser}", "role": "user",
                            "expires_at": ""}, page=path)
    assert r.status_code == 302
    with _db(app) as db:
        zoe = db.scalar(select(Member).where(Member.name == "Zoé Lambert"))
        assert zoe is not None and zoe.tags == ["étudiante"]
        assert db.scalar(select(Badge.member_id).where(Badge.uid == "04DEAD01")) == zoe.id
        auth = db.scalar(select(Authorization).where(Authorization.member_id == zoe.id))
        assert auth is not None and auth.machine_id == seed.laser
        assert db.scalar(select(AuditLog).where(AuditLog.action == "member.enrol")) is not None
    assert client.get(path).status_code == 404  # the badge is no longer unknown


def test_tap_now_opens_a_wait_the_page_polls(app: Flask, seed: Any, actions: Any,
                                             client: FlaskClient) -> None:
    actions.login("manager@example.org")
    assert client.get(f"/members/{seed.alice}/badges/tap.json").get_json() == {"state": "none"}
    r = actions.post(f"/members/{seed.alice}/badges/tap", page=f"/members/{seed.alice}")
    assert r.status_code == 302
    assert client.get(f"/members/{seed.alice}/badges/tap.json").get_json()["state"] == "waiting"
    with _db(app) as db:
        pending = db.scalar(select(PendingEnrolment))
        assert pending is not None and pending.site_ids == [seed.lab]
    # a member of another site is outside this manager's reach
    assert actions.post(f"/members/{seed.bob}/badges/tap").status_code == 403


def test_gdpr_export_and_erasure_from_the_web(app: Flask, seed: Any, actions: Any,
                                              client: FlaskClient) -> None:
    actions.login("manager@example.org")
    assert client.get(f"/members/{seed.alice}/privacy").status_code == 403
    assert actions.post(f"/members/{seed.alice}/privacy/export.json").status_code == 403
    client.post("/logout", data={"csrf_token": actions.token("/")})
    actions.login("admin@example.org")
    page = client.get(f"/members/{seed.alice}/privacy").get_data(as_text=True)
    assert "anonymous totals" in page
    r = actions.post(f"/members/{seed.alice}/privacy/export.json",
                     page=f"/members/{seed.alice}/privacy")
    assert r.status_code == 200 and "attachment" in r.headers["Content-Disposition"]
    data = json.loads(r.get_data(as_text=True))
    assert data["member"]["name"] == "Alice Martin" and data["badges"][0]["uid"] == "04A1B2C3"
    # an open session: refused, naming the machine
    with _db(app) as db:
        db.add(UsageSession(session_uuid=str(uuid.uuid4()), machine_id=seed.laser,
                            member_id=seed.alice, badge_uid="04A1B2C3",
                            started_at=datetime.now(UTC)))
        db.commit()
    path = f"/members/{seed.alice}/privacy"
    r = actions.post(path + "/erase", {"confirm": "Alice Martin"}, page=path,
                     follow_redirects=True)
    assert "session open on Laser cutter" in r.get_data(as_text=True)
    with _db(app) as db:
        for s in db.scalars(select(UsageSession)):
            s.ended_at = s.started_at + timedelta(minutes=1)
            s.duration_s = 60.0
        db.commit()
    r = actions.post(path + "/erase", {"confirm": "alice"}, page=path, follow_redirects=True)
    assert "Type the member" in r.get_data(as_text=True)
    r = actions.post(path + "/erase", {"confirm": " alice  martin "}, page=path,
                     follow_redirects=True)
    assert "Anonymous usage totals are kept" in r.get_data(as_text=True)
    with _db(app) as db:
        m = db.get(Member, seed.alice)
        assert m is not None and m.erased_at is not None and m.name != "Alice Martin"
        actions_done = {a.action for a in db.scalars(select(AuditLog))}
        assert {"member.export", "member.erase"} <= actions_done


def test_refusal_day_is_the_machine_sites_day_not_the_servers(
        app: Flask, seed: Any, actions: Any, client: FlaskClient) -> None:
    """A refusal at 23:30 UTC is on the next day in Paris (the laser's site): the sentence says
    the Paris day, as the member standing at the machine lived it, whatever zone the server
    runs in (here UTC)."""
    from zoneinfo import ZoneInfo

    from babel.dates import format_date

    now = datetime.now(UTC)
    at = now.replace(hour=23, minute=30, second=0, microsecond=0)
    if at > now:
        at -= timedelta(days=1)
    _deny(app, "04C0FFEE", at=at)
    _fr(actions)
    page = client.get(f"/machines/{seed.laser}").get_data(as_text=True)
    paris = format_date(at.astimezone(ZoneInfo("Europe/Paris")).date(), "d MMM", locale="fr")
    utc_day = format_date(at.date(), "d MMM", locale="fr")
    assert paris != utc_day
    assert f"Refusé sur Laser cutter le {paris}" in page
    assert f"le {utc_day}\u00a0:" not in page
