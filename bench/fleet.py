"""Simulated nodes for the ingest benchmarks: real event payloads, acks, resends.

Each `SimNode` behaves like a node's delivery side (contract section 2,
"Delivery"): every event it publishes (QoS 1) stays in its outbox until an
`ack` names it in `ids` or `rejected`; unacked events are published again,
same id, after `resend_after` seconds. Events follow a realistic life:
session.started, heartbeats, session.ended, now and then a badge.denied, with
the same fields and sizes a real node sends.

All nodes are driven from one thread with `select` over their sockets
(paho's manual loop), so the generator costs one core at most and 50
clients do not mean 50 threads fighting for the GIL.
"""

from __future__ import annotations

import logging
import random
import select
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import paho.mqtt.client as mqtt

from bench.common import BenchError
from protocol import Ack, Event, Topics, format_ts
from protocol.mqttclient import make_client, parse_mqtt_url

log = logging.getLogger(__name__)

HEARTBEATS_PER_SESSION = 6
DENY_REASONS = ("unknown_badge", "not_authorized", "expired", "in_use")


@dataclass
class _Pending:
    payload: bytes
    first_sent: float
    last_sent: float


@dataclass
class FleetStats:
    published: int = 0  # distinct event ids
    resent: int = 0
    acked: int = 0
    rejected: int = 0
    acked_in_window: int = 0
    latencies: list[float] = field(default_factory=list)  # s, publish → ack, acks in window
    unacked_left: int = 0
    window_s: float = 0.0
    stopped_at: float | None = None  # s into the run when the backlog bound stopped publishing
    backlog_at_stop: int = 0

    @property
    def outstanding(self) -> int:
        return self.published - self.acked - self.rejected

    @property
    def rate(self) -> float:
        return self.acked_in_window / self.window_s if self.window_s else 0.0


class SimNode:
    """One node's publishing side: an outbox, a paho client, an event generator."""

    def __init__(self, fleet: Fleet, site: str, slug: str, badges: list[tuple[int, str]],
                 rng: random.Random) -> None:
        self.fleet = fleet
        self.site = site
        self.slug = slug
        self.badges = badges
        self.rng = rng
        self.boot = str(uuid.uuid4())
        self.seq = 0
        self.outbox: dict[str, _Pending] = {}
        self.connected = False
        self.event_topic = fleet.topics.event(site, slug)
        self.ack_topic = fleet.topics.ack(site, slug)
        target = parse_mqtt_url(fleet.url)
        self.client = make_client(f"bench-{slug}-{self.boot[:8]}", target, protocol="5")
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_disconnect = self._on_disconnect
        self._session: dict[str, Any] | None = None
        self._beats = 0
        self.next_due = 0.0

    # -- paho callbacks (run inside loop_read on the fleet thread) --
    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, rc: Any, _p: Any = None) -> None:
        if rc.is_failure:
            log.error("%s: connect refused: %s", self.slug, rc)
            return
        client.subscribe(self.ack_topic, qos=1)
        self.connected = True
        if self.outbox:  # like a node: resend everything unacked right after reconnecting
            self.fleet.pending_resend.add(self)

    def _on_disconnect(self, *_args: Any) -> None:
        self.connected = False

    def _on_message(self, _client: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        ack = Ack.decode(bytes(msg.payload))
        now = time.perf_counter()
        stats = self.fleet.stats
        in_window = self.fleet.window_start <= now <= self.fleet.window_end
        for ids, rejected in ((ack.ids, False), (ack.rejected, True)):
            for event_id in ids:
                pending = self.outbox.pop(event_id, None)
                if pending is None:
                    continue  # a duplicate ack (after a resend): nothing to do
                if rejected:
                    stats.rejected += 1
                else:
                    stats.acked += 1
                if in_window:
                    stats.acked_in_window += 1
                    stats.latencies.append(now - pending.first_sent)

    # -- events --
    def next_event(self) -> Event:
        now = datetime.now(UTC)
        self.seq += 1
        data: dict[str, Any]
        if self._session is None:
            if self.rng.random() < 0.1:
                _member, uid = self.rng.choice(self.badges)
                etype = "badge.denied"
                data = {"uid": uid, "reason": self.rng.choice(DENY_REASONS)}
            else:
                member, uid = self.rng.choice(self.badges)
                self._session = {"session": str(uuid.uuid4()), "uid": uid, "member": member,
                                 "t0": time.monotonic(), "started": now}
                self._beats = 0
                etype = "session.started"
                data = {"session": self._session["session"], "uid": uid, "member": member}
        else:
            s = self._session
            elapsed = round(time.monotonic() - s["t0"] + 60.0 * self._beats, 3)
            active = round(elapsed * 0.8, 3)
            common = {"session": s["session"], "uid": s["uid"], "member": s["member"]}
            if self._beats < HEARTBEATS_PER_SESSION:
                self._beats += 1
                etype = "session.heartbeat"
                data = {**common, "elapsed_s": elapsed, "active_s": active}
            else:
                etype = "session.ended"
                # the heartbeats stand for a minute each: `started` goes back as far, or the
                # server's plausibility check (duration_s <= ended - started) refuses the end
                started = min(s["started"], now - timedelta(seconds=elapsed))
                data = {**common, "started": format_ts(started), "ended": format_ts(now),
                        "duration_s": elapsed, "active_s": active, "reason": "badge_out"}
                self._session = None
        return Event(id=str(uuid.uuid4()), node=self.slug, boot=self.boot, seq=self.seq, ts=now,
                     type=etype, data=data)

    def publish_new(self, now: float) -> None:
        event = self.next_event()
        payload = event.encode()
        self.outbox[event.id] = _Pending(payload, now, now)
        self.fleet.ids.append(event.id)
        self.fleet.stats.published += 1
        self.client.publish(self.event_topic, payload, qos=1)

    def resend(self, now: float, older_than: float) -> None:
        for pending in list(self.outbox.values()):
            if now - pending.last_sent >= older_than:
                pending.last_sent = now
                self.fleet.stats.resent += 1
                self.client.publish(self.event_topic, pending.payload, qos=1)


class Fleet:
    """N simulated nodes on one broker, driven by one thread."""

    def __init__(self, url: str, site: str, slugs: list[str], badges: list[tuple[int, str]],
                 *, root: str = "fabpass", seed: int = 1, resend_after: float = 10.0) -> None:
        if not badges:
            raise BenchError("the fleet needs at least one badge to generate events")
        self.url = url
        self.topics = Topics(root)
        self.stats = FleetStats()
        self.ids: list[str] = []
        self.resend_after = resend_after
        self.window_start = 0.0
        self.window_end = 0.0
        self.pending_resend: set[SimNode] = set()
        rng = random.Random(seed)
        self.nodes = [SimNode(self, site, slug, badges, random.Random(rng.random()))
                      for slug in slugs]

    def connect(self, timeout: float = 20.0) -> None:
        target = parse_mqtt_url(self.url)
        for node in self.nodes:
            node.client.connect(target.host, target.port, keepalive=60)
        deadline = time.monotonic() + timeout
        while not all(n.connected for n in self.nodes):
            if time.monotonic() > deadline:
                missing = [n.slug for n in self.nodes if not n.connected]
                raise BenchError(f"simulated nodes not connected after {timeout} s: {missing[:5]}")
            self._io(0.05)
        # let the SUBACKs arrive before any event is published
        self._pump(0.3)

    def close(self) -> None:
        """Send DISCONNECT on every connection (the broker then closes them)."""
        for node in self.nodes:
            try:
                node.client.disconnect()
                node.client.loop_write()
            except Exception:  # closing must not raise
                log.debug("disconnect of %s failed", node.slug, exc_info=True)

    # -- the loop --
    def _io(self, timeout: float) -> None:
        socks: dict[Any, SimNode] = {}
        want_write = []
        for node in self.nodes:
            sock = node.client.socket()
            if sock is None:
                continue
            socks[sock] = node
            if node.client.want_write():
                want_write.append(sock)
        if not socks:
            time.sleep(timeout)
            return
        readable, writable, _ = select.select(list(socks), want_write, [], timeout)
        for sock in readable:
            socks[sock].client.loop_read(100)
        for sock in writable:
            socks[sock].client.loop_write()

    def _misc(self) -> None:
        for node in self.nodes:
            node.client.loop_misc()

    def _pump(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self._io(0.01)

    def run(self, duration: float, *, window: int | None = None, rate: float | None = None,
            drain_timeout: float = 60.0, warmup: float = 0.0,
            max_backlog: int | None = None) -> FleetStats:
        """Publish for `duration` s, then wait for every event to be acked.

        `window`: each node keeps at most this many unacked events (as fast as the server
        acks). `rate`: total events/s spread evenly over the nodes (open loop). Acks and
        latencies count when they arrive inside [start + warmup, start + duration].
        """
        if (window is None) == (rate is None):
            raise BenchError("give either window or rate")
        start = time.perf_counter()
        self.window_start = start + warmup
        self.window_end = start + duration
        self.stats.window_s = duration - warmup
        per_node = (rate or 0.0) / len(self.nodes)
        for i, node in enumerate(self.nodes):  # spread the nodes' schedules over one period
            node.next_due = start + (i / len(self.nodes)) / per_node if per_node else start
        last_misc = last_resend = start
        while True:
            now = time.perf_counter()
            if now >= self.window_end:
                break
            if max_backlog is not None and self.stats.outstanding > max_backlog:
                self.stats.stopped_at = now - start
                self.stats.backlog_at_stop = self.stats.outstanding
                self.window_end = now
                self.stats.window_s = max(0.0, now - self.window_start)
                break
            if window is not None:
                for node in self.nodes:
                    if node.connected:
                        room = window - len(node.outbox)
                        for _ in range(min(room, 20)):
                            node.publish_new(now)
                wait = 0.002
            else:
                next_due = self.window_end
                for node in self.nodes:
                    while node.connected and node.next_due <= now:
                        node.publish_new(node.next_due)  # latency counts from when it was due
                        node.next_due += 1.0 / per_node
                    next_due = min(next_due, node.next_due)
                wait = max(0.0, min(0.01, next_due - time.perf_counter()))
            self._io(wait)
            if now - last_misc > 1.0:
                self._misc()
                last_misc = now
            if now - last_resend > 1.0:
                self._resend(now)
                last_resend = now
        # drain: nothing new, wait for the outstanding acks (resending like a node)
        deadline = time.perf_counter() + drain_timeout
        while any(n.outbox for n in self.nodes) and time.perf_counter() < deadline:
            now = time.perf_counter()
            self._io(0.01)
            if now - last_misc > 1.0:
                self._misc()
                last_misc = now
            if now - last_resend > 1.0:
                self._resend(now)
                last_resend = now
        self.stats.unacked_left = sum(len(n.outbox) for n in self.nodes)
        return self.stats

    def _resend(self, now: float) -> None:
        for node in list(self.pending_resend):
            node.resend(now, 0.0)
        self.pending_resend.clear()
        for node in self.nodes:
            if node.connected and node.outbox:
                node.resend(now, self.resend_after)
