"""Headless Chromium in French books a slot on the week view; a real simulated node
(`fabpass node --simulate`, real Mosquitto, the server's publisher) then refuses another
trained member during it (`booked`) and lets the booker start."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.broker]

CHROMIUM = os.environ.get("FABPASS_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
PASSWORD = "correct horse battery"
WAIT_S = 15.0
CHLOE = "04C10E01"  # trained on the laser, no booking
SHOTS = os.environ.get("FABPASS_SCREENSHOTS")  # a directory: keep the week-view screenshots


class Lists:
    """The laser node's retained access lists, as the broker delivers them."""

    def __init__(self, port: int) -> None:
        import paho.mqtt.client as mqtt

        self.latest: dict[str, Any] | None = None
        self.cond = threading.Condition()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                                  client_id=f"bk-test-{uuid.uuid4().hex[:8]}")
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.subscribe("fabpass/v1/lab/laser-1/acl", qos=1)
        self.client.loop_start()

    def _on_message(self, _c: Any, _u: Any, msg: Any) -> None:
        if msg.payload:
            with self.cond:
                self.latest = json.loads(msg.payload)
                self.cond.notify_all()

    def wait(self, pred: Any) -> dict[str, Any]:
        deadline = time.monotonic() + WAIT_S
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


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    from werkzeug.serving import make_server

    from fabpass.broker import MosquittoProcess
    from server import services
    from server.app import get_db
    from server.runner import CoreOptions, ServerCore

    seedmod = sys.modules["fabpass_web_seed"]
    tmp = tmp_path_factory.mktemp("bookings-browser")
    broker = MosquittoProcess()
    broker.start()
    app, seed = seedmod.make_app(f"sqlite:///{tmp}/b.db", MQTT_URL=broker.url)
    with app.app_context():
        db = get_db()
        chloe = services.create_member(db, "Chloé Bernard", site="lab", actor="test")
        services.enrol_badge(db, chloe.id, CHLOE, actor="test")
        services.grant(db, chloe.id, machine_id=seed.laser, actor="test")
        services.update_machine(db, seed.laser, policy={"booking": "optional"}, actor="test")
        db.commit()
    core = ServerCore(app.extensions["fabpass.engine"],
                      CoreOptions(mqtt_url=broker.url, client_id=f"bk-{uuid.uuid4().hex[:8]}"))
    core.start()
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="bk-web", daemon=True)
    thread.start()
    lists = Lists(broker.port)
    try:
        yield {"url": f"http://127.0.0.1:{server.server_port}", "seed": seed, "app": app,
               "broker": broker, "lists": lists, "tmp": tmp}
    finally:
        lists.close()
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


def _denials(app: Any) -> list[dict[str, Any]]:
    from sqlalchemy import select

    from server.app import get_db
    from server.models import Event

    with app.app_context():
        return [e.data for e in get_db().scalars(select(Event).where(
            Event.type == "badge.denied"))]


def _wait(pred: Any, what: str) -> Any:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(what)


def test_book_in_french_and_the_node_refuses_someone_else(stack: dict[str, Any],
                                                          browser: Any) -> None:
    from playwright.sync_api import expect

    base, seed, app, tmp = stack["url"], stack["seed"], stack["app"], Path(stack["tmp"])
    now = datetime.now(ZoneInfo("Europe/Paris"))
    if now.hour == 23 and now.minute > 50:
        now -= timedelta(minutes=15)  # keep the slot inside one local day
    start = (now - timedelta(minutes=2)).strftime("%H:%M")
    end = min(now + timedelta(hours=1), now.replace(hour=23, minute=59)).strftime("%H:%M")

    ctx = browser.new_context(locale="fr-FR", viewport={"width": 1280, "height": 900})
    ctx.set_default_timeout(WAIT_S * 1000)
    page = ctx.new_page()
    page.goto(base + "/login")
    page.locator("input[name=email]").fill("manager@example.org")
    page.locator("input[name=password]").fill(PASSWORD)
    page.locator("button[type=submit].primary").click()
    page.wait_for_url(base + "/")
    page.get_by_role("link", name="Réservations").click()
    page.locator("select[name=machine]").select_option(label="Laser cutter")
    expect(page.get_by_role("heading", name="Réserver un créneau")).to_be_visible()
    form = page.locator("#book")
    expect(form).to_contain_text("Membre")
    form.locator("select[name=member_id]").select_option(label="Alice Martin")
    form.locator("input[name=day]").fill(now.date().isoformat())
    form.locator("input[name=start]").fill(start)
    form.locator("input[name=end]").fill(end)
    form.get_by_role("button", name="Réserver").click()
    expect(page.locator(".flash.success")).to_contain_text("Réservé.")
    page.goto(f"{base}/bookings?machine={seed.laser}&week={now.date().isoformat()}")
    expect(page.locator(".slot")).to_contain_text(f"{start}–{end}")
    expect(page.locator(".slot")).to_contain_text("Alice Martin")
    if SHOTS:
        page.screenshot(path=f"{SHOTS}/week-desktop.png", full_page=True)
        page.set_viewport_size({"width": 390, "height": 844})
        page.screenshot(path=f"{SHOTS}/week-390.png", full_page=True)

    # the node's list carries the slot ...
    stack["lists"].wait(lambda a: any(b["member"] == seed.alice for b in a.get("bookings", [])))
    cfg = tmp / "laser-1.toml"
    cfg.write_text(
        'node_id = "laser-1"\nsite = "lab"\n\n[mqtt]\n'
        f'url = "{stack["broker"].url}"\n\n[reader]\ntype = "sim"\n\n'
        '[gpio]\nrelay = { pin = 17, active_high = true }\n\n'
        f'[storage]\ndir = "{tmp / "laser-1-data"}"\n')
    fabpass = str(Path(sys.executable).with_name("fabpass"))
    proc = subprocess.Popen([fabpass, "node", "--config", str(cfg), "--simulate"],
                            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        _wait_node_has_list(app)
        assert proc.stdin is not None
        # ... so it refuses Chloé (trained, no slot) during Alice's slot, naming its end
        proc.stdin.write(f"tap {CHLOE}\n")
        proc.stdin.flush()
        denied = _wait(lambda: [d for d in _denials(app) if d.get("uid") == CHLOE],
                       "the node's refusal never reached the server")
        assert denied[0]["reason"] == "booked" and denied[0]["until"].endswith("Z")
        # and lets Alice start: the dashboard shows her session
        proc.stdin.write("tap 04A1B2C3\n")
        proc.stdin.flush()
        page.set_viewport_size({"width": 1280, "height": 900})
        page.goto(base + "/")
        card = page.locator("#machines .card").filter(has_text="Laser cutter")
        expect(card).to_contain_text("Alice Martin", timeout=WAIT_S * 1000)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    ctx.close()


def _wait_node_has_list(app: Any) -> None:
    from sqlalchemy import select

    from server.app import get_db
    from server.models import Node

    def ready() -> bool:
        with app.app_context():
            node = get_db().scalar(select(Node).where(Node.slug == "laser-1"))
            return bool(node is not None and node.online and node.acl_version is not None
                        and node.acl_version == node.acl_published_version)
    _wait(ready, "the simulated node never reported the current access list")
