"""`python -m bench [names…] [--quick] [--write-docs]`: run the benchmarks, print the figures.

Each benchmark runs in turn, bounded by its own time budget (SIGALRM), and
prints one JSON object per figure on stdout as soon as it has it; a human
table follows at the end. Nothing is written outside a temporary directory
except docs/benchmarks.md with `--write-docs`.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

from bench import docs
from bench.common import BenchError, Context, NotAvailable, Result, loadavg, machine_info

log = logging.getLogger("bench")


class BenchTimeout(BenchError):
    """A benchmark overran its time budget."""


def _registry() -> dict[str, tuple[Callable[[Context], list[Result] | list[dict[str, Any]]], float]]:
    """name → (function, time budget in seconds for a full run)."""
    from bench import ingest_shared, node_bench, reports_runner, server_bench

    return {
        "badge_decision": (node_bench.badge_decision, 120),
        "reader_cpu": (node_bench.reader_cpu, 90),
        "node_memory": (node_bench.node_memory, 90),
        "ingest": (server_bench.ingest, 300),
        "ingest_shared": (ingest_shared.ingest_shared, 300),
        "ingest_latency": (server_bench.ingest_latency, 120),
        "revocation": (server_bench.revocation, 120),
        "web": (server_bench.web_pages, 120),
        "server_memory": (server_bench.server_memory, 200),
        "reports": (reports_runner.reports, 400),
    }


def _alarm(_signum: int, _frame: FrameType | None) -> None:
    raise BenchTimeout("time budget exceeded")


def run(names: list[str], quick: bool, out: Any = sys.stdout) -> list[dict[str, Any]]:
    registry = _registry()
    unknown = [n for n in names if n not in registry]
    if unknown:
        raise SystemExit(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(registry)}")
    ctx = Context(quick=quick)
    rows: list[dict[str, Any]] = []
    previous = signal.signal(signal.SIGALRM, _alarm)
    try:
        for name in names or list(registry):
            fn, budget = registry[name]
            if quick:
                budget = min(budget, 60)
            started = time.monotonic()
            load = loadavg()
            signal.alarm(int(budget))
            try:
                results = fn(ctx)
            except NotAvailable as exc:
                results = [{"bench": name, "error": f"not available: {exc}"}]
            except BenchTimeout:
                results = [{"bench": name, "error": f"did not finish within {budget} s"}]
            except Exception as exc:  # one broken benchmark must not hide the others
                log.exception("benchmark %s failed", name)
                results = [{"bench": name, "error": f"{type(exc).__name__}: {exc}"}]
            finally:
                signal.alarm(0)
            for item in results:
                row = item.to_dict() if isinstance(item, Result) else dict(item)
                row.setdefault("bench", name)
                row.setdefault("elapsed_s", round(time.monotonic() - started, 1))
                row.setdefault("loadavg", load)
                rows.append(row)
                print(json.dumps(row), file=out, flush=True)
    finally:
        signal.signal(signal.SIGALRM, previous)
        ctx.close()
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="benchmarks to run (default: all)")
    parser.add_argument("--quick", action="store_true",
                        help="tiny bounded runs (seconds each) to check that everything works")
    parser.add_argument("--write-docs", action="store_true",
                        help="replace the table in docs/benchmarks.md with this run's figures")
    parser.add_argument("--no-table", action="store_true", help="JSON lines only")
    parser.add_argument("--from-json", metavar="FILE",
                        help="run nothing: read the JSON lines of an earlier run (its stdout) "
                             "and print or --write-docs them")
    parser.add_argument("--log-level", default="WARNING")
    args = parser.parse_args(argv)
    logging.basicConfig(level=getattr(logging, args.log_level.upper(), logging.WARNING),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    started = time.monotonic()
    info = machine_info()
    if args.from_json:
        with open(args.from_json) as fh:
            rows = [json.loads(ln) for ln in fh if ln.startswith("{")]
    else:
        rows = run(args.names, args.quick)
        info = machine_info()
    if not args.no_table:
        print()
        print(docs.text_table(rows))
        print(f"\n{info['nproc']} × {info['cpu']}, Python {info['python']}, "
              f"{time.monotonic() - started:.0f} s in all")
    if args.write_docs:
        path = docs.write(rows, info, quick=args.quick)
        print(f"wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
