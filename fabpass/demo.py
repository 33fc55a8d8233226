"""`fabpass demo`: the whole system on one machine, no set-up.

A private broker (Mosquitto if installed, else the embedded amqtt broker), the
server on SQLite running in this process (so the virtual-badges panel can write
to the nodes' stdin), and three simulated node processes. Seed data gives a
visitor something to click through: members with and without trainings,
expired ones, a trainer, a week of past usage.

Every child gets PR_SET_PDEATHSIG and its own process group, so neither
Ctrl-C in the terminal nor a killed demo leaves a node running.
"""

from __future__ import annotations

import collections
import ctypes
import logging
import os
import random
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any, Protocol
from zoneinfo import ZoneInfo

import click

log = logging.getLogger(__name__)

TIMEZONE = "Europe/Paris"
ADMIN_EMAIL = "admin@example.org"
IDLE_END_S = 60  # printers: the relay stays on until the machine has been idle this long
# A simulated `tap` keeps the card on the reader ~0.3 s and the reader needs a few polls to see
# it gone; a hand cannot present a card again faster than this, so the registry paces card lines.
MIN_CARD_GAP_S = 0.8


class DemoError(RuntimeError):
    """The demo could not start or a demo node cannot be reached."""


# ---------------------------------------------------------------- seed data


def N_(text: str) -> str:
    """Marks a string for the panel's catalog (translated when shown, not here)."""
    return text


SITES = [("centre", "Fablab du Centre"), ("nord", "Atelier Nord")]

PRINTER_POLICY = {"mode": "tap", "power_off": "when_idle", "idle_end_s": IDLE_END_S}


@dataclass(frozen=True)
class DemoMachine:
    slug: str  # also the node's slug: one node drives one machine
    name: str
    site: str
    kind: str
    policy: dict[str, Any]
    hourly_rate: float


MACHINES = [
    DemoMachine("laser-1", "Laser Trotec Speedy 300", "centre", "laser_cutter", {"mode": "tap"}, 12.0),
    DemoMachine("printer-1", "Prusa MK4 · centre", "centre", "3d_printer", PRINTER_POLICY, 2.0),
    DemoMachine("printer-2", "Prusa MK4 · nord", "nord", "3d_printer", PRINTER_POLICY, 2.0),
]
PRINTERS_GROUP = ("printers", "All 3D printers")
# Listed with this `until`, so the node itself refuses her with `expired` once it has passed.
CHLOE_LASER_EXPIRY = timedelta(minutes=2)


@dataclass(frozen=True)
class DemoMember:
    name: str
    email: str
    member_no: str
    site: str
    tags: list[str]
    badges: list[tuple[str, str]]  # (uid, status)
    # (machine slug or "group:slug", role, expiry from now: None = never, negative = expired)
    trainings: list[tuple[str, str, timedelta | None]] = field(default_factory=list)
    note: str = ""


MEMBERS = [
    DemoMember("Alice Durand", "alice@example.org", "M-0001", "centre",
               ["age:26-40", "area:centre"], [("04A1B2C3", "active")],
               [("laser-1", "trainer", None), ("group:printers", "trainer", None)],
               N_("trainer on every machine: tap twice to sign a trainee off")),
    DemoMember("Bruno Martin", "bruno@example.org", "M-0002", "centre",
               ["age:18-25", "area:centre"], [("0B5E2D71", "active")],
               [("laser-1", "user", timedelta(days=300)), ("group:printers", "user", None)],
               N_("trained on everything")),
    DemoMember("Chloé Bernard", "chloe@example.org", "M-0003", "nord",
               ["age:41-60", "area:nord"], [("3F9A6C12", "active")],
               [("group:printers", "user", None), ("laser-1", "user", CHLOE_LASER_EXPIRY)],
               N_("printers; laser training runs out 2 minutes after the demo's first start")),
    DemoMember("David Petit", "david@example.org", "M-0004", "centre",
               ["age:60+", "area:sud"], [("7C21E4A8", "active")],
               [("laser-1", "user", timedelta(days=-3))],
               N_("laser training expired 3 days ago")),
    DemoMember("Emma Leroy", "emma@example.org", "M-0005", "nord",
               ["age:under-18", "area:nord"], [("04D2E6F1A22B80", "active")], [],
               N_("no training yet (7-byte badge)")),
    DemoMember("Farid Haddad", "farid@example.org", "M-0006", "centre",
               ["age:26-40", "area:centre"], [("5A6B7C8D", "lost"), ("9E8D7C6B", "active")],
               [("laser-1", "user", None)],
               N_("laser; his first badge is declared lost")),
    DemoMember("Gaëlle Rousseau", "gaelle@example.org", "M-0007", "nord",
               ["age:18-25", "area:nord"], [("2C4E6A8B", "active")],
               [("printer-2", "user", timedelta(days=3))],
               N_("printer-2 only, expires in 3 days")),
    DemoMember("Hugo Moreau", "hugo@example.org", "M-0008", "centre",
               ["age:41-60", "area:sud"], [("6D1F3B5E", "active")],
               [("laser-1", "user", None), ("group:printers", "user", timedelta(days=60))],
               N_("trained on everything")),
]
UNKNOWN_UID = "DEADBEEF"  # a card nobody enrolled, offered by the panel


def seed(db: Any, rng: random.Random | None = None, now: datetime | None = None) -> None:
    """Insert the demo's sites, machines, nodes, members, badges, trainings and past usage.

    Written against the models directly (not the service layer) so it is one
    transaction the caller commits, before any node or publisher runs.
    """
    from server import models as m

    rng = rng or random.Random(7)
    now = now or datetime.now(UTC)
    sites = {slug: m.Site(slug=slug, name=name, timezone=TIMEZONE) for slug, name in SITES}
    db.add_all(sites.values())
    machines: dict[str, Any] = {}
    for spec in MACHINES:
        node = m.Node(slug=spec.slug, site=sites[spec.site])
        machine = m.Machine(slug=spec.slug, name=spec.name, site=sites[spec.site],
                            kind=m.MachineKind(spec.kind), node=node, policy=dict(spec.policy),
                            requires_authorization=True, hourly_rate=spec.hourly_rate)
        db.add_all([node, machine])
        machines[spec.slug] = machine
    group = m.MachineGroup(slug=PRINTERS_GROUP[0], name=PRINTERS_GROUP[1],
                           machines=[machines["printer-1"], machines["printer-2"]])
    db.add(group)
    db.flush()

    users_of: dict[str, list[Any]] = {spec.slug: [] for spec in MACHINES}
    for spec_m in MEMBERS:
        member = m.Member(name=spec_m.name, email=spec_m.email, member_no=spec_m.member_no,
                          site=sites[spec_m.site], tags=list(spec_m.tags), active=True,
                          created_at=now - timedelta(days=rng.randint(40, 400)))
        db.add(member)
        for uid, status in spec_m.badges:
            db.add(m.Badge(uid=uid, member=member, status=m.BadgeStatus(status)))
        for target, role, offset in spec_m.trainings:
            expires = None if offset is None else now + offset
            granted = now - timedelta(days=rng.randint(30, 200))
            if expires is not None and expires < granted:
                granted = expires - timedelta(days=365)
            auth = m.Authorization(member=member, role=m.AuthRole(role), granted_at=granted,
                                   expires_at=expires, granted_via="import")
            if target.startswith("group:"):
                auth.group = group
                covered = [machines["printer-1"], machines["printer-2"]]
            else:
                auth.machine = machines[target]
                covered = [machines[target]]
            db.add(auth)
            for machine in covered:
                users_of[machine.slug].append((member, spec_m.badges))
    db.flush()
    _seed_usage(db, m, machines, users_of, rng, now)
    db.flush()
    _seed_maintenance(db, m, machines, now)


# (machine, task, every N active hours, hours left at the start: < 0 overdue, small = due)
MAINTENANCE = [
    ("laser-1", "Clean the lens and mirrors", 5.0, -0.4),
    ("laser-1", "Check the tube and the water cooling", 500.0, 320.0),
    ("printer-1", "Clean the nozzle and the bed", 20.0, 1.0),
    ("printer-2", "Lubricate the axes", 50.0, 35.0),
]


def _seed_maintenance(db: Any, m: Any, machines: dict[str, Any], now: datetime) -> None:
    """Tasks whose last intervention makes one overdue, one due soon and two fine."""
    from sqlalchemy import func, select

    for slug, name, interval, left in MAINTENANCE:
        machine = machines[slug]
        total = (db.scalar(select(func.coalesce(func.sum(m.UsageSession.active_s), 0.0))
                           .where(m.UsageSession.machine_id == machine.id)) or 0.0) / 3600.0
        task = m.MaintenanceTask(machine=machine, name=name, interval_active_h=interval)
        db.add(task)
        done_at_hours = total - (interval - left)
        if done_at_hours > 0:  # otherwise: never done since the machine's first hour
            db.add(m.MaintenanceLog(machine_id=machine.id, task=task, note="demo",
                                    done_at=now - timedelta(days=3),
                                    active_hours_at=round(done_at_hours, 2)))


def _seed_usage(db: Any, m: Any, machines: dict[str, Any], users_of: dict[str, list[Any]],
                rng: random.Random, now: datetime) -> None:
    """A week of finished sessions and a few denied taps, in the sites' opening hours."""
    tz = ZoneInfo(TIMEZONE)
    today = now.astimezone(tz).date()
    for days_back in range(7, 0, -1):
        day = today - timedelta(days=days_back)
        for slug, machine in machines.items():
            users = users_of[slug]
            if not users:
                continue
            start = datetime(day.year, day.month, day.day, 10, rng.randint(0, 59), tzinfo=tz)
            for _ in range(rng.randint(1, 4)):
                member, badges = rng.choice(users)
                uid = next(u for u, status in badges if status == "active")
                minutes = rng.randint(10, 50) if slug.startswith("laser") else rng.randint(40, 150)
                duration = minutes * 60 + rng.randint(0, 59)
                busy = 0.55 if slug.startswith("laser") else 0.9
                started = start.astimezone(UTC)
                ended = started + timedelta(seconds=duration)
                db.add(m.UsageSession(
                    session_uuid=str(uuid.uuid4()), machine=machine, node=machine.node,
                    member=member, badge_uid=uid, started_at=started, ended_at=ended,
                    duration_s=float(duration), active_s=float(round(duration * busy)),
                    end_reason="badge_out" if slug.startswith("laser") else "idle",
                    has_started_event=True, has_ended_event=True))
                start = start + timedelta(seconds=duration + rng.randint(600, 5400))
                if start.hour >= 19:
                    break
            if rng.random() < 0.6:
                reason = rng.choice(["not_authorized", "expired", "unknown_badge"])
                ts = datetime(day.year, day.month, day.day, 15, rng.randint(0, 59),
                              tzinfo=tz).astimezone(UTC)
                db.add(m.Event(event_id=str(uuid.uuid4()), node_id=machine.node.id, node_slug=slug,
                               type="badge.denied", ts=ts, received_at=ts,
                               boot=str(uuid.uuid5(uuid.NAMESPACE_URL, f"demo-{slug}")),
                               seq=0, data={"uid": UNKNOWN_UID if reason == "unknown_badge"
                                            else "7C21E4A8", "reason": reason}))


def ensure_admin(db: Any, password: str) -> None:
    """Create the demo's admin login, or reset its password on a reused data dir."""
    from sqlalchemy import select

    from server import models as m
    from server.security import hash_password

    user = db.scalar(select(m.User).where(m.User.email == ADMIN_EMAIL))
    if user is None:
        user = m.User(email=ADMIN_EMAIL, role=m.UserRole.admin, password_hash="", locale=None)
        db.add(user)
    user.password_hash = hash_password(password)
    user.active = True


# ---------------------------------------------------------------- node processes


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM when the demo dies (Linux), own process group."""
    os.setpgid(0, 0)
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


class DemoNode:
    """One `fabpass node --simulate` child, its stdin and its last output lines."""

    def __init__(self, slug: str, config: Path, log_path: Path) -> None:
        self.slug = slug
        self.config = config
        self.log_path = log_path
        self.lines: collections.deque[str] = collections.deque(maxlen=200)
        self.busy = False
        self._lock = threading.Lock()
        self._last_card = -MIN_CARD_GAP_S
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> None:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "fabpass", "node", "--config", str(self.config), "--simulate"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, bufsize=1, env=env, preexec_fn=_die_with_parent,
        )
        threading.Thread(target=self._pump, args=(self.proc.stdout,), daemon=True,
                         name=f"demo-node-{self.slug}").start()

    def _pump(self, stream: IO[str] | None) -> None:
        if stream is None:
            return
        with open(self.log_path, "a", encoding="utf-8") as out:
            for line in stream:
                out.write(line)
                out.flush()
                self.lines.append(line.rstrip("\n"))
                log.debug("%s: %s", self.slug, line.rstrip())

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def send(self, line: str) -> None:
        proc = self.proc
        if proc is None or proc.stdin is None or proc.poll() is not None:
            raise DemoError(f"node {self.slug} is not running")
        with self._lock:
            if line.startswith(("tap ", "place ")):
                wait = self._last_card + MIN_CARD_GAP_S - time.monotonic()
                if wait > 0:
                    time.sleep(wait)  # pacing a human hand, not waiting for a condition
                self._last_card = time.monotonic()
            try:
                proc.stdin.write(line.strip() + "\n")
                proc.stdin.flush()
            except (BrokenPipeError, ValueError) as exc:
                raise DemoError(f"node {self.slug} is not reading its input") from exc
        if line.strip() in ("busy on", "busy off"):
            self.busy = line.strip() == "busy on"

    def stop(self, timeout: float = 2.0) -> None:
        """SIGTERM; a printer finishing a print waits, so a second SIGTERM cuts; then SIGKILL."""
        proc = self.proc
        if proc is None:
            return
        for sig, wait_s in ((signal.SIGTERM, 1.0), (signal.SIGTERM, timeout),
                            (signal.SIGKILL, timeout)):
            if proc.poll() is not None:
                break
            try:
                proc.send_signal(sig)
                proc.wait(wait_s)
            except subprocess.TimeoutExpired:
                continue
            except ProcessLookupError:
                break
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout)
        if proc.stdin is not None:
            try:
                proc.stdin.close()
            except OSError:
                pass


class DemoNodes:
    """The registry the virtual-badges panel reaches through `app.config["DEMO_NODES"]`."""

    def __init__(self) -> None:
        self.nodes: dict[str, DemoNode] = {}

    def add(self, node: DemoNode) -> None:
        self.nodes[node.slug] = node

    def slugs(self) -> list[str]:
        return list(self.nodes)

    def send(self, node_slug: str, line: str) -> None:
        """Write one simulation line (contract section 5) to that node's stdin."""
        node = self.nodes.get(node_slug)
        if node is None:
            raise DemoError(f"no demo node {node_slug!r}")
        log.info("demo: %s <- %s", node_slug, line)
        node.send(line)

    def output(self, node_slug: str, n: int = 12) -> list[str]:
        node = self.nodes.get(node_slug)
        return list(node.lines)[-n:] if node else []

    def busy(self, node_slug: str) -> bool:
        node = self.nodes.get(node_slug)
        return bool(node and node.busy)

    def alive(self, node_slug: str) -> bool:
        node = self.nodes.get(node_slug)
        return bool(node and node.alive)

    def stop_all(self) -> None:
        threads = [threading.Thread(target=n.stop, daemon=True) for n in self.nodes.values()]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)


def node_config(spec: DemoMachine, mqtt_url: str, protocol: str, storage: Path,
                pins: dict[str, int]) -> str:
    """The TOML config of a simulated node (contract section 4)."""
    lines = [
        f'node_id = "{spec.slug}"',
        f'site = "{spec.site}"',
        "",
        "[mqtt]",
        f'url = "{mqtt_url}"',
        f'protocol = "{protocol}"',
        "",
        "[reader]",
        'type = "sim"',
        "",
        "[gpio]",
        f"relay = {{ pin = {pins['relay']}, active_high = true }}",
        f"green_led = {pins['green']}",
        f"red_led = {pins['red']}",
        f"buzzer = {pins['buzzer']}",
        f"activity = {{ pin = {pins['activity']} }}",
        "",
        "[storage]",
        f'dir = "{storage}"',
        "",
        "[session]",
    ]
    for key, value in spec.policy.items():
        lines.append(f'{key} = "{value}"' if isinstance(value, str) else f"{key} = {value}")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- the demo


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
                 host: str = "127.0.0.1", broker: str = "auto") -> None:
        self.broker_kind = broker
        self._own_dir = data_dir is None
        self.data_dir = Path(data_dir or tempfile.mkdtemp(prefix="fabpass-demo-")).resolve()
        self.host = host
        self.port = port
        self.password = secrets.token_urlsafe(9)
        self.nodes = DemoNodes()
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
                    seed(db)
                    log.info("demo data seeded in %s", self.data_dir)
                ensure_admin(db, self.password)
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
        for spec in MACHINES:
            storage = self.data_dir / "nodes" / spec.slug
            storage.mkdir(parents=True, exist_ok=True)
            config = self.data_dir / "nodes" / f"{spec.slug}.toml"
            config.write_text(node_config(spec, self.broker.url, self.protocol, storage, pins))
            node = DemoNode(spec.slug, config, self.data_dir / "logs" / f"{spec.slug}.log")
            node.start()
            self.nodes.add(node)
        self._stoppers.append(("nodes", self.nodes.stop_all))

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
def demo(data_dir: Path | None, port: int | None, broker: str) -> None:
    """Run a broker, the server and three simulated nodes with seeded data."""
    stop = threading.Event()

    def _on_signal(signum: int, _frame: Any) -> None:
        log.info("demo: %s received, stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    the_demo = Demo(data_dir, port, broker=broker)
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


__all__ = ["ADMIN_EMAIL", "Demo", "DemoError", "DemoNodes", "MACHINES", "MEMBERS", "UNKNOWN_UID",
           "demo", "seed"]
