"""The notifications page: alert switches, "when free" requests, webhooks with their log."""

from __future__ import annotations

from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from server.models import AlertOptOut, MachineWatch, User, Webhook
from server.services import alerts


def test_manager_switches_alerts_and_adds_a_webhook(app: Flask, client: FlaskClient,
                                                     actions: Any, seed: Any) -> None:
    app.config["WEBHOOK_ALLOW_HOSTS"] = ["127.0.0.1"]
    actions.login("manager@example.org")
    page = client.get("/notifications")
    assert page.status_code == 200 and "Webhooks" in page.get_data(as_text=True)
    token = actions.token("/notifications")
    r = client.post("/notifications/alerts", data={"kind": ["node_offline"], "csrf_token": token})
    assert r.status_code == 302
    r = client.post("/notifications/webhooks", data={
        "url": "http://127.0.0.1:9/x", "secret": "x" * 20, "site_id": seed.lab,
        "events": ["node.offline"], "csrf_token": token})
    assert r.status_code == 302
    refused = client.post("/notifications/webhooks", data={
        "url": "https://10.0.0.1/x", "secret": "x" * 20, "site_id": seed.lab,
        "events": ["node.offline"], "csrf_token": token}, follow_redirects=True)
    assert "not saved" in refused.get_data(as_text=True)
    other = client.post("/notifications/webhooks", data={
        "url": "http://127.0.0.1:9/x", "secret": "x" * 20, "site_id": seed.other,
        "events": ["node.offline"], "csrf_token": token})
    assert other.status_code == 403
    from server.app import get_db

    with app.app_context():
        db = get_db()
        uid = db.scalar(select(User.id).where(User.email == "manager@example.org"))
        off = set(db.scalars(select(AlertOptOut.kind).where(AlertOptOut.user_id == uid)))
        assert off == set(alerts.KINDS) - {"node_offline"}
        (hook,) = db.scalars(select(Webhook))
        assert hook.site_id == seed.lab
    assert "127.0.0.1:9/x" in client.get("/notifications").get_data(as_text=True)


def test_trainer_asks_when_free_and_french_page(app: Flask, client: FlaskClient,
                                                 actions: Any, seed: Any) -> None:
    from server.app import get_db
    from server.models import Member

    with app.app_context():
        db = get_db()
        tom = db.get(Member, seed.tom)
        assert tom is not None
        tom.email = "tom@example.org"
        db.commit()
    actions.login("trainer@example.org")
    client.post("/lang", data={"lang": "fr", "csrf_token": actions.token("/notifications")})
    page = client.get("/notifications").get_data(as_text=True)
    assert "Prévenez-moi quand une machine est libre" in page
    r = client.post("/notifications/watch", data={"machine_id": seed.laser,
                                                 "csrf_token": actions.token("/notifications")})
    assert r.status_code == 302
    with app.app_context():
        (w,) = get_db().scalars(select(MachineWatch))
        assert (w.member_id, w.machine_id) == (seed.tom, seed.laser)


def test_anonymous_is_sent_to_login(client: FlaskClient) -> None:
    assert client.get("/notifications").status_code == 302
