"""What the browser tests share: Debian's Chromium through Playwright, a real server in a thread
(werkzeug with the server's MQTT core on a real Mosquitto, or waitress alone), the laser node's
retained access list as the broker delivers it, a real simulated node (`fabpass node --simulate`)
and the bounded waits around them. One copy here, so a fix to the setup reaches every test.

The test modules import it with `sys.path.insert(0, <this folder>)` (pytest runs in importlib
mode); tests/web/conftest.py turns the launcher into the module-scoped `browser` fixture.
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
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = os.environ.get("FABPASS_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
PASSWORD = "correct horse battery"
WAIT_S = 15.0
LASER_ACL = "fabpass/v1/lab/laser-1/acl"


def launch_chromium(args: list[str] = ARGS) -> Iterator[Any]:
    """A headless Chromium for one fixture: `yield from launch_chromium()`; fails (not skips)
    when Debian's chromium is missing, since the browser tests are part of the suite."""
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"Debian's chromium is needed at {CHROMIUM} (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    pw = sync_playwright().start()
    b = pw.chromium.launch(executable_path=CHROMIUM, args=args, headless=True)
    yield b
    b.close()
    pw.stop()


def new_page(browser: Any, locale: str = "en-GB",
             viewport: dict[str, int] | None = None) -> Any:
    """A page in a fresh context that accepts confirmations of destructive actions."""
    kwargs: dict[str, Any] = {"locale": locale}
    if viewport is not None:
        kwargs["viewport"] = viewport
    ctx = browser.new_context(**kwargs)
    ctx.set_default_timeout(WAIT_S * 1000)
    page = ctx.new_page()
    page.on("dialog", lambda d: d.accept())
    return page


def login_fr(page: Any, base: str, email: str) -> None:
    """The French login form, up to the French dashboard."""
    from playwright.sync_api import expect

    page.goto(base + "/login")
    page.get_by_label("E-mail").fill(email)
    page.get_by_label("Mot de passe").fill(PASSWORD)
    page.get_by_role("button", name="Se connecter").click()
    expect(page.get_by_role("heading", name="Les machines en ce moment")).to_be_visible()


class AclWatcher:
    """Subscribes to one node's retained access list and waits for a condition on it."""

    def __init__(self, port: int, topic: str = LASER_ACL, prefix: str = "web-test") -> None:
        import paho.mqtt.client as mqtt

        self.latest: dict[str, Any] | None = None
        self.cond = threading.Condition()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                                  client_id=f"{prefix}-{uuid.uuid4().hex[:8]}")
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


@contextmanager
def mqtt_stack(tmp: Path, prefix: str = "web",
               prepare: Callable[[Any, Any], None] | None = None) -> Iterator[dict[str, Any]]:
    """Mosquitto, the seeded app (`prepare(app, seed)` adds to the seed before the core starts),
    the server's MQTT core, werkzeug in a thread and a watcher on the laser's list."""
    from werkzeug.serving import make_server

    from fabpass.broker import MosquittoProcess
    from server.runner import CoreOptions, ServerCore

    seedmod = sys.modules["fabpass_web_seed"]
    broker = MosquittoProcess()
    broker.start()
    app, seed = seedmod.make_app(f"sqlite:///{tmp}/b.db", MQTT_URL=broker.url)
    if prepare is not None:
        prepare(app, seed)
    core = ServerCore(app.extensions["fabpass.engine"],
                      CoreOptions(mqtt_url=broker.url, client_id=f"{prefix}-{uuid.uuid4().hex[:8]}"))
    core.start()
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name=f"{prefix}-test-server",
                              daemon=True)
    thread.start()
    watcher = AclWatcher(broker.port, prefix=f"{prefix}-test")
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


@contextmanager
def waitress_site(app: Any) -> Iterator[str]:
    """The app behind waitress on a free loopback port (no MQTT); yields its base URL."""
    from waitress.server import create_server

    server = create_server(app, host="127.0.0.1", port=0, threads=4)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.effective_port}"  # type: ignore[union-attr]
    finally:
        server.close()
        thread.join(timeout=5)
        app.extensions["fabpass.engine"].dispose()


def wait_until(pred: Callable[[], Any], what: str, timeout: float = WAIT_S) -> Any:
    """Polls `pred` every 0.1 s until it returns something truthy, for at most `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def events(app: Any, etype: str) -> list[dict[str, Any]]:
    """The data of every stored event of one type."""
    from sqlalchemy import select

    from server.app import get_db
    from server.models import Event

    with app.app_context():
        return [e.data for e in get_db().scalars(select(Event).where(Event.type == etype))]


def wait_node_has_list(app: Any) -> None:
    """Until the server has the laser node online, holding the access list last published."""
    from sqlalchemy import select

    from server.app import get_db
    from server.models import Node

    def ready() -> bool:
        with app.app_context():
            node = get_db().scalar(select(Node).where(Node.slug == "laser-1"))
            return bool(node is not None and node.online and node.acl_version is not None
                        and node.acl_version == node.acl_published_version)
    wait_until(ready, "the simulated node to report the current access list")


def start_sim_node(stack: dict[str, Any], name: str = "laser-1",
                   stderr: int = subprocess.DEVNULL) -> subprocess.Popen[str]:
    """A real `fabpass node --simulate` as the laser, its config and data under `name` in the
    stack's folder; badges are tapped on its stdin (`tap`)."""
    tmp = Path(stack["tmp"])
    cfg = tmp / f"{name}.toml"
    cfg.write_text(
        'node_id = "laser-1"\nsite = "lab"\n\n[mqtt]\n'
        f'url = "{stack["broker"].url}"\n\n[reader]\ntype = "sim"\n\n'
        '[gpio]\nrelay = { pin = 17, active_high = true }\n\n'
        f'[storage]\ndir = "{tmp / f"{name}-data"}"\n')
    fabpass = str(Path(sys.executable).with_name("fabpass"))
    return subprocess.Popen([fabpass, "node", "--config", str(cfg), "--simulate"],
                            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                            stderr=stderr, text=True)


def tap(proc: subprocess.Popen[str], uid: str) -> None:
    assert proc.stdin is not None
    proc.stdin.write(f"tap {uid}\n")
    proc.stdin.flush()


def stop_node(proc: subprocess.Popen[str]) -> None:
    """Terminate the simulated node, killing it if it does not stop within 10 s."""
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)
