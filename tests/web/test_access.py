"""Every web route × every role (and anonymous): 302-to-login, 403 or 200/302 as designed.

The table must name every registered web route, so a new page cannot ship unchecked.
"""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask

ROLES = ("anon", "admin", "manager", "trainer")
EMAIL = {"admin": "admin@example.org", "manager": "manager@example.org",
         "trainer": "trainer@example.org"}

# (method, path template, data, {role: status}); anonymous always expects 302 to /login
# unless given. Paths use seed attributes in braces.
A, M, T = "admin", "manager", "trainer"


def ok(*roles: str, code: int = 200, other: int = 403) -> dict[str, int]:
    return {r: (code if r in roles else other) for r in (A, M, T)}


GETS: list[tuple[str, dict[str, int]]] = [
    ("/", ok(A, M, T)),
    ("/dashboard/state.json", ok(A, M, T)),
    ("/members", ok(A, M, T)),
    ("/members/new", ok(A, M)),
    ("/members/{alice}", ok(A, M, T)),
    ("/members/{alice}/edit", ok(A, M)),
    ("/members/{bob}/edit", ok(A)),
    ("/badges/unknown", ok(A, M)),
    ("/badges/unknown/{unknown_badge}/new-member", ok(A, M)),
    ("/members/{alice}/badges/tap.json", ok(A, M)),
    ("/members/{bob}/badges/tap.json", ok(A)),
    ("/members/{alice}/privacy", ok(A)),
    ("/machines", ok(A, M, T)),
    ("/machines/{laser}", ok(A, M, T)),
    ("/groups/new", ok(A, M)),
    ("/groups/{group}", ok(A, M)),
    ("/authorizations", ok(A, M, T)),
    ("/authorizations/new", ok(A, M, T)),
    ("/authorizations/{alice_laser}/revoke", ok(A, M, T)),
    ("/authorizations/{bob_printer}/revoke", ok(A)),
    ("/sessions", ok(A, M)),
    ("/audit", ok(A, M)),
    ("/nodes", ok(A, M)),
    ("/nodes/laser-1/config.toml", ok(A)),
    ("/machines/new", ok(A, M)),
    ("/me", ok(A, M, T)),
    ("/sites", ok(A)),
    ("/users", ok(A)),
    ("/users/new", ok(A)),
    ("/users/{manager_user}", ok(A)),
    ("/notifications", ok(A, M, T)),
]

POSTS: list[tuple[str, dict[str, Any], dict[str, int]]] = [
    ("/members/new", {"name": "New Person"}, ok(A, M, code=302)),
    ("/members/{alice}/edit", {"name": "Alice M."}, ok(A, M, code=302)),
    ("/members/{bob}/edit", {"name": "Bob D."}, ok(A, code=302)),
    ("/members/{bob}/deactivate", {}, ok(A, code=302)),
    ("/members/{alice}/reactivate", {}, ok(A, M, code=302)),
    ("/members/{alice}/badges", {"uid": "04:00:00:01"}, ok(A, M, code=302)),
    ("/badges/04A1B2C3/status", {"status": "lost"}, ok(A, M, code=302)),
    ("/badges/unknown/{unknown_badge}/new-member", {"name": "", "role": "user"},
     ok(A, M, code=400)),  # the form again (no name): the badge stays unknown for the next row
    ("/badges/unknown/{unknown_badge}/assign", {"member_id": "{alice}"}, ok(A, M, code=302)),
    ("/members/{alice}/badges/tap", {}, ok(A, M, code=302)),
    ("/members/{bob}/badges/tap", {}, ok(A, code=302)),
    ("/members/{alice}/privacy/export.json", {}, ok(A)),
    ("/members/{alice}/privacy/erase", {"confirm": "Alice Martin"}, ok(A, code=302)),
    ("/machines/{laser}", {"name": "Laser", "requires_authorization": "y"}, ok(A, M, code=302)),
    ("/machines/{printer}", {"name": "Printer"}, ok(A, code=302)),
    ("/machines/{laser}/lock", {"reason": "lens"}, ok(A, M, code=302)),
    ("/machines/{printer}/lock", {"reason": "x"}, ok(A, code=302)),
    ("/machines/{laser}/unlock", {}, ok(A, M, code=302)),
    ("/machines/{laser}/stop", {}, ok(A, M, code=302)),
    ("/groups/new", {"slug": "g2", "name": "G2", "machines": "{laser}"}, ok(A, M, code=302)),
    ("/groups/{group}", {"slug": "lasers", "name": "Lasers", "machines": "{laser}"},
     ok(A, M, code=302)),
    ("/authorizations/new", {"members": "{tom}", "target": "machine:{laser}", "role": "user"},
     ok(A, M, T, code=302)),
    ("/authorizations/new", {"members": "{alice}", "target": "machine:{printer}", "role": "user"},
     {A: 302, M: 400, T: 400}),
    ("/authorizations/{alice_laser}/revoke", {"reason": "test"}, ok(A, M, T, code=302)),
    ("/authorizations/{bob_printer}/revoke", {"reason": "test"}, ok(A, code=302)),
    ("/machines/new", {"name": "CNC", "slug": "cnc-1", "site": "lab", "kind": "cnc",
                       "requires_authorization": "y"}, ok(A, M, code=302)),
    ("/machines/new", {"name": "CNC", "slug": "cnc-2", "site": "other", "kind": "cnc"},
     {A: 302, M: 400, T: 403}),
    ("/sites", {"slug": "amiens", "name": "Amiens", "timezone": "Europe/Paris"}, ok(A, code=302)),
    ("/users/new", {"email": "new@example.org", "password": "long enough pw", "role": "manager",
                    "sites": "{lab}", "member": ""}, ok(A, code=302)),
    ("/users/{manager_user}", {"email": "manager@example.org", "role": "manager",
                               "sites": "{other}", "member": "", "active": "y"}, ok(A, code=302)),
    ("/nodes/laser-1/credentials", {}, ok(A)),  # admin: the page with the new config
    ("/nodes/laser-1/plug", {"plug": "shelly:shellyplug-acc1"}, ok(A)),  # the plug's password
    ("/nodes/broker-files", {}, ok(A, code=302)),  # no server MQTT password yet: back to /nodes
    ("/notifications/alerts", {"kind": "node_offline"}, ok(A, M, T, code=302)),
    ("/notifications/watch", {"machine_id": "{laser}"}, {A: 400, M: 400, T: 302}),
    ("/notifications/notices", {"notice": "training_expiring"}, {A: 400, M: 400, T: 302}),
    ("/notifications/webhooks", {"url": "https://10.0.0.1/x", "secret": "x" * 20,
                                 "site_id": "{lab}", "events": "node.offline"},
     ok(A, M, code=302)),
    ("/notifications/webhooks/999/delete", {}, {A: 404, M: 404, T: 403}),
    ("/users/{manager_user}/invite", {}, ok(A, code=302)),
    ("/lang", {"lang": "fr"}, ok(A, M, T, code=302)),
    ("/logout", {}, ok(A, M, T, code=302)),
]
PUBLIC = {("GET", "/login"), ("POST", "/login"), ("POST", "/lang")}


def _fmt(text: str, seed: Any) -> str:
    return text.format(**vars(seed))


def _rule_of(app: Flask, method: str, path: str) -> str:
    adapter = app.url_map.bind("localhost")
    endpoint, _ = adapter.match(path, method=method)
    return str(endpoint)


def test_table_covers_every_web_route(app: Flask, seed: Any) -> None:
    covered = {(m, _rule_of(app, m, _fmt(p, seed))) for m, p in
               [("GET", p) for p, _ in GETS] + [("POST", p) for p, _, _ in POSTS]}
    covered |= {("GET", "web.login"), ("POST", "web.login")}
    # public pages, tested in test_password_reset.py
    covered |= {(m, e) for m in ("GET", "POST")
                for e in ("web.password_forgot", "web.password_reset")}
    registered = set()
    for rule in app.url_map.iter_rules():
        if not rule.endpoint.startswith("web."):
            continue
        for m in rule.methods - {"HEAD", "OPTIONS"}:  # type: ignore[operator]
            registered.add((m, rule.endpoint))
    assert registered - covered == set()


def _audit_count(app: Flask) -> int:
    from sqlalchemy import func, select

    from server.app import get_db
    from server.models import AuditLog

    with app.app_context():
        return int(get_db().scalar(select(func.count()).select_from(AuditLog)) or 0)


@pytest.mark.parametrize("role", ROLES)
def test_role_matrix(role: str, actions: Any, seed: Any, app: Flask) -> None:
    c = actions.client
    if role != "anon":
        assert actions.login(EMAIL[role]).status_code == 302
    audit_before = _audit_count(app)
    for path, expected in GETS:
        url = _fmt(path, seed)
        r = c.get(url)
        if role == "anon":
            assert r.status_code == 302 and "/login" in r.headers["Location"], url
        else:
            assert r.status_code == expected[role], (role, url, r.status_code)
    assert _audit_count(app) == audit_before  # no GET changes anything
    for path, data, expected in POSTS:
        url = _fmt(path, seed)
        token = actions.token("/login")
        body = {k: _fmt(v, seed) for k, v in data.items()}
        r = c.post(url, data={**body, "csrf_token": token})
        if role == "anon":
            assert r.status_code == 302, url
            if ("POST", path) not in PUBLIC:
                assert "/login" in r.headers["Location"], url
        else:
            assert r.status_code == expected[role], (role, url, r.status_code,
                                                     r.get_data(as_text=True)[-800:])
        if path == "/logout" and role != "anon":
            break


def test_login_page_is_public(client: Any) -> None:
    r = client.get("/login")
    assert r.status_code == 200
    assert 'name="csrf_token"' in r.get_data(as_text=True)
    assert client.get("/static/fabpass.css").status_code == 200
