"""Integration helpers: a `fabpass node --simulate` subprocess and a test "server" on real MQTT."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

from protocol import Ack, Command, Event, Topics, normalize_uid, utcnow
from protocol.mqttclient import parse_mqtt_url

ROOT = Path(__file__).resolve().parents[2]


def wait_until(pred: Callable[[], Any], timeout: float, what: str, step: float = 0.02) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(step)
    value = pred()
    assert value, f"timed out after {timeout} s waiting for {what}"
    return value


def write_config(path: Path, *, broker_url: str, node: str, site: str = "lab",
                 storage: Path, protocol: str = "5", extra: str = "") -> Path:
    path.write_text(f'''node_id = "{node}"
site = "{site}"

[mqtt]
url = "{broker_url}"
protocol = "{protocol}"

[reader]
type = "sim"
poll_hz = 50

[gpio]
relay = {{ pin = 17, active_high = true }}
activity = {{ pin = 27, active_high = true }}

[storage]
dir = "{storage}"
{extra}
''')
    return path


class NodeProc:
    """`python -m fabpass node --config FILE --simulate`, stdin for badge lines, stderr collected."""

    def __init__(self, config: Path) -> None:
        self.config = config
        self.lines: list[str] = []
        self.proc: subprocess.Popen[str] | None = None
        self._cond = threading.Condition()

    def start(self) -> NodeProc:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        env.pop("NOTIFY_SOCKET", None)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "fabpass", "--log-level", "DEBUG", "node", "--config",
             str(self.config), "--simulate"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            cwd=ROOT, env=env)
        threading.Thread(target=self._pump, daemon=True).start()
        return self

    def _pump(self) -> None:
        assert self.proc and self.proc.stdout
        for line in self.proc.stdout:
            with self._cond:
                self.lines.append(line.rstrip("\n"))
                self._cond.notify_all()

    def send(self, line: str) -> None:
        assert self.proc and self.proc.stdin
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def tap(self, uid: str, timeout: float = 10.0) -> None:
        """Tap a card and wait until the reader saw it leave (so the next tap is a new one)."""
        norm = normalize_uid(uid)
        n = self.count(rf"reader: {norm} removed") + 1
        self.send(f"tap {uid}")
        self.wait_line(rf"reader: {norm} removed", timeout, n=n)

    def count(self, pattern: str) -> int:
        rx = re.compile(pattern)
        with self._cond:
            return sum(1 for line in self.lines if rx.search(line))

    def wait_line(self, pattern: str, timeout: float = 10.0, n: int = 1) -> None:
        """Wait until `pattern` has appeared in at least `n` output lines."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._cond:
            while sum(1 for line in self.lines if rx.search(line)) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    tail = "\n".join(self.lines[-40:])
                    raise AssertionError(f"no {n}x {pattern!r} within {timeout} s; output:\n{tail}")
                self._cond.wait(left)

    def relay_changes(self) -> list[str]:
        return [m.group(1) for line in self.lines if (m := re.search(r": relay (on|off)$", line))]

    def signal(self, sig: int = signal.SIGTERM) -> None:
        assert self.proc
        self.proc.send_signal(sig)

    def kill(self) -> None:
        assert self.proc
        self.proc.kill()
        self.proc.wait(5)

    def wait(self, timeout: float = 10.0) -> int:
        assert self.proc
        return self.proc.wait(timeout)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.proc and self.proc.stdin:
            try:
                self.proc.stdin.close()
            except OSError:
                pass


class FakeServer:
    """The test acting as the fabpass server: publishes lists and commands, collects and acks events."""

    def __init__(self, broker_url: str, site: str = "lab", protocol: str = "5") -> None:
        self.site = site
        self.topics = Topics()
        self.events: list[Event] = []
        self.raw_events: list[bytes] = []
        self._seen: set[str] = set()
        self.statuses: dict[str, dict[str, Any]] = {}
        self.auto_ack = True
        self._lock = threading.Lock()
        target = parse_mqtt_url(broker_url)
        proto = mqtt.MQTTv5 if protocol == "5" else mqtt.MQTTv311
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                                  client_id=f"test-server-{id(self)}", protocol=proto)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(1, 1)
        self.connected = threading.Event()
        self.client.connect_async(target.host, target.port, keepalive=10)
        self.client.loop_start()
        assert self.connected.wait(10), "test server could not connect"

    def _on_connect(self, client: mqtt.Client, *_: Any) -> None:
        client.subscribe([(self.topics.wildcard("event"), 1), (self.topics.wildcard("status"), 1)])
        self.connected.set()

    def _on_message(self, client: mqtt.Client, _userdata: Any, msg: mqtt.MQTTMessage) -> None:
        parts = self.topics.parse(msg.topic)
        if parts.kind == "status":
            try:
                with self._lock:
                    self.statuses[parts.node] = json.loads(msg.payload)
            except ValueError:
                pass
            return
        event = Event.decode(msg.payload)
        with self._lock:  # like the real server: de-duplicate on id, ack duplicates too
            self.raw_events.append(bytes(msg.payload))
            if event.id not in self._seen:
                self._seen.add(event.id)
                self.events.append(event)
        if self.auto_ack:
            client.publish(self.topics.ack(parts.site, parts.node), Ack(ids=[event.id]).encode(),
                           qos=1)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()

    # --------------------------------------------------------------- server → node

    def publish_acl(self, node: str, acl: dict[str, Any] | bytes | str, retain: bool = True) -> None:
        payload = acl if isinstance(acl, bytes | str) else json.dumps(acl)
        self.client.publish(self.topics.acl(self.site, node), payload, qos=1,
                            retain=retain).wait_for_publish(5)

    def clear_retained(self, node: str) -> None:
        for kind in ("acl", "cmd", "status"):
            self.client.publish(self.topics.topic(self.site, node, kind), b"", qos=1,  # type: ignore[arg-type]
                                retain=True).wait_for_publish(5)

    def command(self, node: str, cmd: str, *, age_s: float = 0.0,
                payload: bytes | None = None, retain: bool = False) -> Command:
        from datetime import timedelta

        c = Command.create(cmd, utcnow() - timedelta(seconds=age_s))
        self.client.publish(self.topics.cmd(self.site, node), payload or c.encode(), qos=1,
                            retain=retain).wait_for_publish(5)
        return c

    # --------------------------------------------------------------- observations

    def of(self, node: str, etype: str | None = None) -> list[Event]:
        with self._lock:
            return [e for e in self.events if e.node == node and (etype is None or e.type == etype)]

    def wait_event(self, node: str, etype: str, n: int = 1, timeout: float = 10.0,
                   **data: Any) -> Event:
        def found() -> list[Event]:
            return [e for e in self.of(node, etype)
                    if all(e.data.get(k) == v for k, v in data.items())]
        return wait_until(lambda: len(found()) >= n and found()[n - 1], timeout,
                          f"{n}x {etype} {data} from {node}")

    def deliveries(self, event_id: str) -> int:
        """How many times an event arrived (resends included)."""
        with self._lock:
            return sum(1 for raw in self.raw_events if event_id.encode() in raw)

    def status(self, node: str) -> dict[str, Any]:
        with self._lock:
            return dict(self.statuses.get(node, {}))

    def wait_status(self, node: str, timeout: float = 10.0, **fields: Any) -> dict[str, Any]:
        return wait_until(
            lambda: (st := self.status(node)) and all(st.get(k) == v for k, v in fields.items())
            and st, timeout, f"status {fields} of {node}")
