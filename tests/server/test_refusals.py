"""Every refusal explained: `badge.denied` through a real Mosquitto and the server's ingest, on
SQLite and PostgreSQL; and the pending enrolment the ingest honours ("tap the badge now")."""

from __future__ import annotations

import queue
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from server_helpers import event
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from protocol import Ack
from server import services as s
from server.errors import Conflict
from server.models import Authorization, Badge, Refusal, UsageSession, User, UserRole
from server.runner import CoreOptions, ServerCore
from server.services import enrolment, privacy
from server.services import refusals as refusal_service

pytestmark = pytest.mark.broker


class Node:
    """A stand-in node that publishes `badge.denied` events and collects acks."""

    def __init__(self, url: str, node: str = "laser-1") -> None:
        self.node = node
        self.acks: queue.Queue[Ack] = queue.Queue()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                                  client_id=f"test-{node}-{uuid.uuid4().hex[:6]}")
        self.client.on_message = lambda _c, _u, m: self.acks.put(Ack.decode(m.payload))
        subscribed = threading.Event()
        self.client.on_subscribe = lambda *a: subscribed.set()
        self.client.connect("127.0.0.1", int(url.rsplit(":", 1)[1]))
        self.client.loop_start()
        self.client.subscribe(f"fabpass/v1/lab/{node}/ack", 1)
        assert subscribed.wait(5)

    def deny(self, uid: str, reason: str = "unknown_badge", ts: datetime | None = None) -> str:
        ev = event("badge.denied", {"uid": uid, "reason": reason}, node=self.node, ts=ts)
        self.client.publish(f"fabpass/v1/lab/{self.node}/event", ev.encode(), qos=1) \
            .wait_for_publish(5)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                ack = self.acks.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                break
            if ev.id in ack.ids:
                return ev.id
        raise AssertionError(f"event {ev.id} never acked")

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.fixture()
def core(engine: Engine, mosquitto: Any, lab: dict[str, Any]) -> Iterator[ServerCore]:
    c = ServerCore(engine, CoreOptions(mqtt_url=mosquitto.url,
                                       client_id=f"fabpass-test-{uuid.uuid4().hex[:8]}"))
    c.start()
    assert c.link.wait_connected(5)
    yield c
    c.stop(forget_session=True)


@pytest.fixture()
def node(mosquitto: Any, core: ServerCore) -> Iterator[Node]:
    n = Node(mosquitto.url)
    yield n
    n.close()


def _refusal(db: Session, event_id: str) -> Refusal:
    db.rollback()
    row = db.scalar(select(Refusal).where(Refusal.event_uuid == event_id))
    assert row is not None
    return row


def _member(db: Session, name: str, uid: str) -> int:
    m = s.create_member(db, name, site="lab", actor="cli")
    s.enrol_badge(db, m.id, uid, actor="cli")
    return m.id


def test_each_unknown_badge_refusal_is_explained(db: Session, node: Node,
                                                 lab: dict[str, Any]) -> None:
    laser, group = lab["laser"], lab["group"]
    now = datetime.now(UTC)
    bob = _member(db, "Bob", "04B0B001")                       # no training at all
    carol = _member(db, "Carol", "04CA0001")                   # training expired
    expired = s.grant(db, carol, machine_id=laser.id, actor="cli")
    expired.expires_at = now - timedelta(days=3)
    dan = _member(db, "Dan", "04DA0001")                       # training revoked, with who/why
    admin = User(email="marie@example.org", password_hash="x", role=UserRole.admin)
    db.add(admin)
    db.flush()
    revoked = s.grant(db, dan, group_id=group.id, actor="cli")  # through the group
    revoked.granted_at = now - timedelta(days=10)
    s.revoke(db, revoked.id, by_user_id=admin.id, reason="usage dangereux", actor="cli")
    eve = _member(db, "Eve", "04EE0001")
    s.set_badge_status(db, "04EE0001", "lost", actor="cli")
    fay = _member(db, "Fay", "04FA0001")
    s.set_badge_status(db, "04FA0001", "inactive", actor="cli")
    gus = _member(db, "Gus", "04AB0001")
    s.grant(db, gus, machine_id=laser.id, actor="cli")
    s.deactivate_member(db, gus, actor="cli")
    alice = lab["alice"].id                                    # valid: the node's list was old
    s.grant(db, alice, machine_id=laser.id, actor="cli")
    db.commit()
    db.execute(Authorization.__table__.update().values(granted_at=now - timedelta(days=30)))
    db.commit()

    cases = {"04B0B001": ("not_authorized", bob), "04CA0001": ("expired", carol),
             "04DA0001": ("revoked", dan), "04EE0001": ("badge_lost", eve),
             "04FA0001": ("badge_inactive", fay), "04AB0001": ("member_inactive", gus),
             "04A1B2C3": ("unknown_badge", alice), "04FFFFFF": ("unknown_badge", None)}
    ids = {uid: node.deny(uid) for uid in cases}
    for uid, (reason, member) in cases.items():
        row = _refusal(db, ids[uid])
        assert (row.node_reason, row.reason, row.member_id, row.uid) == (
            "unknown_badge", reason, member, uid), uid
        assert row.machine_id == laser.id
    d = refusal_service.describe(db, _refusal(db, ids["04CA0001"]))
    assert d["date"] is not None and abs(d["date"] - expired.expires_at) < timedelta(seconds=1)
    d = refusal_service.describe(db, _refusal(db, ids["04DA0001"]))
    assert d["by"] == "marie@example.org" and d["why"] == "usage dangereux"
    assert d["date"] is not None and d["date"] > now - timedelta(minutes=1)
    # another reason from the node is kept as sent; an unknown UID is still listed as unknown
    locked = _refusal(db, node.deny("04B0B001", "machine_locked"))
    assert (locked.node_reason, locked.reason, locked.member_id) == (
        "machine_locked", "machine_locked", bob)
    assert [u.uid for u in s.list_unknown_badges(db).items] == ["04FFFFFF"]
    page = refusal_service.list_refusals(db, member_id=bob)
    assert [r.reason for r in page.items] == ["machine_locked", "not_authorized"]
    assert refusal_service.list_refusals(db, site_ids=[]).total == 0


def test_explanation_is_about_the_time_of_the_tap(db: Session, node: Node,
                                                  lab: dict[str, Any]) -> None:
    """A training granted after the tap (an event sent late by an offline node) did not exist
    then; one revoked after it was still valid then."""
    laser = lab["laser"]
    bob = _member(db, "Bob", "04B0B001")
    s.grant(db, bob, machine_id=laser.id, actor="cli")
    db.commit()
    late = node.deny("04B0B001", ts=datetime.now(UTC) - timedelta(hours=2))
    assert _refusal(db, late).reason == "not_authorized"
    now_id = node.deny("04B0B001")
    assert _refusal(db, now_id).reason == "unknown_badge"


def test_pending_enrolment_takes_the_next_unknown_badge_once(db: Session, node: Node,
                                                            lab: dict[str, Any]) -> None:
    zoe = s.create_member(db, "Zoé Lambert", site="lab", actor="cli")
    other = s.create_site(db, "nord", "Atelier Nord", actor="cli")
    far = s.create_member(db, "Far Away", actor="cli")
    enrolment.start_pending(db, far.id, actor="user:9 nord@example.org", site_ids=[other.id])
    enrolment.start_pending(db, zoe.id, actor="user:1 admin@example.org",
                            site_ids=[lab["site"].id])
    db.commit()
    first = node.deny("04D00001")
    node.deny("04D00002")
    db.rollback()
    badges = {b.uid: b.member_id for b in db.scalars(select(Badge))}
    assert badges["04D00001"] == zoe.id       # taken by the wait on this site
    assert "04D00002" not in badges           # the wait was used once
    assert enrolment.open_pending(db, zoe.id) is None
    assert enrolment.open_pending(db, far.id) is not None  # other site: still waiting
    assert _refusal(db, first).reason == "unknown_badge"
    # an expired wait takes nothing
    enrolment.start_pending(db, zoe.id, actor="cli", site_ids=None, minutes=0)
    db.commit()
    node.deny("04D00003")
    db.rollback()
    assert db.scalar(select(Badge).where(Badge.uid == "04D00003")) is None


def test_erasure_replaces_refusal_uids_and_refuses_while_a_session_is_open(
        db: Session, node: Node, lab: dict[str, Any]) -> None:
    from server_helpers import started

    bob = _member(db, "Bob", "04B0B001")
    db.commit()
    node.deny("04B0B001")
    db.rollback()
    export = privacy.export_member(db, bob)
    assert [r["reason"] for r in export["refusals"]] == ["not_authorized"]
    node.client.publish("fabpass/v1/lab/laser-1/event",
                        started(str(uuid.uuid4()), uid="04B0B001").encode(), qos=1)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not privacy.open_session_machines(db, bob):
        db.rollback()
        time.sleep(0.05)
    with pytest.raises(Conflict) as err:
        privacy.erase_member(db, bob, actor="cli")
    assert "Laser" in str(err.value)
    db.rollback()
    for sess in db.scalars(select(UsageSession).where(UsageSession.member_id == bob)):
        sess.ended_at = sess.started_at + timedelta(minutes=5)
    db.commit()
    privacy.erase_member(db, bob, actor="cli")
    db.commit()
    row = db.scalar(select(Refusal).where(Refusal.member_id == bob))
    assert row is not None and row.uid.startswith("E") and row.reason == "not_authorized"
