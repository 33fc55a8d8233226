"""Start-up of `fabpass demo`: a broker, the database, the server in this process, the nodes.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import click

from fabpass.demo.processes import DemoNode, DemoNodes, node_config
from fabpass.demo.seed import (
    ADMIN_EMAIL,
    DEFAULT_LANG,
    IDLE_END_S,
    LANGUAGES,
    MACHINES,
    MEMBERS,
    TIMEZONE,
    UNKNOWN_UID,
    ensure_admin,
    seed,
)

log = logging.getLogger(__name__)


class _Broker(Protocol):
    port: int

    @property
    def url(self) -> str: ...

    def cleanup(self) -> None: ...


def start_broker(data_dir: Path, kind: str = "auto") -> tuple[_Broker, str, str]:
    """Mosquitto if installed (MQTT 5), else amqtt (MQTT 3.1.1): (broker, protocol, label).

    `kind`: "auto", or "mosquitto" / "embedded" to force one.
    """
    from fabpass.broker import MosquittoProcess, mosquitto_binary

    if kind == "mosquitto" or (kind == "auto" and mosquitto_binary() is not None):
        broker = MosquittoProcess(data_dir=data_dir / "broker", persistence=False).start()
        return broker, "5", f"mosquitto ({broker.binary}) on 127.0.0.1:{broker.port}, MQTT 5"
    from fabpass.embedded_broker import EmbeddedBroker

    embedded = EmbeddedBroker().start()
    return embedded, "3.1.1", (f"embedded amqtt broker on 127.0.0.1:{embedded.port}, "
                               "MQTT 3.1.1 (install mosquitto for MQTT 5)")


class Demo:
    """Everything `fabpass demo` starts, in order, and stops in reverse order."""

    def __init__(self, data_dir: Path | None = None, port: int | None = None,
                 host: str = "127.0.0.1", broker: str = "auto", lang: str = DEFAULT_LANG) -> None:
        self.broker_kind = broker
        self.lang = lang
        self._own_dir = data_dir is None
        self.data_dir = Path(data_dir or tempfile.mkdtemp(prefix="fabpass-demo-")).resolve()
        self.host = host
        self.port = port
        self.password = secrets.token_urlsafe(9)
        self.nodes = DemoNodes()
        self.plugs: dict[str, Any] = {}  # node slug -> fabpass.plugsim.ShellySim
        self.broker: _Broker | None = None
        self.broker_label = ""
        self.protocol = "5"
        self._stoppers: list[tuple[str, Callable[[], None]]] = []

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def database_url(self) -> str:
        return f"sqlite:///{self.data_dir / 'fabpass.db'}"

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        (self.data_dir / "logs").mkdir(exist_ok=True)
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> None:
        from fabpass.broker import free_port

        self.broker, self.protocol, self.broker_label = start_broker(self.data_dir, self.broker_kind)
        self._stoppers.append(("broker", self.broker.cleanup))
        log.info("demo broker: %s", self.broker_label)
        self._prepare_database()
        if self.port is None:
            self.port = _port_or_free(8000) or free_port()
        self._start_server()
        self._start_nodes()

    def _prepare_database(self) -> None:
        from sqlalchemy import select

        from server import models as m
        from server.db import make_engine, make_sessionmaker, upgrade

        logging.getLogger("alembic").setLevel(logging.WARNING)
        upgrade(self.database_url)
        engine = make_engine(self.database_url)
        try:
            with make_sessionmaker(engine)() as db:
                if db.scalar(select(m.Site.id).limit(1)) is None:
                    seed(db, lang=self.lang)
                    log.info("demo data seeded in %s", self.data_dir)
                ensure_admin(db, self.password, lang=self.lang)
                db.commit()
        finally:
            engine.dispose()

    def app_config(self) -> dict[str, Any]:
        assert self.broker is not None
        return {
            "DATA_DIR": str(self.data_dir),
            "DATABASE_URL": self.database_url,
            "MQTT_URL": self.broker.url,
            "MQTT_PROTOCOL": self.protocol,
            "SECRET_KEY": secrets.token_hex(32),
            "TIMEZONE": TIMEZONE,
            "DEMO": True,
            "DEMO_NODES": self.nodes,
            "DEMO_PLUGS": self.plugs,
            "DEMO_INFO": {"admin_email": ADMIN_EMAIL, "broker": self.broker_label,
                          "idle_end_s": IDLE_END_S, "unknown_uid": UNKNOWN_UID,
                          "members": {b[0]: s.note for s in MEMBERS for b in s.badges}},
        }

    def _start_server(self) -> None:
        assert self.broker is not None
        os.environ.update({
            "FABPASS_DATA_DIR": str(self.data_dir),
            "FABPASS_DATABASE_URL": self.database_url,
            "FABPASS_MQTT_URL": self.broker.url,
            "FABPASS_MQTT_PROTOCOL": self.protocol,
            "FABPASS_TIMEZONE": TIMEZONE,
            "FABPASS_DEMO": "1",
        })
        from server.app import create_app

        app = create_app(self.app_config())
        self.app = app
        for name, stop in start_server_parts(app, self.host, int(self.port or 0)):
            self._stoppers.append((name, stop))

    def _start_nodes(self) -> None:
        assert self.broker is not None
        pins = {"relay": 17, "green": 22, "red": 23, "buzzer": 24, "activity": 27}
        from fabpass.plugsim import ShellySim

        for spec in MACHINES:
            if spec.plug:  # the plug first: the node waits for it to say it is online
                self.plugs[spec.slug] = ShellySim(self.broker.url, spec.plug,
                                                  tele_period_s=2.0)
            storage = self.data_dir / "nodes" / spec.slug
            storage.mkdir(parents=True, exist_ok=True)
            config = self.data_dir / "nodes" / f"{spec.slug}.toml"
            config.write_text(node_config(spec, self.broker.url, self.protocol, storage, pins))
            node = DemoNode(spec.slug, config, self.data_dir / "logs" / f"{spec.slug}.log")
            node.start()
            self.nodes.add(node)
        self._stoppers.append(("nodes", self.nodes.stop_all))
        self._stoppers.insert(0, ("plugs", self._stop_plugs))  # stopped after the nodes

    def _stop_plugs(self) -> None:
        for plug in self.plugs.values():
            plug.close()

    def check_children(self) -> list[str]:
        """Slugs of nodes that exited on their own (logged once by the caller)."""
        return [slug for slug, n in self.nodes.nodes.items() if n.proc and not n.alive]

    def stop(self) -> None:
        while self._stoppers:
            name, stop = self._stoppers.pop()
            began = time.monotonic()
            try:
                stop()
                log.debug("demo: stopped %s in %.1f s", name, time.monotonic() - began)
            except Exception:
                log.exception("demo: stopping %s failed", name)
        if self._own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)


def _port_or_free(port: int) -> int | None:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return None
    return port


def start_server_parts(app: Any, host: str, port: int) -> list[tuple[str, Callable[[], None]]]:
    """Start the ingest, the access-list publisher and waitress in this process.

    Returns (name, stop) pairs in start order.
    """
    from server.runner import CoreOptions, ServerCore

    stoppers: list[tuple[str, Callable[[], None]]] = []
    options = CoreOptions.from_settings(app.config, client_id="fabpass-demo-server")
    core = ServerCore(app.extensions["fabpass.engine"], options)
    core.start()
    stoppers.append(("ingest+publisher", core.stop))
    from waitress.server import create_server

    server = create_server(app, host=host, port=port, threads=16, ident="fabpass")

    def serve() -> None:
        try:
            server.run()
        except Exception:  # closing the sockets ends run() with an error
            log.debug("waitress stopped", exc_info=True)

    thread = threading.Thread(target=serve, name="waitress", daemon=True)
    thread.start()

    def stop_http() -> None:
        server.close()
        thread.join(2)

    stoppers.append(("http", stop_http))
    return stoppers


@click.command()
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path),
              help="keep the database, logs and node state here (default: a temporary "
                   "directory removed on exit)")
@click.option("--port", type=int, default=None,
              help="web port on 127.0.0.1 (default 8000, or a free one if 8000 is taken)")
@click.option("--broker", type=click.Choice(["auto", "mosquitto", "embedded"]), default="auto",
              show_default=True,
              help="auto: Mosquitto if installed, else the embedded Python broker (MQTT 3.1.1)")
@click.option("--lang", type=click.Choice(list(LANGUAGES)), default=DEFAULT_LANG, show_default=True,
              help="language of the seeded names (machines, group, maintenance tasks) and of "
                   "the admin's mails")
def demo(data_dir: Path | None, port: int | None, broker: str, lang: str) -> None:
    """Run a broker, the server and four simulated nodes (one on a smart plug) with seed data."""
    stop = threading.Event()

    def _on_signal(signum: int, _frame: Any) -> None:
        log.info("demo: %s received, stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    the_demo = Demo(data_dir, port, broker=broker, lang=lang)
    try:
        the_demo.start()
    except Exception as exc:
        raise click.ClickException(f"the demo could not start: {exc}") from exc
    click.echo(
        f"\nfabpass demo is running: {the_demo.url}\n"
        f"  log in as {ADMIN_EMAIL} with password {the_demo.password}\n"
        f"  virtual badges: {the_demo.url}/demo/\n"
        f"  broker: {the_demo.broker_label}\n"
        f"  data dir: {the_demo.data_dir}"
        f"{' (removed on exit)' if data_dir is None else ''}\n"
        "Press Ctrl-C to stop.\n"
    )
    sys.stdout.flush()
    reported: set[str] = set()
    try:
        while not stop.wait(1.0):
            for slug in the_demo.check_children():
                if slug not in reported:
                    reported.add(slug)
                    log.error("demo: node %s exited; see %s", slug,
                              the_demo.data_dir / "logs" / f"{slug}.log")
    finally:
        the_demo.stop()
        log.info("demo stopped")
