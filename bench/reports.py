"""Report benchmark: 1,000,000 sessions (6 sites, 100 machines, 5,000 members, 3 years).

Times the monthly-hours-by-machine report and the funder report on SQLite and PostgreSQL.
The sessions are bulk-inserted (the triggers mark them all dirty), the roll-ups are then built
once (timed apart: `reports.rollup_build`, what `fabpass db upgrade` of a big existing database
costs, done in the background by the server), and each report is timed as the server runs it,
refresh check included. A last case adds a day of traffic (1,000 closed sessions) and times the
funder report with the incremental refresh it triggers. ``--sql-path`` also times the plain SQL
reports (no roll-ups) for comparison.
Run: ``python -m bench reports`` (or ``python -m bench.reports [--sessions N] [--only sqlite]``).
Prints one JSON object per figure on stdout. The data set is built with bulk inserts
(executemany on SQLite, COPY on PostgreSQL) so building it stays within a few minutes.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

log = logging.getLogger("bench.reports")

SITES = [("paris", "Europe/Paris"), ("amiens", "Europe/Paris"), ("lille", "Europe/Paris"),
         ("lyon", "Europe/Paris"), ("montreal", "America/Montreal"), ("noumea", "Pacific/Noumea")]
KINDS = ["laser_cutter", "3d_printer", "cnc", "other"]
TAGS = ["student", "youth", "senior", "jobseeker", "professional", "association"]
START = datetime(2023, 11, 1, tzinfo=UTC)
DAYS = 3 * 365
PG_ADMIN = os.environ.get("FABPASS_TEST_DATABASE_URL",
                          "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


def _ts(d: datetime) -> str:
    return d.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def session_rows(n: int, machines: int, members: int, seed: int = 5) -> Iterator[tuple[Any, ...]]:
    """Sessions as tuples in `COLUMNS` order, in chronological order like real ingest: starts
    spread over 3 years in opening hours (08:00-22:00 UTC), 5 min to 4 h each."""
    rng = random.Random(seed)
    i = 0
    for day in range(DAYS):
        count = n * (day + 1) // DAYS - n * day // DAYS
        offsets = sorted(rng.randrange(8 * 3600, 22 * 3600) for _ in range(count))
        for off in offsets:
            start = START + timedelta(days=day, seconds=off)
            dur = rng.choice((300, 900, 1800, 3600, 5400, 7200, 10800, 14400)) + rng.randrange(300)
            end = start + timedelta(seconds=dur)
            member = rng.randrange(1, members + 1)
            i += 1
            yield (i, uuid.UUID(int=rng.getrandbits(128)).hex[:32], rng.randrange(1, machines + 1),
                   member, f"{member:08X}", _ts(start), _ts(end), float(dur),
                   dur * rng.uniform(0.3, 1.0), "badge_out", True, True)


COLUMNS = ("id", "session_uuid", "machine_id", "member_id", "badge_uid", "started_at", "ended_at",
           "duration_s", "active_s", "end_reason", "has_started_event", "has_ended_event")


def build(url: str, n_sessions: int = 1_000_000, n_machines: int = 100,
          n_members: int = 5000) -> float:
    """Create and fill a database at `url`; returns the seconds it took."""
    from server.db import make_engine, upgrade

    t0 = time.perf_counter()
    upgrade(url)
    engine = make_engine(url)
    rng = random.Random(1)
    now = _ts(START)
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        ph = "?" if url.startswith("sqlite") else "%s"

        def many(table: str, cols: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
            sql = f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join([ph] * len(cols))})"
            cur.executemany(sql, rows)

        many("sites", ("id", "slug", "name", "timezone", "created_at"),
             [(i + 1, s, s.title(), tz, now) for i, (s, tz) in enumerate(SITES)])
        many("machines", ("id", "slug", "name", "site_id", "kind", "requires_authorization",
                          "policy", "locked", "active", "created_at", "hourly_rate"),
             [(i + 1, f"m-{i + 1}", f"Machine {i + 1}", i % len(SITES) + 1, KINDS[i % 4], True,
               "{}", False, True, now, 5.0) for i in range(n_machines)])
        many("members", ("id", "name", "site_id", "active", "tags", "created_at"),
             [(i + 1, f"Member {i + 1}", i % len(SITES) + 1, True,
               json.dumps(rng.sample(TAGS, rng.randrange(0, 3))),
               _ts(START + timedelta(days=rng.randrange(DAYS)))) for i in range(n_members)])
        many("events", ("event_id", "node_slug", "type", "ts", "received_at", "boot", "seq",
                        "data", "clock_skewed"),
             [(uuid.UUID(int=rng.getrandbits(128)).hex[:32], f"m-{rng.randrange(1, n_machines + 1)}",
               "badge.denied", _ts(START + timedelta(minutes=rng.randrange(DAYS * 1440))), now,
               "b", i, json.dumps({"uid": "04A1B2C3", "reason": rng.choice(
                   ["unknown_badge", "not_authorized", "expired", "in_use"])}), False)
              for i in range(20_000)])
        if url.startswith("sqlite"):
            chunk: list[tuple[Any, ...]] = []
            for row in session_rows(n_sessions, n_machines, n_members):
                chunk.append(row)
                if len(chunk) >= 50_000:
                    many("sessions", COLUMNS, chunk)
                    chunk.clear()
            if chunk:
                many("sessions", COLUMNS, chunk)
        else:
            with cur.copy(f"COPY sessions ({', '.join(COLUMNS)}) FROM STDIN") as cp:  # type: ignore[attr-defined]
                for row in session_rows(n_sessions, n_machines, n_members):
                    cp.write_row(row)
            cur.execute("SELECT setval('sessions_id_seq', (SELECT max(id) FROM sessions))")
        raw.commit()
        cur.execute("ANALYZE")
        raw.commit()
    finally:
        raw.close()
        engine.dispose()
    return time.perf_counter() - t0


def timed(fn: Callable[[], Any], repeat: int = 2) -> tuple[float, Any]:
    """Best of `repeat` runs (the first one warms the caches)."""
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def _new_sessions(n: int, first_id: int, machines: int, members: int) -> list[dict[str, Any]]:
    """A day of traffic after the data set (closed sessions, as the ingest writes them)."""
    rng = random.Random(99)
    day = START + timedelta(days=DAYS)
    out = []
    for i in range(n):
        start = day + timedelta(seconds=rng.randrange(8 * 3600, 22 * 3600))
        dur = rng.randrange(300, 14400)
        out.append({"id": first_id + i, "session_uuid": uuid.uuid4().hex,
                    "machine_id": rng.randrange(1, machines + 1),
                    "member_id": rng.randrange(1, members + 1), "badge_uid": "04AABBCC",
                    "started_at": start, "ended_at": start + timedelta(seconds=dur),
                    "duration_s": float(dur), "active_s": dur * 0.5, "end_reason": "badge_out",
                    "has_started_event": True, "has_ended_event": True})
    return out


def _table_bytes(db: Any, table: str) -> int:
    """On-disk size of a table with its indexes (SQLite: its pages, through dbstat when the
    library has it, else the payload of its blobs)."""
    if db.get_bind().dialect.name == "postgresql":
        return int(db.scalar(sa.text(f"SELECT pg_total_relation_size('{table}')")))
    try:
        return int(db.scalar(sa.text(
            "SELECT sum(pgsize) FROM dbstat WHERE name = :t OR name LIKE :i"),
            {"t": table, "i": f"sqlite_autoindex_{table}%"}) or 0)
    except sa.exc.OperationalError:
        db.rollback()
        return int(db.scalar(sa.text(
            f"SELECT sum(length(member_ids) + length(starter_ids) + 60) FROM {table}")) or 0)


def run_one(db_name: str, url: str, n_sessions: int, sql_path: bool = False
            ) -> list[dict[str, Any]]:
    from server.db import make_engine, make_sessionmaker
    from server.models import UsageSession
    from server.reports import funder_report, rollups, usage_report

    build_s = build(url, n_sessions)
    out = [{"bench": "reports.build", "db": db_name, "sessions": n_sessions,
            "seconds": round(build_s, 2)}]
    engine = make_engine(url)
    Session = make_sessionmaker(engine)
    year = (datetime(2025, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC))
    with Session() as db:
        t = time.perf_counter()
        built = rollups.refresh(db)
        db.commit()
        out.append({"bench": "reports.rollup_build", "db": db_name, "sessions": n_sessions,
                    "seconds": round(time.perf_counter() - t, 2), "machines": built.machines,
                    "day_cells": built.day_cells, "month_cells": built.month_cells,
                    "mib": round(_table_bytes(db, "usage_rollup") / 2**20, 1)})
        cases: list[tuple[str, Callable[[], Any]]] = [
            ("reports.monthly_hours_by_machine",
             lambda: usage_report(db, "month,machine")),
            ("reports.monthly_hours_by_machine_1y",
             lambda: usage_report(db, "month,machine", since=year[0], until=year[1])),
            ("reports.funder_1y_consortium",
             lambda: funder_report(db, since=year[0], until=year[1])),
            ("reports.funder_1y_site",
             lambda: funder_report(db, since=year[0], until=year[1], site="paris")),
        ]
        if sql_path:
            cases += [
                ("reports.sql_path.monthly_hours_by_machine",
                 lambda: usage_report(db, "month,machine", use_rollups=False)),
                ("reports.sql_path.monthly_hours_by_machine_1y",
                 lambda: usage_report(db, "month,machine", since=year[0], until=year[1],
                                      use_rollups=False)),
            ]
        for name, fn in cases:
            secs, res = timed(fn)
            out.append({"bench": name, "db": db_name, "sessions": n_sessions,
                        "seconds": round(secs, 3), "goal_s": 0.5, "ok": secs < 0.5,
                        "rows": len(res) if isinstance(res, list) else len(res.get("rows", []))})
        # a day of new sessions, then the funder report over the last year (refresh included)
        first = int(db.scalar(sa.select(sa.func.max(UsageSession.id))) or 0) + 1
        db.execute(sa.insert(UsageSession), _new_sessions(1000, first, 100, 5000))
        db.commit()
        last_year = (START + timedelta(days=DAYS - 364), START + timedelta(days=DAYS + 1))
        t = time.perf_counter()
        res = funder_report(db, since=last_year[0], until=last_year[1])
        db.commit()
        secs = time.perf_counter() - t
        out.append({"bench": "reports.funder_1y_after_1000_new_sessions", "db": db_name,
                    "sessions": n_sessions + 1000, "seconds": round(secs, 3), "goal_s": 0.5,
                    "ok": secs < 0.5, "rows": len(res["rows"])})
    engine.dispose()
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sessions", type=int, default=1_000_000)
    ap.add_argument("--quick", action="store_true", help="100,000 sessions (a smoke run)")
    ap.add_argument("--only", choices=["sqlite", "postgresql"])
    ap.add_argument("--sql-path", action="store_true",
                    help="also time the SQL reports without roll-ups (about 10 s more)")
    args = ap.parse_args(argv)
    if args.quick:
        args.sessions = min(args.sessions, 100_000)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    results: list[dict[str, Any]] = []
    if args.only in (None, "sqlite"):
        with tempfile.TemporaryDirectory() as tmp:
            results += _emit(run_one("sqlite", f"sqlite:///{tmp}/bench.db", args.sessions,
                                      args.sql_path))
    if args.only in (None, "postgresql"):

        name = f"fabpass_bench_{uuid.uuid4().hex[:8]}"
        admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
        with admin.connect() as c:
            c.execute(sa.text(f'CREATE DATABASE "{name}"'))
        try:
            results += _emit(run_one("postgresql", f"{PG_ADMIN.rpartition('/')[0]}/{name}",
                                     args.sessions, args.sql_path))
        finally:
            with admin.connect() as c:
                c.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()
    return 0 if all(r.get("ok", True) for r in results) else 1


def _emit(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for r in rows:
        sys.stdout.write(json.dumps(r) + "\n")
        sys.stdout.flush()
    return rows


if __name__ == "__main__":
    raise SystemExit(main())
