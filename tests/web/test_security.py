"""CSRF, login rate limit, session renewal, cookie flags, no default account, flash messages."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

from sqlalchemy import select

from server.app import get_db
from server.models import AuditLog, Machine


def _cookie_header(resp: Any) -> str:
    return "; ".join(resp.headers.getlist("Set-Cookie"))


def test_post_without_csrf_token_fails(actions: Any, app: Any, seed: Any) -> None:
    actions.login("admin@example.org")
    r = actions.client.post(f"/machines/{seed.laser}/lock", data={"reason": "x"})
    assert r.status_code == 400
    assert "form expired" in r.get_data(as_text=True)
    with app.app_context():
        assert get_db().get(Machine, seed.laser).locked is False
    r = actions.client.post(f"/machines/{seed.laser}/lock",
                            data={"reason": "x", "csrf_token": "forged"})
    assert r.status_code == 400


def test_login_without_csrf_token_fails(client: Any) -> None:
    r = client.post("/login", data={"email": "admin@example.org", "password": "whatever"})
    assert r.status_code == 400


def test_wrong_password_then_rate_limited(actions: Any) -> None:
    for _ in range(5):
        r = actions.login("admin@example.org", "wrong password")
        assert r.status_code == 200
        assert "Wrong email or password" in r.get_data(as_text=True)
    r = actions.login("admin@example.org")  # even the right password: wait first
    assert r.status_code == 429
    assert "Too many attempts" in r.get_data(as_text=True)
    r = actions.login("manager@example.org")  # another account from this IP is not blocked
    assert r.status_code == 302


def test_login_renews_the_session(actions: Any) -> None:
    with actions.client.session_transaction() as s:
        s["planted"] = "by an attacker"
    assert actions.login("admin@example.org").status_code == 302
    with actions.client.session_transaction() as s:
        assert "planted" not in s
        assert s.get("_user_id")


def test_cookie_flags(tmp_path: Path) -> None:
    seedmod = sys.modules["fabpass_web_seed"]
    app, _ = seedmod.make_app(f"sqlite:///{tmp_path}/c.db")
    r = app.test_client().get("/login")
    cookie = _cookie_header(r)
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie
    app.extensions["fabpass.engine"].dispose()
    # not TESTING: Secure when the request came over https
    app2, _ = seedmod.make_app(f"sqlite:///{tmp_path}/d.db", TESTING=False)
    c = app2.test_client()
    assert "Secure" in _cookie_header(c.get("/login", base_url="https://fab.example"))
    assert "Secure" not in _cookie_header(c.get("/login", base_url="http://127.0.0.1"))
    app2.extensions["fabpass.engine"].dispose()
    app3, _ = seedmod.make_app(f"sqlite:///{tmp_path}/e.db", SESSION_COOKIE_SECURE=True)
    assert "Secure" in _cookie_header(app3.test_client().get("/login"))
    app3.extensions["fabpass.engine"].dispose()


def test_no_default_account(tmp_path: Path) -> None:
    from server.app import create_app
    from server.db import upgrade
    from server.models import User

    url = f"sqlite:///{tmp_path}/empty.db"
    upgrade(url)
    app = create_app({"TESTING": True, "DATABASE_URL": url})
    with app.app_context():
        assert get_db().scalars(select(User)).all() == []
    c = app.test_client()
    page = c.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    for email, pw in [("admin@example.org", "admin"), ("admin", "admin"), ("admin@localhost", "password")]:
        r = c.post("/login", data={"email": email, "password": pw, "csrf_token": token})
        assert r.status_code == 200
    assert c.get("/").status_code == 302
    app.extensions["fabpass.engine"].dispose()


def test_changes_are_audited_with_the_user(actions: Any, app: Any, seed: Any) -> None:
    actions.login("manager@example.org")
    r = actions.post(f"/machines/{seed.laser}/lock", {"reason": "lens cleaning"},
                     follow_redirects=True)
    assert "is locked" in r.get_data(as_text=True)
    with app.app_context():
        row = get_db().scalars(select(AuditLog).where(AuditLog.action == "machine.lock")).one()
        assert "manager@example.org" in row.actor


def test_enrol_conflict_is_explained(actions: Any, seed: Any) -> None:
    actions.login("admin@example.org")
    r = actions.post(f"/members/{seed.bob}/badges", {"uid": "04a1b2c3"}, follow_redirects=True)
    assert "already belongs to another member" in r.get_data(as_text=True)
    r = actions.post(f"/members/{seed.bob}/badges", {"uid": "nonsense"}, follow_redirects=True)
    assert "8, 14 or 20 hexadecimal digits" in r.get_data(as_text=True)



def test_huge_ids_are_404_not_500(actions: Any) -> None:
    actions.login("admin@example.org")
    for path in ["/members/99999999999999999999", "/machines/0", "/members/2147483648/edit"]:
        assert actions.client.get(path).status_code == 404


def test_huge_query_values_are_harmless(actions: Any) -> None:
    actions.login("admin@example.org")
    big = "99999999999999999999"
    for path in [f"/authorizations?member_id={big}&machine_id={big}&page={big}",
                 f"/sessions?member_id={big}&machine_id={big}&since=x&until=2026-99-99&page={big}",
                 f"/members?page={big}", f"/audit?page={big}",
                 f"/authorizations/new?member_id={big}&machine_id={big}"]:
        assert actions.client.get(path).status_code == 200, path
    assert actions.client.get("/members?q=a%00b").status_code == 400


def test_login_returns_to_the_page_asked_for(actions: Any, seed: Any) -> None:
    r = actions.client.get(f"/members/{seed.alice}")
    assert r.status_code == 302 and "/login?next=" in r.headers["Location"]
    token = actions.token(r.headers["Location"])
    r = actions.client.post(r.headers["Location"], data={
        "email": "admin@example.org", "password": "correct horse battery", "csrf_token": token})
    assert r.status_code == 302 and r.headers["Location"] == f"/members/{seed.alice}"
    actions.client.post("/logout", data={"csrf_token": actions.token("/")})
    r = actions.client.post("/login?next=//evil.example/x", data={
        "email": "admin@example.org", "password": "correct horse battery",
        "csrf_token": actions.token("/login")})
    assert r.headers["Location"] == "/"
