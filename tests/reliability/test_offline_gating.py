"""Promise 2 — offline gating, end to end with the real server: the broker dies; the node keeps
deciding from its cached list (known badge opens, unknown and expired refused), then once the
list's `valid_until` has passed everything is refused with `acl_stale`; when the broker returns
every queued event reaches the database exactly once.

A long outage is simulated by a short list validity (`FABPASS_ACL_VALID_DAYS` of 14 seconds) and
an authorization expiring a few seconds after issue, not by waiting days.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from reliability_harness import NodeProc, ingest_proc, node_config, seed, wait_until

from fabpass.broker import MosquittoProcess
from protocol import parse_ts

VALID_S = 14
EXPIRES_S = 5
STRANGER = "04DEAD00"


@pytest.mark.broker
@pytest.mark.timeout(120)
def test_offline_gating_then_queued_events_arrive_once(tmp_path: Path) -> None:
    from sqlalchemy import select

    from server import services as s
    from server.db import make_engine, make_sessionmaker
    from server.models import Event, UsageSession

    db_url = f"sqlite:///{tmp_path / 'fabpass.db'}"
    fleet = seed(db_url, 1)
    name, uid = fleet.nodes[0], fleet.badges[fleet.nodes[0]]
    engine = make_engine(db_url)
    with make_sessionmaker(engine)() as db:
        bob = s.create_member(db, "Bob Expiring", actor="cli")
        bob_uid = "04B0B0B0"
        s.enrol_badge(db, bob.id, bob_uid, actor="cli")
        expires = datetime.now(UTC) + timedelta(seconds=EXPIRES_S + 3)
        s.grant(db, bob.id, machine_id=fleet.machines[name], expires_at=expires, actor="cli")
        db.commit()
    broker = MosquittoProcess(data_dir=tmp_path / "broker").start()
    server = ingest_proc(db_url, broker.url)
    server.env["FABPASS_ACL_VALID_DAYS"] = repr(VALID_S / 86400)
    server.start()
    storage = tmp_path / name
    storage.mkdir()
    node = NodeProc(name, node_config(tmp_path / "n.toml", broker_url=broker.url, node=name,
                                      storage=storage), storage).start()
    try:
        node.wait_line(r"access list version \d+: 2 badges", timeout=30)
        wait_until(lambda: (storage / "acl.json").exists(), 5, "the list cached on disk")
        cached = json.loads((storage / "acl.json").read_text())
        valid_until = parse_ts(cached["valid_until"])
        bob_until = parse_ts(next(b["until"] for b in cached["badges"] if b["uid"] == bob_uid))
        broker.kill()
        node.wait_line(r"MQTT disconnected", 10)

        mark = node.tap(uid)
        node.wait_line(rf"session \S+ started: badge {uid}", 5, since=mark)
        node.tap(uid)
        node.wait_line(r"session \S+ ended: badge_out", 5, since=mark)
        node.tap(STRANGER)
        node.wait_line(rf"badge {STRANGER} denied: unknown_badge", 5, since=mark)
        wait_until(lambda: datetime.now(UTC) > bob_until + timedelta(seconds=0.2), 20,
                   "bob's authorization to expire")
        mark = node.tap(bob_uid)
        node.wait_line(rf"badge {bob_uid} denied: expired", 5, since=mark)
        wait_until(lambda: datetime.now(UTC) > valid_until + timedelta(seconds=0.2), 30,
                   "the list's valid_until")
        for badge in (uid, bob_uid, STRANGER):
            mark = node.tap(badge)
            node.wait_line(rf"badge {badge} denied: acl_stale", 5, since=mark)
        assert node.relay() == ["on", "off"]

        generated = node.event_ids()
        assert len(generated) == 7  # started, ended, 5 denials
        broker.start()
        wait_until(lambda: not node.outbox_ids(), 40, "the node's outbox acknowledged")
        with make_sessionmaker(engine)() as db:
            rows = list(db.scalars(select(Event)))
            sessions = list(db.scalars(select(UsageSession)))
        assert sorted(r.event_id for r in rows) == sorted(generated)  # each exactly once
        reasons = sorted(r.data.get("reason") for r in rows if r.type == "badge.denied")
        assert reasons == ["acl_stale"] * 3 + ["expired", "unknown_badge"]
        assert len(sessions) == 1 and sessions[0].end_reason == "badge_out"
        started = time.monotonic()
        node.wait_line(r"access list version \d+", 10)  # a fresh list after the outage
        assert time.monotonic() - started < 10
    finally:
        node.stop()
        server.stop()
        broker.cleanup()
        engine.dispose()
