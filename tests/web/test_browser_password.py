"""Headless Chromium: forgot password -> the mail at a real SMTP server -> new password -> login."""

from __future__ import annotations

import importlib.util
import os
import re
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.browser]

CHROMIUM = os.environ.get("FABPASS_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]

_spec = importlib.util.spec_from_file_location(
    "fabpass_smtp_receiver", Path(__file__).parents[1] / "smtp_receiver.py")
assert _spec is not None and _spec.loader is not None
smtp_receiver = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(smtp_receiver)


@pytest.fixture()
def site(tmp_path: Path) -> Iterator[dict[str, Any]]:
    from werkzeug.serving import make_server

    seedmod = sys.modules["fabpass_web_seed"]
    app, _seed = seedmod.make_app(f"sqlite:///{tmp_path}/b.db")
    server = make_server("127.0.0.1", 0, app, threaded=True)
    base = f"http://127.0.0.1:{server.server_port}"
    app.config["PUBLIC_URL"] = base
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    smtp = smtp_receiver.SmtpReceiver().start()
    try:
        yield {"app": app, "url": base, "smtp": smtp}
    finally:
        smtp.stop()
        server.shutdown()
        thread.join(5)
        app.extensions["fabpass.engine"].dispose()


def test_forgot_mail_new_password_login(site: dict[str, Any]) -> None:
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"Debian's chromium is needed at {CHROMIUM}")
    from playwright.sync_api import sync_playwright

    from server.services import mail

    base, app, smtp = site["url"], site["app"], site["smtp"]
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            page = browser.new_context(locale="en-GB").new_page()
            page.set_default_timeout(15_000)
            page.goto(base + "/login")
            page.get_by_role("link", name="Forgot your password?").click()
            page.get_by_label("Email").fill("manager@example.org")
            page.get_by_role("button", name="Send the link").click()
            page.get_by_text("If this address belongs to a login").wait_for()
            mail.send_due(app.extensions["fabpass.sessionmaker"],
                          mail.parse_smtp_url(smtp.url), "fabpass@example.org")
            (msg,) = smtp.wait_for(1)
            link = re.search(re.escape(base) + r"/password/reset/\S+",
                             smtp_receiver.text_of(msg))
            assert link, smtp_receiver.text_of(msg)
            page.goto(link.group(0))
            page.get_by_label("New password", exact=True).fill("a fresh password 42")
            page.get_by_label("Repeat the new password").fill("a fresh password 42")
            page.get_by_role("button", name="Save the new password").click()
            page.wait_for_url(base + "/login")
            page.get_by_label("Email").fill("manager@example.org")
            page.get_by_label("Password").fill("a fresh password 42")
            page.get_by_role("button", name="Log in").click()
            page.wait_for_url(base + "/")
        finally:
            browser.close()
