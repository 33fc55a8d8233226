"""Issue 13 items 5 and 9 in a real browser (Debian's Chromium through Playwright): `next` after
login stays on the site, and a cookie copied before logout is dead after it."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # the browser kit (importlib mode)
import browser_kit as kit  # noqa: E402

pytestmark = [pytest.mark.browser]

ARGS = [a for a in kit.ARGS if a != "--disable-quic"]


@pytest.fixture()
def site(tmp_path: Path) -> Iterator[str]:
    seedmod = sys.modules["fabpass_web_seed"]
    app, _ = seedmod.make_app(f"sqlite:///{tmp_path}/b.db")
    with kit.waitress_site(app) as url:
        yield url


@pytest.fixture()
def browser() -> Iterator[Any]:
    yield from kit.launch_chromium(ARGS)


def _login(page: Any, url: str) -> None:
    page.goto(url)
    page.get_by_label("Email").fill("admin@example.org")
    page.get_by_label("Password").fill("correct horse battery")
    page.get_by_role("button", name="Log in").click()


def test_next_and_logout_in_a_browser(site: str, browser: Any) -> None:
    ctx = browser.new_context(locale="en-GB")
    ctx.set_default_timeout(15_000)
    page = ctx.new_page()
    # the open redirect: a tab the browser would drop
    assert page.goto(site + "/login?next=/%09/evil.test").status == 400
    _login(page, site + "/login?next=//evil.test/x")
    page.wait_for_url(site + "/")
    assert page.url.startswith(site)
    copied = ctx.cookies()
    page.goto(site + "/members")
    assert page.url == site + "/members"
    page.get_by_role("button", name="Log out").click()
    page.wait_for_url(site + "/login")
    thief = browser.new_context(locale="en-GB")
    thief.add_cookies(copied)
    other = thief.new_page()
    other.goto(site + "/members")
    assert "/login" in other.url  # the copied cookie no longer logs anyone in
    thief.close()
    ctx.close()
