"""Node benchmarks: badge decision latency, idle CPU with the MFRC522 backend, idle memory.

`python -m bench.node_bench reader-cpu SECONDS RATE` is the child the idle-CPU
benchmark runs (a process of its own, so its CPU time is only the reader's).
"""

from __future__ import annotations

import importlib.util
import json
import queue
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import paho.mqtt.client as mqtt

from bench.common import (
    BROKER_TUNING,
    REPO,
    BenchError,
    Context,
    NotAvailable,
    Result,
    bench_env,
    child,
    fabpass_cmd,
    log_tail,
    percentile,
    rss_mib,
    wait_for,
)

BADGES = 10_000
SITE = "bench"
GAP_S = 0.01  # between a handled tap-out and the next member's tap


# ---------------------------------------------------------------- shared helpers


def badge_uids(n: int, prefix: str = "B0") -> list[str]:
    """`n` distinct 7-byte UIDs (14 hex digits), as most NTAG/DESFire badges have."""
    return [f"04{prefix}{i:010X}" for i in range(n)]


def access_list(node: str, uids: list[str], version: int | None = None) -> Any:
    """A realistic access list: every badge with a member id, a label and a role."""
    from protocol import AccessList, BadgeEntry

    now = datetime.now(UTC)
    badges = [BadgeEntry(uid=uid, member=i + 1, role="trainer" if i % 50 == 0 else "user",
                         until=None if i % 10 else now + timedelta(days=365),
                         label=f"Member {i + 1} {chr(65 + i % 26)}.")
              for i, uid in enumerate(uids)]
    return AccessList(version=version or int(time.time() * 1000), site=SITE, node=node,
                      machine=node, issued=now, valid_until=now + timedelta(days=7),
                      locked=False, policy={"mode": "tap"}, badges=badges)


def load_fake_chip() -> ModuleType:
    """The register-level fake MFRC522 of tests/badge_reader (one fake, not two)."""
    path = REPO / "tests" / "badge_reader" / "fake_mfrc522.py"
    if not path.exists():
        raise NotAvailable(f"{path} (the fake MFRC522) is missing")
    spec = importlib.util.spec_from_file_location("fabpass_bench_fake_mfrc522", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


# ---------------------------------------------------------------- 1. badge decision


class _TimedPinMixin:
    """Records the perf_counter time of every state change (MockPin keeps only monotonic deltas)."""

    changes: list[tuple[float, bool]]
    on_change: Any = None

    def _change_state(self, value: bool) -> bool:
        changed = super()._change_state(value)  # type: ignore[misc]
        if changed:
            if not hasattr(self, "changes"):
                self.changes = []
            self.changes.append((time.perf_counter(), bool(value)))
            if self.on_change is not None:
                self.on_change()
        return bool(changed)


def timed_factory() -> Any:
    from gpiozero.pins.mock import MockFactory, MockPWMPin

    class TimedPin(_TimedPinMixin, MockPWMPin):
        pass

    return MockFactory(pin_class=TimedPin)


def pin_toggle_limit(samples: int) -> list[float]:
    """Latency of switching a DigitalOutputDevice on a MockFactory pin: the floor of any decision."""
    from gpiozero import DigitalOutputDevice

    factory = timed_factory()
    relay = DigitalOutputDevice(17, active_high=True, initial_value=False, pin_factory=factory)
    pin = factory.pin(17)
    out: list[float] = []
    for _ in range(samples):
        t0 = time.perf_counter()
        relay.on()
        out.append(pin.changes[-1][0] - t0)
        relay.off()
    relay.close()
    factory.close()
    return out


def handoff_latencies(samples: int) -> list[float]:
    """queue.put → a waiting thread → pin on: the decision thread's path minus the decision.

    Under load, most of a decision's tail is here (thread wake-up and scheduling), so this
    shows how much of the measured p99 the decision logic itself adds.
    """
    from gpiozero import DigitalOutputDevice

    factory = timed_factory()
    relay = DigitalOutputDevice(17, active_high=True, initial_value=False, pin_factory=factory)
    pin = factory.pin(17)
    done = threading.Event()
    pin.on_change = done.set
    q: queue.Queue[bool | None] = queue.Queue()

    def worker() -> None:
        while (item := q.get()) is not None:
            relay.value = item

    thread = threading.Thread(target=worker, daemon=True)
    thread.start()
    out: list[float] = []
    for _ in range(samples):
        time.sleep(0.002)
        done.clear()
        t0 = time.perf_counter()
        q.put(True)
        done.wait(5)
        out.append(pin.changes[-1][0] - t0)
        done.clear()
        q.put(False)
        done.wait(5)
    q.put(None)
    thread.join(5)
    relay.close()
    factory.close()
    return out


def badge_decision(ctx: Context) -> list[Result]:
    samples = int(ctx.scale(1000, 50))
    limit_lat = pin_toggle_limit(samples)
    limit_p99 = percentile(limit_lat, 99) * 1000
    try:
        lat, split = _decision_latencies(ctx, samples)
    except NotAvailable as exc:
        return [Result("badge_decision", "p99", None, "ms", error=f"not available: {exc}",
                       label="badge decision (reader event → relay on), p99"),
                Result("badge_decision", "pin_toggle_p99", limit_p99, "ms",
                       label="bare MockFactory pin toggle, p99 (limit)")]
    p50 = percentile(lat, 50) * 1000
    p99 = percentile(lat, 99) * 1000
    handoff = handoff_latencies(samples)
    return [
        Result("badge_decision", "p99", p99, "ms", goal=1.0, limit=limit_p99,
               label="badge decision (reader event → relay on), p99",
               extra={"p50": round(p50, 4), "samples": len(lat), "badges": BADGES,
                      "wake_p50": round(percentile([w for w, _ in split], 50) * 1000, 4),
                      "wake_p99": round(percentile([w for w, _ in split], 99) * 1000, 4),
                      "decide_p50": round(percentile([d for _, d in split], 50) * 1000, 4),
                      "decide_p99": round(percentile([d for _, d in split], 99) * 1000, 4),
                      "limit_p50": round(percentile(limit_lat, 50) * 1000, 4)}),
        Result("badge_decision", "handoff_p99", percentile(handoff, 99) * 1000, "ms",
               label="for comparison: queue → thread → pin on, no decision, p99",
               extra={"p50": round(percentile(handoff, 50) * 1000, 4)}),
    ]


def _decision_latencies(ctx: Context, samples: int) -> tuple[list[float], list[tuple[float, float]]]:
    """Drive the node daemon's decision thread in-process; see `DecisionHarness`."""
    harness = DecisionHarness(ctx)
    try:
        return harness.run(samples), harness.split
    finally:
        harness.close()


class DecisionHarness:
    """A real `NodeDaemon` (simulated reader, MockFactory pins with timestamps, the real outbox,
    a real broker) in a thread of this process, with a retained list of 10,000 badges.

    A sample: put a reader `placed` event on the daemon's queue (what the reader thread does)
    and wait for the relay pin to switch on; then tap out and wait for it to switch off.
    """

    def __init__(self, ctx: Context) -> None:
        try:
            from controller.daemon import NodeDaemon
            from firmware_config import load_node_config
        except ImportError as exc:
            raise NotAvailable(f"controller daemon: {exc}") from exc
        from protocol import Topics

        broker = shared_broker(ctx)
        self.node = "decide-node"
        self.uids = badge_uids(BADGES, prefix="D0")
        self.acl = access_list(self.node, self.uids)
        workdir = ctx.tmp / "badge-decision"
        workdir.mkdir(exist_ok=True)
        publish_retained(broker.url, Topics().acl(SITE, self.node), self.acl.encode())
        cfg = load_node_config(str(node_config(workdir / "node.toml", self.node, broker.url,
                                               workdir / "storage")))
        self.factory = timed_factory()
        self.relay_changed = threading.Event()
        import io

        self.daemon = NodeDaemon(cfg, simulate=True, pin_factory=self.factory,
                                 stdin=io.StringIO(""))
        # observe (not change) the decision thread: count the reader events it has finished with,
        # so a sample starts when the previous member's tap-out is fully handled (outbox fsync
        # included), as it is between two real members
        self.handled = 0
        self._handled_lock = threading.Lock()
        handle = self.daemon._handle

        self.picked: list[float] = []  # when the decision thread took each `placed` event

        def observed(kind: str, payload: Any) -> None:
            if kind == "reader" and payload.kind == "placed":
                self.picked.append(time.perf_counter())
            try:
                handle(kind, payload)
            finally:
                if kind == "reader":
                    with self._handled_lock:
                        self.handled += 1

        self.daemon._handle = observed  # type: ignore[method-assign]
        self.thread = threading.Thread(target=self.daemon.run, name="bench-node", daemon=True)
        self.thread.start()
        self.relay_pin = wait_for(lambda: self._relay_pin(cfg.gpio.relay.pin), 10,
                                  "the relay pin")
        self.relay_pin.on_change = self.relay_changed.set
        wait_for(lambda: self.daemon.machine is not None and self.daemon.machine.acl is not None
                 and self.daemon.machine.acl.version == self.acl.version, 30,
                 "the node to load the 10,000-badge list")

    def _relay_pin(self, number: int) -> Any:
        pins = getattr(self.factory, "pins", {})
        for info, pin in pins.items():
            if getattr(info, "name", None) == f"GPIO{number}" or pin.info.name == f"GPIO{number}":
                return pin
        return None

    def run(self, samples: int) -> list[float]:
        """Latencies (s) of `samples` taps; `self.split` gets (wake-up, decision) per tap."""
        from badge_reader import ReaderEvent

        users = [u for i, u in enumerate(self.uids) if i % 50]  # users (no trainer double tap)
        step = max(1, len(users) // samples)
        q = self.daemon.queue
        out: list[float] = []
        self.split: list[tuple[float, float]] = []
        for k in range(samples):
            uid = users[(k * step) % len(users)]
            expected = 4 * k  # reader events handled so far (placed, removed, placed, removed)
            wait_for(lambda: self.handled >= expected, 10,  # noqa: B023 (used at once)
                     "the previous tap-out to be handled", interval=0.001)
            time.sleep(GAP_S)
            self.relay_changed.clear()
            t0 = time.perf_counter()
            q.put(("reader", ReaderEvent("placed", uid)))
            if not self.relay_changed.wait(5):
                raise BenchError(f"relay did not switch on for {uid} (state "
                                 f"{self.daemon.machine.state if self.daemon.machine else '?'})")
            when, state = self.relay_pin.changes[-1]
            if not state:
                raise BenchError("the relay switched off instead of on")
            out.append(when - t0)
            picked = self.picked[-1]
            self.split.append((picked - t0, when - picked))
            q.put(("reader", ReaderEvent("removed", uid)))
            self.relay_changed.clear()
            q.put(("reader", ReaderEvent("placed", uid)))  # tap out: the session ends
            if not self.relay_changed.wait(5):
                raise BenchError(f"relay did not switch off after {uid} tapped out")
            q.put(("reader", ReaderEvent("removed", uid)))
        return out

    def close(self) -> None:
        import signal

        self.daemon.queue.put(("signal", signal.SIGTERM))
        self.thread.join(15)


# ---------------------------------------------------------------- 2. idle CPU with MFRC522


def reader_cpu_child(seconds: float, rate_hz: float, bare: bool, settle: float = 1.0) -> None:
    """Child: a ReaderLoop over the real driver and the fake chip (no card), or a bare 20 Hz loop."""
    from gpiozero.pins.mock import MockFactory

    from badge_reader import Mfrc522Reader, ReaderLoop

    events: list[Any] = []
    if bare:
        stop = threading.Event()

        def bare_loop() -> None:
            while not stop.is_set():
                stop.wait(1.0 / rate_hz)

        thread = threading.Thread(target=bare_loop, daemon=True)
        thread.start()
    else:
        fake = load_fake_chip()
        spi = fake.FakeSpiDev(fake.FakeMfrc522())
        reader = Mfrc522Reader(spi, reset_pin=25, pin_factory=MockFactory())
        loop = ReaderLoop(reader, events.append, rate_hz=rate_hz)
        loop.start()
    time.sleep(settle)  # imports and chip init are not idle time
    c0, t0 = time.process_time(), time.perf_counter()
    polls0 = spi.transfers if not bare else 0
    time.sleep(seconds)
    c1, t1 = time.process_time(), time.perf_counter()
    polls = (spi.transfers - polls0) if not bare else 0
    print(json.dumps({"cpu_s": c1 - c0, "wall_s": t1 - t0, "spi_transfers": polls,
                      "events": len(events)}), flush=True)


def node_idle_child(seconds: float, url: str, workdir: str, settle: float) -> None:
    """Child: the whole node daemon, MFRC522 backend on the fake chip (no card), list loaded."""
    from gpiozero import Device
    from gpiozero.pins.mock import MockFactory

    from badge_reader.mfrc522 import Mfrc522Reader
    from controller.daemon import NodeDaemon
    from firmware_config import load_node_config

    fake = load_fake_chip()
    # the lowest layer only: the SPI device the driver would open is the fake chip's
    Mfrc522Reader._open_spi = staticmethod(  # type: ignore[method-assign]
        lambda bus, device: fake.FakeSpiDev(fake.FakeMfrc522()))
    path = Path(workdir) / "node.toml"
    node_config(path, "idle-node", url, Path(workdir) / "storage")
    path.write_text(path.read_text().replace('type = "sim"', 'type = "mfrc522"'))
    cfg = load_node_config(str(path))
    factory = MockFactory()
    Device.pin_factory = factory
    daemon = NodeDaemon(cfg, simulate=False, pin_factory=factory)
    thread = threading.Thread(target=daemon.run, daemon=True)
    thread.start()
    wait_for(lambda: daemon.connected and daemon.machine is not None
             and daemon.machine.acl is not None, 30, "the idle node to connect and load its list")
    time.sleep(settle)
    c0, t0 = time.process_time(), time.perf_counter()
    time.sleep(seconds)
    c1, t1 = time.process_time(), time.perf_counter()
    state = daemon.machine.state if daemon.machine else None
    print(json.dumps({"cpu_s": c1 - c0, "wall_s": t1 - t0, "state": state}), flush=True)
    import signal

    daemon.queue.put(("signal", signal.SIGTERM))
    thread.join(10)


def _start_cpu_child(seconds: float, rate: float, bare: bool,
                     settle: float) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "bench.node_bench", "reader-cpu", str(seconds), str(rate),
           f"--settle={settle}"]
    if bare:
        cmd.append("--bare")
    return subprocess.Popen(cmd, env=bench_env(), cwd=str(REPO), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)


def _cpu_child_result(proc: subprocess.Popen[bytes], timeout: float) -> dict[str, Any]:
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    lines = [ln for ln in out.decode().splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise BenchError(f"reader-cpu child failed ({proc.returncode}): "
                         + err.decode(errors="replace")[-800:])
    return dict(json.loads(lines[-1]))


def reader_cpu(ctx: Context) -> list[Result]:
    from firmware_config.node_config import ReaderConfig
    from protocol import Topics

    rate = ReaderConfig().poll_hz
    seconds = ctx.scale(10.0, 1.0)
    settle = ctx.scale(1.0, 0.3)
    broker = shared_broker(ctx)
    acl = access_list("idle-node", badge_uids(BADGES, prefix="C0"))
    publish_retained(broker.url, Topics().acl(SITE, "idle-node"), acl.encode())
    workdir = ctx.tmp / "node-idle"
    workdir.mkdir(exist_ok=True)
    node_cmd = [sys.executable, "-m", "bench.node_bench", "node-idle", str(seconds), broker.url,
                str(workdir), f"--settle={settle}"]

    def start_node() -> subprocess.Popen[bytes]:
        return subprocess.Popen(node_cmd, env=bench_env(), cwd=str(REPO),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    if ctx.quick:  # all at once: figures are not meaningful in quick mode anyway
        procs = [start_node()] + [_start_cpu_child(seconds, rate, bare=b, settle=settle)
                                  for b in (False, True)]
        node, real, bare = (_cpu_child_result(p, seconds + 60) for p in procs)
    else:  # one after the other, so none disturbs another's measurement
        node = _cpu_child_result(start_node(), seconds + 60)
        real = _cpu_child_result(_start_cpu_child(seconds, rate, False, settle), seconds + 60)
        bare = _cpu_child_result(_start_cpu_child(seconds, rate, True, settle), seconds + 60)
    node_pct = 100.0 * node["cpu_s"] / node["wall_s"]
    pct = 100.0 * real["cpu_s"] / real["wall_s"]
    bare_pct = 100.0 * bare["cpu_s"] / bare["wall_s"]
    return [
        Result("reader_cpu", "node_cpu_percent", node_pct, "% of a core", goal=2.0,
               limit=bare_pct,
               label=f"node idle CPU: whole daemon, MFRC522 polled at {rate:g} Hz, list of "
                     "10,000 badges",
               extra={"seconds": round(node["wall_s"], 2), "rate_hz": rate,
                      "state": node.get("state"),
                      "limit_is": "a bare thread waking at the same rate"}),
        Result("reader_cpu", "reader_cpu_percent", pct, "% of a core", limit=bare_pct,
               label=f"of which the MFRC522 ReaderLoop alone at {rate:g} Hz",
               extra={"spi_transfers_per_s": round(real["spi_transfers"] / real["wall_s"], 1)}),
    ]


# ---------------------------------------------------------------- 3. node memory


def node_config(path: Path, node: str, url: str, storage: Path) -> Path:
    path.write_text(
        f'node_id = "{node}"\nsite = "{SITE}"\n\n[mqtt]\nurl = "{url}"\n\n'
        f'[reader]\ntype = "sim"\n\n[gpio]\nrelay = {{ pin = 17, active_high = true }}\n\n'
        f'[storage]\ndir = "{storage}"\n'
    )
    return path


class StatusWatcher:
    """Subscribes to a node's status (and optionally acl) topic and keeps the last payloads."""

    def __init__(self, url: str, topics: list[str]) -> None:
        from protocol.mqttclient import make_client, parse_mqtt_url

        target = parse_mqtt_url(url)
        self.last: dict[str, Any] = {}
        self.received: queue.Queue[tuple[float, str, bytes]] = queue.Queue()
        self.client = make_client(f"bench-watch-{time.monotonic_ns()}", target, protocol="5")
        self._subscribed = threading.Event()

        def on_connect(c: mqtt.Client, *_a: Any) -> None:
            c.subscribe([(t, 1) for t in topics])

        def on_subscribe(*_a: Any) -> None:
            self._subscribed.set()

        def on_message(_c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
            now = time.perf_counter()
            try:
                self.last[msg.topic] = json.loads(msg.payload)
            except ValueError:
                self.last[msg.topic] = None
            self.received.put((now, msg.topic, bytes(msg.payload)))

        self.client.on_connect = on_connect
        self.client.on_subscribe = on_subscribe
        self.client.on_message = on_message
        self.client.connect(target.host, target.port, keepalive=60)
        self.client.loop_start()
        if not self._subscribed.wait(10):
            self.close()
            raise BenchError("watcher could not subscribe")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def publish_retained(url: str, topic: str, payload: bytes) -> None:
    from protocol.mqttclient import make_client, parse_mqtt_url

    target = parse_mqtt_url(url)
    client = make_client(f"bench-pub-{time.monotonic_ns()}", target, protocol="5")
    client.connect(target.host, target.port, keepalive=60)
    client.loop_start()
    try:
        info = client.publish(topic, payload, qos=1, retain=True)
        info.wait_for_publish(10)
    finally:
        client.disconnect()
        client.loop_stop()


def node_memory(ctx: Context) -> list[Result]:
    from protocol import Topics

    broker = shared_broker(ctx)
    node = "mem-node"
    uids = badge_uids(BADGES)
    acl = access_list(node, uids)
    topics = Topics()
    payload = acl.encode()
    publish_retained(broker.url, topics.acl(SITE, node), payload)
    workdir = ctx.tmp / "node-memory"
    workdir.mkdir(exist_ok=True)
    cfg = node_config(workdir / "node.toml", node, broker.url, workdir / "storage")
    watcher = StatusWatcher(broker.url, [topics.status(SITE, node)])
    log_path = workdir / "node.log"
    try:
        with child(fabpass_cmd("node", "--config", str(cfg), "--simulate"),
                   log_path=log_path, stdin=subprocess.PIPE) as proc:
            def has_list() -> bool:
                if proc.poll() is not None:
                    raise BenchError(f"fabpass node exited {proc.returncode}: {log_tail(log_path)}")
                status = watcher.last.get(topics.status(SITE, node)) or {}
                return bool(status.get("acl_version") == acl.version)
            try:
                wait_for(has_list, ctx.scale(30, 20), "the node to report the 10,000-badge list")
            except BenchError as exc:
                if proc.poll() is not None or "not built" in log_tail(log_path):
                    raise NotAvailable(f"fabpass node --simulate: {log_tail(log_path, 300)}") from exc
                raise
            time.sleep(ctx.scale(5.0, 0.5))  # idle
            rss = rss_mib(proc.pid)
    finally:
        watcher.close()
    return [Result("node_memory", "rss_mib", rss, "MiB", goal=50.0,
                   label="node memory (RSS) idle, 10,000 badges cached",
                   extra={"acl_bytes": len(payload), "badges": BADGES})]


# ---------------------------------------------------------------- the shared broker


def shared_broker(ctx: Context) -> Any:
    """One private Mosquitto for the whole run (TCP_NODELAY on: see docs/benchmarks.md)."""
    broker = ctx.cache.get("broker")
    if broker is None:
        from fabpass.broker import MosquittoProcess

        broker = MosquittoProcess(data_dir=ctx.tmp / "mosquitto",
                                  extra_config=BROKER_TUNING)
        broker.start()
        ctx.cache["broker"] = broker
        ctx.cleanups.append(broker.cleanup)
    return broker


if __name__ == "__main__":
    if len(sys.argv) >= 5 and sys.argv[1] == "node-idle":
        opts = sys.argv[5:]
        settle = next((float(o.split("=", 1)[1]) for o in opts if o.startswith("--settle=")), 1.0)
        node_idle_child(float(sys.argv[2]), sys.argv[3], sys.argv[4], settle)
    elif len(sys.argv) >= 4 and sys.argv[1] == "reader-cpu":
        opts = sys.argv[4:]
        settle = next((float(o.split("=", 1)[1]) for o in opts if o.startswith("--settle=")), 1.0)
        reader_cpu_child(float(sys.argv[2]), float(sys.argv[3]), "--bare" in opts, settle)
    else:
        raise SystemExit("usage: python -m bench.node_bench reader-cpu SECONDS RATE [--bare]")
