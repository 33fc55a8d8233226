"""Process supervision of the demo: the simulated node processes and their config files.

Every child gets PR_SET_PDEATHSIG and its own process group, so neither Ctrl-C in the terminal
nor a killed demo leaves a node running.
"""

from __future__ import annotations

import collections
import ctypes
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO

from fabpass.demo.seed import DemoMachine

log = logging.getLogger(__name__)


# A simulated `tap` keeps the card on the reader ~0.3 s and the reader needs a few polls to see
# it gone; a hand cannot present a card again faster than this, so the registry paces card lines.
MIN_CARD_GAP_S = 0.8


class DemoError(RuntimeError):
    """The demo could not start or a demo node cannot be reached."""


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM when the demo dies (Linux), own process group."""
    os.setpgid(0, 0)
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


class DemoNode:
    """One `fabpass node --simulate` child, its stdin and its last output lines."""

    def __init__(self, slug: str, config: Path, log_path: Path) -> None:
        self.slug = slug
        self.config = config
        self.log_path = log_path
        self.lines: collections.deque[str] = collections.deque(maxlen=200)
        self.busy = False
        self._lock = threading.Lock()
        self._last_card = -MIN_CARD_GAP_S
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> None:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "fabpass", "node", "--config", str(self.config), "--simulate"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, bufsize=1, env=env, preexec_fn=_die_with_parent,
        )
        threading.Thread(target=self._pump, args=(self.proc.stdout,), daemon=True,
                         name=f"demo-node-{self.slug}").start()

    def _pump(self, stream: IO[str] | None) -> None:
        if stream is None:
            return
        with open(self.log_path, "a", encoding="utf-8") as out:
            for line in stream:
                out.write(line)
                out.flush()
                self.lines.append(line.rstrip("\n"))
                log.debug("%s: %s", self.slug, line.rstrip())

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def send(self, line: str) -> None:
        proc = self.proc
        if proc is None or proc.stdin is None or proc.poll() is not None:
            raise DemoError(f"node {self.slug} is not running")
        with self._lock:
            if line.startswith(("tap ", "place ")):
                wait = self._last_card + MIN_CARD_GAP_S - time.monotonic()
                if wait > 0:
                    time.sleep(wait)  # pacing a human hand, not waiting for a condition
                self._last_card = time.monotonic()
            try:
                proc.stdin.write(line.strip() + "\n")
                proc.stdin.flush()
            except (BrokenPipeError, ValueError) as exc:
                raise DemoError(f"node {self.slug} is not reading its input") from exc
        if line.strip() in ("busy on", "busy off"):
            self.busy = line.strip() == "busy on"

    def stop(self, timeout: float = 2.0) -> None:
        """SIGTERM; a printer finishing a print waits, so a second SIGTERM cuts; then SIGKILL."""
        proc = self.proc
        if proc is None:
            return
        for sig, wait_s in ((signal.SIGTERM, 1.0), (signal.SIGTERM, timeout),
                            (signal.SIGKILL, timeout)):
            if proc.poll() is not None:
                break
            try:
                proc.send_signal(sig)
                proc.wait(wait_s)
            except subprocess.TimeoutExpired:
                continue
            except ProcessLookupError:
                break
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout)
        if proc.stdin is not None:
            try:
                proc.stdin.close()
            except OSError:
                pass


class DemoNodes:
    """The registry the virtual-badges panel reaches through `app.config["DEMO_NODES"]`."""

    def __init__(self) -> None:
        self.nodes: dict[str, DemoNode] = {}

    def add(self, node: DemoNode) -> None:
        self.nodes[node.slug] = node

    def slugs(self) -> list[str]:
        return list(self.nodes)

    def send(self, node_slug: str, line: str) -> None:
        """Write one simulation line (contract section 5) to that node's stdin."""
        node = self.nodes.get(node_slug)
        if node is None:
            raise DemoError(f"no demo node {node_slug!r}")
        log.info("demo: %s <- %s", node_slug, line)
        node.send(line)

    def output(self, node_slug: str, n: int = 12) -> list[str]:
        node = self.nodes.get(node_slug)
        return list(node.lines)[-n:] if node else []

    def busy(self, node_slug: str) -> bool:
        node = self.nodes.get(node_slug)
        return bool(node and node.busy)

    def alive(self, node_slug: str) -> bool:
        node = self.nodes.get(node_slug)
        return bool(node and node.alive)

    def stop_all(self) -> None:
        threads = [threading.Thread(target=n.stop, daemon=True) for n in self.nodes.values()]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)


def node_config(spec: DemoMachine, mqtt_url: str, protocol: str, storage: Path,
                pins: dict[str, int]) -> str:
    """The TOML config of a simulated node (contract section 4)."""
    lines = [
        f'node_id = "{spec.slug}"',
        f'site = "{spec.site}"',
        "",
        "[mqtt]",
        f'url = "{mqtt_url}"',
        f'protocol = "{protocol}"',
        "",
        "[reader]",
        'type = "sim"',
        "",
        "[gpio]",
        *([] if spec.plug else [f"relay = {{ pin = {pins['relay']}, active_high = true }}"]),
        f"green_led = {pins['green']}",
        f"red_led = {pins['red']}",
        f"buzzer = {pins['buzzer']}",
        *([] if spec.plug else [f"activity = {{ pin = {pins['activity']} }}"]),
        "",
        # a simulated Shelly plug (fabpass.plugsim) switches it and measures its power
        *(["[actuator]", 'type = "shelly"', f'device = "{spec.plug}"', "lease_s = 30",
           f'machine_kind = "{spec.kind}"', ""] if spec.plug else []),
        "[storage]",
        f'dir = "{storage}"',
        "",
        "[session]",
    ]
    for key, value in spec.policy.items():
        lines.append(f'{key} = "{value}"' if isinstance(value, str) else f"{key} = {value}")
    return "\n".join(lines) + "\n"
