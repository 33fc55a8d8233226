"""Password forgotten -> mail over real SMTP -> new password -> login (contract section 6)."""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from server.models import AuditLog, PasswordToken, User, utcnow
from server.services import mail

_spec = importlib.util.spec_from_file_location(
    "fabpass_smtp_receiver", Path(__file__).parents[1] / "smtp_receiver.py")
assert _spec is not None and _spec.loader is not None
smtp_receiver = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(smtp_receiver)

PUBLIC = "https://fab.example.org"
LINK_RE = re.compile(re.escape(PUBLIC) + r"/password/reset/([A-Za-z0-9_\-]+)")


@pytest.fixture()
def smtp() -> Iterator[Any]:
    receiver = smtp_receiver.SmtpReceiver().start()
    yield receiver
    receiver.stop()


def _deliver(app: Flask, smtp: Any) -> None:
    with app.app_context():
        mail.send_due(app.extensions["fabpass.sessionmaker"], mail.parse_smtp_url(smtp.url),
                      "fabpass@fab.example.org")


def _forgot(client: FlaskClient, actions: Any, email: str) -> str:
    token = actions.token("/password/forgot")
    r = client.post("/password/forgot", data={"email": email, "csrf_token": token})
    assert r.status_code == 200
    return r.get_data(as_text=True)


def test_forgot_mail_reset_login(app: Flask, client: FlaskClient, actions: Any, smtp: Any) -> None:
    app.config["PUBLIC_URL"] = PUBLIC
    assert client.get("/password/forgot").status_code == 200  # no login needed
    client.post("/lang", data={"lang": "fr", "csrf_token": actions.token("/login")})
    assert "Mot de passe oublié" in client.get("/password/forgot").get_data(as_text=True)
    known = _forgot(client, actions, "manager@example.org")
    unknown = _forgot(client, actions, "nobody@example.org")
    strip = re.compile(r'name="csrf_token"[^>]*>')
    assert strip.sub("", known) == strip.sub("", unknown)  # same page either way
    _deliver(app, smtp)
    (msg,) = smtp.wait_for(1)
    assert msg["To"] == "manager@example.org"
    assert "mot de passe" in msg["Subject"]  # the page's language
    text = smtp_receiver.text_of(msg)
    m = LINK_RE.search(text)
    assert m, text
    assert m.group(0) in smtp_receiver.html_of(msg)
    path = m.group(0).removeprefix(PUBLIC)
    page = client.get(path)
    assert page.status_code == 200 and 'name="password"' in page.get_data(as_text=True)
    r = client.post(path, data={"password": "a brand new pass", "confirm": "a brand new pass",
                                "csrf_token": actions.token(path)})
    assert r.status_code == 302 and r.headers["Location"].endswith("/login")
    assert actions.login("manager@example.org", "correct horse battery").status_code == 200
    assert actions.login("manager@example.org", "a brand new pass").status_code == 302
    # used twice: the neutral page, no form
    client.post("/logout", data={"csrf_token": actions.token("/")})
    again = client.get(path).get_data(as_text=True)
    assert 'name="password"' not in again
    with app.app_context():
        from server.app import get_db

        actions_logged = list(get_db().scalars(select(AuditLog.action)))
        assert "password.reset_requested" in actions_logged
        assert "password.reset_done" in actions_logged


def test_expired_disabled_and_unknown_tokens_get_the_same_page(
        app: Flask, client: FlaskClient, actions: Any, smtp: Any) -> None:
    app.config["PUBLIC_URL"] = PUBLIC
    _forgot(client, actions, "manager@example.org")
    _forgot(client, actions, "admin@example.org")
    _deliver(app, smtp)
    links = {m["To"]: LINK_RE.search(smtp_receiver.text_of(m)).group(0).removeprefix(PUBLIC)
             for m in smtp.wait_for(2)}
    from server.app import get_db

    with app.app_context():
        db = get_db()
        for row in db.scalars(select(PasswordToken)):
            user = db.get(User, row.user_id)
            assert user is not None
            if user.email == "manager@example.org":
                row.expires_at = utcnow() - timedelta(seconds=1)
            else:
                user.active = False
        db.commit()
    own_path = re.compile(r"/password/reset/[^\"?]+")  # the page names its own URL
    pages = [own_path.sub("", client.get(p).get_data(as_text=True)) for p in
             [*links.values(), "/password/reset/not-a-token"]]
    for page in pages:
        assert 'name="password"' not in page
        assert pages[0] == page
    r = client.post(links["admin@example.org"], data={
        "password": "xxxxxxxxxx", "confirm": "xxxxxxxxxx",
        "csrf_token": actions.token("/password/forgot")})
    assert 'name="password"' not in r.get_data(as_text=True)


def test_resets_are_rate_limited_per_login(app: Flask, client: FlaskClient, actions: Any,
                                           smtp: Any) -> None:
    for _ in range(5):
        _forgot(client, actions, "manager@example.org")
    _deliver(app, smtp)
    assert len(smtp.wait_for(3, timeout_s=2)) == 3


def test_forgot_needs_csrf(client: FlaskClient) -> None:
    r = client.post("/password/forgot", data={"email": "manager@example.org"})
    assert r.status_code == 400


def test_admin_invites_a_login_by_mail(app: Flask, client: FlaskClient, actions: Any,
                                       seed: Any, smtp: Any) -> None:
    app.config["PUBLIC_URL"] = PUBLIC
    actions.login("admin@example.org")
    page = client.get(f"/users/{seed.manager_user}").get_data(as_text=True)
    assert "Mail an invitation" in page
    r = client.post(f"/users/{seed.manager_user}/invite",
                    data={"csrf_token": actions.token(f"/users/{seed.manager_user}")})
    assert r.status_code == 302
    _deliver(app, smtp)
    (msg,) = smtp.wait_for(1)
    assert msg["To"] == "manager@example.org" and "invited" in msg["Subject"]
    assert LINK_RE.search(smtp_receiver.text_of(msg))
