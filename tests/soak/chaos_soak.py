"""Soak run of promise 1 with 20 nodes (bounded: about 8 minutes with the defaults).

    .venv/bin/python tests/soak/chaos_soak.py [--nodes 20] [--sessions 50]

Prints one JSON line with the figures and exits 1 if anything was lost, doubled, left open
or mis-timed. Same scenario as tests/reliability/test_no_loss.py, larger.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "reliability"))
sys.path.insert(0, str(HERE.parents[1]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=20)
    parser.add_argument("--sessions", type=int, default=50, help="sessions per node")
    parser.add_argument("--fault-gap", type=float, default=10.0,
                        help="seconds between faults; the three faults repeat while nodes run")
    parser.add_argument("--max-cycles", type=int, default=20)
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    from reliability_chaos import run_chaos

    workdir = Path(tempfile.mkdtemp(prefix="fabpass-soak-"))
    report = run_chaos(workdir, n_nodes=args.nodes, sessions_per_node=args.sessions,
                       settle_timeout=180.0, fault_gap_s=args.fault_gap,
                       max_cycles=args.max_cycles)
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
