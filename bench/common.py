"""What every benchmark shares: results, percentiles, process memory/CPU, machine info.

A benchmark is a function `run(ctx) -> list[Result]`. It measures the thing,
and, where one exists, the physical limit of the same path in the same run
(a bare pin toggle, raw broker throughput), so a ratio can be quoted.
"""

from __future__ import annotations

import datetime as _dt
import logging
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


# Broker settings the benchmarks run with (after fabpass.broker's own): Nagle off, and an
# in-flight window large enough for an ingest that acknowledges only after its commit
# (Mosquitto's default is 20 messages in flight per client; fabpass.broker sets 100).
BROKER_TUNING = "set_tcp_nodelay true\nmax_inflight_messages 1000"


class BenchError(Exception):
    """Root of the bench package's errors."""


class NotAvailable(BenchError):
    """A piece the benchmark measures is not built (yet); reported, not fatal."""


@dataclass
class Result:
    """One figure. `goal_op` says which side of `goal` passes ("<=" or ">=").

    `goal_on="ratio"`: the goal is on value / limit, not on the value (issue 21's "events per
    CPU-second ≥ 0.40 × the raw subscriber's" has no absolute figure: the limit moves with the
    machine, the ratio does not).
    """

    bench: str
    metric: str
    value: float | None
    unit: str
    goal: float | None = None
    goal_op: str = "<="
    limit: float | None = None  # the physical limit of the same path, same unit
    error: str | None = None
    label: str = ""  # a human name for tables and docs
    extra: dict[str, Any] = field(default_factory=dict)
    goal_on: str = "value"  # "value" | "ratio"

    @property
    def ratio(self) -> float | None:
        """value / limit: how far from the floor (latency) or how close to the ceiling (rate)."""
        if self.value is None or not self.limit:
            return None
        return self.value / self.limit

    @property
    def ok(self) -> bool | None:
        measured = self.ratio if self.goal_on == "ratio" else self.value
        if measured is None or self.goal is None:
            return None
        return measured <= self.goal if self.goal_op == "<=" else measured >= self.goal

    def to_dict(self) -> dict[str, Any]:
        if self.error is not None:
            return {"bench": self.bench, "metric": self.metric, "label": self.label,
                    "error": self.error}
        out: dict[str, Any] = {
            "bench": self.bench, "metric": self.metric, "label": self.label,
            "value": _round(self.value),
            "unit": self.unit, "goal": self.goal, "goal_op": self.goal_op,
            "goal_on": self.goal_on, "limit": _round(self.limit),
            "ratio": _round(self.ratio, 3), "ok": self.ok,
        }
        out.update(self.extra)
        return out


def _round(x: float | None, digits: int = 4) -> float | None:
    if x is None:
        return None
    if x == 0 or not math.isfinite(x):
        return x
    return round(x, max(digits, digits - int(math.floor(math.log10(abs(x)))) - 1))


def error_result(bench: str, metric: str, message: str, label: str = "") -> Result:
    return Result(bench, metric, None, "", error=message, label=label)


def percentile(values: Sequence[float], p: float) -> float:
    """The p-th percentile (0-100) by the nearest-rank method: a value that was observed."""
    if not values:
        raise BenchError("no samples")
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100.0 * len(ordered)))
    return ordered[rank - 1]


@dataclass
class Context:
    """What a benchmark run gets: its bounds and a scratch dir that is removed at the end."""

    quick: bool = False
    tmp: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="fabpass-bench-")))
    cache: dict[str, Any] = field(default_factory=dict)
    cleanups: list[Callable[[], None]] = field(default_factory=list)

    def scale(self, full: float, quick: float) -> float:
        return quick if self.quick else full

    def close(self) -> None:
        for fn in reversed(self.cleanups):
            try:
                fn()
            except Exception:  # cleanup must go on
                log.exception("cleanup failed")
        self.cleanups.clear()
        shutil.rmtree(self.tmp, ignore_errors=True)


# ---------------------------------------------------------------- processes


def rss_mib(pid: int) -> float:
    """Resident set size of a process from /proc/PID/status (VmRSS), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    raise BenchError(f"no VmRSS for pid {pid}")


def tree_rss_mib(pid: int) -> float:
    """RSS of a process and its children (a server that forks workers counts them all)."""
    import psutil

    proc = psutil.Process(pid)
    total = proc.memory_info().rss
    for child in proc.children(recursive=True):
        try:
            total += child.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total / (1024.0 * 1024.0)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (and its threads) so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def bench_env(**extra: str) -> dict[str, str]:
    """Environment for child processes: the repository importable, quiet logs."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.setdefault("FABPASS_LOG_LEVEL", "WARNING")
    env.update(extra)
    return env


def fabpass_cmd(*args: str) -> list[str]:
    """`fabpass ARGS` run with this interpreter (works without the console script on PATH)."""
    return [PYTHON, "-m", "fabpass", *args]


@contextmanager
def child(cmd: list[str], *, env: dict[str, str] | None = None, log_path: Path,
          stdin: int | None = subprocess.DEVNULL) -> Iterator[subprocess.Popen[bytes]]:
    """A child process whose output goes to `log_path`; terminated (then killed) on exit."""
    with open(log_path, "ab") as out:
        proc = subprocess.Popen(cmd, env=env or bench_env(), stdout=out, stderr=out, stdin=stdin,
                                cwd=str(REPO))
    try:
        yield proc
    finally:
        stop_child(proc)


def stop_child(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def log_tail(path: Path, chars: int = 1500) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return ""


def wait_for(predicate: Callable[[], Any], timeout: float, what: str,
             interval: float = 0.05) -> Any:
    """Poll `predicate` until it returns something truthy; BenchError after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise BenchError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


# ---------------------------------------------------------------- machine


def loadavg() -> float:
    """The 1-minute load average: other work on the machine skews every figure."""
    try:
        return float(Path("/proc/loadavg").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return -1.0


def machine_info() -> dict[str, Any]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_mib = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_mib = int(line.split()[1]) // 1024
    except OSError:
        pass
    mosquitto = "unknown"
    try:
        out = subprocess.run(["/usr/sbin/mosquitto", "-h"], capture_output=True, text=True,
                             timeout=5)
        first = (out.stdout or out.stderr).splitlines()
        mosquitto = first[0] if first else "unknown"
    except (OSError, subprocess.SubprocessError):
        pass
    return {
        "nproc": os.cpu_count(),
        "cpu": model,
        "memory_mib": mem_mib,
        "python": platform.python_version(),
        "kernel": platform.release(),
        "mosquitto": mosquitto,
        "date": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "loadavg_at_end": loadavg(),
    }
