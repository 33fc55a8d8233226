"""The French manager's walk-through of issue 15, in headless Chromium against a real server, a
real Mosquitto, the server's MQTT core and a real simulated node (`fabpass node --simulate`):

unknown badge tapped -> "Badges inconnus" -> "Nouveau membre avec ce badge" with a training on the
laser -> the member taps (a session starts and ends) -> the manager revokes the training with a
reason -> the member taps again (refused) -> the member page says "formation retirée" with the
date; the manager locks the laser with a reason -> the dashboard shows it; an admin downloads the
member's data (JSON) and erases it with the typed confirmation -> the member page shows the erased
state. Every assertion is on what the page says, in French.

On the way it screenshots the main pages at 1280 px and 390 px into `FABPASS_GUIDE_SHOTS` (the
guide's pictures: `FABPASS_GUIDE_SHOTS=docs/img` refreshes them; by default build/screenshots).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # the browser fixtures (importlib mode)
import browser_kit as kit  # noqa: E402
import test_browser as tb  # noqa: E402

_wait_node_has_list, uids, _events, _wait = (tb._wait_node_has_list, kit.uids, kit.events,
                                             kit.wait_until)
stack = tb.stack  # the same module-scoped fixture, a stack of our own; `browser` is conftest's

pytestmark = [pytest.mark.browser, pytest.mark.broker]
ZOE = "04E0A1F2"  # a badge nobody knows yet
SHOTS = Path(os.environ.get("FABPASS_GUIDE_SHOTS")
             or Path(__file__).resolve().parents[2] / "build" / "screenshots")


def _node(stack: dict[str, Any]) -> subprocess.Popen[str]:
    return kit.start_sim_node(stack, "walk-laser-1")


def _tap(proc: subprocess.Popen[str], uid: str = ZOE) -> None:
    kit.tap(proc, uid)


def _page(browser: Any) -> Any:
    return kit.new_page(browser, "fr-FR", {"width": 1280, "height": 900})


_login = kit.login_fr


def _shot(page: Any, name: str) -> None:
    """The page at desktop width and at phone width (390 px), then back to desktop."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}-fr.png"), full_page=True)
    page.set_viewport_size({"width": 390, "height": 844})
    page.screenshot(path=str(SHOTS / f"{name}-fr-390.png"), full_page=True)
    page.set_viewport_size({"width": 1280, "height": 900})


def _today_fr() -> str:
    from babel.dates import format_date

    return format_date(datetime.now(ZoneInfo("Europe/Paris")).date(), "d MMM", locale="fr")


def test_french_manager_walkthrough(stack: dict[str, Any], browser: Any) -> None:
    from playwright.sync_api import expect

    base, seed, acl, app = stack["url"], stack["seed"], stack["acl"], stack["app"]
    acl.wait(lambda a: "04A1B2C3" in uids(a))
    page = _page(browser)
    _login(page, base, "manager@example.org")

    proc = _node(stack)
    try:
        _wait_node_has_list(stack)
        # an unknown badge is tapped on the laser: the node refuses it, the server lists it
        _tap(proc)
        _wait(lambda: [d for d in _events(app, "badge.denied") if d.get("uid") == ZOE],
              "the unknown badge's refusal")

        page.get_by_role("link", name="Badges inconnus").first.click()
        expect(page.get_by_role("heading", name="Badges passés mais inconnus")).to_be_visible()
        row = page.get_by_role("row").filter(has_text=ZOE)
        expect(row).to_contain_text("Laser cutter")
        _shot(page, "parcours-1-badges-inconnus")
        row.get_by_role("link", name="Nouveau membre avec ce badge").click()

        # one form: the member, her badge and her training on the laser
        expect(page.get_by_role("heading", name="Nouveau membre avec ce badge")).to_be_visible()
        expect(page.locator("main")).to_contain_text(ZOE)
        page.get_by_label("Nom complet").fill("Zoé Lambert")
        page.get_by_label("E-mail (facultatif)").fill("zoe@example.org")
        page.get_by_label("Formation à enregistrer (facultatif)").select_option(
            label="Laser cutter")
        _shot(page, "parcours-2-nouveau-membre")
        page.get_by_role("button", name="Créer le membre avec ce badge").click()
        expect(page.locator(".flash.success")).to_contain_text(
            f"Zoé Lambert est maintenant membre, avec le badge {ZOE}.")
        expect(page.get_by_role("heading", name="Zoé Lambert")).to_be_visible()
        member_url = page.url
        trainings = page.get_by_role("row").filter(has_text="Laser cutter")
        expect(trainings.first).to_contain_text("Valable")

        # she taps: a session starts, and ends when she taps again
        acl.wait(lambda a: ZOE in uids(a))
        _wait_node_has_list(stack)
        _tap(proc)
        _wait(lambda: [d for d in _events(app, "session.started") if d.get("uid") == ZOE],
              "her session to start")
        page.goto(base + "/")
        card = page.locator("#machines .card").filter(has_text="Laser cutter")
        expect(card).to_contain_text("Zoé Lambert")
        time.sleep(1.0)
        _tap(proc)
        _wait(lambda: _events(app, "session.ended"), "her session to end")
        page.goto(member_url)
        sessions = page.locator("table").filter(has_text="Début")
        expect(sessions).to_contain_text("Laser cutter")
        expect(sessions).not_to_contain_text("en cours")

        # the manager revokes the training, with a reason
        page.get_by_role("row").filter(has_text="Laser cutter").filter(
            has_text="Valable").get_by_role("link", name="Révoquer").click()
        expect(page.get_by_role("heading", name="Révoquer une formation")).to_be_visible()
        page.get_by_label("Motif").fill("usage dangereux")
        _shot(page, "parcours-3-retirer-formation")
        page.get_by_role("button", name="Révoquer").click()
        expect(page.locator(".flash.success")).to_be_visible()
        acl.wait(lambda a: ZOE not in uids(a))
        _wait_node_has_list(stack)

        # she taps again: refused, and her page says why, with the date
        before = len([d for d in _events(app, "badge.denied") if d.get("uid") == ZOE])
        _tap(proc)
        _wait(lambda: len([d for d in _events(app, "badge.denied")
                           if d.get("uid") == ZOE]) > before, "the second refusal")
        page.goto(member_url)
        refusals = page.locator("ul.refusals")
        today = _today_fr()
        expect(refusals).to_contain_text(
            f"Refusé sur Laser cutter le {today}\u00a0: formation retirée le {today}"
            " (usage dangereux)")
        expect(page.get_by_role("row").filter(has_text="Laser cutter").first).to_contain_text(
            "Révoquée\u00a0: usage dangereux")
        _shot(page, "parcours-4-membre-refus")

        # the manager locks the laser with a reason: the dashboard says so
        page.get_by_role("link", name="Machines").first.click()
        page.get_by_role("link", name="Laser cutter", exact=True).click()
        page.get_by_label("Raison (visible des responsables)").fill("lentille à nettoyer")
        page.get_by_role("button", name="Verrouiller la machine").click()
        expect(page.get_by_role("button", name="Déverrouiller la machine")).to_be_visible()
        expect(page.locator("main")).to_contain_text("lentille à nettoyer")
        _shot(page, "parcours-5-machine-verrouillee")
        acl.wait(lambda a: a["locked"] is True)
        page.goto(base + "/")
        card = page.locator("#machines .card").filter(has_text="Laser cutter")
        expect(card.locator(".state")).to_have_text("Verrouillée — lentille à nettoyer")
        _shot(page, "parcours-6-tableau-de-bord")
    finally:
        kit.stop_node(proc)
    page.context.close()

    # GDPR (admins only): the export downloads as JSON, the erasure takes the typed name
    page = _page(browser)
    _login(page, base, "admin@example.org")
    page.goto(member_url)
    page.get_by_role("link", name="Données personnelles (RGPD)").click()
    expect(page.get_by_role("heading", name="Données personnelles de Zoé Lambert")).to_be_visible()
    _shot(page, "parcours-7-rgpd")
    with page.expect_download() as dl:
        page.get_by_role("button", name="Tout télécharger (JSON)").click()
    data = json.loads(Path(dl.value.path()).read_text(encoding="utf-8"))
    assert ZOE in json.dumps(data, ensure_ascii=False)
    assert "Zoé Lambert" in json.dumps(data, ensure_ascii=False)
    assert data["sessions"] and data["refusals"]
    page.get_by_label("Pour confirmer, tapez le nom complet ou le numéro du membre").fill(
        "Zoé Lambert")
    page.get_by_role("button", name="Effacer définitivement").click()
    expect(page.locator(".flash.success")).to_contain_text("effacées")
    heading = page.locator("h1")
    expect(heading).to_contain_text("Membre n°")
    expect(heading).to_contain_text("Effacé")
    expect(heading).not_to_contain_text("Zoé")
    expect(page.locator("main")).not_to_contain_text(ZOE)
    expect(page.locator("main")).not_to_contain_text("zoe@example.org")
    _shot(page, "parcours-8-membre-efface")
    page.context.close()
    assert seed.laser  # the seed's laser was the machine walked on
