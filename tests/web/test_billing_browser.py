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
import test_browser as tb  # noqa: E402

PASSWORD, WAIT_S, _page, _wait_node_has_list = (tb.PASSWORD, tb.WAIT_S, tb._page,
                                                tb._wait_node_has_list)
stack, browser = tb.stack, tb.browser  # the same module-scoped fixtures, a stack of our own

pytestmark = [pytest.mark.browser, pytest.mark.broker]
ALICE = "04A1B2C3"
SHOTS = Path(__file__).resolve().parents[2] / "build" / "screenshots"


def _alice(acl: dict[str, Any]) -> dict[str, Any] | None:
    return next((b for b in acl.get("badges", []) if b["uid"] == ALICE), None)


def _events(app: Any, etype: str) -> list[dict[str, Any]]:
    from sqlalchemy import select

    from server.app import get_db
    from server.models import Event

    with app.app_context():
        return [e.data for e in get_db().scalars(select(Event).where(Event.type == etype))]


def _wait(pred: Any, what: str) -> Any:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _node(stack: dict[str, Any]) -> subprocess.Popen[str]:
    tmp = Path(stack["tmp"])
    cfg = tmp / "paid-laser-1.toml"
    cfg.write_text(
        'node_id = "laser-1"\nsite = "lab"\n\n[mqtt]\n'
        f'url = "{stack["broker"].url}"\n\n[reader]\ntype = "sim"\n\n'
        '[gpio]\nrelay = { pin = 17, active_high = true }\n\n'
        f'[storage]\ndir = "{tmp / "paid-laser-1-data"}"\n')
    fabpass = str(Path(sys.executable).with_name("fabpass"))
    return subprocess.Popen([fabpass, "node", "--config", str(cfg), "--simulate"],
                            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, text=True)


def _tap(proc: subprocess.Popen[str]) -> None:
    assert proc.stdin is not None
    proc.stdin.write(f"tap {ALICE}\n")
    proc.stdin.flush()


def test_tariff_topup_session_statement_in_french(stack: dict[str, Any], browser: Any) -> None:
    from playwright.sync_api import expect

    base, seed, acl, app = stack["url"], stack["seed"], stack["acl"], stack["app"]
    SHOTS.mkdir(parents=True, exist_ok=True)
    acl.wait(lambda a: _alice(a) is not None)
    page = _page(browser, locale="fr-FR")
    page.goto(base + "/login")
    page.get_by_label("E-mail").fill("manager@example.org")
    page.get_by_label("Mot de passe").fill(PASSWORD)
    page.get_by_role("button", name="Se connecter").click()
    expect(page.get_by_role("heading", name="Les machines en ce moment")).to_be_visible()

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
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)

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
