"""`python -m bench.profile_ingest [--db URL] [--batches N]`: the ingest's batch in-process, profiled.

The throughput benchmark measures the server through a broker, where the CPU of one
event is spread over paho, the broker and the database. This runs only
`Ingest.handle_batch` on batches of the simulated fleet's real payloads (500 each, as
the server's writer takes them), prints the CPU per event and a pyinstrument profile
of where it goes, so that a change to the hot path is measured without the noise of a
shared machine's scheduler.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import UTC, datetime

from bench.fleet import Fleet
from protocol import Topics
from server.db import make_engine, make_sessionmaker, upgrade, writer_engine
from server.messaging.ingest import Incoming, Ingest

SITE = "lab"
NODES = 50


def _setup(url: str) -> tuple[Ingest, list[tuple[int, str]]]:
    from server import services as s

    upgrade(url)
    engine = make_engine(url)
    db = make_sessionmaker(engine)()
    s.create_site(db, SITE, "The Lab", "Europe/Paris", actor="cli")
    badges: list[tuple[int, str]] = []
    for i in range(NODES):
        s.create_machine(db, f"m-{i}", f"Machine {i}", SITE, "laser_cutter", node=f"n-{i}",
                         actor="cli")
    for i in range(50):
        member = s.create_member(db, f"Member {i}", actor="cli")
        uid = f"04{i:06X}"
        s.enrol_badge(db, member.id, uid, actor="cli")
        badges.append((member.id, uid))
    db.commit()
    db.close()
    return Ingest(make_sessionmaker(writer_engine(engine)), Topics("fabpass")), badges


def _batches(badges: list[tuple[int, str]], count: int, size: int) -> list[list[Incoming]]:
    fleet = Fleet("mqtt://127.0.0.1:1", SITE, [f"n-{i}" for i in range(NODES)], badges, seed=3)
    topics = Topics("fabpass")
    out: list[list[Incoming]] = []
    for b in range(count):
        batch = []
        for k in range(size):
            node = fleet.nodes[(b * size + k) % NODES]
            payload = node.next_event().encode()
            batch.append(Incoming(topic=topics.event(SITE, node.slug), payload=payload,
                                  mid=k, qos=1, received_at=datetime.now(UTC)))
        out.append(batch)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--db", help="database URL (default: a temporary SQLite file)")
    ap.add_argument("--batches", type=int, default=20)
    ap.add_argument("--no-profile", action="store_true", help="only the CPU per event")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        url = args.db or f"sqlite:///{tmp}/profile.db"
        ingest, badges = _setup(url)
        batches = _batches(badges, args.batches + 2, 500)
        for batch in batches[:2]:  # warm up: statement caches, imports
            ingest.handle_batch(batch)
        profiler = None
        if not args.no_profile:
            from pyinstrument import Profiler

            profiler = Profiler(interval=0.0005)
            profiler.start()
        cpu0 = time.process_time()
        for batch in batches[2:]:
            ingest.handle_batch(batch)
        cpu = time.process_time() - cpu0
        if profiler is not None:
            profiler.stop()
        events = 500 * args.batches
        assert ingest.stats.dead_letters == 0, ingest.stats.by_reason
        print(f"{events} events, {1000 * cpu / events:.4f} ms CPU per event "
              f"({events / cpu:,.0f} events per CPU-second), stats {ingest.stats.as_dict()}")
        if profiler is not None:
            print(profiler.output_text(unicode=True, color=False, show_all=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
