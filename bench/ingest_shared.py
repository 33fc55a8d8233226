"""How the ingest scales with `fabpass ingest --shared` workers on PostgreSQL (issue 21).

The same 50-node fleet and method as the `ingest` benchmark (`server_bench.run_ingest`:
every node keeps its in-flight window full, every event acked, then every published id
checked in the `events` table), against one seeded PostgreSQL database and its own
Mosquitto, with 1, 2 and 3 `fabpass ingest --shared --worker K` processes in turn. They take
events through the MQTT 5 shared subscription `$share/fabpass/…`, so the broker hands each
event to one of them.

No `fabpass server` runs: the CLI has no way to start it with its ingest off (its
`--ingest-shared` makes it one more member of the share group, which would blur the worker
count), and nothing on the ingest path needs the web UI or the access-list publisher (the
simulated nodes do not read their lists, and no authorization changes during the run). Worker
0 also follows node statuses, as in production.

The workers, the broker and the load generator (the 50 simulated nodes, one thread of this
process) all share the machine's cores: on 2 cores the figure is a floor, not the scaling
the ingest would have with the broker and the nodes elsewhere.
"""

from __future__ import annotations

import ast
import logging
import os
import secrets
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.common import (
    BenchError,
    Context,
    Result,
    bench_env,
    cpu_seconds,
    fabpass_cmd,
    loadavg,
    log_tail,
    stop_child,
    wait_for,
)
from bench.server_bench import (
    ServerUnderTest,
    make_server,
    raw_limit,
    run_ingest,
    typical_payload_size,
)

log = logging.getLogger(__name__)

WORKER_COUNTS = (1, 2, 3)
RAW_KEY = "raw:ingest_shared"
SHARED_NOTE = ("the 50 simulated nodes (one thread of the benchmark), Mosquitto, PostgreSQL and "
               "the workers share the machine's {nproc} cores")


@dataclass
class Workers:
    """The worker processes of one round and their logs."""

    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    logs: list[Path] = field(default_factory=list)

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def final_stats(self) -> list[dict[str, Any]]:
        """Each worker's own counts (after they stopped): shows how the broker shared events."""
        return [_final_stats(path) for path in self.logs]

    def log_count(self, needle: str) -> int:
        """Lines naming `needle` in all the workers' logs (fast-path give-ups, deadlocks)."""
        return sum(log_tail(path, 1_000_000).count(needle) for path in self.logs)


@contextmanager
def workers(sut: ServerUnderTest, count: int, tag: str) -> Iterator[Workers]:
    """`count` `fabpass ingest --shared --worker K` processes, connected and subscribed.

    The client ids are the CLI's own (`BASE-K`) with one base for the whole benchmark: a later
    round reconnects the earlier rounds' workers to their sessions and only adds new ones, so
    no offline session of the share group is left for the broker to queue events to.
    """
    assert sut.broker is not None
    env = bench_env(FABPASS_DATABASE_URL=sut.url, FABPASS_MQTT_URL=sut.broker.url,
                    FABPASS_SECRET_KEY=secrets.token_hex(32),
                    FABPASS_DATA_DIR=str(sut.workdir / "data"),
                    FABPASS_MQTT_CLIENT_ID=f"bench-ingest-{tag}",
                    FABPASS_LOG_LEVEL="INFO")  # "MQTT connected" and the final stats
    ws = Workers(logs=[sut.workdir / f"ingest-{count}-{k}.log" for k in range(count)])
    try:
        for k, path in enumerate(ws.logs):
            with open(path, "ab") as out:
                ws.procs.append(subprocess.Popen(
                    fabpass_cmd("ingest", "--shared", "--worker", str(k)), env=env,
                    stdout=out, stderr=out, stdin=subprocess.DEVNULL))

        def all_connected() -> bool:
            for proc, path in zip(ws.procs, ws.logs, strict=True):
                if proc.poll() is not None:
                    raise BenchError(f"fabpass ingest exited {proc.returncode}: {log_tail(path)}")
            return all("MQTT connected" in log_tail(path, 20000) for path in ws.logs)

        t0 = time.monotonic()
        wait_for(all_connected, 60, f"{count} ingest worker(s) to connect", interval=0.1)
        time.sleep(0.5)  # the SUBACKs: a worker that is not subscribed yet gets nothing
        log.info("%d ingest worker(s) up in %.1f s", count, time.monotonic() - t0)
        yield ws
        for proc, path in zip(ws.procs, ws.logs, strict=True):
            if proc.poll() is not None:
                raise BenchError(f"an ingest worker died during the run: {log_tail(path)}")
    finally:
        t0 = time.monotonic()
        for proc in ws.procs:  # SIGTERM to all first: they commit and stop in parallel
            if proc.poll() is None:
                proc.terminate()
        for proc in ws.procs:
            stop_child(proc, timeout=20)
        log.info("%d ingest worker(s) stopped in %.1f s", count, time.monotonic() - t0)


def _final_stats(path: Path) -> dict[str, Any]:
    """The `ingest stopped: {...}` line a worker logs on SIGTERM (its own counts)."""
    for line in reversed(log_tail(path, 20000).splitlines()):
        if "ingest stopped: " in line:
            try:
                value = ast.literal_eval(line.split("ingest stopped: ", 1)[1].strip())
            except (ValueError, SyntaxError):
                return {}
            return value if isinstance(value, dict) else {}
    return {}


def ingest_shared(ctx: Context) -> list[Result]:
    """1, 2, 3 shared-subscription workers on one PostgreSQL database, one broker, one run."""
    sut = make_server(ctx, "postgresql", serve=False)  # NotAvailable without PostgreSQL
    tag = uuid.uuid4().hex[:8]
    shared_note = SHARED_NOTE.format(nproc=os.cpu_count())
    rounds: dict[int, dict[str, Any]] = {}
    try:
        size = typical_payload_size(sut)
        raw = raw_limit(ctx, sut, size, RAW_KEY)  # before any worker runs: the broker alone
        for n in WORKER_COUNTS:
            load = loadavg()  # per round: the others' work on the machine moves between rounds
            with workers(sut, n, tag) as ws:
                cpu0 = [cpu_seconds(pid) for pid in ws.pids]
                t0 = time.monotonic()
                r = run_ingest(ctx, sut, pids=ws.pids, duration=ctx.scale(30.0, 1.0),
                               raw_key=RAW_KEY, seed=100 + n)
                log.info("%d worker(s): fleet run (probe, window, drain, checks) %.1f s", n,
                         time.monotonic() - t0)
                r["cpu_s_by_worker"] = [round(cpu_seconds(pid) - c, 2)
                                        for pid, c in zip(ws.pids, cpu0, strict=True)]
            r["loadavg_at_round_start"] = load
            stats = ws.final_stats()
            # `received`, not `stored`: the worker's own `stored` counter also counts a batch's
            # fast-path attempt that was rolled back and redone message by message
            r["received_by_worker"] = [st.get("received") for st in stats]
            r["db_errors"] = sum(int(st.get("db_errors") or 0) for st in stats)
            # fewer events per commit/ack cycle is one cost of splitting the stream
            batches = sum(int(st.get("batches") or 0) for st in stats)
            r["events_per_batch"] = round(sum(int(st.get("received") or 0) for st in stats)
                                          / batches, 1) if batches else None
            r["fast_path_gave_up"] = ws.log_count("fast path gave up")
            r["deadlocks"] = ws.log_count("DeadlockDetected")
            rounds[n] = r
    finally:
        sut.stop()
    return _results(raw, rounds, shared_note)


def _results(raw: dict[str, float], rounds: dict[int, dict[str, Any]],
             shared_note: str) -> list[Result]:
    out = [Result("ingest_shared", "raw_broker_qos1", raw["rate"], "msg/s",
                  label="ingest --shared: raw broker QoS 1 on the same broker (limit)",
                  extra={"count": raw["count"], "note": shared_note})]
    base = rounds.get(1)
    for n, r in rounds.items():
        cpu_ms = r["server_cpu_ms_per_event"]
        extra = {k: r[k] for k in ("published", "acked", "rejected", "resent", "unacked_left",
                                   "missing", "extra_rows", "dead_letters",
                                   "dead_letter_reasons", "window_s", "generator_cores",
                                   "broker_cpu_ms_per_event", "cpu_s_by_worker",
                                   "received_by_worker", "events_per_batch", "db_errors",
                                   "fast_path_gave_up",
                                   "deadlocks", "loadavg_at_round_start")}
        extra["ingest_cpu_ms_per_event_all_workers"] = cpu_ms
        extra["machine"] = shared_note
        workers_txt = f"{n} worker{'s' if n > 1 else ''}"
        out += [
            Result("ingest_shared", f"workers{n}_events_per_s", r["rate"], "events/s",
                   limit=raw["rate"],
                   label=f"ingest --shared, {workers_txt}, PostgreSQL (nodes + broker on the "
                         "same cores)", extra=extra),
            Result("ingest_shared", f"workers{n}_cpu_ms_per_event", cpu_ms, "ms CPU/event",
                   label=f"ingest --shared, {workers_txt}: CPU of all ingest processes per event"),
            Result("ingest_shared", f"workers{n}_lost",
                   float(r["missing"] + r["rejected"] + max(0, r["extra_rows"])
                         + r["dead_letters"]),
                   "events", goal=0.0,
                   label=f"ingest --shared, {workers_txt}: events not stored exactly once",
                   extra={"of": r["published"]}),
        ]
        if base is not None and n != 1:
            out.append(Result(
                "ingest_shared", f"workers{n}_scaling", r["rate"] / base["rate"]
                if base["rate"] else None, "× 1 worker",
                label=f"ingest --shared, {workers_txt} / 1 worker (events/s)",
                extra={"cpu_per_event_vs_1_worker":
                       round(cpu_ms / base["server_cpu_ms_per_event"], 3)
                       if base["server_cpu_ms_per_event"] else None}))
    return out
