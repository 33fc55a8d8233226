"""Processes for fault injection: simulated nodes, the real server ingest, a seeded database.

Everything runs as real subprocesses (`python -m fabpass …`) so SIGKILL means what it means on
a Pi or a server: no cleanup, no flush, nothing but what already reached the disk.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[2]
SITE = "lab"


def wait_until(pred: Callable[[], Any], timeout: float, what: str, step: float = 0.05) -> Any:
    """Poll `pred` until truthy (bounded); fail naming `what`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(step)
    value = pred()
    assert value, f"timed out after {timeout} s waiting for {what}"
    return value


def node_config(path: Path, *, broker_url: str, node: str, storage: Path,
                heartbeat_s: int = 5, extra: str = "") -> Path:
    path.write_text(f'''node_id = "{node}"
site = "{SITE}"

[mqtt]
url = "{broker_url}"

[reader]
type = "sim"

[gpio]
relay = {{ pin = 17, active_high = true }}

[storage]
dir = "{storage}"

[session]
heartbeat_s = {heartbeat_s}
{extra}
''')
    return path


@dataclass
class Line:
    at: float  # time.monotonic() in the test when the line arrived
    text: str


class Proc:
    """A `python -m fabpass …` child whose merged output is collected with arrival times."""

    def __init__(self, args: list[str], env: dict[str, str] | None = None,
                 stdin: bool = False) -> None:
        self.args = args
        self.env = dict(os.environ, PYTHONUNBUFFERED="1", **(env or {}))
        self.env.pop("NOTIFY_SOCKET", None)
        self.stdin = stdin
        self.lines: list[Line] = []
        self.proc: subprocess.Popen[str] | None = None
        self._cond = threading.Condition()
        self.starts = 0

    def start(self) -> Proc:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "fabpass", "--log-level", "DEBUG", *self.args],
            stdin=subprocess.PIPE if self.stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT, env=self.env)
        self.starts += 1
        threading.Thread(target=self._pump, args=(self.proc,), daemon=True).start()
        return self

    def _pump(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout
        for raw in proc.stdout:
            with self._cond:
                self.lines.append(Line(time.monotonic(), raw.rstrip("\n")))
                self._cond.notify_all()

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def send(self, line: str) -> None:
        assert self.proc and self.proc.stdin
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def find(self, pattern: str, since: int = 0) -> list[re.Match[str]]:
        rx = re.compile(pattern)
        with self._cond:
            return [m for line in self.lines[since:] if (m := rx.search(line.text))]

    def find_lines(self, pattern: str) -> list[tuple[Line, re.Match[str]]]:
        rx = re.compile(pattern)
        with self._cond:
            return [(line, m) for line in self.lines if (m := rx.search(line.text))]

    def mark(self) -> int:
        with self._cond:
            return len(self.lines)

    def wait_line(self, pattern: str, timeout: float = 10.0, since: int = 0) -> re.Match[str]:
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for line in self.lines[since:]:
                    if m := rx.search(line.text):
                        return m
                left = deadline - time.monotonic()
                if left <= 0:
                    tail = "\n".join(ln.text for ln in self.lines[-30:])
                    raise AssertionError(f"no {pattern!r} within {timeout} s; output:\n{tail}")
                self._cond.wait(left)

    def kill(self) -> float:
        """SIGKILL; returns the moment (test monotonic clock) of the kill."""
        assert self.proc
        at = time.monotonic()
        self.proc.kill()
        self.proc.wait(10)
        return at

    def stop(self, timeout: float = 10.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if self.proc.stdin:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
        return self.proc.returncode


class NodeProc(Proc):
    """`fabpass node --config FILE --simulate`."""

    def __init__(self, name: str, config: Path, storage: Path) -> None:
        super().__init__(["node", "--config", str(config), "--simulate"], stdin=True)
        self.name = name
        self.storage = storage

    def tap(self, uid: str, timeout: float = 10.0) -> int:
        """Tap a card and wait until the reader saw it leave; returns the line mark before it."""
        mark = self.mark()
        self.send(f"tap {uid}")
        self.wait_line(rf"reader: {uid} removed", timeout, since=mark)
        return mark

    def relay(self) -> list[str]:
        return [m.group(1) for m in self.find(r": relay (on|off)$")]

    def event_ids(self) -> set[str]:
        """Every event the node logged as stored in its outbox."""
        return {m.group(1) for m in self.find(r"event [\w.]+ #\d+ ([0-9a-f-]{36})$")}

    def outbox_ids(self) -> set[str]:
        """Events still waiting for an ack, read from the node's outbox on disk."""
        path = self.storage / "outbox.db"
        if not path.exists():
            return set()
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            return {str(r[0]) for r in db.execute("SELECT id FROM outbox")}
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):  # the node is creating it right now
                return set()
            raise
        finally:
            db.close()


def server_env(db_url: str, broker_url: str) -> dict[str, str]:
    return {"FABPASS_DATABASE_URL": db_url, "FABPASS_MQTT_URL": broker_url,
            "FABPASS_SECRET_KEY": "reliability-tests", "FABPASS_MQTT_CLIENT_ID": "fabpass-rel"}


def ingest_proc(db_url: str, broker_url: str) -> Proc:
    """`fabpass ingest --publisher`: the server's MQTT side (ingest + access-list publisher)."""
    return Proc(["ingest", "--publisher"], env=server_env(db_url, broker_url))


@dataclass
class Fleet:
    """The database side of a test: one site, one machine+node and one member+badge per node."""

    nodes: list[str]
    badges: dict[str, str] = field(default_factory=dict)  # node → uid of its member
    members: dict[str, int] = field(default_factory=dict)
    machines: dict[str, int] = field(default_factory=dict)
    auth_ids: dict[str, int] = field(default_factory=dict)


def seed(db_url: str, n_nodes: int, policy: dict[str, Any] | None = None) -> Fleet:
    from server import services as s
    from server.db import make_engine, make_sessionmaker, upgrade

    upgrade(db_url)
    engine = make_engine(db_url)
    fleet = Fleet(nodes=[f"node-{i + 1}" for i in range(n_nodes)])
    try:
        with make_sessionmaker(engine)() as db:
            s.create_site(db, SITE, "The Lab", "UTC", actor="cli")
            for i, node in enumerate(fleet.nodes):
                machine = s.create_machine(db, f"m-{node}", f"Machine {i + 1}", SITE, "other",
                                           node=node, policy=policy, actor="cli")
                member = s.create_member(db, f"Member {i + 1}", actor="cli")
                uid = f"04{i + 1:06X}"
                s.enrol_badge(db, member.id, uid, actor="cli")
                auth = s.grant(db, member.id, machine_id=machine.id, actor="cli")
                fleet.badges[node], fleet.members[node] = uid, member.id
                fleet.machines[node], fleet.auth_ids[node] = machine.id, auth.id
            db.commit()
    finally:
        engine.dispose()
    return fleet
