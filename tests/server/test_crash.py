"""SIGKILL `fabpass ingest` during a burst, restart it: every event stored exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from server_helpers import event
from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from server import services as s
from server.models import Event

pytestmark = pytest.mark.broker

N_NODES = 4
PER_NODE = 750  # 3,000 events in all
LAUNCH = ("import logging, sys; logging.basicConfig(level=logging.WARNING); "
          "from server.cli.run import ingest; sys.exit(ingest())")


def _start_ingest(db_url: str, broker_url: str, client_id: str, log: Path) -> subprocess.Popen:
    env = dict(os.environ, FABPASS_DATABASE_URL=db_url, FABPASS_MQTT_URL=broker_url,
               FABPASS_SECRET_KEY="x")
    return subprocess.Popen([sys.executable, "-c", LAUNCH, "--client-id", client_id],
                            env=env, stdout=subprocess.DEVNULL, stderr=log.open("ab"),
                            cwd=Path(__file__).resolve().parents[2])


def _count(db: Session) -> int:
    db.rollback()
    return int(db.scalar(select(func.count()).select_from(Event)) or 0)


def _wait(pred, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def test_sigkill_during_burst_loses_and_doubles_nothing(
        db: Session, engine: Engine, db_url: str, fresh_broker, tmp_path: Path) -> None:
    s.create_site(db, "lab", "Lab", actor="cli")
    nodes = [f"n-{i}" for i in range(N_NODES)]
    for n in nodes:
        s.create_machine(db, n, n, "lab", "other", node=n, requires_authorization=False,
                         actor="cli")
    db.commit()
    client_id = f"fabpass-kill-{uuid.uuid4().hex[:8]}"
    log = tmp_path / "ingest.log"
    proc = _start_ingest(db_url, fresh_broker.url, client_id, log)
    pubs: list[mqtt.Client] = []
    try:
        pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4().hex[:6]}",
                          protocol=mqtt.MQTTv5)
        pub.max_inflight_messages_set(1000)
        pub.connect("127.0.0.1", fresh_broker.port)
        pub.loop_start()
        pubs.append(pub)
        # the ingest's persistent session must exist before the burst: wait for a probe
        probe = event("badge.denied", {"uid": "04000000", "reason": "unknown_badge"}, node="n-0")

        def probe_stored() -> bool:
            pub.publish("fabpass/v1/lab/n-0/event", probe.encode(), qos=1)
            return _count(db) >= 1

        _wait(lambda: proc.poll() is None and probe_stored(), 20, "the ingest to start")
        ids = {probe.id}
        infos = []
        for i in range(PER_NODE):
            for n in nodes:
                ev = event("session.heartbeat", {"session": str(uuid.uuid4()), "uid": "04A1B2C3",
                                                 "member": None, "elapsed_s": i, "active_s": 0},
                           node=n)
                ids.add(ev.id)
                infos.append(pub.publish(f"fabpass/v1/lab/{n}/event", ev.encode(), qos=1))
            if i == PER_NODE // 5:
                _wait(lambda: _count(db) > 50, 20, "events being stored")
                proc.send_signal(signal.SIGKILL)  # mid-burst, batches in flight
                proc.wait(5)
                killed_at = _count(db)
        for info in infos:
            info.wait_for_publish(20)
        assert killed_at < len(ids)
        proc = _start_ingest(db_url, fresh_broker.url, client_id, log)
        try:
            _wait(lambda: _count(db) >= len(ids), 45, f"{len(ids)} events stored")
        except AssertionError:
            raise AssertionError(f"{_count(db)} of {len(ids)} stored (killed at {killed_at}); "
                                 + log.read_text()[-3000:]) from None
        time.sleep(0.3)  # redeliveries still in flight must not add rows
        db.rollback()
        stored = list(db.scalars(select(Event.event_id)))
        assert len(stored) == len(ids) and set(stored) == ids
    finally:
        for p in pubs:
            p.loop_stop()
            p.disconnect()
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
