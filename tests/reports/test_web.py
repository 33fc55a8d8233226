"""Report pages: access by role, numbers on the pages, CSV exports, maintenance forms."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from server.models import Machine, MaintenanceLog, User, UserRole
from server.security import hash_password
from tests.reports.conftest import CSRF_RE, PASSWORD, PERIOD, login


@pytest.fixture(scope="module")
def app(module_db_url: str, module_db: Session, module_data: dict[str, Any]) -> Iterator[Flask]:
    from server.app import create_app

    pw = hash_password(PASSWORD)
    for email, role in (("admin@example.org", UserRole.admin),
                        ("manager@example.org", UserRole.manager),
                        ("trainer@example.org", UserRole.trainer)):
        module_db.add(User(email=email, password_hash=pw, role=role))
    module_db.commit()
    app = create_app({"TESTING": True, "DATABASE_URL": module_db_url, "TIMEZONE": "Europe/Paris"})
    yield app
    app.extensions["fabpass.engine"].dispose()


def csrf(client: FlaskClient, path: str) -> str:
    m = CSRF_RE.search(client.get(path).get_data(as_text=True))
    assert m
    return m.group(1)


PAGES = ["/reports/", "/reports/denied", "/reports/maintenance", "/reports/funder"]


def test_access_by_role(app: Flask, data: dict[str, Any]) -> None:
    anon = app.test_client()
    pages = [*PAGES, f"/reports/machines/{data['laser']}",
             f"/reports/members/{data['alice']}/statement"]
    for page in pages:
        res = anon.get(page)
        assert res.status_code == 302 and "/login" in res.headers["Location"], page
    trainer = login(app, "trainer@example.org")
    for page in pages:
        assert trainer.get(page).status_code == 403, page
    admin = login(app, "admin@example.org")
    for page in pages:
        assert admin.get(page).status_code == 200, page
    # this manager has no site: nothing to report on (tests/reports/test_scoping.py), but the
    # maintenance list (empty for them)
    manager = login(app, "manager@example.org")
    for page in pages:
        assert manager.get(page).status_code == (200 if page == "/reports/maintenance" else 403), page
    assert login(app, "admin@example.org").get("/reports/machines/999999").status_code == 404


def test_usage_page_chart_table_and_csv(app: Flask, data: dict[str, Any]) -> None:
    client = login(app, "admin@example.org")
    html = client.get(f"/reports/?{PERIOD}&group_by=month").get_data(as_text=True)
    assert "<svg" in html and 'class="chart"' in html
    assert re.search(r"<td>2026-10</td>\s*<td class=\"num\">2</td><td class=\"num\">1.5</td>", html)
    assert "1 session still running is not counted yet." in html
    res = client.get(f"/reports/?{PERIOD}&group_by=machine&format=csv")
    assert res.mimetype == "text/csv"
    assert res.get_data(as_text=True).splitlines() == [
        "machine,sessions,hours,active_hours,members,kwh",
        "cnc-1,1,1.0,0.0,1,0.0", "laser-1,3,4.0,1.8333,3,0.0", "printer-1,2,2.9444,2.6667,2,0.0"]
    # server-side sort: most hours first
    html = client.get(f"/reports/?{PERIOD}&group_by=machine&sort=hours&dir=desc").get_data(
        as_text=True)
    assert html.index("laser-1") < html.index("printer-1") < html.index("cnc-1")
    assert 'aria-sort="descending"' in html


def test_denied_and_statement_pages(app: Flask, data: dict[str, Any]) -> None:
    client = login(app, "admin@example.org")
    res = client.get(f"/reports/denied?{PERIOD}&format=csv")
    assert res.get_data(as_text=True).splitlines() == [
        "reason,denied", "expired,1", "not_authorized,1", "unknown_badge,2"]
    html = client.get(f"/reports/members/{data['alice']}/statement?{PERIOD}").get_data(as_text=True)
    assert 'id="statement-total">22.00<' in html
    csv = client.get(f"/reports/members/{data['alice']}/statement?{PERIOD}&format=csv")
    assert csv.get_data(as_text=True).splitlines()[-1] == "total,,,,,,,22.0"


def test_funder_page_is_masked_and_printable(app: Flask, data: dict[str, Any]) -> None:
    client = login(app, "admin@example.org")
    html = client.get(f"/reports/funder?{PERIOD}").get_data(as_text=True)
    assert "&lt;5" in html and "window.print()" in html
    assert "reports/reports.css" in html
    css = client.get("/static/reports/reports.css").get_data(as_text=True)
    assert "@media print" in css
    lines = client.get(f"/reports/funder?{PERIOD}&format=csv").get_data(as_text=True).splitlines()
    assert lines[0] == "section,key,metric,value" and "summary,members,members,<5" in lines


def test_maintenance_forms(app: Flask, module_db: Session, data: dict[str, Any]) -> None:
    client = login(app, "admin@example.org")
    page = f"/reports/machines/{data['laser']}"
    res = client.post(f"{page}/tasks", data={"name": "Tube check", "interval": "1.5",
                                              "csrf_token": csrf(client, page)})
    assert res.status_code == 302
    html = client.get(page).get_data(as_text=True)
    assert "Tube check" in html and "Overdue" in html
    assert "Tube check" in client.get("/reports/maintenance").get_data(as_text=True)
    bad = client.post(f"{page}/tasks", data={"name": "x", "interval": "-2",
                                              "csrf_token": csrf(client, page)})
    assert bad.status_code == 302
    assert "Task not added" in client.get(page).get_data(as_text=True)
    # no CSRF token: refused
    assert client.post(f"{page}/log", data={"note": "x"}).status_code == 400
    task_id = re.search(r'<option value="(\d+)">Tube check', client.get(page).get_data(as_text=True))
    assert task_id
    client.post(f"{page}/log", data={"task_id": task_id.group(1), "note": "new tube", "lock": "1",
                                     "csrf_token": csrf(client, page)})
    module_db.expire_all()
    machine = module_db.get(Machine, data["laser"])
    assert machine is not None and machine.locked
    entry = module_db.query(MaintenanceLog).filter_by(note="new tube").one()
    assert entry.done_by_user_id is not None
    client.post(f"{page}/log", data={"task_id": task_id.group(1), "note": "aligned",
                                     "csrf_token": csrf(client, page)})
    module_db.expire_all()
    assert not module_db.get(Machine, data["laser"]).locked  # type: ignore[union-attr]
    csv = client.get(f"{page}?format=csv").get_data(as_text=True).splitlines()
    assert csv[0] == "done_at,task,active_hours_at,done_by_user_id,note" and len(csv) == 3


def test_machine_fragment_and_french(app: Flask, data: dict[str, Any]) -> None:
    from server.web.maintenance import machine_fragment

    with app.test_request_context("/"):
        html = str(machine_fragment(data["printer"]))
    assert 'id="machine-hours"' in html and "2.7" in html
    client = login(app, "admin@example.org")
    html = client.get("/reports/funder", headers={"Accept-Language": "fr"}).get_data(as_text=True)
    assert "Rapport d’activité" in html


def test_bad_period_is_a_message_not_an_error(app: Flask, data: dict[str, Any]) -> None:
    client = login(app, "admin@example.org")
    for query in ("from=0001-01-01&to=2026-12-31", "from=nonsense", "from=2026-12-31&to=2026-01-01",
                  "group_by=colour", "group_by=day&from=1970-01-01&to=2199-12-31"):
        res = client.get(f"/reports/?{query}")
        assert res.status_code == 200, query
    html = client.get("/reports/?from=nonsense").get_data(as_text=True)
    assert "not a date" in html
