"""Paid use end to end in French, in headless Chromium: a manager sets the laser's tariff with a
minimum credit, the simulated node (real Mosquitto, real ingest) refuses Alice `no_credit`, the
manager tops her up, she uses the laser, and her statement shows the charge and the balance."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # the browser fixtures (importlib mode)
import browser_kit as kit  # noqa: E402
import test_browser as tb  # noqa: E402

_page, _wait_node_has_list, _events, _wait = (tb._page, tb._wait_node_has_list, kit.events,
                                              kit.wait_until)
stack = tb.stack  # the same module-scoped fixture, a stack of our own; `browser` is conftest's

pytestmark = [pytest.mark.browser, pytest.mark.broker]
ALICE = "04A1B2C3"
SHOTS = Path(__file__).resolve().parents[2] / "build" / "screenshots"


def _alice(acl: dict[str, Any]) -> dict[str, Any] | None:
    return next((b for b in acl.get("badges", []) if b["uid"] == ALICE), None)


def _node(stack: dict[str, Any]) -> subprocess.Popen[str]:
    return kit.start_sim_node(stack, "paid-laser-1")


def _tap(proc: subprocess.Popen[str]) -> None:
    kit.tap(proc, ALICE)


def test_tariff_topup_session_statement_in_french(stack: dict[str, Any], browser: Any) -> None:
    from playwright.sync_api import expect

    base, seed, acl, app = stack["url"], stack["seed"], stack["acl"], stack["app"]
    SHOTS.mkdir(parents=True, exist_ok=True)
    acl.wait(lambda a: _alice(a) is not None)
    page = _page(browser, locale="fr-FR")
    kit.login_fr(page, base, "manager@example.org")

    # the tariff, from the machine's page: 0,50 € a minute, 1,00 € of credit needed to start
    page.goto(f"{base}/machines/{seed.laser}")
    page.locator("#machine-tariff").get_by_role("link", name="Tarif").click()
    page.get_by_label("Prix par minute").fill("0,50")
    page.get_by_label("Crédit nécessaire pour démarrer (facultatif)").fill("1,00")
    page.get_by_role("button", name="Enregistrer le tarif").click()
    expect(page.locator(".flash.success")).to_contain_text("Le nouveau tarif est enregistré")
    expect(page.locator("#tariff-versions")).to_contain_text("0,50")
    page.screenshot(path=str(SHOTS / "paid-1-tariff-fr.png"), full_page=True)
    listed = acl.wait(lambda a: (_alice(a) or {}).get("credit_ok") is False)

    proc = _node(stack)
    try:
        _wait_node_has_list(stack)
        _tap(proc)  # no credit yet: refused at the machine
        denied = _wait(lambda: [d for d in _events(app, "badge.denied")
                                if d["reason"] == "no_credit"], "a no_credit refusal")
        assert denied[0]["uid"] == ALICE

        # top-up from the member's page
        page.goto(f"{base}/members/{seed.alice}")
        page.locator("#member-credit").get_by_role("link", name="Crédit et consommations").click()
        page.get_by_label("Montant reçu").fill("10")
        page.get_by_label("Moyen de paiement").select_option(label="Espèces")
        page.get_by_label("Référence (reçu, transaction)").fill("REÇU-0042")
        page.get_by_role("button", name="Enregistrer le rechargement").click()
        expect(page.locator(".flash.success")).to_contain_text("10,00")
        expect(page.locator("#balance-amount")).to_have_text("10,00\u00a0€")
        acl.wait(lambda a: a["version"] > listed["version"] and _alice(a) is not None
                 and "credit_ok" not in (_alice(a) or {}))
        _wait_node_has_list(stack)

        _tap(proc)  # a session: started, then badged out a moment later
        _wait(lambda: _events(app, "session.started"), "the session to start")
        time.sleep(1.0)
        _tap(proc)
        _wait(lambda: _events(app, "session.ended"), "the session to end")
    finally:
        kit.stop_node(proc)

    # the statement: one charge of 0,50 € (one started minute), 10,00 € in, 9,50 € left
    page.goto(f"{base}/members/{seed.alice}/credit")
    page.get_by_role("link", name="Relevé").first.click()
    expect(page.get_by_role("heading", name="Relevé de Alice Martin")).to_be_visible()
    expect(page.locator("#statement-charges")).to_contain_text("Laser cutter")
    expect(page.locator("#statement-charges")).to_contain_text("0,50\u00a0€")
    expect(page.locator("#statement-topups")).to_contain_text("REÇU-0042")
    expect(page.locator("#closing")).to_have_text("9,50\u00a0€")
    page.screenshot(path=str(SHOTS / "paid-2-statement-fr.png"), full_page=True)
    page.emulate_media(media="print")
    page.screenshot(path=str(SHOTS / "paid-3-statement-print-fr.png"), full_page=True)
    page.emulate_media(media="screen")
    with page.expect_download() as dl:
        page.locator("#statement-csv").click()
    text = Path(dl.value.path()).read_text(encoding="utf-8-sig")
    lines = [line for line in text.splitlines() if line]
    assert len(lines) == 1 + 3 + 1  # heading, opening, top-up, charge, closing balance
    assert "REÇU-0042" in text and "-0.5" in text.replace(",", ".")
    assert lines[-1].replace(",", ".").rstrip(";").endswith("9.50")
    page.context.close()
