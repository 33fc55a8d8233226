"""`fabpass demo` end to end: start it, wait for three nodes, tap a virtual badge, SIGTERM."""

from __future__ import annotations

import os
import queue
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from fabpass.broker import free_port

pytestmark = pytest.mark.slow


def _wait_for(what: str, check: Callable[[], Any], timeout: float, proc: subprocess.Popen[str],
              interval: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"fabpass demo exited ({proc.returncode}) while waiting for {what}")
        result = check()
        if result:
            return result
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def _pids_using(marker: str) -> list[int]:
    """Processes whose command line mentions `marker` (the demo's data dir)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in cmdline:
            pids.append(int(entry.name))
    return pids


def _query(db: Path, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    if not db.exists():
        return []
    conn = sqlite3.connect(db, timeout=5)
    try:
        return conn.execute(sql, args).fetchall()
    except sqlite3.OperationalError:  # not migrated yet
        return []
    finally:
        conn.close()


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "no CSRF token in the page"
    return found.group(1)


@pytest.fixture(params=["mosquitto", "embedded"])
def demo_proc(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], Path, int, queue.Queue[str]]]:
    data_dir = tmp_path / "demo"
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "fabpass", "demo", "--data-dir", str(data_dir), "--port", str(port),
         "--broker", request.param],
        stdout=subprocess.PIPE, stderr=open(tmp_path / "demo.log", "w"),  # noqa: SIM115
        stdin=subprocess.DEVNULL, text=True, start_new_session=True,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    try:
        yield proc, data_dir, port, lines
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
        for pid in _pids_using(str(data_dir)):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if proc.returncode not in (0, None):
            print((tmp_path / "demo.log").read_text()[-4000:])


def test_demo_starts_taps_a_badge_and_stops_cleanly(demo_proc: Any) -> None:
    proc, data_dir, port, lines = demo_proc
    db = data_dir / "fabpass.db"
    started = time.monotonic()

    # The banner: URL and credentials.
    password = None
    deadline = time.monotonic() + 30
    banner = ""
    while password is None and time.monotonic() < deadline:
        try:
            line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
        except queue.Empty:
            break
        banner += line
        found = re.search(r"log in as (\S+) with password (\S+)", line)
        if found:
            email, password = found.groups()
    assert password is not None, f"no credentials printed; output so far: {banner!r}"
    assert f"http://127.0.0.1:{port}" in banner

    # Four nodes online, as the server saw them (retained status over MQTT → ingest → DB).
    _wait_for("four nodes online",
              lambda: _query(db, "SELECT COUNT(*) FROM nodes WHERE online")[0][0] == 4
              if _query(db, "SELECT COUNT(*) FROM nodes WHERE online") else False,
              timeout=30, proc=proc)

    # Log in and tap Bruno's badge on the laser cutter through the panel.
    base = f"http://127.0.0.1:{port}"
    web = requests.Session()
    login = web.get(f"{base}/login", timeout=5)
    resp = web.post(f"{base}/login", data={"email": email, "password": password,
                                           "csrf_token": _csrf(login.text)}, timeout=5)
    assert resp.ok and "/login" not in resp.url, "login with the printed credentials failed"
    panel = web.get(f"{base}/demo/", timeout=5)
    assert panel.status_code == 200 and "0B5E2D71" in panel.text
    resp = web.post(f"{base}/demo/badge", data={"machine": "laser-1", "uid": "0B5E2D71",
                                                "action": "tap", "csrf_token": _csrf(panel.text)},
                    timeout=5)
    assert resp.ok

    def open_session() -> bool:
        rows = _query(db, "SELECT s.badge_uid FROM sessions s JOIN machines m "
                          "ON s.machine_id = m.id WHERE m.slug = 'laser-1' "
                          "AND s.ended_at IS NULL AND s.badge_uid = '0B5E2D71'")
        return bool(rows)

    _wait_for("a session open on laser-1", open_session, timeout=15, proc=proc)

    # A printer is not cut mid-print: badge in, machine busy, badge out → finishing, relay on.
    def post(path: str, data: dict[str, str]) -> None:
        page = web.get(f"{base}/demo/", timeout=5)
        assert web.post(f"{base}{path}", data={**data, "csrf_token": _csrf(page.text)},
                        timeout=5).ok

    def printer_state() -> tuple[str, int] | None:
        rows = _query(db, "SELECT state, relay FROM nodes WHERE slug = 'printer-1'")
        return (rows[0][0], rows[0][1]) if rows else None

    post("/demo/badge", {"machine": "printer-1", "uid": "6D1F3B5E", "action": "tap"})
    _wait_for("printer-1 in use", lambda: printer_state() == ("in_use", 1), timeout=10, proc=proc)
    post("/demo/busy", {"machine": "printer-1", "busy": "on"})
    post("/demo/badge", {"machine": "printer-1", "uid": "6D1F3B5E", "action": "tap"})
    _wait_for("printer-1 finishing with the relay on",
              lambda: printer_state() == ("finishing", 1), timeout=10, proc=proc)

    # printer-3 is on a simulated Shelly plug: a tap switches the plug on (confirmed), and the
    # power the panel sets reaches the server (status power_w → node_plugs → dashboard).
    def plug_row() -> tuple[Any, ...] | None:
        rows = _query(db, "SELECT p.online, p.power_w, n.state FROM node_plugs p JOIN nodes n "
                          "ON n.id = p.node_id WHERE n.slug = 'printer-3'")
        return tuple(rows[0]) if rows else None

    _wait_for("printer-3's plug online", lambda: (plug_row() or (None,))[0] == 1, timeout=15,
              proc=proc)
    post("/demo/badge", {"machine": "printer-3", "uid": "0B5E2D71", "action": "tap"})
    _wait_for("printer-3 in use on its plug", lambda: (plug_row() or (0, 0, ""))[2] == "in_use",
              timeout=15, proc=proc)
    post("/demo/plug", {"machine": "printer-3", "phase": "printing"})
    _wait_for("printer-3 drawing printing power",
              lambda: ((plug_row() or (0, None, ""))[1] or 0) >= 1000, timeout=15, proc=proc)
    dash = web.get(f"{base}/dashboard/state.json", timeout=5).json()
    card = next(m for m in dash["machines"] if m["slug"] == "printer-3")
    assert card["power_w"] >= 1000 and "W now" in card["plug"]
    assert "W" in web.get(f"{base}/demo/state", timeout=5).text

    # SIGTERM: everything the demo started exits within a few seconds.
    children = _pids_using(str(data_dir))
    assert len(children) >= 3, f"expected the node processes (and mosquitto), got {children}"
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=15)
    assert proc.returncode == 0
    deadline = time.monotonic() + 5
    while _pids_using(str(data_dir)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _pids_using(str(data_dir)) == [], "processes left behind after SIGTERM"
    assert time.monotonic() - started < 60
