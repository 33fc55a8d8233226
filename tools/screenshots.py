"""Screenshots for the docs, taken from the real UI of `fabpass demo` in headless Chromium.

    .venv/bin/python tools/screenshots.py [--out docs/img] [--chromium /usr/bin/chromium]

Starts the demo on a free port with a temporary data dir, logs in with the credentials it prints,
makes the machines busy through the virtual-badges page (so the dashboard is not all idle), then
captures the dashboard, a member page, the training form, the reports and the virtual badges, in
English and French, at 1280x800. Needs Playwright (test extra) and Debian's chromium
(`apt-get install chromium`); nothing is downloaded.
"""

from __future__ import annotations

import argparse
import logging
import os
import queue
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

log = logging.getLogger("screenshots")

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
VIEWPORT = {"width": 1280, "height": 800}


class ScreenshotError(RuntimeError):
    """The demo or the browser did not do what the script needs."""


def start_demo(data_dir: Path) -> tuple[subprocess.Popen[str], str, str, str]:
    """`fabpass demo` in a subprocess; returns (process, base URL, e-mail, password)."""
    from fabpass.broker import free_port

    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "fabpass", "demo", "--data-dir", str(data_dir), "--port", str(port)],
        stdout=subprocess.PIPE, stderr=open(data_dir.parent / "demo.log", "w"),  # noqa: SIM115
        stdin=subprocess.DEVNULL, text=True, start_new_session=True, cwd=ROOT,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=0.5)
        except queue.Empty:
            if proc.poll() is not None:
                break
            continue
        found = re.search(r"log in as (\S+) with password (\S+)", line)
        if found:
            return proc, f"http://127.0.0.1:{port}", found.group(1), found.group(2)
    stop_demo(proc)
    raise ScreenshotError("the demo did not print its credentials; see demo.log")


def stop_demo(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


def wait_nodes_online(data_dir: Path, timeout: float = 30) -> None:
    import sqlite3

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            conn = sqlite3.connect(data_dir / "fabpass.db", timeout=5)
            try:
                (count,) = conn.execute("SELECT COUNT(*) FROM nodes WHERE online").fetchone()
            finally:
                conn.close()
            if count == 3:
                return
        except sqlite3.Error:
            pass
        time.sleep(0.3)
    raise ScreenshotError("the three demo nodes did not come online")


def login(page: Any, base: str, email: str, password: str) -> None:
    page.goto(f"{base}/login")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", password)
    page.locator("form:has(input[name=password]) [type=submit]").click()
    page.wait_for_load_state()
    if "/login" in page.url:
        raise ScreenshotError("login failed")


def panel_action(page: Any, base: str, machine: str, uid: str | None, action: str) -> None:
    page.goto(f"{base}/demo/")
    if uid:
        page.select_option("select#uid", uid)
    page.select_option("select#machine", machine)
    page.locator(f"form.demo-badge button[value={action}]").click()
    page.wait_for_load_state()


def set_busy(page: Any, base: str, machine: str) -> None:
    page.goto(f"{base}/demo/")
    form = page.locator(f"#demo-state form:has(input[name=machine][value={machine}])")
    form.locator("button[value=on]").click()
    page.wait_for_load_state()


def stage_scene(page: Any, base: str) -> None:
    """Two machines in use, one of them printing, and a refused unknown card."""
    panel_action(page, base, "laser-1", "0B5E2D71", "tap")          # Bruno on the laser
    panel_action(page, base, "printer-2", "2C4E6A8B", "tap")        # Gaëlle on printer-2
    set_busy(page, base, "printer-2")
    panel_action(page, base, "printer-1", "DEADBEEF", "tap")        # unknown card: refused
    time.sleep(1.5)  # let the dashboard's own refresh pick the new states up


def shoot(page: Any, path: Path) -> None:
    page.wait_for_load_state()
    page.screenshot(path=str(path), full_page=False)
    log.info("wrote %s (%d KiB)", path.relative_to(ROOT) if path.is_relative_to(ROOT) else path,
             path.stat().st_size // 1024)


def first_link(page: Any, selector: str) -> str | None:
    loc = page.locator(selector)
    if loc.count() == 0:
        return None
    href = loc.first.get_attribute("href")
    return str(href) if href else None


def capture(browser: Any, base: str, email: str, password: str, lang: str, out: Path,
            stage: bool) -> list[Path]:
    context = browser.new_context(viewport=VIEWPORT, locale="fr-FR" if lang == "fr" else "en-GB",
                                  extra_http_headers={"Accept-Language": lang})
    page = context.new_page()
    page.set_default_timeout(15000)
    written: list[Path] = []
    try:
        login(page, base, email, password)
        if stage:
            stage_scene(page, base)

        page.goto(f"{base}/")
        page.wait_for_timeout(2500)  # one refresh of the live dashboard
        written.append(out / f"dashboard-{lang}.png")
        shoot(page, written[-1])

        page.goto(f"{base}/members?q=Bruno")
        href = first_link(page, "main a[href^='/members/']:has-text('Bruno')")
        if href:
            page.goto(base + href)
            written.append(out / f"member-{lang}.png")
            shoot(page, written[-1])
        else:
            log.warning("no member link found: member page skipped")

        page.goto(f"{base}/authorizations/new")
        if page.locator("main form").count():
            written.append(out / f"grant-{lang}.png")
            shoot(page, written[-1])
        else:
            log.warning("no training form at /authorizations/new: skipped")

        page.goto(f"{base}/")
        href = first_link(page, "header nav a[href*='report']")
        if href:
            page.goto(base + href + ("&" if "?" in href else "?") + "group_by=day")
            page.wait_for_timeout(500)
            written.append(out / f"reports-{lang}.png")
            shoot(page, written[-1])
        else:
            log.warning("no Reports entry in the navigation: reports skipped")

        page.goto(f"{base}/demo/")
        written.append(out / f"panel-{lang}.png")
        shoot(page, written[-1])
    finally:
        context.close()
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img")
    parser.add_argument("--chromium", default=os.environ.get("FABPASS_CHROMIUM",
                                                             "/usr/bin/chromium"))
    parser.add_argument("--lang", action="append", choices=["en", "fr"],
                        help="only these languages (default: en and fr)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    if not Path(args.chromium).exists():
        raise ScreenshotError(f"{args.chromium} not found: apt-get install chromium")
    from playwright.sync_api import sync_playwright

    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="fabpass-shots-") as tmp:
        data_dir = Path(tmp) / "demo"
        proc, base, email, password = start_demo(data_dir)
        try:
            wait_nodes_online(data_dir)
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=args.chromium, args=CHROMIUM_ARGS)
                try:
                    for i, lang in enumerate(args.lang or ["en", "fr"]):
                        capture(browser, base, email, password, lang, args.out, stage=i == 0)
                finally:
                    browser.close()
        finally:
            stop_demo(proc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
