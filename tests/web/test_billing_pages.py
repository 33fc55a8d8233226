"""Paid-use pages through the Flask client: tariff form, top-up, waiver, statements (page and CSV),
monthly accounts, scope, and French labels."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from server.app import get_db
from server.models import UsageSession
from server.services import billing


def _session(app: Any, machine: int, member: int, minutes: float) -> None:
    start = datetime.now(UTC) + timedelta(seconds=1)
    with app.app_context():
        db = get_db()
        db.add(UsageSession(session_uuid=str(uuid.uuid4()), machine_id=machine, member_id=member,
                            badge_uid="04A1B2C3", started_at=start,
                            ended_at=start + timedelta(minutes=minutes), duration_s=minutes * 60,
                            active_s=minutes * 60, end_reason="badge_out"))
        db.commit()


def test_manager_sets_tariff_tops_up_and_reads_statement(app: Any, seed: Any,
                                                         actions: Any) -> None:
    actions.login("manager@example.org")
    page = f"/machines/{seed.laser}/tariff"
    r = actions.post(page, {"basis": "session", "per_minute": "0,50", "round_minutes": "10",
                            "session_fee": "1", "minimum": "", "min_balance": "2,00",
                            "categories": "student = 0,25"}, page=page)
    assert r.status_code == 302, r.get_data(as_text=True)
    with app.app_context():
        t = billing.current_tariff(get_db(), seed.laser)
        assert t is not None and t.spec == {
            "basis": "session", "per_minute_cents": 50, "round_minutes": 10, "session_cents": 100,
            "min_balance_cents": 200, "minimum_cents": 0,
            "categories": {"student": {"per_minute_cents": 25}}}
    r = actions.post(page, {"per_minute": "0,505", "round_minutes": "0"}, page=page)
    assert r.status_code == 400
    assert "machine-tariff" in actions.client.get(f"/machines/{seed.laser}").get_data(as_text=True)

    credit = f"/members/{seed.alice}/credit"
    r = actions.post(credit, {"amount": "20,00", "method": "cash", "reference": "R-1"}, page=credit)
    assert r.status_code == 302
    assert actions.post(credit, {"amount": "0", "method": "cash"}, page=credit).status_code == 400
    _session(app, seed.laser, seed.alice, 11)  # 20 min billed: 1.00 + 10.00
    html = actions.client.get(credit).get_data(as_text=True)
    assert "9.00" in html  # balance 20.00 - 11.00 (English UI)
    with app.app_context():
        charge = billing.list_charges(get_db(), member_id=seed.alice).items[0].id
    r = actions.post(f"/charges/{charge}/adjust", {"action": "adjust", "amount": "5",
                                                   "reason": "first time"}, page=credit)
    assert r.status_code == 302
    html = actions.client.get(f"/members/{seed.alice}/account").get_data(as_text=True)
    assert "first time" in html and "€15.00" in html  # closing balance
    csv = actions.client.get(f"/members/{seed.alice}/account?format=csv").get_data(as_text=True)
    assert "R-1" in csv and "15.00" in csv


def test_accounts_and_scope(app: Any, seed: Any, actions: Any) -> None:
    with app.app_context():
        db = get_db()
        billing.set_tariff(db, seed.laser, {"per_minute_cents": 10}, actor="test")
        billing.add_topup(db, seed.alice, 1000, "card", "CB-9", actor="test")
        db.commit()
    _session(app, seed.laser, seed.alice, 30)
    actions.login("manager@example.org")
    html = actions.client.get("/reports/accounting?site=lab").get_data(as_text=True)
    assert "€3.00" in html and "€10.00" in html and "€7.00" in html
    csv = actions.client.get("/reports/accounting?site=lab&format=csv").get_data(as_text=True)
    lines = csv.strip().splitlines()
    assert len(lines) == 1 + 3 + 1  # header, charge, top-up, balance, total
    assert actions.client.get("/reports/accounting?site=other").status_code == 403
    assert actions.client.get(f"/members/{seed.bob}/credit").status_code == 403
    assert actions.client.get(f"/machines/{seed.printer}/tariff").status_code == 403


def test_french_labels_and_my_page(app: Any, seed: Any, actions: Any) -> None:
    with app.app_context():
        db = get_db()
        billing.add_topup(db, seed.tom, 1250, "helloasso", None, actor="test")
        db.commit()
    actions.login("trainer@example.org")
    html = actions.client.get("/me", headers={"Accept-Language": "fr"}).get_data(as_text=True)
    assert "Mon crédit prépayé" in html and "12,50" in html
    html = actions.client.get("/me/account", headers={"Accept-Language": "fr"}).get_data(
        as_text=True)
    assert "Relevé" in html and "Solde de clôture" in html


def test_tariff_errors_are_shown_next_to_the_field(app: Any, seed: Any, actions: Any) -> None:
    actions.login("manager@example.org")
    page = f"/machines/{seed.laser}/tariff"
    r = actions.post(page, {"per_minute": "0,5", "round_minutes": "0"}, page=page)
    assert r.status_code == 400
    html = r.get_data(as_text=True)
    assert 'id="round_minutes-err"' in html
    r = actions.post(page, {"per_minute": "-1"}, page=page)
    assert r.status_code == 400 and 'id="per_minute-err"' in r.get_data(as_text=True)
    r = actions.post(page, {"valid_from": "2020-01-01"}, page=page)
    assert r.status_code == 400 and 'id="valid_from-err"' in r.get_data(as_text=True)
