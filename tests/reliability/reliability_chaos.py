"""Promise 1 scenario: N simulated nodes run sessions while the ingest, the broker (persistence
off) and a node are SIGKILLed and restarted in turn; then the database is compared with what
the nodes generated. Used by the CI test (small N) and by tests/soak (N = 20).

The truth about generated events is each node's own log line `event TYPE #SEQ ID`, written
right after the event is committed to its outbox, plus whatever a killed node still had in its
outbox (an event committed just before a SIGKILL may not have been logged yet).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reliability_harness import (
    Fleet,
    NodeProc,
    ingest_proc,
    node_config,
    seed,
    wait_until,
)

from fabpass.broker import MosquittoProcess

log = logging.getLogger(__name__)

START_RX = r"session ([0-9a-f-]{36}) started: badge (\w+)"
END_RX = r"session ([0-9a-f-]{36}) ended: (\w+) after"


@dataclass
class ChaosReport:
    nodes: int
    generated: int = 0
    stored: int = 0
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    sessions: int = 0
    open_sessions: list[str] = field(default_factory=list)
    power_loss: int = 0
    max_duration_error_s: float = 0.0
    duration_errors: list[str] = field(default_factory=list)
    pending_in_outboxes: int = 0
    faults: list[str] = field(default_factory=list)
    seconds: float = 0.0
    heartbeat_s: int = 5
    database: str = "sqlite"

    def summary(self) -> dict[str, Any]:
        return {"database": self.database, "nodes": self.nodes, "events_generated": self.generated,
                "events_stored": self.stored, "missing": len(self.missing),
                "unexpected": len(self.unexpected), "sessions": self.sessions,
                "open_sessions": len(self.open_sessions), "power_loss_sessions": self.power_loss,
                "max_duration_error_s": round(self.max_duration_error_s, 2),
                "faults": self.faults, "seconds": round(self.seconds, 1)}


def _tap_and_see(node: NodeProc, uid: str, pattern: str, timeout: float = 10.0) -> bool:
    """Tap and wait for the node to log `pattern` (a start, an end or a denial)."""
    if not node.alive:
        return False
    mark = node.mark()
    try:
        node.send(f"tap {uid}")
        node.wait_line(pattern, timeout, since=mark)
    except (BrokenPipeError, OSError, AssertionError):
        return False
    return True


def _drive(node: NodeProc, uid: str, sessions: int, stop: threading.Event,
           rng: random.Random, paused: threading.Event) -> None:
    """Tap in, use the machine a while, tap out; repeat. Waits while the node is being killed."""
    for _ in range(sessions):
        if stop.is_set():
            return
        paused.wait(30)
        if _open_session(node) is None and not _tap_and_see(
                node, uid, rf"{START_RX}|badge {uid} denied"):
            continue
        if stop.wait(rng.uniform(1.0, 7.0)):
            return
        paused.wait(30)
        if _open_session(node) is not None:
            _tap_and_see(node, uid, END_RX)
        if stop.wait(rng.uniform(0.5, 1.5)):
            return


def run_chaos(workdir: Path, n_nodes: int = 5, sessions_per_node: int = 6, *,
              heartbeat_s: int = 5, seed_value: int = 8, settle_timeout: float = 90.0,
              fault_gap_s: float = 5.0, max_cycles: int = 1,
              db_url: str | None = None) -> ChaosReport:
    """Run the scenario in `workdir` and return what was found.

    The database is a SQLite file in `workdir` unless `db_url` names an empty one."""
    t0 = time.monotonic()
    rng = random.Random(seed_value)
    report = ChaosReport(nodes=n_nodes, heartbeat_s=heartbeat_s)
    if db_url:
        report.database = db_url.split(":", 1)[0].split("+", 1)[0]
    db_url = db_url or f"sqlite:///{workdir / 'fabpass.db'}"
    fleet: Fleet = seed(db_url, n_nodes)
    broker = MosquittoProcess(data_dir=workdir / "broker", persistence=False).start()
    ingest = ingest_proc(db_url, broker.url).start()
    nodes: list[NodeProc] = []
    for name in fleet.nodes:
        storage = workdir / name
        storage.mkdir()
        cfg = node_config(workdir / f"{name}.toml", broker_url=broker.url, node=name,
                          storage=storage, heartbeat_s=heartbeat_s)
        nodes.append(NodeProc(name, cfg, storage).start())
    extra_ids: set[str] = set()
    kill_at: dict[str, list[float]] = {}
    try:
        for n in nodes:
            n.wait_line(r"access list version \d+", timeout=30)
        stop = threading.Event()
        paused = {n.name: threading.Event() for n in nodes}
        for ev in paused.values():
            ev.set()
        drivers = [threading.Thread(target=_drive, args=(
            n, fleet.badges[n.name], sessions_per_node, stop, random.Random(rng.random()),
            paused[n.name]), daemon=True) for n in nodes]
        for d in drivers:
            d.start()

        # The faults, in turn, while sessions run (repeated in long runs).
        cycle = 0
        while cycle < max_cycles and (cycle == 0 or any(d.is_alive() for d in drivers)):
            time.sleep(fault_gap_s)
            ingest.kill()
            report.faults.append("ingest SIGKILL")
            time.sleep(1.0)
            ingest.start()
            time.sleep(fault_gap_s)
            broker.kill()
            report.faults.append("broker SIGKILL (persistence off)")
            time.sleep(1.5)
            broker.start()
            time.sleep(fault_gap_s)
            victim = nodes[cycle % len(nodes)]
            if wait_until(lambda v=victim: _open_session(v) or not any(  # type: ignore[misc]
                    d.is_alive() for d in drivers), 30, f"an open session on {victim.name}") \
                    and _open_session(victim):
                paused[victim.name].clear()
                kill_at.setdefault(victim.name, []).append(victim.kill())
                report.faults.append(f"{victim.name} SIGKILL mid-session")
                extra_ids |= victim.outbox_ids()  # committed, maybe not logged before the kill
                mark = victim.mark()
                victim.start()
                victim.wait_line(r"node ready", timeout=20, since=mark)
                paused[victim.name].set()
            cycle += 1

        for d in drivers:
            d.join(sessions_per_node * 25 + 30)
        stop.set()
        # Settle: every node idle and every outbox acknowledged.
        for n in nodes:
            if _open_session(n) is not None:
                _tap_and_see(n, fleet.badges[n.name], END_RX)
        wait_until(lambda: all(not _open_session(n) for n in nodes), 30,
                   "every session ended: " + ", ".join(
                       f"{n.name}={_open_session(n)}" for n in nodes))
        wait_until(lambda: sum(len(n.outbox_ids()) for n in nodes) == 0, settle_timeout,
                   "every outbox acknowledged")
    finally:
        report.pending_in_outboxes = sum(len(n.outbox_ids()) for n in nodes)
        for n in nodes:
            n.stop()
        ingest.stop()
        broker.cleanup()
    _compare(db_url, nodes, extra_ids, kill_at, report)
    report.seconds = time.monotonic() - t0
    log.info("chaos: %s", report.summary())
    return report


def _open_session(node: NodeProc) -> str | None:
    started = [m.group(1) for m in node.find(START_RX)]
    ended = {m.group(1) for m in node.find(END_RX)}
    # the node's power_loss recovery ("session X of member N was open when the node stopped")
    ended |= {m.group(1) for m in node.find(r"session ([0-9a-f-]{36}) of (?:member )?\S+ was open")}
    open_ = [s for s in started if s not in ended]
    return open_[-1] if open_ else None


def _compare(db_url: str, nodes: list[NodeProc], extra_ids: set[str],
             kill_at: dict[str, list[float]], report: ChaosReport) -> None:
    from sqlalchemy import select

    from server.db import make_engine, make_sessionmaker
    from server.models import Event, UsageSession

    generated: set[str] = set(extra_ids)
    for n in nodes:
        generated |= n.event_ids()
    engine = make_engine(db_url)
    try:
        with make_sessionmaker(engine)() as db:
            rows = list(db.scalars(select(Event.event_id)))
            sessions = list(db.scalars(select(UsageSession)))
    finally:
        engine.dispose()
    stored = set(rows)
    report.generated, report.stored = len(generated), len(rows)
    report.missing = sorted(generated - stored)
    report.unexpected = sorted(stored - generated)
    assert len(rows) == len(stored)  # the unique key makes doubles impossible; prove it anyway
    report.sessions = len(sessions)
    by_uuid = {s.session_uuid: s for s in sessions}
    for n in nodes:
        starts = {m.group(1): line.at for line, m in n.find_lines(START_RX)}
        ends = {m.group(1): (line.at, m.group(2)) for line, m in n.find_lines(END_RX)}
        for sid, t_start in starts.items():
            row = by_uuid.get(sid)
            if row is None or row.ended_at is None or row.duration_s is None:
                report.open_sessions.append(sid)
                continue
            if row.end_reason == "power_loss":
                report.power_loss += 1
                kill = min((k for k in kill_at.get(n.name, []) if k > t_start), default=None)
                if kill is None:
                    report.duration_errors.append(f"{sid}: power_loss without a kill")
                    continue
                truth = kill - t_start
                err = truth - row.duration_s  # the node can only lose time since its checkpoint
                if err > report.heartbeat_s + 0.5 or err < -0.5:
                    report.duration_errors.append(
                        f"{sid}: power_loss duration {row.duration_s:.1f} s, truth {truth:.1f} s")
                report.max_duration_error_s = max(report.max_duration_error_s, abs(err))
            else:
                if sid not in ends:
                    report.duration_errors.append(f"{sid}: {row.end_reason} but not in the log")
                    continue
                truth = ends[sid][0] - t_start
                err = abs(truth - row.duration_s)
                report.max_duration_error_s = max(report.max_duration_error_s, err)
                if err > 1.0:
                    report.duration_errors.append(
                        f"{sid}: duration {row.duration_s:.1f} s, truth {truth:.1f} s")
