"""The demo's building blocks: node configs, seed data, the node registry, the embedded broker."""

from __future__ import annotations

import random
import threading
from datetime import UTC, datetime
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from sqlalchemy import func, select

from fabpass.demo import (
    MACHINES,
    MEMBERS,
    DemoError,
    DemoNode,
    DemoNodes,
    node_config,
    seed,
)
from firmware_config import load_node_config
from server import models as m
from server.db import make_engine, make_sessionmaker, upgrade

PINS = {"relay": 17, "green": 22, "red": 23, "buzzer": 24, "activity": 27}


@pytest.mark.parametrize("spec", MACHINES, ids=lambda s: s.slug)
def test_node_configs_are_valid(tmp_path: Path, spec: object) -> None:
    path = tmp_path / "node.toml"
    path.write_text(node_config(spec, "mqtt://127.0.0.1:1883", "3.1.1",  # type: ignore[arg-type]
                                tmp_path / "state", PINS))
    cfg = load_node_config(path)
    assert cfg.node_id == spec.slug  # type: ignore[attr-defined]
    assert cfg.mqtt.protocol == "3.1.1"
    if spec.plug:  # type: ignore[attr-defined]
        # a simulated Shelly switches it; its power is the busy signal (no relay, no input)
        assert (cfg.actuator.type, cfg.actuator.device) == ("shelly", spec.plug)  # type: ignore[attr-defined]
        assert cfg.gpio.relay is None and cfg.gpio.activity is None
    else:
        assert cfg.gpio.activity is not None
    if spec.kind == "3d_printer":  # type: ignore[attr-defined]
        assert cfg.session.power_off == "when_idle"
        assert cfg.session.idle_end_s == 60


def test_seed_covers_what_the_tour_needs(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/fabpass.db"
    upgrade(url)
    now = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
    engine = make_engine(url)
    with make_sessionmaker(engine)() as db:
        seed(db, random.Random(7), now)  # the demo's own seed
        db.commit()
        assert db.scalar(select(func.count()).select_from(m.Site)) == 2
        sites = {mach.slug: mach.site.slug for mach in db.scalars(select(m.Machine))}
        assert sites == {"laser-1": "centre", "printer-1": "centre", "printer-2": "nord",
                         "printer-3": "centre"}
        assert all(mach.node is not None for mach in db.scalars(select(m.Machine)))
        auths = db.scalars(select(m.Authorization)).all()
        assert any(a.role == m.AuthRole.trainer for a in auths)
        assert any(a.expires_at is not None and a.expires_at < now for a in auths)
        assert db.scalar(select(func.count()).select_from(m.Badge)
                         .where(m.Badge.status == m.BadgeStatus.lost)) == 1
        sessions = db.scalars(select(m.UsageSession)).all()
        days = {s.started_at.date() for s in sessions}
        assert len(days) == 7, "a week of past usage"
        assert all(s.ended_at is not None and s.started_at < now for s in sessions)
        assert {s.machine.slug for s in sessions} == {"laser-1", "printer-1", "printer-2"}
        # Nobody uses a machine they were never trained on.
        trained = {(a.member_id, a.machine.slug) for a in auths if a.machine}
        for a in auths:
            if a.group:
                trained |= {(a.member_id, mach.slug) for mach in a.group.machines}
        assert all((s.member_id, s.machine.slug) in trained for s in sessions)
        from server.services.maintenance import due_maintenance

        states = sorted(t["state"] for tasks in due_maintenance(db).values() for t in tasks)
        assert states == ["due", "overdue"], "the dashboard has maintenance to show"
    engine.dispose()
    assert len({uid for spec in MEMBERS for uid, _ in spec.badges}) == 9


def test_registry_refuses_unknown_and_stopped_nodes(tmp_path: Path) -> None:
    nodes = DemoNodes()
    with pytest.raises(DemoError):
        nodes.send("nope", "tap 04A1B2C3")
    node = DemoNode("laser-1", tmp_path / "missing.toml", tmp_path / "laser-1.log")
    nodes.add(node)
    with pytest.raises(DemoError):
        nodes.send("laser-1", "tap 04A1B2C3")  # never started
    assert nodes.slugs() == ["laser-1"] and not nodes.alive("laser-1")


def test_embedded_broker_relays_retained_qos1() -> None:
    pytest.importorskip("amqtt")
    from fabpass.embedded_broker import EmbeddedBroker

    broker = EmbeddedBroker().start()
    try:
        got = threading.Event()
        received: list[bytes] = []
        pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
        pub.connect("127.0.0.1", broker.port)
        pub.loop_start()
        pub.publish("fabpass/v1/centre/laser-1/acl", b'{"v":1}', qos=1, retain=True).wait_for_publish(5)
        sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)

        def on_message(_c: object, _u: object, msg: mqtt.MQTTMessage) -> None:
            received.append(msg.payload)
            got.set()

        sub.on_message = on_message
        sub.on_connect = lambda c, *_: c.subscribe("fabpass/v1/#", qos=1)
        sub.connect("127.0.0.1", broker.port)
        sub.loop_start()
        assert got.wait(5), "retained message not delivered"
        assert received == [b'{"v":1}']
        for client in (pub, sub):
            client.loop_stop()
            client.disconnect()
    finally:
        broker.stop()
