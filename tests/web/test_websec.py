"""Issue 13 items 2, 5 and 9: reserved broker names, `next` after login, throttling per
address and account, trusted proxies, logout that ends the session on the server."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from server.app import get_db
from server.models import Machine, Node, Setting, Site

PASSWORD = "correct horse battery"
RESERVED = ("fabpass-server", "Fabpass-Server", "svc-broker", "stored-srv")


@pytest.fixture()
def reserved_env(monkeypatch: pytest.MonkeyPatch, app: Any) -> None:
    """The server's user comes from FABPASS_MQTT_URL; another was stored by `broker config`."""
    monkeypatch.setenv("FABPASS_MQTT_URL", "mqtt://svc-broker:pw@127.0.0.1:1883")
    with app.app_context():
        db = get_db()
        db.add(Setting(key="mqtt.server_username", value="stored-srv"))
        db.commit()


def _counts(app: Any) -> tuple[int, int, int]:
    with app.app_context():
        db = get_db()
        return tuple(db.scalar(select(func.count()).select_from(m))  # type: ignore[return-value]
                     for m in (Site, Machine, Node))


def test_api_refuses_reserved_slugs(client: Any, app: Any, seed: Any, reserved_env: None) -> None:
    h = {"Authorization": f"Bearer {seed.token}"}
    before = _counts(app)
    for name in RESERVED:
        slug = name.lower()
        r = client.post("/api/v1/sites", json={"slug": slug, "name": "X"}, headers=h)
        assert r.status_code == 400 and "slug" in r.get_json()["error"]["fields"], r.get_json()
        r = client.post("/api/v1/machines", json={"slug": slug, "name": "X", "site": "lab"},
                        headers=h)
        assert r.status_code == 400 and "slug" in r.get_json()["error"]["fields"]
        r = client.post("/api/v1/machines", json={"slug": "m-" + slug, "name": "X",
                                                  "site": "lab", "node": slug}, headers=h)
        assert r.status_code == 400 and "node" in r.get_json()["error"]["fields"]
        r = client.patch(f"/api/v1/machines/{seed.laser}", json={"node": slug}, headers=h)
        assert r.status_code == 400 and "node" in r.get_json()["error"]["fields"]
    assert _counts(app) == before
    ok = client.post("/api/v1/machines", json={"slug": "cnc-1", "name": "CNC", "site": "lab",
                                               "node": "cnc-1"}, headers=h)
    assert ok.status_code == 201


def test_web_refuses_reserved_slugs(actions: Any, app: Any, reserved_env: None) -> None:
    actions.login("admin@example.org")
    before = _counts(app)
    r = actions.post("/sites", {"slug": "fabpass-server", "name": "X",
                                "timezone": "Europe/Paris"}, page="/sites")
    assert r.status_code == 400
    assert "reserved for a broker user" in r.get_data(as_text=True)
    for data in ({"slug": "svc-broker", "node": ""}, {"slug": "cnc-1", "node": "stored-srv"}):
        r = actions.post("/machines/new", {"name": "X", "site": "lab", "kind": "other",
                                           "requires_authorization": "y", **data},
                         page="/machines/new")
        assert r.status_code == 400
        assert "reserved for a broker user" in r.get_data(as_text=True)
    assert _counts(app) == before
    # and in French
    actions.post("/lang", {"lang": "fr", "next": "/sites"})
    r = actions.post("/sites", {"slug": "fabpass-server", "name": "X",
                                "timezone": "Europe/Paris"}, page="/sites")
    assert "réservé" in r.get_data(as_text=True)


def test_cli_provision_refuses_reserved_slugs(app: Any, seed: Any, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch,
                                              reserved_env: None) -> None:
    from fabpass.cli import main

    monkeypatch.setenv("FABPASS_DATABASE_URL", app.config["DATABASE_URL"])
    monkeypatch.setenv("FABPASS_DATA_DIR", str(tmp_path))
    before = _counts(app)
    runner = CliRunner()
    for args in (["fabpass-server", "--machine", "cnc-1", "--site", "lab"],
                 ["svc-broker", "--machine", "cnc-1", "--site", "lab"],
                 ["stored-srv", "--machine", "laser-1"],
                 ["cnc-1", "--machine", "fabpass-server", "--site", "lab"]):
        out = runner.invoke(main, ["node", "provision", *args])
        assert out.exit_code == 1, out.output
        assert "reserved" in out.output
    assert _counts(app) == before
    ok = runner.invoke(main, ["node", "provision", "cnc-1", "--machine", "cnc-1", "--site", "lab"])
    assert ok.exit_code == 0, ok.output


# ---------------------------------------------------------------- next after login


def _login_to(actions: Any, target: str) -> Any:
    return actions.client.post("/login", query_string={"next": target}, data={
        "email": "admin@example.org", "password": PASSWORD, "csrf_token": actions.token()})


@pytest.mark.parametrize("target", [
    "//evil.test", "/\\evil.test", "\\\\evil.test", "https:evil.test", "https://evil.test/",
    "javascript:alert(1)", "evil.test", " //evil.test", "/%5C/evil.test".replace("%5C", "\\"),
    "http:/evil.test", "///evil.test",
])
def test_next_refuses_other_sites(actions: Any, target: str) -> None:
    r = _login_to(actions, target)
    assert r.status_code == 302 and r.headers["Location"] == "/", (target, r.headers["Location"])


@pytest.mark.parametrize("target", ["/\t/evil.test", "/\n/evil.test", "/x\r\nSet-Cookie: a=b",
                                    "/\x00", "/\x7f", "/\x85x"])
def test_next_with_control_characters_is_400(actions: Any, target: str) -> None:
    assert actions.client.get("/login", query_string={"next": target}).status_code == 400
    r = _login_to(actions, target)
    assert r.status_code == 400
    assert actions.client.get("/").status_code == 302  # and nobody was logged in


def test_next_keeps_a_same_site_path(actions: Any, seed: Any) -> None:
    r = _login_to(actions, f"/members/{seed.alice}?tab=badges#b")
    assert r.headers["Location"] == f"/members/{seed.alice}?tab=badges#b"
    r = actions.client.get("/login?next=/%09/evil.test")  # the example, URL-encoded
    assert r.status_code == 400


# ---------------------------------------------------------------- throttling


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def _login_from(client: Any, ip: str, email: str, password: str, token: str) -> Any:
    return client.post("/login", data={"email": email, "password": password,
                                       "csrf_token": token},
                       environ_overrides={"REMOTE_ADDR": ip})


def test_throttle_delays_grow_and_never_lock_the_owner_out(app: Any, actions: Any) -> None:
    clock = FakeClock()
    app.extensions["fabpass.login_limiter"].clock = clock
    token = actions.token()
    attacker, owner = "203.0.113.9", "198.51.100.7"
    waits = []
    for _ in range(9):
        r = _login_from(actions.client, attacker, "admin@example.org", "guess", token)
        if r.status_code == 429:
            waits.append(int(r.headers["Retry-After"]))
            clock.t += waits[-1]
            r = _login_from(actions.client, attacker, "admin@example.org", "guess", token)
        assert r.status_code == 200
    assert waits == [1, 2, 4, 8]  # 5 free failures, then 1 s, 2 s, 4 s, 8 s
    # right now the attacker must wait 16 s, even with the right password ...
    r = _login_from(actions.client, attacker, "admin@example.org", PASSWORD, token)
    assert r.status_code == 429 and r.headers["Retry-After"] == "16"
    assert "Too many attempts" in r.get_data(as_text=True)
    # ... while the owner, from their own address, logs in at once
    r = _login_from(actions.client, owner, "admin@example.org", PASSWORD, token)
    assert r.status_code == 302


def test_owner_who_mistyped_gets_in_after_the_delay(app: Any, actions: Any) -> None:
    clock = FakeClock()
    app.extensions["fabpass.login_limiter"].clock = clock
    token = actions.token()
    for _ in range(5):
        assert _login_from(actions.client, "10.0.0.5", "admin@example.org", "typo",
                           token).status_code == 200
    assert _login_from(actions.client, "10.0.0.5", "admin@example.org", PASSWORD,
                       token).status_code == 429
    clock.t += 1.0
    assert _login_from(actions.client, "10.0.0.5", "admin@example.org", PASSWORD,
                       token).status_code == 302


def _proxy_app(tmp_path: Path, name: str, **extra: Any) -> Any:
    seedmod = sys.modules["fabpass_web_seed"]
    app, _ = seedmod.make_app(f"sqlite:///{tmp_path}/{name}.db", **extra)
    return app


def test_clients_behind_a_trusted_proxy_do_not_share_an_address(tmp_path: Path) -> None:
    from fabpass_web_seed import Actions  # type: ignore[import-not-found]

    for proxies, owner_status in ((0, 429), (1, 302)):
        app = _proxy_app(tmp_path, f"p{proxies}", TRUSTED_PROXIES=proxies)
        app.extensions["fabpass.login_limiter"].clock = FakeClock()
        actions = Actions(app.test_client())
        token = actions.token()

        def via_proxy(client_ip: str, password: str, actions: Any = actions,
                      token: str = token) -> Any:
            return actions.client.post(
                "/login", data={"email": "admin@example.org", "password": password,
                                "csrf_token": token},
                environ_overrides={"REMOTE_ADDR": "127.0.0.1"},
                headers={"X-Forwarded-For": client_ip})

        for _ in range(6):
            via_proxy("203.0.113.9", "guess")
        # without ProxyFix every client is the proxy's 127.0.0.1: the owner is throttled too
        assert via_proxy("198.51.100.7", PASSWORD).status_code == owner_status
        app.extensions["fabpass.engine"].dispose()


def test_cookie_secure_when_the_proxy_spoke_https(tmp_path: Path) -> None:
    for proxies, secure in ((0, False), (1, True)):
        app = _proxy_app(tmp_path, f"s{proxies}", TESTING=False, TRUSTED_PROXIES=proxies)
        r = app.test_client().get("/login", headers={"X-Forwarded-Proto": "https"})
        cookie = "; ".join(r.headers.getlist("Set-Cookie"))
        assert ("Secure" in cookie) is secure, (proxies, cookie)
        app.extensions["fabpass.engine"].dispose()


def test_trusted_proxies_setting_is_checked() -> None:
    from server.settings import ConfigurationError, settings_from_env

    assert settings_from_env({})["TRUSTED_PROXIES"] == 0
    assert settings_from_env({"FABPASS_TRUSTED_PROXIES": "2"})["TRUSTED_PROXIES"] == 2
    for bad in ("-1", "x", "11"):
        with pytest.raises(ConfigurationError, match="FABPASS_TRUSTED_PROXIES"):
            settings_from_env({"FABPASS_TRUSTED_PROXIES": bad})


# ---------------------------------------------------------------- logout


def test_a_cookie_copied_before_logout_is_dead_after_it(app: Any, actions: Any) -> None:
    assert actions.login("admin@example.org").status_code == 302
    copied = actions.client.get_cookie("session").value
    assert actions.client.get("/members").status_code == 200
    actions.client.post("/logout", data={"csrf_token": actions.token("/")})
    thief = app.test_client()
    thief.set_cookie("session", copied)
    assert thief.get("/members").status_code == 302  # back to /login
    # a second login of the same user elsewhere is unaffected by another's logout
    other = type(actions)(app.test_client())
    assert other.login("admin@example.org").status_code == 302
    assert actions.login("admin@example.org").status_code == 302
    actions.client.post("/logout", data={"csrf_token": actions.token("/")})
    assert other.client.get("/members").status_code == 200


# ---------------------------------------------------------------- erasure is final


def test_erased_member_cannot_be_reactivated_by_web_or_api(app: Any, actions: Any, client: Any,
                                                          seed: Any) -> None:
    from server.models import Badge, Member
    from server.services.privacy import erase_member

    with app.app_context():
        db = get_db()
        erase_member(db, seed.alice, actor="test")
        db.commit()
        uid = db.scalar(select(Badge.uid).where(Badge.member_id == seed.alice))
    h = {"Authorization": f"Bearer {seed.token}"}
    r = client.patch(f"/api/v1/members/{seed.alice}", json={"active": True}, headers=h)
    assert r.status_code == 409
    actions.login("admin@example.org")
    page = actions.client.get(f"/members/{seed.alice}").get_data(as_text=True)
    assert "Reactivate" not in page and "Make it work again" not in page
    assert "Add this badge" not in page and "erased" in page
    r = actions.post(f"/members/{seed.alice}/reactivate", follow_redirects=True)
    assert "was erased" in r.get_data(as_text=True)
    actions.post(f"/badges/{uid}/status", {"status": "active"})
    with app.app_context():
        db = get_db()
        m = db.get(Member, seed.alice)
        assert m is not None and not m.active
        assert db.scalar(select(Badge.status).where(Badge.uid == uid)).value == "inactive"
