"""A live ingest on a real Mosquitto, and a stand-in node that publishes raw payloads.

Shared by the isolation, plausibility and fuzz tests of the ingest: the server core runs with
its ingest only (no publisher), short retry delays, and the node client sees its acks.
"""

from __future__ import annotations

import json
import queue
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import paho.mqtt.client as mqtt
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from protocol import Ack, format_ts
from server import services as s
from server.db import make_sessionmaker
from server.models import DeadLetter, Event
from server.runner import CoreOptions, ServerCore

SITE = "lab"
GOOD, OTHER = "laser-1", "poison-1"
BOOT = str(uuid.uuid4())


def setup_lab(db: Session, *nodes: str) -> None:
    s.create_site(db, SITE, "The Lab", "UTC", actor="cli")
    for node in nodes:
        s.create_machine(db, node, node, SITE, "other", node=node, actor="cli")
    m = s.create_member(db, "Alice", actor="cli")
    s.enrol_badge(db, m.id, "04A1B2C3", actor="cli")
    db.commit()


@contextmanager
def live_ingest(engine: Engine, url: str, *, client_id: str | None = None,
                batch_max: int = 500, batch_ms: float = 20.0,
                forget: bool = True) -> Iterator[ServerCore]:
    opts = CoreOptions(mqtt_url=url, client_id=client_id or f"ingest-{uuid.uuid4().hex[:8]}",
                       publisher=False, batch_max=batch_max, batch_ms=batch_ms)
    core = ServerCore(engine, opts)
    assert core.ingest is not None
    core.ingest.retry_base_s = 0.01  # the retry rules, not their patience, are under test
    core.start()
    assert core.link.wait_connected(5)
    try:
        _wait_subscribed(core, url)
        yield core
    finally:
        core.stop(forget_session=forget)


def _wait_subscribed(core: ServerCore, url: str) -> None:
    """Connected is not subscribed: probe with empty statuses until the ingest sees one."""
    probe = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"probe-{uuid.uuid4().hex[:6]}")
    probe.connect("127.0.0.1", int(url.rsplit(":", 1)[1]))
    probe.loop_start()
    try:
        assert core.ingest is not None
        deadline = time.monotonic() + 5
        while core.ingest.stats.received == 0 and time.monotonic() < deadline:
            probe.publish(f"fabpass/v1/{SITE}/probe/status", b"", qos=1).wait_for_publish(2)
            time.sleep(0.05)
        assert core.ingest.stats.received > 0, "the ingest never subscribed"
    finally:
        probe.loop_stop()
        probe.disconnect()


class RawNode:
    """Publishes any bytes on any node topic (anonymous broker), collects the acks."""

    def __init__(self, url: str, nodes: tuple[str, ...] = (GOOD, OTHER)) -> None:
        port = int(url.rsplit(":", 1)[1])
        self.acks: queue.Queue[tuple[str, Ack]] = queue.Queue()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                                  client_id=f"raw-{uuid.uuid4().hex[:6]}", protocol=mqtt.MQTTv5)
        self.client.on_message = self._on_message
        subscribed = threading.Event()
        self.client.on_subscribe = lambda *a: subscribed.set()
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        self.client.subscribe([(f"fabpass/v1/{SITE}/{n}/ack", 1) for n in nodes])
        assert subscribed.wait(5)

    def _on_message(self, _c: Any, _u: Any, msg: Any) -> None:
        self.acks.put((msg.topic.split("/")[3], Ack.decode(msg.payload)))

    def publish(self, node: str, kind: str, payload: bytes) -> None:
        info = self.client.publish(f"fabpass/v1/{SITE}/{node}/{kind}", payload, qos=1)
        info.wait_for_publish(5)

    def acked(self, ids: set[str], timeout: float = 10.0) -> tuple[set[str], set[str]]:
        """Collect acks until every id of `ids` is acked (accepted or rejected) or timeout."""
        accepted: set[str] = set()
        rejected: set[str] = set()
        deadline = time.monotonic() + timeout
        while not ids <= accepted | rejected and (left := deadline - time.monotonic()) > 0:
            try:
                _node, ack = self.acks.get(timeout=left)
            except queue.Empty:
                break
            accepted |= set(ack.ids)
            rejected |= set(ack.rejected)
        return accepted, rejected

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


_seq = iter(range(1, 10**9))


def event(etype: str, data: dict[str, Any], *, node: str = GOOD, ts: datetime | None = None,
          id: str | None = None) -> dict[str, Any]:
    return {"v": 1, "id": id or str(uuid.uuid4()), "node": node, "boot": BOOT, "seq": next(_seq),
            "ts": format_ts(ts or datetime.now(UTC)), "type": etype, "data": data}


def session_events(node: str = GOOD, start: datetime | None = None, duration: float = 60.0,
                   uid: str = "04A1B2C3") -> list[dict[str, Any]]:
    """started, heartbeat, ended of one new session."""
    sid = str(uuid.uuid4())
    t0 = start or datetime.now(UTC) - timedelta(seconds=duration + 5)
    t1 = t0 + timedelta(seconds=duration)
    base = {"session": sid, "uid": uid, "member": None}
    return [event("session.started", dict(base), node=node, ts=t0),
            event("session.heartbeat", {**base, "elapsed_s": duration / 2,
                                        "active_s": duration / 4}, node=node,
                  ts=t0 + timedelta(seconds=duration / 2)),
            event("session.ended", {**base, "started": format_ts(t0), "ended": format_ts(t1),
                                    "duration_s": duration, "active_s": duration / 2,
                                    "reason": "badge_out"}, node=node, ts=t1)]


def every_type(node: str) -> list[dict[str, Any]]:
    """One event of each known type (and an unknown one) from `node`."""
    return [*session_events(node),
            event("badge.denied", {"uid": "04D5E6F7", "reason": "unknown_badge"}, node=node),
            event("training.signed", {"trainer_uid": "04A1B2C3", "trainee_uid": "04D5E6F7"},
                  node=node),
            event("door.opened", {"door": 1}, node=node)]


def status(node: str, **extra: Any) -> dict[str, Any]:
    return {"v": 1, "node": node, "online": True, "state": "idle", "relay": False,
            "warning": False, "session": None, "acl_version": None, "clock_ok": True,
            "last_cmd": None, "software": "0.1.0", "ts": format_ts(datetime.now(UTC)), **extra}


def encode(obj: Any) -> bytes:
    return json.dumps(obj).encode()


def nested(depth: int, inner: str = "1") -> str:
    return "[" * depth + inner + "]" * depth


def stored_ids(engine: Engine, ids: set[str]) -> set[str]:
    with make_sessionmaker(engine)() as db:
        return set(db.scalars(select(Event.event_id).where(Event.event_id.in_(sorted(ids)))))


def dead_letters(engine: Engine) -> list[DeadLetter]:
    with make_sessionmaker(engine)() as db:
        rows = list(db.scalars(select(DeadLetter).order_by(DeadLetter.id)))
        db.expunge_all()
        return rows


def wait_until(pred: Callable[[], bool], timeout: float = 10.0, step: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(step)
    return pred()
