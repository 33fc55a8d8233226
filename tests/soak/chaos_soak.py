"""Soak run of promise 1 with 20 nodes (bounded: about 8 minutes with the defaults).

    .venv/bin/python tests/soak/chaos_soak.py [--nodes 20] [--sessions 50] [--postgres]

Prints one JSON line with the figures and exits 1 if anything was lost, doubled, left open
or mis-timed. Same scenario as tests/reliability/test_no_loss.py, larger.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "reliability"))
sys.path.insert(0, str(HERE.parents[1]))


@contextlib.contextmanager
def _database(postgres: bool) -> Iterator[str | None]:
    """None (SQLite in the work dir) or a throwaway PostgreSQL database, dropped afterwards."""
    if not postgres:
        yield None
        return
    import sqlalchemy as sa

    base = os.environ.get("FABPASS_TEST_DATABASE_URL",
                          "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    name = f"fabpass_soak_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield f"{base.rpartition('/')[0]}/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                 "WHERE datname = :n"), {"n": name})
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=20)
    parser.add_argument("--sessions", type=int, default=50, help="sessions per node")
    parser.add_argument("--fault-gap", type=float, default=10.0,
                        help="seconds between faults; the three faults repeat while nodes run")
    parser.add_argument("--max-cycles", type=int, default=20)
    parser.add_argument("--postgres", action="store_true",
                        help="run the server on a throwaway PostgreSQL database "
                             "(FABPASS_TEST_DATABASE_URL's server, default local postgres)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    from reliability_chaos import run_chaos

    workdir = Path(tempfile.mkdtemp(prefix="fabpass-soak-"))
    with _database(args.postgres) as db_url:
        report = run_chaos(workdir, n_nodes=args.nodes, sessions_per_node=args.sessions,
                           settle_timeout=180.0, fault_gap_s=args.fault_gap,
                           max_cycles=args.max_cycles, db_url=db_url)
    print(json.dumps(report.summary()))
    ok = (not report.missing and not report.unexpected and not report.open_sessions
          and not report.duration_errors and report.pending_in_outboxes == 0)
    for problem in report.duration_errors + report.missing[:10] + report.unexpected[:10]:
        logging.error("%s", problem)
    if not args.keep:
        import shutil

        shutil.rmtree(workdir, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
