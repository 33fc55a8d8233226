"""Server benchmarks: ingest throughput and latency, revocation, web pages, memory.

Every benchmark here runs the real `fabpass server` as a child process (waitress
+ MQTT ingest + access-list publisher) against a private Mosquitto and a
fresh database (a SQLite file, or a throwaway PostgreSQL database), seeded
through `server.services` like a real lab: one site, 50 machines each with
its node, one group covering them, members with badges and trainings.
"""

from __future__ import annotations

import json
import logging
import queue
import re
import secrets
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.common import (
    BROKER_TUNING,
    PYTHON,
    BenchError,
    Context,
    NotAvailable,
    Result,
    bench_env,
    cpu_seconds,
    fabpass_cmd,
    log_tail,
    percentile,
    stop_child,
    tree_rss_mib,
    wait_for,
)
from bench.fleet import Fleet

log = logging.getLogger(__name__)

SITE = "bench"
NODES = 50
ADMIN_EMAIL = "bench-admin@example.org"
ADMIN_PASSWORD = "bench-password-" + secrets.token_hex(4)
PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
WINDOW = 100  # unacked events a simulated node keeps in flight (its MQTT inflight window)
RESEND_AFTER_S = 30.0  # the contract's bound for resending unacked events while connected
# issue 21's goals, each against the limit measured on the same broker in the same run
RATIO_GOAL = 0.45  # events/s ≥ 0.45 × raw QoS 1 msg/s
PER_CPU_GOAL = 0.40  # events per server CPU-s ≥ 0.40 × the raw subscriber's messages per CPU-s


def node_slug(i: int) -> str:
    return f"bench-n{i:02d}"


# ---------------------------------------------------------------- the server under test


@dataclass
class ServerUnderTest:
    """A seeded database, its own Mosquitto, and `fabpass server` running on them."""

    backend: str  # "sqlite" | "postgresql"
    url: str
    workdir: Path
    members: int
    broker: Any = None
    proc: subprocess.Popen[bytes] | None = None
    port: int = 0
    badges: list[tuple[int, str]] = field(default_factory=list)  # (member id, uid), authorized
    victims: list[tuple[int, str, int]] = field(default_factory=list)  # member, uid, auth id
    engine: Any = None
    pg_name: str | None = None
    command: str = "fabpass server"
    started_at: float = 0.0
    token: str = ""

    @property
    def log_path(self) -> Path:
        return self.workdir / "server.log"

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- database --
    def seed(self) -> None:
        from sqlalchemy import select as sa_select

        from server import services as sv
        from server.db import make_engine, make_sessionmaker, upgrade

        upgrade(self.url)
        self.engine = make_engine(self.url)
        sessions = make_sessionmaker(self.engine)
        actor = "cli"
        with sessions() as db:
            sv.create_site(db, SITE, "Bench lab", "Europe/Paris", actor=actor)
            machine_ids = []
            for i in range(1, NODES + 1):
                kind = "laser_cutter" if i % 5 == 0 else "3d_printer"
                m = sv.create_machine(db, f"bench-m{i:02d}", f"Machine {i}", SITE, kind,
                                      node=node_slug(i), actor=actor)
                machine_ids.append(m.id)
            group = sv.create_group(db, "bench-all", "All bench machines", machine_ids,
                                    actor=actor)
            # provisioned, as the nodes of a lab in use are (broker user = node slug, what
            # `fabpass provision` sets): the dashboard's first-run guide is then done
            from server.models import Node

            for node in db.scalars(sa_select(Node)):
                node.mqtt_username = node.slug
            sv.create_user(db, ADMIN_EMAIL, ADMIN_PASSWORD, "admin", actor=actor)
            _row, self.token = sv.create_token(db, "bench", "admin", actor=actor)
            db.commit()
            # the bulk of the members is inserted as rows (services would audit each one and
            # take minutes); what the server reads is the same
            from server.models import Authorization, AuthRole, Badge, BadgeStatus, Member

            site_id = sv.get_site_by_slug(db, SITE).id
            members = [Member(name=f"Member {i} Bench", email=f"m{i}@example.org",
                              member_no=f"B{i:05d}", site_id=site_id, tags=["bench"], active=True)
                       for i in range(self.members)]
            db.add_all(members)
            db.flush()
            for i, member in enumerate(members):
                uid = f"04BE{i:010X}"
                db.add(Badge(uid=uid, member_id=member.id, status=BadgeStatus.active))
                if i % 2 == 0:  # half the members are trained on every machine
                    db.add(Authorization(member_id=member.id, group_id=group.id,
                                         role=AuthRole.trainer if i % 40 == 0 else AuthRole.user,
                                         granted_via="import"))
                    self.badges.append((member.id, uid))
            sv.mark_all_dirty(db, "bench seed")
            db.commit()
            # members whose only training is a direct one on machine 1: revoked one by one
            for j in range(120):
                member = sv.create_member(db, f"Revoked {j}", None, f"R{j:05d}", SITE,
                                          actor=actor)
                uid = f"04DE{j:010X}"
                sv.enrol_badge(db, member.id, uid, actor=actor)
                auth = sv.grant(db, member.id, machine_id=machine_ids[0], via="cli", actor=actor)
                self.victims.append((member.id, uid, auth.id))
            db.commit()

    def counts(self) -> dict[str, int]:
        from sqlalchemy import text

        with self.engine.connect() as conn:
            return {t: int(conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one())
                    for t in ("events", "dead_letters", "sessions")}

    def dead_letter_reasons(self) -> dict[str, int]:
        """Dead letters by reason (up to the first colon), to say why events were lost."""
        from sqlalchemy import text

        with self.engine.connect() as conn:
            rows = conn.execute(text("SELECT reason FROM dead_letters")).scalars()
            out: dict[str, int] = {}
            for reason in rows:
                key = str(reason).split(":")[0][:80]
                out[key] = out.get(key, 0) + 1
            return out

    def event_ids(self) -> set[str]:
        from sqlalchemy import text

        with self.engine.connect() as conn:
            return {row[0] for row in conn.execute(text("SELECT event_id FROM events"))}

    # -- process --
    def start_broker(self) -> None:
        """This database's own Mosquitto, with the benchmarks' tuning."""
        from fabpass.broker import MosquittoProcess

        self.broker = MosquittoProcess(data_dir=self.workdir / "mosquitto",
                                       extra_config=BROKER_TUNING)
        self.broker.start()

    def start(self, timeout: float = 60.0) -> None:
        from fabpass.broker import free_port

        self.start_broker()
        self.port = free_port()
        env = bench_env(
            FABPASS_DATABASE_URL=self.url, FABPASS_MQTT_URL=self.broker.url,
            FABPASS_SECRET_KEY=secrets.token_hex(32), FABPASS_DATA_DIR=str(self.workdir / "data"),
            FABPASS_MQTT_CLIENT_ID=f"fabpass-server-{uuid.uuid4().hex[:8]}",
            FABPASS_LOG_LEVEL="WARNING",
        )
        self._spawn(fabpass_cmd("server", "--host", "127.0.0.1", "--port", str(self.port)), env)
        time.sleep(0.5)
        if self.proc is not None and self.proc.poll() is not None and \
                "not built" in log_tail(self.log_path):
            # `fabpass server` not wired to the CLI yet: the same function it will call
            self.command = "server.runner.run_server"
            self._spawn([PYTHON, "-c", "import logging,sys; logging.basicConfig(level=logging."
                         "WARNING); from server.runner import run_server; "
                         f"run_server('127.0.0.1', {self.port})"], env)
        import requests

        def up() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise BenchError(f"{self.command} exited {self.proc.returncode}: "
                                 f"{log_tail(self.log_path)}")
            try:
                return requests.get(self.http + "/login", timeout=2).status_code == 200
            except requests.RequestException:
                return False

        wait_for(up, timeout, f"{self.command} to answer on {self.http}", interval=0.1)
        self.started_at = time.monotonic()

    def _spawn(self, cmd: list[str], env: dict[str, str]) -> None:
        with open(self.log_path, "ab") as out:
            self.proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=out,
                                         stdin=subprocess.DEVNULL)

    def rss(self) -> float:
        assert self.proc is not None
        return tree_rss_mib(self.proc.pid)

    def stop(self) -> None:
        if self.proc is not None:
            stop_child(self.proc, timeout=20)
            self.proc = None
        if self.broker is not None:
            self.broker.cleanup()
            self.broker = None
        if self.engine is not None:
            self.engine.dispose()
            self.engine = None
        if self.pg_name:
            _drop_pg(self.pg_name)
            self.pg_name = None


def _create_pg() -> tuple[str, str]:
    import sqlalchemy as sa

    name = f"fabpass_bench_{uuid.uuid4().hex[:10]}"
    try:
        admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
    except sa.exc.OperationalError as exc:
        raise NotAvailable(f"PostgreSQL at {PG_ADMIN_URL}: {exc.orig}") from exc
    base = PG_ADMIN_URL.rpartition("/")[0]
    return name, f"{base}/{name}"


def _drop_pg(name: str) -> None:
    import sqlalchemy as sa

    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                             "WHERE datname = :n AND pid <> pg_backend_pid()"), {"n": name})
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))
    admin.dispose()


def _check_server_built() -> None:
    try:
        import server.messaging.ingest  # noqa: F401
        import server.messaging.publisher  # noqa: F401
        import server.runner  # noqa: F401
        import server.services  # noqa: F401
    except ImportError as exc:
        raise NotAvailable(f"server pieces missing: {exc}") from exc


def make_server(ctx: Context, backend: str, *, serve: bool = True) -> ServerUnderTest:
    """A new seeded, started server (stopped at the end of the run at the latest).

    `serve=False`: the seeded database and its broker only, for a benchmark that runs its own
    processes on them (`fabpass ingest --shared` workers).
    """
    _check_server_built()
    workdir = ctx.tmp / f"server-{backend}-{uuid.uuid4().hex[:6]}"
    workdir.mkdir(parents=True)
    members = int(ctx.scale(2000, 100))
    if backend == "sqlite":
        sut = ServerUnderTest(backend, f"sqlite:///{workdir / 'fabpass.db'}", workdir, members)
    else:
        name, url = _create_pg()
        sut = ServerUnderTest(backend, url, workdir, members, pg_name=name)
    ctx.cleanups.append(sut.stop)
    sut.seed()
    if serve:
        sut.start()
    else:
        sut.start_broker()
    return sut


def settle(sut: ServerUnderTest, timeout: float = 60.0) -> None:
    """Wait until the server has no backlog left (the events count stops growing for 0.5 s)."""
    last = [-1]

    def still() -> bool:
        n = sut.counts()["events"]
        quiet = n == last[0]
        last[0] = n
        return quiet

    try:
        wait_for(still, timeout, "the server's backlog to drain", interval=0.5)
    except BenchError:
        log.warning("the server still had a backlog after %.0f s; measuring anyway", timeout)


def shared_server(ctx: Context) -> ServerUnderTest:
    """The SQLite server shared by ingest (SQLite), latency, revocation, web and memory."""
    sut = ctx.cache.get("server:sqlite")
    if sut is None or sut.proc is None:
        sut = make_server(ctx, "sqlite")
        ctx.cache["server:sqlite"] = sut
        time.sleep(ctx.scale(5.0, 0.5))  # settle: lists published, caches warm, then idle
        ctx.cache["server_rss_idle"] = sut.rss()
    return sut


# ---------------------------------------------------------------- 4. ingest


def _fleet(sut: ServerUnderTest, seed: int) -> Fleet:
    if not sut.badges:
        raise BenchError("no authorized badges seeded")
    fleet = Fleet(sut.broker.url, SITE, [node_slug(i) for i in range(1, NODES + 1)], sut.badges,
                  seed=seed, resend_after=RESEND_AFTER_S)
    fleet.connect()
    return fleet


def _probe(fleet: Fleet, timeout: float = 30.0) -> None:
    """Wait until the server's ingest acks one event (its subscription is in place)."""
    node = fleet.nodes[0]
    node.publish_new(time.perf_counter())
    deadline = time.monotonic() + timeout
    last = time.monotonic()
    while node.outbox:
        if time.monotonic() > deadline:
            raise BenchError(f"the server did not ack a probe event within {timeout} s")
        fleet._io(0.02)
        if time.monotonic() - last > 1.0:
            node.resend(time.perf_counter(), 1.0)
            last = time.monotonic()


def raw_limit(ctx: Context, sut: ServerUnderTest, payload_size: int,
              key: str | None = None) -> dict[str, float]:
    """Raw QoS 1 throughput of `sut`'s broker, measured once per `key` (a broker) per run."""
    from bench.mqtt_raw import measure

    key = key or f"raw:{sut.backend}"
    if key not in ctx.cache:
        payload = b'{"v":1,' + b"x" * max(0, payload_size - 8) + b"}"
        ctx.cache[key] = measure(sut.broker.url, payload, ctx.scale(10.0, 1.5), ctx.tmp)
    return dict(ctx.cache[key])


def typical_payload_size(sut: ServerUnderTest) -> int:
    fleet = Fleet("mqtt://127.0.0.1:1", SITE, ["size-probe"], sut.badges or [(1, "04A1B2C3")])
    sizes = [len(fleet.nodes[0].next_event().encode()) for _ in range(90)]
    return int(sum(sizes) / len(sizes))


def run_ingest(ctx: Context, sut: ServerUnderTest, *, pids: list[int] | None = None,
               duration: float | None = None, raw_key: str | None = None,
               seed: int = 7) -> dict[str, Any]:
    """Throughput run: every node keeps WINDOW events in flight for the whole duration.

    `pids`: the processes whose CPU is the ingest's (default: `fabpass server`); with several
    `fabpass ingest` workers, their sum.
    """
    duration = duration if duration is not None else ctx.scale(60.0, 3.0)
    size = typical_payload_size(sut)
    raw = raw_limit(ctx, sut, size, raw_key)
    before = sut.counts()
    if pids is None:
        assert sut.proc is not None
        pids = [sut.proc.pid]
    fleet = _fleet(sut, seed=seed)
    try:
        _probe(fleet)
        assert sut.broker.proc is not None
        cpu0 = sum(cpu_seconds(pid) for pid in pids)
        broker0 = cpu_seconds(sut.broker.proc.pid)
        gen0, wall0 = time.process_time(), time.perf_counter()
        stats = fleet.run(duration, window=int(ctx.scale(WINDOW, 10)),
                          drain_timeout=ctx.scale(90.0, 20.0))
        cpu = sum(cpu_seconds(pid) for pid in pids) - cpu0  # the ingest's CPU for every event
        broker_cpu = cpu_seconds(sut.broker.proc.pid) - broker0
        # the simulated nodes' own share of a core: near 1.0 would mean they are the limit
        generator_load = (time.process_time() - gen0) / (time.perf_counter() - wall0)
    finally:
        fleet.close()
    # verify: every published id is in the events table, nothing went to dead letters
    if stats.unacked_left == 0:  # acked means committed: visible at once, but be fair to WAL
        # rejected events are dead letters, not rows: they are reported below as lost, with
        # their reasons, rather than failing the whole benchmark here
        wait_for(lambda: sut.counts()["events"] - before["events"]
                 >= stats.published - stats.rejected, 10,
                 "the acked events to be visible", interval=0.2)
    after = sut.counts()
    reasons = sut.dead_letter_reasons() if after["dead_letters"] > before["dead_letters"] else {}
    stored = sut.event_ids()
    missing = [i for i in fleet.ids if i not in stored]
    return {
        "rate": stats.rate, "raw": raw, "published": stats.published, "acked": stats.acked,
        "rejected": stats.rejected, "resent": stats.resent, "unacked_left": stats.unacked_left,
        "missing": len(missing), "dead_letters": after["dead_letters"] - before["dead_letters"],
        "dead_letter_reasons": reasons,
        "sessions": after["sessions"] - before["sessions"], "payload_bytes": size,
        "extra_rows": after["events"] - before["events"] - stats.published,
        "window_s": stats.window_s, "p99_ms": percentile(stats.latencies, 99) * 1000
        if stats.latencies else None,
        "server_cpu_ms_per_event": round(1000 * cpu / max(1, stats.published), 4),
        "broker_cpu_ms_per_event": round(1000 * broker_cpu / max(1, stats.published), 4),
        "generator_cores": round(generator_load, 2),
        "events_per_server_cpu_s": round(stats.published / cpu, 1) if cpu > 0 else None,
    }


def _ingest_results(backend: str, r: dict[str, Any]) -> list[Result]:
    raw_rate = r["raw"]["rate"]
    extra = {k: r[k] for k in ("published", "acked", "rejected", "resent", "unacked_left",
                               "missing", "extra_rows", "dead_letters", "dead_letter_reasons",
                               "sessions",
                               "payload_bytes", "server_cpu_ms_per_event",
                               "events_per_server_cpu_s", "broker_cpu_ms_per_event",
                               "generator_cores")}
    extra["window_s"] = r["window_s"]
    extra["p99_ack_ms_under_load"] = None if r["p99_ms"] is None else round(r["p99_ms"], 1)
    name = "SQLite" if backend == "sqlite" else "PostgreSQL"
    lost = r["missing"] + r["rejected"]
    return [
        Result("ingest", f"{backend}_events_per_s", r["rate"], "events/s", goal=5000.0,
               goal_op=">=", limit=raw_rate,
               label=f"ingest 50 nodes → Mosquitto → server → {name} → ack", extra=extra),
        Result("ingest", f"{backend}_ratio_to_raw", r["rate"] / raw_rate if raw_rate else None,
               "× raw QoS 1", goal=RATIO_GOAL, goal_op=">=",
               label=f"ingest ({name}) / raw broker QoS 1 throughput"),
        Result("ingest", f"{backend}_events_per_cpu_s", r["events_per_server_cpu_s"],
               "events/CPU-s", limit=r["raw"].get("per_cpu_s") or None,
               goal=PER_CPU_GOAL, goal_op=">=", goal_on="ratio",
               label=f"ingest ({name}): events per CPU-second of the server process "
                     "(limit: messages per CPU-second of the raw subscriber)"),
        Result("ingest", f"{backend}_lost", float(lost), "events", goal=0.0,
               label=f"ingest ({name}): events not stored or rejected",
               extra={"of": r["published"]}),
    ]


def ingest(ctx: Context) -> list[Result]:
    results: list[Result] = []
    sut = shared_server(ctx)
    r = run_ingest(ctx, sut)
    ctx.cache["server_rss_after"] = sut.rss()
    raw = r["raw"]
    results.append(Result("ingest", "raw_broker_qos1", raw["rate"], "msg/s",
                          label="raw broker QoS 1: 1 paho publisher → Mosquitto → 1 subscriber",
                          extra={"payload_bytes": r["payload_bytes"], "count": raw["count"],
                                 "per_subscriber_cpu_s": round(raw.get("per_cpu_s", 0), 1)}))
    results += _ingest_results("sqlite", r)
    try:
        pg = make_server(ctx, "postgresql")
    except NotAvailable as exc:
        results.append(Result("ingest", "postgresql_events_per_s", None, "events/s",
                              error=f"not available: {exc}"))
        return results
    try:
        rp = run_ingest(ctx, pg)
    finally:
        pg.stop()
    results += _ingest_results("postgresql", rp)
    return results


# ---------------------------------------------------------------- 5. ingest latency


def ingest_latency(ctx: Context) -> list[Result]:
    sut = shared_server(ctx)
    settle(sut)
    rate = 1000.0
    duration = ctx.scale(20.0, 2.0)
    fleet = _fleet(sut, seed=11)
    try:
        _probe(fleet)
        stats = fleet.run(duration, rate=rate, drain_timeout=ctx.scale(30.0, 15.0),
                          warmup=ctx.scale(2.0, 0.3), max_backlog=int(ctx.scale(3000, 1000)))
    finally:
        fleet.close()
    if not stats.latencies:
        raise BenchError("no ack received in the measurement window")
    lat = stats.latencies
    return [Result("ingest_latency", "p99", percentile(lat, 99) * 1000, "ms", goal=100.0,
                   label="ingest latency at 1,000 events/s: publish → ack, p99",
                   extra={"p50": round(percentile(lat, 50) * 1000, 2),
                          "p90": round(percentile(lat, 90) * 1000, 2), "samples": len(lat),
                          "unacked_left": stats.unacked_left,
                          "stopped_early_at_s": stats.stopped_at,
                          "note": None if stats.stopped_at is None else
                          f"the server fell {stats.backlog_at_stop} events behind 1,000 events/s: "
                          f"publishing stopped after {stats.stopped_at:.1f} s"})]


# ---------------------------------------------------------------- 6. revocation


def _revoke_and_wait(watcher: Any, uid: str, revoke: Any) -> float:
    """Run `revoke()` and return the seconds until a list without `uid` arrives."""
    needle = uid.encode()
    while not watcher.received.empty():
        watcher.received.get_nowait()
    t0 = time.perf_counter()
    revoke()
    deadline = time.monotonic() + 10.0
    while time.monotonic() < deadline:
        try:
            when, _topic, payload = watcher.received.get(timeout=0.5)
        except queue.Empty:
            continue
        if needle not in payload:
            return float(when - t0)
    raise BenchError(f"no list without {uid} within 10 s of the revocation")


def _transfer_limit(url: str, topic: str, payload: bytes, rounds: int) -> list[float]:
    """Publish a retained list of the same size and time its arrival at a subscriber."""
    from bench.node_bench import StatusWatcher
    from protocol.mqttclient import make_client, parse_mqtt_url

    watcher = StatusWatcher(url, [topic])
    target = parse_mqtt_url(url)
    pub = make_client(f"bench-limit-{uuid.uuid4().hex[:6]}", target, protocol="5")
    pub.connect(target.host, target.port)
    pub.loop_start()
    out = []
    try:
        for _ in range(rounds):
            while not watcher.received.empty():
                watcher.received.get_nowait()
            t0 = time.perf_counter()
            pub.publish(topic, payload, qos=1, retain=True)
            when, _t, _p = watcher.received.get(timeout=10)
            out.append(when - t0)
    finally:
        pub.publish(topic, b"", qos=1, retain=True).wait_for_publish(5)
        pub.disconnect()
        pub.loop_stop()
        watcher.close()
    return out


def revocation(ctx: Context) -> list[Result]:
    import requests

    from bench.node_bench import StatusWatcher
    from protocol import Topics
    from server import services as sv
    from server.db import make_sessionmaker

    sut = shared_server(ctx)
    settle(sut)
    topic = Topics().acl(SITE, node_slug(1))
    watcher = StatusWatcher(sut.broker.url, [topic])
    sessions = make_sessionmaker(sut.engine)
    rounds = min(int(ctx.scale(30, 3)), len(sut.victims) // 2)
    cli: list[float] = []
    api: list[float] = []
    try:
        wait_for(lambda: watcher.last.get(topic), 20, "the retained list of node 1")
        size = len(json.dumps(watcher.last[topic]).encode())
        for _member, uid, auth_id in sut.victims[:rounds]:
            # what `fabpass revoke` does: services + commit in another process
            def by_services(auth_id: int = auth_id) -> None:
                with sessions() as db:
                    sv.revoke(db, auth_id, reason="bench", actor="cli")
                    db.commit()
            cli.append(_revoke_and_wait(watcher, uid, by_services))
            time.sleep(0.05)
        for _member, uid, auth_id in sut.victims[rounds:2 * rounds]:
            # what the web UI and the REST API do: inside the server process
            def by_api(auth_id: int = auth_id) -> None:
                r = requests.delete(f"{sut.http}/api/v1/authorizations/{auth_id}",
                                    headers={"Authorization": f"Bearer {sut.token}"}, timeout=10)
                if r.status_code != 204:
                    raise BenchError(f"DELETE /api/v1/authorizations: HTTP {r.status_code}")
            api.append(_revoke_and_wait(watcher, uid, by_api))
            time.sleep(0.05)
    finally:
        watcher.close()
    limit = _transfer_limit(sut.broker.url, Topics().acl(SITE, "bench-limit"), b"x" * size,
                            int(ctx.scale(30, 3)))
    limit_p99 = percentile(limit, 99) * 1000
    return [
        Result("revocation", "api_p99", percentile(api, 99) * 1000, "ms", goal=500.0,
               limit=limit_p99,
               label="revocation (REST API, in the server) → list received by the node, p99",
               extra={"p50": round(percentile(api, 50) * 1000, 1), "samples": len(api),
                      "list_bytes": size,
                      "limit_is": "retained publish of a list of that size → subscriber"}),
        Result("revocation", "cli_p99", percentile(cli, 99) * 1000, "ms", goal=500.0,
               limit=limit_p99,
               label="revocation (services + commit in another process, as `fabpass revoke`) "
                     "→ list received, p99",
               extra={"p50": round(percentile(cli, 50) * 1000, 1), "samples": len(cli)}),
    ]


# ---------------------------------------------------------------- 7. web pages


_CSRF = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"|value="([^"]+)"[^>]*name="csrf_token"')


def login(base: str) -> Any:
    import requests

    s = requests.Session()
    page = s.get(base + "/login", timeout=10)
    m = _CSRF.search(page.text)
    if not m:
        raise BenchError("no csrf_token on the login page")
    r = s.post(base + "/login", data={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD,
                                      "csrf_token": m.group(1) or m.group(2)},
               timeout=10, allow_redirects=False)
    if r.status_code not in (302, 303):
        raise BenchError(f"login failed: HTTP {r.status_code}")
    check = s.get(base + "/", timeout=10, allow_redirects=False)
    if check.status_code != 200:
        raise BenchError(f"dashboard after login: HTTP {check.status_code}")
    return s


def _hammer(base: str, cookies: Any, paths: list[str], per_client: int,
            clients: int) -> tuple[dict[str, list[float]], list[str]]:
    import requests

    lat: dict[str, list[float]] = {p: [] for p in paths}
    errors: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(clients)

    def client(k: int) -> None:
        s = requests.Session()
        s.cookies.update(cookies)
        start.wait(30)
        for i in range(per_client):
            path = paths[(i + k) % len(paths)]
            t0 = time.perf_counter()
            try:
                r = s.get(base + path, timeout=30, allow_redirects=False)
                ok = r.status_code == 200
                _ = r.content
            except requests.RequestException as exc:
                ok = False
                r = exc  # type: ignore[assignment]
            dt = time.perf_counter() - t0
            with lock:
                if ok:
                    lat[path].append(dt)
                else:
                    errors.append(f"{path}: {getattr(r, 'status_code', r)}")

    threads = [threading.Thread(target=client, args=(k,), daemon=True) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return lat, errors


def web_pages(ctx: Context) -> list[Result]:
    sut = shared_server(ctx)
    settle(sut)
    session = login(sut.http)
    clients = 10
    per_client = int(ctx.scale(60, 4))
    pages = ["/", "/members"]
    _hammer(sut.http, session.cookies, pages, 2, clients)  # warm up templates and caches
    assert sut.proc is not None
    cpu0 = cpu_seconds(sut.proc.pid)
    lat, errors = _hammer(sut.http, session.cookies, pages, per_client, clients)
    cpu_ms = 1000 * (cpu_seconds(sut.proc.pid) - cpu0) / max(1, sum(len(v) for v in lat.values()))
    static = _static_path(sut.http, session)
    limit_lat, _ = _hammer(sut.http, session.cookies, [static], per_client, clients)
    limit_p95 = percentile(limit_lat[static], 95) * 1000 if limit_lat[static] else None
    results: list[Result] = []
    names = {"/": "dashboard", "/members": "members page"}
    for path in pages:
        if not lat[path]:
            results.append(Result("web", f"{names[path]}_p95", None, "ms",
                                  error=f"no successful request: {errors[:3]}"))
            continue
        results.append(Result(
            "web", f"{names[path].split()[0]}_p95", percentile(lat[path], 95) * 1000, "ms",
            goal=50.0, limit=limit_p95,
            label=f"{names[path]} ({path}) under 10 concurrent clients, p95",
            extra={"p50": round(percentile(lat[path], 50) * 1000, 2), "requests": len(lat[path]),
                   "errors": len([e for e in errors if e.startswith(path + ":")]),
                   "members": sut.members, "limit_is": f"GET {static}, same clients",
                   "server_cpu_ms_per_request_both_pages": round(cpu_ms, 2)}))
    return results


def _static_path(base: str, session: Any) -> str:
    page = session.get(base + "/", timeout=10).text
    m = re.search(r'(?:href|src)="(/static/[^"?]+)', page)
    return m.group(1) if m else "/login"


# ---------------------------------------------------------------- 8. server memory


def server_memory(ctx: Context) -> list[Result]:
    sut = shared_server(ctx)
    idle = ctx.cache["server_rss_idle"]
    if "server_rss_after" not in ctx.cache:
        run_ingest(ctx, sut)
        ctx.cache["server_rss_after"] = sut.rss()
    after = ctx.cache["server_rss_after"]
    return [
        Result("server_memory", "idle_rss", idle, "MiB", goal=90.0,
               label="server memory (RSS) idle", extra={"command": sut.command}),
        Result("server_memory", "after_ingest_rss", after, "MiB", goal=150.0,
               label="server memory (RSS) after the ingest run"),
    ]
