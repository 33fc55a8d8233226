"""Headless Chromium (Debian's, driven by Playwright) against a real server in a thread,
a real Mosquitto, the server's MQTT core (ingest + access-list publisher) and a real
simulated node (`fabpass node --simulate`, badges tapped on its stdin).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.broker]

CHROMIUM = os.environ.get("FABPASS_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
PASSWORD = "correct horse battery"
WAIT_S = 15.0


class AclWatcher:
    """Subscribes to one node's retained access list and waits for a condition on it."""

    def __init__(self, port: int, topic: str) -> None:
        import paho.mqtt.client as mqtt

        self.latest: dict[str, Any] | None = None
        self.cond = threading.Condition()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                                  client_id=f"web-test-{uuid.uuid4().hex[:8]}")
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.subscribe(topic, qos=1)
        self.client.loop_start()

    def _on_message(self, _c: Any, _u: Any, msg: Any) -> None:
        if not msg.payload:
            return
        with self.cond:
            self.latest = json.loads(msg.payload)
            self.cond.notify_all()

    def wait(self, pred: Callable[[dict[str, Any]], bool], timeout: float = WAIT_S) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        with self.cond:
            while not (self.latest is not None and pred(self.latest)):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"access list never matched; last: {self.latest}")
                self.cond.wait(left)
            return self.latest

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def uids(acl: dict[str, Any]) -> set[str]:
    return {b["uid"] for b in acl.get("badges", [])}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    from werkzeug.serving import make_server

    from fabpass.broker import MosquittoProcess
    from server.runner import CoreOptions, ServerCore

    seedmod = sys.modules["fabpass_web_seed"]
    tmp = tmp_path_factory.mktemp("browser")
    broker = MosquittoProcess()
    broker.start()
    app, seed = seedmod.make_app(f"sqlite:///{tmp}/b.db", MQTT_URL=broker.url)
    core = ServerCore(app.extensions["fabpass.engine"],
                      CoreOptions(mqtt_url=broker.url, client_id=f"web-{uuid.uuid4().hex[:8]}"))
    core.start()
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="web-test-server", daemon=True)
    thread.start()
    watcher = AclWatcher(broker.port, "fabpass/v1/lab/laser-1/acl")
    try:
        yield {"url": f"http://127.0.0.1:{server.server_port}", "seed": seed, "app": app,
               "broker": broker, "acl": watcher, "tmp": tmp}
    finally:
        watcher.close()
        server.shutdown()
        thread.join(5)
        core.stop()
        app.extensions["fabpass.engine"].dispose()
        broker.cleanup()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"Debian's chromium is needed at {CHROMIUM} (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    pw = sync_playwright().start()
    b = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
    yield b
    b.close()
    pw.stop()


def _page(browser: Any, locale: str = "en-GB") -> Any:
    ctx = browser.new_context(locale=locale)
    ctx.set_default_timeout(WAIT_S * 1000)
    page = ctx.new_page()
    page.on("dialog", lambda d: d.accept())  # confirmations of destructive actions
    return page


def _login(page: Any, base: str, email: str = "admin@example.org") -> None:
    page.goto(base + "/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(base + "/")


def test_manager_day(stack: dict[str, Any], browser: Any) -> None:
    """Log in, enrol an unknown badge, grant a training (list changes), revoke, lock."""
    from playwright.sync_api import expect

    base, seed, acl = stack["url"], stack["seed"], stack["acl"]
    first = acl.wait(lambda a: "04A1B2C3" in uids(a))  # the publisher sent the laser's list
    assert "04DEAD01" not in uids(first)
    page = _page(browser)
    _login(page, base)
    expect(page.get_by_role("heading", name="Machines right now")).to_be_visible()

    # enrol the unknown badge: one click on the unknown-badges page
    page.get_by_role("link", name="Unknown badges").click()
    row = page.get_by_role("row").filter(has_text="04DEAD01")
    row.get_by_label("Member").select_option(label="Bob Durand")
    row.get_by_role("button", name="Assign").click()
    expect(page.locator(".flash.success")).to_contain_text("04DEAD01 now belongs to Bob Durand")

    # grant a training on the laser: the node's retained list gains the badge
    page.get_by_role("link", name="Trainings").click()
    page.get_by_role("link", name="Record a training").first.click()
    page.get_by_label("Find a member in the list").fill("bob")
    expect(page.locator("#members option", has_text="Alice Martin")).to_be_hidden()
    page.get_by_label("Members trained").select_option(label="Bob Durand")
    page.get_by_label("Machine or group of machines").select_option(label="Laser cutter")
    page.get_by_role("button", name="Record the training").click()
    expect(page.locator(".flash.success")).to_contain_text("Training recorded for 1 member")
    granted = acl.wait(lambda a: "04DEAD01" in uids(a))
    assert next(b for b in granted["badges"] if b["uid"] == "04DEAD01")["member"] == seed.bob

    # revoke it with a reason: the badge leaves the list
    page.goto(f"{base}/members/{seed.bob}")
    page.get_by_role("row").filter(has_text="Laser cutter").get_by_role("link", name="Revoke").click()
    page.get_by_label("Reason").fill("unsafe use")
    page.get_by_role("button", name="Revoke").click()
    expect(page.locator(".flash.success")).to_contain_text("Training revoked")
    acl.wait(lambda a: "04DEAD01" not in uids(a) and a["version"] > granted["version"])

    # lock the machine (a confirmation dialog is accepted): the list says locked
    page.get_by_role("link", name="Machines").first.click()
    page.get_by_role("link", name="Laser cutter", exact=True).click()
    page.get_by_label("Reason (shown to managers)").fill("lens cleaning")
    page.get_by_role("button", name="Lock the machine").click()
    expect(page.locator(".flash.success")).to_contain_text("is locked")
    expect(page.get_by_role("button", name="Unlock the machine")).to_be_visible()
    acl.wait(lambda a: a["locked"] is True)
    page.get_by_role("button", name="Unlock the machine").click()
    acl.wait(lambda a: a["locked"] is False)
    page.context.close()


def test_dashboard_shows_a_session_from_a_simulated_node(stack: dict[str, Any],
                                                         browser: Any) -> None:
    """A real `fabpass node --simulate`: a badge tap shows up on the open dashboard, no reload."""
    from playwright.sync_api import expect

    base, tmp = stack["url"], Path(stack["tmp"])
    stack["acl"].wait(lambda a: a["locked"] is False and "04A1B2C3" in uids(a))
    page = _page(browser)
    _login(page, base)
    card = page.locator(".card").filter(has_text="Laser cutter")
    expect(card).to_be_visible()
    cfg = tmp / "laser-1.toml"
    cfg.write_text(
        'node_id = "laser-1"\nsite = "lab"\n\n[mqtt]\n'
        f'url = "{stack["broker"].url}"\n\n[reader]\ntype = "sim"\n\n'
        '[gpio]\nrelay = { pin = 17, active_high = true }\n\n'
        f'[storage]\ndir = "{tmp / "laser-1-data"}"\n'
    )
    fabpass = str(Path(sys.executable).with_name("fabpass"))
    proc = subprocess.Popen([fabpass, "node", "--config", str(cfg), "--simulate"],
                            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        # the node is up when the server has its status with the current list
        expect(card).to_have_class("card state-idle", timeout=WAIT_S * 1000)
        _wait_node_has_list(stack)
        assert proc.stdin is not None
        proc.stdin.write("tap 04A1B2C3\n")
        proc.stdin.flush()
        expect(card).to_contain_text("Alice Martin", timeout=WAIT_S * 1000)
        expect(card).to_have_class("card state-in_use")
        expect(card.locator(".badge")).to_have_text("In use")
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    page.context.close()


def _wait_node_has_list(stack: dict[str, Any]) -> None:
    from sqlalchemy import select

    from server.app import get_db
    from server.models import Node

    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        with stack["app"].app_context():
            node = get_db().scalar(select(Node).where(Node.slug == "laser-1"))
            if node is not None and node.online and node.acl_version is not None \
                    and node.acl_version == node.acl_published_version:
                return
        time.sleep(0.1)
    raise AssertionError("the simulated node never reported the current access list")


def test_french_and_english(stack: dict[str, Any], browser: Any) -> None:
    from playwright.sync_api import expect

    base = stack["url"]
    page = _page(browser, locale="fr-FR")
    page.goto(base + "/login")
    expect(page.get_by_role("heading", name="Se connecter")).to_be_visible()
    page.get_by_label("E-mail").fill("manager@example.org")
    page.get_by_label("Mot de passe").fill(PASSWORD)
    page.get_by_role("button", name="Se connecter").click()
    expect(page.get_by_role("heading", name="Les machines en ce moment")).to_be_visible()
    expect(page.get_by_role("link", name="Membres")).to_be_visible()
    page.get_by_role("button", name="EN").click()
    expect(page.get_by_role("heading", name="Machines right now")).to_be_visible()
    page.get_by_role("link", name="Members").click()
    expect(page.get_by_role("heading", name="Members")).to_be_visible()
    page.get_by_role("button", name="FR").click()
    expect(page.get_by_role("heading", name="Membres")).to_be_visible()
    page.context.close()


def test_dashboard_shows_maintenance_without_reload(stack: dict[str, Any], browser: Any) -> None:
    """A task falling due appears on the open dashboard through the 2 s polling."""
    from datetime import UTC, datetime, timedelta

    from playwright.sync_api import expect

    from server.app import get_db
    from server.models import UsageSession
    from server.services import maintenance

    base, seed = stack["url"], stack["seed"]
    page = _page(browser)
    _login(page, base)
    card = page.locator(".card").filter(has_text="3D printer")
    expect(card).to_be_visible()
    expect(card.locator(".maint li")).to_have_count(0)
    with stack["app"].app_context():
        db = get_db()
        t0 = datetime.now(UTC) - timedelta(hours=4)
        db.add(UsageSession(session_uuid=str(uuid.uuid4()), machine_id=seed.printer,
                            member_id=seed.bob, badge_uid="04B0B0B0", started_at=t0,
                            ended_at=t0 + timedelta(hours=2), duration_s=7200, active_s=7200,
                            end_reason="badge_out"))
        maintenance.create_task(db, seed.printer, "Grease the rods", 1.0)
        db.commit()
    expect(card.locator(".maint li")).to_have_text(["Maintenance overdue: Grease the rods"],
                                                   timeout=WAIT_S * 1000)
    page.context.close()


def test_new_node_credentials_download(stack: dict[str, Any], browser: Any) -> None:
    """Admin: 'New credentials' (confirmed) shows the config once; the link saves it as a file."""
    from playwright.sync_api import expect

    base = stack["url"]
    page = _page(browser)
    _login(page, base)
    page.goto(base + "/nodes")
    with page.expect_download() as plain:
        page.get_by_role("link", name="Download config").first.click()
    assert plain.value.suggested_filename in ("laser-1.toml", "printer-1.toml")
    text = Path(plain.value.path()).read_text()
    assert "node_id = " in text and "\npassword =" not in text
    page.locator('form[action="/nodes/laser-1/credentials"] button').click()
    expect(page.get_by_role("heading", name="New credentials for laser-1")).to_be_visible()
    shown = page.locator("#node-config").input_value()
    assert "\npassword = " in shown
    with page.expect_download() as full:
        page.get_by_role("link", name="Save the config file").click()
    assert full.value.suggested_filename == "laser-1.toml"
    assert Path(full.value.path()).read_text() == shown
    page.context.close()
