""""Tell me when it is free" from the machine page and the dashboard card (issue 20): offered to
a login linked to a member while the machine is in use, in French, and it brings the member back
to the page the button was on."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from server.models import MachineWatch, UsageSession, User


def _laser_in_use(app: Flask, seed: Any) -> None:
    from server.app import get_db
    from server.models import Member

    app.config["DASHBOARD_STATES_TTL_S"] = 0
    with app.app_context():
        db = get_db()
        tom = db.get(Member, seed.tom)
        assert tom is not None
        tom.email = "tom@example.org"
        db.add(UsageSession(session_uuid=str(uuid.uuid4()), machine_id=seed.laser,
                            member_id=seed.alice, badge_uid="04A1B2C3",
                            started_at=datetime.now(UTC).replace(tzinfo=None)))
        db.commit()


def _card(page: str, machine_id: int) -> str:
    m = re.search(rf'<li class="card[^"]*" data-machine="{machine_id}">(.*?)</li>\s*(<li|</ul>)',
                  page, re.S)
    assert m is not None
    return m.group(1)


def test_machine_page_button_in_french(app: Flask, client: FlaskClient, actions: Any,
                                       seed: Any) -> None:
    _laser_in_use(app, seed)
    actions.login("trainer@example.org")
    client.post("/lang", data={"lang": "fr", "csrf_token": actions.token("/notifications")})
    page = client.get(f"/machines/{seed.laser}").get_data(as_text=True)
    assert 'id="watch-machine"' in page and "Prévenez-moi quand elle est libre" in page
    idle = client.get(f"/machines/{seed.printer}").get_data(as_text=True)
    assert 'id="watch-machine"' not in idle  # free already: nothing to wait for
    r = client.post("/notifications/watch", data={
        "machine_id": seed.laser, "next": f"/machines/{seed.laser}",
        "csrf_token": actions.token(f"/machines/{seed.laser}")})
    assert r.status_code == 302 and r.headers["Location"].endswith(f"/machines/{seed.laser}")
    from server.app import get_db

    with app.app_context():
        db = get_db()
        (w,) = db.scalars(select(MachineWatch))
        assert (w.member_id, w.machine_id, w.notified_at) == (seed.tom, seed.laser, None)
        # the FR/EN switch is kept on the login: mails to its member are in French
        assert db.scalar(select(User.locale).where(User.email == "trainer@example.org")) == "fr"
    after = client.get(f"/machines/{seed.laser}").get_data(as_text=True)
    assert "Vous recevrez un mail quand cette machine sera libre." in after


def test_dashboard_card_offers_it_only_while_in_use(app: Flask, client: FlaskClient,
                                                    actions: Any, seed: Any) -> None:
    _laser_in_use(app, seed)
    actions.login("trainer@example.org")
    page = client.get("/").get_data(as_text=True)
    laser, printer = _card(page, seed.laser), _card(page, seed.printer)
    assert '<div class="watch">' in laser and "Tell me when it is free" in laser
    assert '<div class="watch" hidden>' in printer
    r = client.post("/notifications/watch", data={
        "machine_id": seed.laser, "next": "/", "csrf_token": actions.token("/")})
    assert r.status_code == 302 and r.headers["Location"].endswith("/")


def test_no_button_without_a_member(app: Flask, client: FlaskClient, actions: Any,
                                    seed: Any) -> None:
    _laser_in_use(app, seed)
    actions.login("manager@example.org")
    assert 'id="watch-machine"' not in client.get(f"/machines/{seed.laser}").get_data(as_text=True)
    assert 'class="watch"' not in client.get("/").get_data(as_text=True)
    r = client.post("/notifications/watch", data={"machine_id": seed.laser,
                                                 "csrf_token": actions.token("/")})
    assert r.status_code == 400
