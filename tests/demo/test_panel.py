"""The virtual-badges panel against a seeded database and a recording node registry."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from fabpass.demo import ADMIN_EMAIL, UNKNOWN_UID, ensure_admin, seed
from server.app import create_app
from server.db import make_engine, make_sessionmaker, upgrade

PASSWORD = "demo-password-123"


class RecordingNodes:
    """The lowest layer the panel talks to: records the lines a node's stdin would get."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []
        self.busy_state: dict[str, bool] = {}

    def slugs(self) -> list[str]:
        return ["laser-1", "printer-1", "printer-2"]

    def send(self, node_slug: str, line: str) -> None:
        self.sent.append((node_slug, line))
        if line.startswith("busy "):
            self.busy_state[node_slug] = line == "busy on"

    def busy(self, slug: str) -> bool:
        return self.busy_state.get(slug, False)


@pytest.fixture(scope="module")
def seeded_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One migrated, seeded database per module; each test gets a copy."""
    path = tmp_path_factory.mktemp("seed") / "fabpass.db"
    url = f"sqlite:///{path}"
    upgrade(url)
    engine = make_engine(url)
    with make_sessionmaker(engine)() as db:
        seed(db)
        ensure_admin(db, PASSWORD)
        db.commit()
    with engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    engine.dispose()
    return path


def _make_app(tmp_path: Path, seeded: Path, demo: bool, nodes: Any) -> Flask:
    shutil.copy(seeded, tmp_path / "fabpass.db")
    url = f"sqlite:///{tmp_path}/fabpass.db"
    return create_app({"TESTING": True, "DATABASE_URL": url, "DATA_DIR": str(tmp_path),
                       "SECRET_KEY": "x" * 32, "DEMO": demo, "DEMO_NODES": nodes,
                       "DEMO_INFO": {"unknown_uid": UNKNOWN_UID, "idle_end_s": 60},
                       "RATELIMIT_ENABLED": False})


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "no CSRF token in the page"
    return found.group(1)


def _login(client: FlaskClient) -> None:
    page = client.get("/login").get_data(as_text=True)
    resp = client.post("/login", data={"email": ADMIN_EMAIL, "password": PASSWORD,
                                       "csrf_token": _csrf(page)})
    assert resp.status_code in (302, 303), resp.get_data(as_text=True)[:500]


@pytest.fixture()
def nodes() -> RecordingNodes:
    return RecordingNodes()


@pytest.fixture()
def client(tmp_path: Path, seeded_db: Path, nodes: RecordingNodes) -> Iterator[FlaskClient]:
    app = _make_app(tmp_path, seeded_db, True, nodes)
    with app.test_client() as c:
        yield c


def test_panel_needs_a_login(client: FlaskClient, nodes: RecordingNodes) -> None:
    resp = client.get("/demo/")
    assert resp.status_code == 302 and "/login" in resp.headers["Location"]
    resp = client.post("/demo/badge", data={"machine": "laser-1", "action": "tap",
                                            "uid": "0B5E2D71"})
    assert resp.status_code in (302, 400)
    assert nodes.sent == []


def test_panel_lists_badges_and_machines(client: FlaskClient) -> None:
    _login(client)
    html = client.get("/demo/").get_data(as_text=True)
    assert "Bruno Martin" in html and "0B5E2D71" in html
    assert UNKNOWN_UID in html
    assert 'value="printer-2"' in html
    assert "Virtual badges" in html


def test_tap_sends_one_line_to_the_chosen_node(client: FlaskClient, nodes: RecordingNodes) -> None:
    _login(client)
    token = _csrf(client.get("/demo/").get_data(as_text=True))
    resp = client.post("/demo/badge", data={"machine": "laser-1", "action": "tap",
                                            "uid": "0B5E2D71", "csrf_token": token})
    assert resp.status_code == 302
    assert nodes.sent == [("laser-1", "tap 0B5E2D71")]


def test_other_uid_is_normalised_and_bad_uid_refused(client: FlaskClient,
                                                     nodes: RecordingNodes) -> None:
    _login(client)
    token = _csrf(client.get("/demo/").get_data(as_text=True))
    client.post("/demo/badge", data={"machine": "printer-1", "action": "place", "uid": "0B5E2D71",
                                     "uid_other": "04:a1:b2:c3:d4:e5:f6", "csrf_token": token})
    resp = client.post("/demo/badge", data={"machine": "printer-1", "action": "tap",
                                            "uid_other": "xyz", "csrf_token": token},
                       follow_redirects=True)
    assert "Not a badge UID" in resp.get_data(as_text=True)
    client.post("/demo/badge", data={"machine": "printer-1", "action": "remove",
                                     "csrf_token": token})
    assert nodes.sent == [("printer-1", "place 04A1B2C3D4E5F6"), ("printer-1", "remove")]


def test_double_tap_sends_two_taps(client: FlaskClient, nodes: RecordingNodes) -> None:
    _login(client)
    token = _csrf(client.get("/demo/").get_data(as_text=True))
    client.post("/demo/badge", data={"machine": "laser-1", "action": "double_tap",
                                     "uid": "04A1B2C3", "csrf_token": token})
    assert nodes.sent == [("laser-1", "tap 04A1B2C3"), ("laser-1", "tap 04A1B2C3")]


def test_busy_toggle(client: FlaskClient, nodes: RecordingNodes) -> None:
    _login(client)
    token = _csrf(client.get("/demo/").get_data(as_text=True))
    client.post("/demo/busy", data={"machine": "printer-2", "busy": "on", "csrf_token": token})
    html = client.get("/demo/state").get_data(as_text=True)
    assert "Set idle" in html
    client.post("/demo/busy", data={"machine": "printer-2", "busy": "off", "csrf_token": token})
    assert nodes.sent == [("printer-2", "busy on"), ("printer-2", "busy off")]


def test_unknown_machine_or_action_sends_nothing(client: FlaskClient,
                                                 nodes: RecordingNodes) -> None:
    _login(client)
    token = _csrf(client.get("/demo/").get_data(as_text=True))
    client.post("/demo/badge", data={"machine": "nope", "action": "tap", "uid": "0B5E2D71",
                                     "csrf_token": token})
    client.post("/demo/badge", data={"machine": "laser-1", "action": "explode",
                                     "uid": "0B5E2D71", "csrf_token": token})
    client.post("/demo/busy", data={"machine": "laser-1", "busy": "maybe", "csrf_token": token})
    assert nodes.sent == []


def test_post_without_csrf_is_refused(client: FlaskClient, nodes: RecordingNodes) -> None:
    _login(client)
    resp = client.post("/demo/badge", data={"machine": "laser-1", "action": "tap",
                                            "uid": "0B5E2D71"})
    assert resp.status_code == 400
    assert nodes.sent == []


def test_french_panel(client: FlaskClient) -> None:
    _login(client)
    html = client.get("/demo/", headers={"Accept-Language": "fr"}).get_data(as_text=True)
    assert "Badges virtuels" in html
    assert "Présenter un badge" in html


def test_no_panel_outside_the_demo(tmp_path: Path, seeded_db: Path,
                                   nodes: RecordingNodes) -> None:
    app = _make_app(tmp_path, seeded_db, False, nodes)
    with app.test_client() as c:
        _login(c)
        assert c.get("/demo/").status_code == 404


def test_french_catalog_is_complete_and_agrees_with_the_web_ui() -> None:
    import importlib.util

    from babel.messages.pofile import read_po

    root = Path(__file__).resolve().parents[2] / "server" / "translations_demo"
    spec = importlib.util.spec_from_file_location("fr_messages", root / "fr_messages.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with open(root / "messages.pot", "rb") as f:
        template = read_po(f)
    missing = [msg.id for msg in template if msg.id and msg.id not in module.FR]
    assert missing == []
    assert module.conflicts_with_web() == []


def test_node_log_lines_are_shortened_for_the_panel() -> None:
    from server.web.demo import _short

    assert _short("2026-11-22 20:58:23,239 INFO controller.hardware: relay on") == "20:58:23 relay on"
    assert _short("unknown line: tip") == "unknown line: tip"
