"""Headless Chromium, in French, against a real server, a real Mosquitto, the server's MQTT core
(real ingest) and a simulated node (`fabpass node --simulate`): while Alice's session runs on the
laser, the trainer's member asks "Prévenez-moi quand elle est libre" on the machine page (the
dashboard card offers it too, only while the laser is in use); Alice badges out, the ingest
stores the end, and one mail arrives at a real SMTP server (aiosmtpd), in French (issue 20)."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # the browser fixtures (importlib mode)
import browser_kit as kit  # noqa: E402
import test_browser as tb  # noqa: E402

stack = tb.stack  # the same module-scoped fixture, a stack of our own; `browser` is conftest's

pytestmark = [pytest.mark.browser, pytest.mark.broker]
ALICE = "04A1B2C3"
FREE_FR = "Prévenez-moi quand elle est libre"

_spec = importlib.util.spec_from_file_location(
    "fabpass_smtp_receiver", Path(__file__).parents[1] / "smtp_receiver.py")
assert _spec is not None and _spec.loader is not None
smtp_receiver = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(smtp_receiver)


def _give_tom_an_address(app: Any, seed: Any) -> None:
    from server.app import get_db
    from server.models import Member

    with app.app_context():
        db = get_db()
        tom = db.get(Member, seed.tom)
        assert tom is not None
        tom.email = "tom@example.org"
        db.commit()


def test_when_free_mail_in_french(stack: dict[str, Any], browser: Any,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from playwright.sync_api import expect

    from server.services import mail, notifications

    base, seed, acl, app = stack["url"], stack["seed"], stack["acl"], stack["app"]
    monkeypatch.delenv("FABPASS_DEFAULT_LANGUAGE", raising=False)  # French first
    # links in mails the ingest writes (FABPASS_PUBLIC_URL, read at import)
    monkeypatch.setattr(notifications, "PUBLIC_URL", [base])
    _give_tom_an_address(app, seed)
    smtp = smtp_receiver.SmtpReceiver().start()
    acl.wait(lambda a: ALICE in kit.uids(a))
    page = kit.new_page(browser, "fr-FR", {"width": 1280, "height": 900})
    proc = kit.start_sim_node(stack, "walk-laser-1")
    try:
        kit.login_fr(page, base, "trainer@example.org")
        card = page.locator("#machines .card").filter(has_text="Laser cutter")
        expect(card.get_by_role("button", name=FREE_FR)).to_be_hidden()  # free: nothing to wait for
        kit.wait_node_has_list(app)
        kit.tap(proc, ALICE)
        kit.wait_until(lambda: [d for d in kit.events(app, "session.started")
                          if d.get("uid") == ALICE], "Alice's session to start")
        # the live dashboard shows the button on the card once the laser is in use
        expect(card).to_contain_text("Alice Martin")
        expect(card.get_by_role("button", name=FREE_FR)).to_be_visible()

        page.goto(f"{base}/machines/{seed.laser}")
        expect(page.locator("#machine-state")).to_contain_text("Alice Martin")
        page.get_by_role("button", name=FREE_FR).click()
        page.wait_for_url(f"{base}/machines/{seed.laser}")
        expect(page.get_by_text("Vous recevrez un mail quand cette machine sera libre.")
               ).to_be_visible()

        sessions = app.extensions["fabpass.sessionmaker"]
        cfg = mail.parse_smtp_url(smtp.url)
        assert mail.send_due(sessions, cfg, "fabpass@example.org").sent == 0  # still running
        kit.tap(proc, ALICE)  # she badges out
        kit.wait_until(lambda: kit.events(app, "session.ended"), "Alice's session to end")
        kit.wait_until(lambda: mail.send_due(sessions, cfg, "fabpass@example.org").sent,
                 "the notice to be queued and sent")
        (msg,) = smtp.wait_for(1)
        assert msg["To"] == "tom@example.org"
        assert msg["Subject"] == "fabpass : Laser cutter est libre"
        text = smtp_receiver.text_of(msg)
        assert "Laser cutter est libre : la session en cours est terminée." in text
        assert re.search(re.escape(f"{base}/machines/{seed.laser}") + r"\b", text)
        assert f'href="{base}/machines/{seed.laser}"' in smtp_receiver.html_of(msg)

        page.goto(base + "/")  # free again: the card no longer offers it
        expect(card.get_by_role("button", name=FREE_FR)).to_be_hidden()
        # the request is spent: nothing more is sent
        assert mail.send_due(sessions, cfg, "fabpass@example.org").sent == 0
        assert len(smtp.messages) == 1
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.terminate()
        proc.wait(10)
        page.context.close()
        smtp.stop()
