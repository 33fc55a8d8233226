"""Run the reports benchmark (bench/reports.py, owned by the reports work) as one more benchmark.

It runs as a child, `python -m bench.reports [--quick]`, and every JSON
object it prints on a line of its own (with a "bench" key) is taken as is.
"""

from __future__ import annotations

import json
import subprocess
from typing import Any

from bench.common import PYTHON, REPO, BenchError, Context, NotAvailable, bench_env


def reports(ctx: Context) -> list[dict[str, Any]]:
    if not (REPO / "bench" / "reports.py").exists():
        raise NotAvailable("bench/reports.py is not written yet")
    # in the runner's quick mode, 20,000 sessions: the whole `--quick` run must fit in a test
    cmd = [PYTHON, "-m", "bench.reports"] + (["--quick", "--sessions", "20000"] if ctx.quick
                                             else [])
    proc = subprocess.Popen(cmd, env=bench_env(), cwd=str(REPO), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        out, err = proc.communicate(timeout=55 if ctx.quick else 390)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    rows: list[dict[str, Any]] = []
    for line in out.decode(errors="replace").splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if isinstance(obj, dict) and "bench" in obj:
            rows.append(obj)
    if proc.returncode != 0 and not rows:
        raise BenchError(f"bench.reports exited {proc.returncode}: "
                         + err.decode(errors="replace")[-500:])
    return rows
