"""A member asks "tell me when the laser is free"; the session ends through a real broker and
the ingest; the mail arrives at a real SMTP server, once."""

from __future__ import annotations

import importlib.util
import queue
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from server_helpers import T0, ended, started
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from protocol import Ack
from server.db import make_sessionmaker
from server.models import Machine, Member
from server.runner import CoreOptions, ServerCore
from server.services import mail, notices

pytestmark = pytest.mark.broker

_spec = importlib.util.spec_from_file_location(
    "fabpass_smtp_receiver", Path(__file__).parents[1] / "smtp_receiver.py")
assert _spec is not None and _spec.loader is not None
smtp_receiver = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(smtp_receiver)


@pytest.fixture()
def core(engine: Engine, mosquitto, lab) -> Iterator[ServerCore]:  # type: ignore[no-untyped-def]
    c = ServerCore(engine, CoreOptions(mqtt_url=mosquitto.url,
                                       client_id=f"fabpass-test-{uuid.uuid4().hex[:8]}"))
    c.start()
    assert c.link.wait_connected(5)
    yield c
    c.stop(forget_session=True)


def _publish_and_wait(url: str, payloads: list[bytes], ids: set[str]) -> None:
    acks: queue.Queue[Ack] = queue.Queue()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"t-{uuid.uuid4().hex[:6]}",
                         protocol=mqtt.MQTTv5)
    client.on_message = lambda _c, _u, m: acks.put(Ack.decode(m.payload))
    client.connect("127.0.0.1", int(url.rsplit(":", 1)[1]))
    client.loop_start()
    try:
        client.subscribe("fabpass/v1/lab/laser-1/ack", 1)
        time.sleep(0.2)
        for p in payloads:
            client.publish("fabpass/v1/lab/laser-1/event", p, qos=1).wait_for_publish(5)
        acked: set[str] = set()
        deadline = time.monotonic() + 10
        while not ids <= acked and time.monotonic() < deadline:
            try:
                acked |= set(acks.get(timeout=0.5).ids)
            except queue.Empty:
                pass
        assert ids <= acked
    finally:
        client.loop_stop()
        client.disconnect()


def test_when_free_mail_after_the_session_ends(db: Session, engine: Engine, core, mosquitto,  # type: ignore[no-untyped-def]
                                               lab) -> None:
    alice = db.scalar(select(Member).where(Member.email == "alice@example.org"))
    laser = db.scalar(select(Machine).where(Machine.slug == "laser-1"))
    assert alice is not None and laser is not None
    notices.watch(db, alice.id, laser.id, actor="test")
    db.commit()
    receiver = smtp_receiver.SmtpReceiver().start()
    try:
        sid = str(uuid.uuid4())
        evs = [started(sid, ts=T0)]
        _publish_and_wait(mosquitto.url, [e.encode() for e in evs], {e.id for e in evs})
        sessions = make_sessionmaker(engine)
        cfg = mail.parse_smtp_url(receiver.url)
        assert mail.send_due(sessions, cfg, "fab@example.org").sent == 0  # still running
        end = ended(sid, T0, 60, 40)
        _publish_and_wait(mosquitto.url, [end.encode()], {end.id})
        assert mail.send_due(sessions, cfg, "fab@example.org").sent == 1
        (msg,) = receiver.wait_for(1)
        assert msg["To"] == "alice@example.org" and "Laser" in msg["Subject"]
        # the request is spent: a second session ending sends nothing
        sid2 = str(uuid.uuid4())
        more = [started(sid2, ts=T0), ended(sid2, T0, 30, 20)]
        _publish_and_wait(mosquitto.url, [e.encode() for e in more], {e.id for e in more})
        assert mail.send_due(sessions, cfg, "fab@example.org").sent == 0
        db.rollback()
        assert notices.open_watches(db, alice.id) == []
    finally:
        receiver.stop()
