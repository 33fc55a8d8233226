"""The MQTT side against a real Mosquitto: acks after commit, access lists, revocation < 1 s."""

from __future__ import annotations

import queue
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta

import paho.mqtt.client as mqtt
import pytest
from server_helpers import T0, ended, heartbeat, started, status
from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from protocol import AccessList, Ack, Command
from server import services as s
from server.models import Event, Node, UsageSession
from server.runner import CoreOptions, ServerCore

pytestmark = pytest.mark.broker


class NodeClient:
    """A stand-in node: publishes events/status, collects acks, lists and commands."""

    def __init__(self, url: str, site: str = "lab", node: str = "laser-1") -> None:
        port = int(url.rsplit(":", 1)[1])
        self.site, self.node = site, node
        self.acks: queue.Queue[Ack] = queue.Queue()
        self.acls: queue.Queue[AccessList] = queue.Queue()
        self.cmds: queue.Queue[Command] = queue.Queue()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                                  client_id=f"test-{node}-{uuid.uuid4().hex[:6]}",
                                  protocol=mqtt.MQTTv5)
        self.client.on_message = self._on_message
        subscribed = threading.Event()
        self.client.on_subscribe = lambda *a: subscribed.set()
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        base = f"fabpass/v1/{site}/{node}"
        self.client.subscribe([(f"{base}/ack", 1), (f"{base}/acl", 1), (f"{base}/cmd", 1)])
        assert subscribed.wait(5)

    def _on_message(self, _c, _u, msg) -> None:  # type: ignore[no-untyped-def]
        kind = msg.topic.rsplit("/", 1)[1]
        if kind == "ack":
            self.acks.put(Ack.decode(msg.payload))
        elif kind == "acl" and msg.payload:
            self.acls.put(AccessList.decode(msg.payload))
        elif kind == "cmd":
            self.cmds.put(Command.decode(msg.payload))

    def publish(self, kind: str, payload: bytes, retain: bool = False) -> None:
        info = self.client.publish(f"fabpass/v1/{self.site}/{self.node}/{kind}", payload, qos=1,
                                   retain=retain)
        info.wait_for_publish(5)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def wait_for(q: queue.Queue, pred, timeout: float):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        try:
            item = q.get(timeout=left)
        except queue.Empty:
            break
        if pred(item):
            return item
    raise AssertionError(f"nothing matching within {timeout} s")


@pytest.fixture()
def core(engine: Engine, mosquitto, lab) -> Iterator[ServerCore]:  # type: ignore[no-untyped-def]
    opts = CoreOptions(mqtt_url=mosquitto.url, client_id=f"fabpass-test-{uuid.uuid4().hex[:8]}")
    c = ServerCore(engine, opts)
    c.start()
    assert c.link.wait_connected(5)
    yield c
    c.stop(forget_session=True)


@pytest.fixture()
def node(mosquitto) -> Iterator[NodeClient]:  # type: ignore[no-untyped-def]
    n = NodeClient(mosquitto.url)
    yield n
    n.publish("acl", b"", retain=True)  # clear retained state for later tests
    n.close()


def test_events_acked_after_commit_duplicates_too(db: Session, core, node, lab) -> None:
    sid = str(uuid.uuid4())
    evs = [started(sid, ts=T0), heartbeat(sid, 30, 20, ts=T0 + timedelta(seconds=30)),
           ended(sid, T0, 60, 40)]
    for ev in evs + evs[:1]:
        node.publish("event", ev.encode())
    acked: set[str] = set()
    deadline = time.monotonic() + 5
    while acked != {e.id for e in evs} and time.monotonic() < deadline:
        acked |= set(wait_for(node.acks, lambda a: True, 5).ids)
    assert acked == {e.id for e in evs}
    db.rollback()
    assert db.scalar(select(func.count()).select_from(Event)) == 3
    row = db.scalar(select(UsageSession))
    assert row is not None and row.duration_s == 60 and row.end_reason == "badge_out"
    # a payload from another node on this topic: acked as rejected
    bad = started(str(uuid.uuid4()), node="printer-1")
    node.publish("event", bad.encode())
    ack = wait_for(node.acks, lambda a: bad.id in a.rejected, 5)
    assert bad.id not in ack.ids


def test_list_published_and_revocation_reaches_node_within_1s(
        db: Session, core, node, lab) -> None:
    alice, laser = lab["alice"], lab["laser"]
    auth = s.grant(db, alice.id, machine_id=laser.id, role="user", actor="cli")
    db.commit()
    acl = wait_for(node.acls, lambda a: "04A1B2C3" in a.by_uid(), 3)
    assert acl.machine == "laser-1" and acl.site == "lab" and acl.badges[0].label == "Alice D."
    assert acl.valid_until - acl.issued == timedelta(days=7)
    s.revoke(db, auth.id, reason="test", actor="cli")
    db.commit()
    t0 = time.monotonic()
    newer = wait_for(node.acls, lambda a: a.version > acl.version, 1.0)
    assert time.monotonic() - t0 < 1.0
    assert "04A1B2C3" not in newer.by_uid()
    deadline = time.monotonic() + 2  # the publisher commits right after publishing
    while time.monotonic() < deadline:
        db.rollback()
        published = db.scalar(select(Node.acl_published_version).where(Node.slug == "laser-1"))
        if published == newer.version:
            break
        time.sleep(0.02)
    assert published == newer.version


def test_change_from_another_process_is_seen_by_polling(
        db: Session, core, node, lab, engine: Engine) -> None:
    wait_for(node.acls, lambda a: True, 3)  # the initial full publish
    # a second engine = another process (CLI): no in-process notification
    from server.db import make_engine, make_sessionmaker
    other_engine = make_engine(str(engine.url.render_as_string(hide_password=False)))
    try:
        with make_sessionmaker(other_engine)() as other:
            s.set_machine_lock(other, lab["laser"].id, True, "maintenance", actor="cli")
            other.info.pop("fabpass_dirty", None)  # as if committed elsewhere
            other.commit()
        acl = wait_for(node.acls, lambda a: a.locked, 1.5)
        assert acl.locked
    finally:
        other_engine.dispose()


def test_older_acl_version_in_status_gets_list_again_and_commands(
        db: Session, core, node, lab) -> None:
    first = wait_for(node.acls, lambda a: True, 3)
    node.publish("status", status(acl_version=first.version - 1000))
    # published_at is fresh: the server waits ACL_RESEND_AFTER before resending
    db.rollback()
    n = db.scalar(select(Node).where(Node.slug == "laser-1"))
    n.acl_published_at = n.acl_published_at - timedelta(minutes=1)
    db.commit()
    node.publish("status", status(acl_version=first.version - 1000))
    again = wait_for(node.acls, lambda a: a.version > first.version, 3)
    assert again.node == "laser-1"
    cmd = s.send_command(db, lab["laser"].id, "stop", actor="cli")
    db.commit()
    got = wait_for(node.cmds, lambda c: True, 2)
    assert got.id == cmd.command_id and got.cmd == "stop"


def _heartbeats(n: int, node: str = "laser-1") -> list:  # type: ignore[type-arg]
    from server_helpers import event

    return [event("session.heartbeat", {"session": str(uuid.uuid4()), "uid": "04A1B2C3",
                                        "member": None, "elapsed_s": 1, "active_s": 0},
                  node=node) for _ in range(n)]


def _wait_acked(node: NodeClient, ids: set[str], timeout: float) -> None:
    acked: set[str] = set()
    deadline = time.monotonic() + timeout
    while not ids <= acked and time.monotonic() < deadline:
        try:
            acked |= set(node.acks.get(timeout=max(deadline - time.monotonic(), 0.01)).ids)
        except queue.Empty:
            break
    assert ids <= acked, f"{len(ids - acked)} of {len(ids)} not acked; {len(acked)} acked"


def test_two_ingest_workers_on_a_shared_subscription(
        db: Session, engine: Engine, mosquitto, node, lab) -> None:
    workers = []
    try:
        for i in range(2):
            opts = CoreOptions(mqtt_url=mosquitto.url, client_id=f"fp-w{i}-{uuid.uuid4().hex[:6]}",
                               shared=True, publisher=False, statuses=i == 0)
            w = ServerCore(engine, opts)
            w.start()
            assert w.link.wait_connected(5)
            workers.append(w)
        time.sleep(0.3)  # let both SUBSCRIBEs reach the broker
        evs = _heartbeats(200)
        for ev in evs + evs[:50]:  # and some redeliveries
            node.publish("event", ev.encode())
        try:
            _wait_acked(node, {e.id for e in evs}, 15)
        except AssertionError as exc:
            stats = [w.ingest.stats.as_dict() for w in workers if w.ingest]
            raise AssertionError(f"{exc}; {stats}") from None
        db.rollback()
        assert db.scalar(select(func.count()).select_from(Event)) == 200
        stored = [w.ingest.stats.stored for w in workers if w.ingest]
        assert sum(stored) == 200 and all(n > 0 for n in stored), stored  # both took a share
    finally:
        for w in workers:
            # retired for good: without this the broker keeps queueing their share of the
            # group's messages for them (the next test's workers would get half)
            w.stop(forget_session=True)


def test_mqtt_311_persistent_session_keeps_events_while_down(
        db: Session, engine: Engine, fresh_broker, lab) -> None:
    client_id = f"fp-311-{uuid.uuid4().hex[:6]}"
    opts = CoreOptions(mqtt_url=fresh_broker.url, client_id=client_id, protocol="311")
    core = ServerCore(engine, opts)
    core.start()
    assert core.link.wait_connected(5)
    time.sleep(0.2)
    core.stop()  # the broker keeps the session (clean_session false)
    n = NodeClient(fresh_broker.url)
    try:
        evs = _heartbeats(30)
        for ev in evs:
            n.publish("event", ev.encode())
        core = ServerCore(engine, opts)
        core.start()
        _wait_acked(n, {e.id for e in evs}, 10)
        db.rollback()
        assert db.scalar(select(func.count()).select_from(Event)) == 30
    finally:
        core.stop()
        n.close()


def test_broker_lost_everything_every_list_republished(
        db: Session, engine: Engine, lab, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from fabpass.broker import MosquittoProcess

    broker = MosquittoProcess(data_dir=tmp_path / "mosq", persistence=False).start()
    core = ServerCore(engine, CoreOptions(mqtt_url=broker.url,
                                          client_id=f"fp-r-{uuid.uuid4().hex[:6]}"))
    try:
        core.start()
        n = NodeClient(broker.url, node="printer-1")
        wait_for(n.acls, lambda a: True, 3)
        n.close()
        broker.kill()
        broker.start()  # same port, no retained lists, no session for the server
        n = NodeClient(broker.url, node="printer-1")  # a node (re)subscribing afterwards
        acl = wait_for(n.acls, lambda a: a.node == "printer-1", 15)
        assert acl.machine == "printer-1"
        n.close()
    finally:
        core.stop()
        broker.cleanup()


@pytest.mark.postgres
@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_database_error_retried_and_nothing_acked_before_commit(
        db: Session, core, node, lab) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy import text

    db.execute(text("LOCK TABLE events IN ACCESS EXCLUSIVE MODE"))  # the ingest will wait
    evs = _heartbeats(5)
    for ev in evs:
        node.publish("event", ev.encode())
    with pytest.raises(queue.Empty):
        node.acks.get(timeout=1.0)  # not committed: not acknowledged
    # the ingest's connection dies while it waits: a database error mid-batch
    db.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"))
    deadline = time.monotonic() + 5
    while core.ingest.stats.db_errors == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert core.ingest.stats.db_errors >= 1
    db.rollback()  # release the lock: the retried batch goes through
    _wait_acked(node, {e.id for e in evs}, 10)
    assert db.scalar(select(func.count()).select_from(Event)) == 5


def test_periodic_full_republish(db: Session, core, node, lab) -> None:  # type: ignore[no-untyped-def]
    first = wait_for(node.acls, lambda a: True, 3)
    assert core.publisher is not None
    core.publisher.full_every_s = 0.0  # "daily", compressed: due at every poll
    again = wait_for(node.acls, lambda a: a.version > first.version, 2)
    assert again.valid_until > first.valid_until and again.badges == first.badges


@pytest.mark.postgres
@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_broker_restart_while_a_batch_is_in_hand(
        db: Session, engine: Engine, fresh_broker, lab) -> None:  # type: ignore[no-untyped-def]
    """The batch commits after the reconnection: its PUBACKs must not go out on the new
    connection (packet ids may name other messages there). Nothing is lost or stored twice;
    copies the broker may redeliver are duplicates, acknowledged then."""
    from sqlalchemy import text

    core = ServerCore(engine, CoreOptions(mqtt_url=fresh_broker.url,
                                          client_id=f"fp-g-{uuid.uuid4().hex[:6]}"))
    core.start()
    n = NodeClient(fresh_broker.url)
    try:
        assert core.link.wait_connected(5)
        db.execute(text("LOCK TABLE events IN ACCESS EXCLUSIVE MODE"))
        evs = _heartbeats(20)
        for ev in evs:
            n.publish("event", ev.encode())
        deadline = time.monotonic() + 5
        while core.ingest.queue.qsize() + core.ingest.stats.batches == 0 and \
                time.monotonic() < deadline:
            time.sleep(0.02)
        generation = core.link.generation
        n.close()
        fresh_broker.restart()  # graceful: the broker keeps the sessions
        deadline = time.monotonic() + 15
        while core.link.generation == generation and time.monotonic() < deadline:
            time.sleep(0.05)
        assert core.link.generation > generation
        db.rollback()  # the waiting batch commits now, on the new connection
        n = NodeClient(fresh_broker.url)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            db.rollback()
            if db.scalar(select(func.count()).select_from(Event)) == 20:
                break
            time.sleep(0.05)
        time.sleep(0.3)  # redeliveries, if the broker makes any, must not add rows
        db.rollback()
        assert db.scalar(select(func.count()).select_from(Event)) == 20
        assert core.ingest.stats.stored == 20
    finally:
        core.stop(forget_session=True)
        n.close()
