"""A password change ends the login's other sessions (issue 13, server-side logins): whoever
held a session opened with the old password, or a copied cookie, is logged out; the person
who changed their own password stays in."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from flask import Flask
from sqlalchemy import func, select


def _user_id(app: Flask, email: str) -> int:
    from server.app import get_db
    from server.models import User

    with app.app_context():
        uid = get_db().scalar(select(User.id).where(User.email == email))
    assert uid is not None
    return int(uid)


def _browser(app: Flask, actions: Any, email: str) -> Any:
    b = type(actions)(app.test_client())
    assert b.login(email).status_code == 302
    assert b.client.get("/sessions").status_code == 200
    return b


def _form(email: str, role: str, password: str, sites: str = "") -> dict[str, str]:
    form = {"email": email, "role": role, "member": "", "active": "y", "password": password}
    return {**form, "sites": sites} if sites else form


def test_admin_setting_a_password_ends_every_session_of_that_login(
        app: Flask, actions: Any, seed: Any) -> None:
    one, two = (_browser(app, actions, "manager@example.org") for _ in range(2))
    assert actions.login("admin@example.org").status_code == 302
    res = actions.post(f"/users/{seed.manager_user}",
                       _form("manager@example.org", "manager", "a brand new secret",
                             str(seed.lab)), page=f"/users/{seed.manager_user}")
    assert res.status_code == 302, res.get_data(as_text=True)[:2000]
    for b in (one, two):
        assert b.client.get("/sessions").status_code == 302  # back to /login
    assert actions.client.get("/sessions").status_code == 200  # the admin is not affected
    assert type(actions)(app.test_client()).login(
        "manager@example.org", "a brand new secret").status_code == 302


def test_changing_ones_own_password_keeps_this_session_only(app: Flask, actions: Any) -> None:
    admin_id = _user_id(app, "admin@example.org")
    other = _browser(app, actions, "admin@example.org")
    assert actions.login("admin@example.org").status_code == 302
    res = actions.post(f"/users/{admin_id}", _form("admin@example.org", "admin",
                                                   "my own new secret"), page=f"/users/{admin_id}")
    assert res.status_code == 302, res.get_data(as_text=True)[:2000]
    assert actions.client.get("/sessions").status_code == 200
    assert other.client.get("/sessions").status_code == 302
    # saving the form without a new password ends nothing
    later = type(actions)(app.test_client())
    assert later.login("admin@example.org", "my own new secret").status_code == 302
    res = actions.post(f"/users/{admin_id}", _form("admin@example.org", "admin", ""),
                       page=f"/users/{admin_id}")
    assert res.status_code == 302
    assert later.client.get("/sessions").status_code == 200


def test_a_password_reset_ends_every_session(app: Flask, actions: Any) -> None:
    from server.app import get_db
    from server.models import User, WebLogin
    from server.services import passwords

    b = _browser(app, actions, "manager@example.org")
    with app.app_context():
        db = get_db()
        user = db.scalar(select(User).where(User.email == "manager@example.org"))
        assert user is not None
        token = passwords._issue(db, user, "reset", timedelta(hours=1), passwords.utcnow())
        db.commit()
        assert passwords.complete_reset(db, token, "reset to something new")
        left = db.scalar(select(func.count()).select_from(WebLogin)
                         .where(WebLogin.user_id == user.id))
    assert left == 0
    # done outside a web request here, like another process: the web's principal cache
    # (server/auth.py, 0.5 s) lets the old cookie go within a second
    deadline = time.monotonic() + 1.5
    while b.client.get("/sessions").status_code != 302 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert b.client.get("/sessions").status_code == 302
