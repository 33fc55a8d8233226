"""Promise 4 — revocation: a revoked badge is refused by an online node within 1 s, end to end
(services.revoke in the database → publisher in the server process → broker → node → tap)."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest
from reliability_harness import NodeProc, ingest_proc, node_config, seed

from fabpass.broker import MosquittoProcess

log = logging.getLogger(__name__)
ROUNDS = 5


@pytest.mark.broker
@pytest.mark.timeout(120)
def test_revoked_badge_refused_within_one_second(tmp_path: Path) -> None:
    from server import services as s
    from server.db import make_engine, make_sessionmaker

    db_url = f"sqlite:///{tmp_path / 'fabpass.db'}"
    fleet = seed(db_url, 1)
    name, uid = fleet.nodes[0], fleet.badges[fleet.nodes[0]]
    engine = make_engine(db_url)
    broker = MosquittoProcess(data_dir=tmp_path / "broker").start()
    server = ingest_proc(db_url, broker.url).start()
    storage = tmp_path / name
    storage.mkdir()
    node = NodeProc(name, node_config(tmp_path / "n.toml", broker_url=broker.url, node=name,
                                      storage=storage), storage).start()
    delays = []
    try:
        node.wait_line(r"access list version \d+: 1 badges", timeout=30)
        auth_id = fleet.auth_ids[name]
        for i in range(ROUNDS):
            # Allowed: a tap opens a session, a second closes it.
            mark = node.tap(uid)
            node.wait_line(rf"session \S+ started: badge {uid}", 10, since=mark)
            node.tap(uid)
            node.wait_line(r"session \S+ ended: badge_out", 10, since=mark)
            mark = node.mark()
            with make_sessionmaker(engine)() as db:
                s.revoke(db, auth_id, reason="test", actor="cli")
                db.commit()
            t_revoked = time.monotonic()
            node.wait_line(r"access list version \d+: 0 badges", 5, since=mark)
            [(line, _)] = [(ln, m) for ln, m in node.find_lines(r"access list version \d+: 0 badges")
                           if ln.at >= t_revoked][-1:]
            delays.append(line.at - t_revoked)
            # Refused at once, and the relay never came on.
            relay_before = node.relay().count("on")
            node.tap(uid)
            node.wait_line(rf"badge {uid} denied: \w+", 5, since=mark)
            assert node.relay().count("on") == relay_before
            if i < ROUNDS - 1:
                mark = node.mark()
                with make_sessionmaker(engine)() as db:
                    auth_id = s.grant(db, fleet.members[name], machine_id=fleet.machines[name],
                                      actor="cli").id
                    db.commit()
                node.wait_line(r"access list version \d+: 1 badges", 5, since=mark)
    finally:
        node.stop()
        server.stop()
        broker.cleanup()
        engine.dispose()
    log.warning("revocation → list on the node: max %.3f s, all %s", max(delays),
                [round(d, 3) for d in delays])
    assert len(delays) == ROUNDS and max(delays) < 1.0
