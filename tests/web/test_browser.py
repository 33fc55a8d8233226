"""Headless Chromium (Debian's, driven by Playwright) against a real server in a thread,
a real Mosquitto, the server's MQTT core (ingest + access-list publisher) and a real
simulated node (`fabpass node --simulate`, badges tapped on its stdin).
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # the browser kit (importlib mode)
import browser_kit as kit  # noqa: E402

pytestmark = [pytest.mark.browser, pytest.mark.broker]

PASSWORD, WAIT_S, uids = kit.PASSWORD, kit.WAIT_S, kit.uids


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    with kit.mqtt_stack(tmp_path_factory.mktemp("browser")) as s:
        yield s


def _page(browser: Any, locale: str = "en-GB") -> Any:
    return kit.new_page(browser, locale)


def _login(page: Any, base: str, email: str = "admin@example.org") -> None:
    page.goto(base + "/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(base + "/")


def _wait_node_has_list(stack: dict[str, Any]) -> None:
    kit.wait_node_has_list(stack["app"])


def test_manager_day(stack: dict[str, Any], browser: Any) -> None:
    """Log in, enrol an unknown badge, grant a training (list changes), revoke, lock."""
    from playwright.sync_api import expect

    base, seed, acl = stack["url"], stack["seed"], stack["acl"]
    first = acl.wait(lambda a: "04A1B2C3" in uids(a))  # the publisher sent the laser's list
    assert "04DEAD01" not in uids(first)
    page = _page(browser)
    _login(page, base)
    expect(page.get_by_role("heading", name="Machines right now")).to_be_visible()

    # enrol the unknown badge: one click on the unknown-badges page
    page.get_by_role("link", name="Unknown badges").click()
    row = page.get_by_role("row").filter(has_text="04DEAD01")
    row.get_by_label("Member").select_option(label="Bob Durand")
    row.get_by_role("button", name="Assign").click()
    expect(page.locator(".flash.success")).to_contain_text("04DEAD01 now belongs to Bob Durand")

    # grant a training on the laser: the node's retained list gains the badge
    page.get_by_role("link", name="Trainings").click()
    page.get_by_role("link", name="Record a training").first.click()
    page.get_by_label("Find a member in the list").fill("bob")
    expect(page.locator("#members option", has_text="Alice Martin")).to_be_hidden()
    page.get_by_label("Members trained").select_option(label="Bob Durand")
    page.get_by_label("Machine or group of machines").select_option(label="Laser cutter")
    page.get_by_role("button", name="Record the training").click()
    expect(page.locator(".flash.success")).to_contain_text("Training recorded for 1 member")
    granted = acl.wait(lambda a: "04DEAD01" in uids(a))
    assert next(b for b in granted["badges"] if b["uid"] == "04DEAD01")["member"] == seed.bob

    # revoke it with a reason: the badge leaves the list
    page.goto(f"{base}/members/{seed.bob}")
    page.get_by_role("row").filter(has_text="Laser cutter").get_by_role("link", name="Revoke").click()
    page.get_by_label("Reason").fill("unsafe use")
    page.get_by_role("button", name="Revoke").click()
    expect(page.locator(".flash.success")).to_contain_text("Training revoked")
    acl.wait(lambda a: "04DEAD01" not in uids(a) and a["version"] > granted["version"])

    # lock the machine (a confirmation dialog is accepted): the list says locked
    page.get_by_role("link", name="Machines").first.click()
    page.get_by_role("link", name="Laser cutter", exact=True).click()
    page.get_by_label("Reason (shown to managers)").fill("lens cleaning")
    page.get_by_role("button", name="Lock the machine").click()
    expect(page.locator(".flash.success")).to_contain_text("is locked")
    expect(page.get_by_role("button", name="Unlock the machine")).to_be_visible()
    acl.wait(lambda a: a["locked"] is True)
    page.get_by_role("button", name="Unlock the machine").click()
    acl.wait(lambda a: a["locked"] is False)
    page.context.close()


def test_dashboard_shows_a_session_from_a_simulated_node(stack: dict[str, Any],
                                                         browser: Any) -> None:
    """A real `fabpass node --simulate`: a badge tap shows up on the open dashboard, no reload."""
    from playwright.sync_api import expect

    base = stack["url"]
    stack["acl"].wait(lambda a: a["locked"] is False and "04A1B2C3" in uids(a))
    page = _page(browser)
    _login(page, base)
    card = page.locator(".card").filter(has_text="Laser cutter")
    expect(card).to_be_visible()
    proc = kit.start_sim_node(stack, "laser-1", stderr=subprocess.PIPE)
    try:
        # the node is up when the server has its status with the current list
        expect(card).to_have_class("card state-idle", timeout=WAIT_S * 1000)
        _wait_node_has_list(stack)
        assert proc.stdin is not None
        proc.stdin.write("tap 04A1B2C3\n")
        proc.stdin.flush()
        expect(card).to_contain_text("Alice Martin", timeout=WAIT_S * 1000)
        expect(card).to_have_class("card state-in_use")
        expect(card.locator(".badge")).to_have_text("In use")
    finally:
        kit.stop_node(proc)
    page.context.close()


def test_french_and_english(stack: dict[str, Any], browser: Any) -> None:
    from playwright.sync_api import expect

    base = stack["url"]
    page = _page(browser, locale="fr-FR")
    page.goto(base + "/login")
    expect(page.get_by_role("heading", name="Se connecter")).to_be_visible()
    page.get_by_label("E-mail").fill("manager@example.org")
    page.get_by_label("Mot de passe").fill(PASSWORD)
    page.get_by_role("button", name="Se connecter").click()
    expect(page.get_by_role("heading", name="Les machines en ce moment")).to_be_visible()
    expect(page.get_by_role("link", name="Membres")).to_be_visible()
    page.get_by_role("button", name="EN").click()
    expect(page.get_by_role("heading", name="Machines right now")).to_be_visible()
    page.get_by_role("link", name="Members").click()
    expect(page.get_by_role("heading", name="Members")).to_be_visible()
    page.get_by_role("button", name="FR").click()
    expect(page.get_by_role("heading", name="Membres")).to_be_visible()
    page.context.close()


def test_dashboard_shows_maintenance_without_reload(stack: dict[str, Any], browser: Any) -> None:
    """A task falling due appears on the open dashboard through the 2 s polling."""
    from datetime import UTC, datetime, timedelta

    from playwright.sync_api import expect

    from server.app import get_db
    from server.models import UsageSession
    from server.services import maintenance

    base, seed = stack["url"], stack["seed"]
    page = _page(browser)
    _login(page, base)
    card = page.locator(".card").filter(has_text="3D printer")
    expect(card).to_be_visible()
    expect(card.locator(".maint li")).to_have_count(0)
    with stack["app"].app_context():
        db = get_db()
        t0 = datetime.now(UTC) - timedelta(hours=4)
        db.add(UsageSession(session_uuid=str(uuid.uuid4()), machine_id=seed.printer,
                            member_id=seed.bob, badge_uid="04B0B0B0", started_at=t0,
                            ended_at=t0 + timedelta(hours=2), duration_s=7200, active_s=7200,
                            end_reason="badge_out"))
        maintenance.create_task(db, seed.printer, "Grease the rods", 1.0)
        db.commit()
    expect(card.locator(".maint li")).to_have_text(["Maintenance overdue: Grease the rods"],
                                                   timeout=WAIT_S * 1000)
    page.context.close()


def test_new_node_credentials_download(stack: dict[str, Any], browser: Any) -> None:
    """Admin: 'New credentials' (confirmed) shows the config once; the link saves it as a file."""
    from playwright.sync_api import expect

    base = stack["url"]
    page = _page(browser)
    _login(page, base)
    page.goto(base + "/nodes")
    with page.expect_download() as plain:
        page.get_by_role("link", name="Download config").first.click()
    assert plain.value.suggested_filename in ("laser-1.toml", "printer-1.toml")
    text = Path(plain.value.path()).read_text()
    assert "node_id = " in text and "\npassword =" not in text
    page.locator('form[action="/nodes/laser-1/credentials"] button').click()
    expect(page.get_by_role("heading", name="New credentials for laser-1")).to_be_visible()
    shown = page.locator("#node-config").input_value()
    assert "\npassword = " in shown
    with page.expect_download() as full:
        page.get_by_role("link", name="Save the config file").click()
    assert full.value.suggested_filename == "laser-1.toml"
    assert Path(full.value.path()).read_text() == shown
    page.context.close()
