"""Headless Chromium in French books a slot on the week view; a real simulated node
(`fabpass node --simulate`, real Mosquitto, the server's publisher) then refuses another
trained member during it (`booked`) and lets the booker start."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # the browser kit (importlib mode)
import browser_kit as kit  # noqa: E402

pytestmark = [pytest.mark.browser, pytest.mark.broker]

PASSWORD, WAIT_S = kit.PASSWORD, kit.WAIT_S
CHLOE = "04C10E01"  # trained on the laser, no booking
SHOTS = os.environ.get("FABPASS_SCREENSHOTS")  # a directory: keep the week-view screenshots


def _add_chloe(app: Any, seed: Any) -> None:
    from server import services
    from server.app import get_db

    with app.app_context():
        db = get_db()
        chloe = services.create_member(db, "Chloé Bernard", site="lab", actor="test")
        services.enrol_badge(db, chloe.id, CHLOE, actor="test")
        services.grant(db, chloe.id, machine_id=seed.laser, actor="test")
        services.update_machine(db, seed.laser, policy={"booking": "optional"}, actor="test")
        db.commit()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    with kit.mqtt_stack(tmp_path_factory.mktemp("bookings-browser"), prefix="bk",
                        prepare=_add_chloe) as s:
        yield s


def _denials(app: Any) -> list[dict[str, Any]]:
    return kit.events(app, "badge.denied")


def test_book_in_french_and_the_node_refuses_someone_else(stack: dict[str, Any],
                                                          browser: Any) -> None:
    from playwright.sync_api import expect

    base, seed, app = stack["url"], stack["seed"], stack["app"]
    now = datetime.now(ZoneInfo("Europe/Paris"))
    if now.hour == 23 and now.minute > 50:
        now -= timedelta(minutes=15)  # keep the slot inside one local day
    start = (now - timedelta(minutes=2)).strftime("%H:%M")
    end = min(now + timedelta(hours=1), now.replace(hour=23, minute=59)).strftime("%H:%M")

    ctx = browser.new_context(locale="fr-FR", viewport={"width": 1280, "height": 900})
    ctx.set_default_timeout(WAIT_S * 1000)
    page = ctx.new_page()
    page.goto(base + "/login")
    page.locator("input[name=email]").fill("manager@example.org")
    page.locator("input[name=password]").fill(PASSWORD)
    page.locator("button[type=submit].primary").click()
    page.wait_for_url(base + "/")
    page.get_by_role("link", name="Réservations").click()
    page.locator("select[name=machine]").select_option(label="Laser cutter")
    expect(page.get_by_role("heading", name="Réserver un créneau")).to_be_visible()
    form = page.locator("#book")
    expect(form).to_contain_text("Membre")
    form.locator("select[name=member_id]").select_option(label="Alice Martin")
    form.locator("input[name=day]").fill(now.date().isoformat())
    form.locator("input[name=start]").fill(start)
    form.locator("input[name=end]").fill(end)
    form.get_by_role("button", name="Réserver").click()
    expect(page.locator(".flash.success")).to_contain_text("Réservé.")
    page.goto(f"{base}/bookings?machine={seed.laser}&week={now.date().isoformat()}")
    expect(page.locator(".slot")).to_contain_text(f"{start}–{end}")
    expect(page.locator(".slot")).to_contain_text("Alice Martin")
    if SHOTS:
        page.screenshot(path=f"{SHOTS}/week-desktop.png", full_page=True)
        page.set_viewport_size({"width": 390, "height": 844})
        page.screenshot(path=f"{SHOTS}/week-390.png", full_page=True)

    # the node's list carries the slot ...
    stack["acl"].wait(lambda a: any(b["member"] == seed.alice for b in a.get("bookings", [])))
    proc = kit.start_sim_node(stack, "laser-1", stderr=subprocess.PIPE)
    try:
        kit.wait_node_has_list(app)
        assert proc.stdin is not None
        # ... so it refuses Chloé (trained, no slot) during Alice's slot, naming its end
        proc.stdin.write(f"tap {CHLOE}\n")
        proc.stdin.flush()
        denied = kit.wait_until(lambda: [d for d in _denials(app) if d.get("uid") == CHLOE],
                       "the node's refusal to reach the server")
        assert denied[0]["reason"] == "booked" and denied[0]["until"].endswith("Z")
        # and lets Alice start: the dashboard shows her session
        proc.stdin.write("tap 04A1B2C3\n")
        proc.stdin.flush()
        page.set_viewport_size({"width": 1280, "height": 900})
        page.goto(base + "/")
        card = page.locator("#machines .card").filter(has_text="Laser cutter")
        expect(card).to_contain_text("Alice Martin", timeout=WAIT_S * 1000)
    finally:
        kit.stop_node(proc)
    ctx.close()

