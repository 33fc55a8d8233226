"""Who may report on what: an admin on any site or the whole consortium, a manager on their own
sites only (403 for another site or the consortium), trainers on nothing.

Data: tests/reports/conftest.py (sites paris and hq; laser-1 and printer-1 at paris, cnc-1 at
hq) plus one denied attempt at hq and a member without a site, added here.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from server.models import Event, Machine, Member, Site, User, UserRole
from server.security import hash_password
from tests.reports.conftest import CSRF_RE, PASSWORD, PERIOD, T, login

SITE_PAGES = ["/reports/", "/reports/denied", "/reports/funder"]


@pytest.fixture(scope="module")
def app(module_db_url: str, module_db: Session, module_data: dict[str, Any]) -> Iterator[Flask]:
    from server.app import create_app

    db = module_db
    paris = db.query(Site).filter_by(slug="paris").one()
    hq = db.query(Site).filter_by(slug="hq").one()
    pw = hash_password(PASSWORD)
    db.add_all([
        User(email="admin@example.org", password_hash=pw, role=UserRole.admin),
        User(email="paris@example.org", password_hash=pw, role=UserRole.manager, sites=[paris]),
        User(email="both@example.org", password_hash=pw, role=UserRole.manager,
             sites=[paris, hq]),
        User(email="nosite@example.org", password_hash=pw, role=UserRole.manager),
        User(email="trainer@example.org", password_hash=pw, role=UserRole.trainer),
    ])
    cnc = db.query(Machine).filter_by(slug="cnc-1").one()
    db.add(Event(event_id="00000000-0000-4000-8000-000000000100", node_id=cnc.node_id,
                 node_slug="node-cnc", type="badge.denied", ts=T("2026-11-10T10:00:00Z"),
                 boot="b", seq=100, data={"uid": "04FFFFFF", "reason": "expired"}))
    db.add(Member(name="Shared Sam", site_id=None))
    db.commit()
    app = create_app({"TESTING": True, "DATABASE_URL": module_db_url, "TIMEZONE": "Europe/Paris"})
    yield app
    app.extensions["fabpass.engine"].dispose()


def picker(html: str) -> list[tuple[str, str, bool]]:
    """The site picker's options: (value, label, selected)."""
    m = re.search(r'<select id="site" name="site">(.*?)</select>', html, re.S)
    assert m, "no site picker"
    return [(v, label, bool(sel)) for v, sel, label in
            re.findall(r'<option value="([^"]*)"( selected)?>([^<]*)</option>', m.group(1))]


def csv_lines(client: FlaskClient, url: str) -> list[str]:
    res = client.get(url)
    assert res.status_code == 200, (url, res.status_code)
    assert res.mimetype == "text/csv"
    return res.get_data(as_text=True).splitlines()


def test_manager_cannot_read_another_site_or_the_consortium(app: Flask) -> None:
    client = login(app, "paris@example.org")
    for page in SITE_PAGES:
        for query in ("site=hq", "site=", "site=nowhere"):
            for fmt in ("", "&format=csv"):
                url = f"{page}?{PERIOD}&{query}{fmt}"
                assert client.get(url).status_code == 403, url
        assert client.get(f"{page}?{PERIOD}&site=paris").status_code == 200, page
        assert client.get(f"{page}?{PERIOD}&site=paris&format=csv").status_code == 200, page


def test_manager_default_is_their_first_site(app: Flask) -> None:
    client = login(app, "paris@example.org")
    # no `site`: paris only (cnc-1 is at hq), pages and CSV alike
    assert csv_lines(client, f"/reports/?{PERIOD}&group_by=machine&format=csv") == [
        "machine,sessions,hours,active_hours,members,kwh",
        "laser-1,3,4.0,1.8333,3,0.0", "printer-1,2,2.9444,2.6667,2,0.0"]
    assert csv_lines(client, f"/reports/denied?{PERIOD}&group_by=site&format=csv") == [
        "site,denied", "paris,4"]
    funder = client.get(f"/reports/funder?{PERIOD}").get_data(as_text=True)
    assert "Activity report — Paris" in funder  # the name, not the slug
    assert "summary,sessions,sessions,5" in csv_lines(client, f"/reports/funder?{PERIOD}&format=csv")
    # a manager of two sites: both offered, the first by name (HQ) by default
    both = login(app, "both@example.org")
    assert picker(both.get(f"/reports/?{PERIOD}").get_data(as_text=True)) == [
        ("hq", "HQ", True), ("paris", "Paris", False)]
    assert csv_lines(both, f"/reports/?{PERIOD}&group_by=machine&format=csv")[1:] == [
        "cnc-1,1,1.0,0.0,1,0.0"]
    assert csv_lines(both, f"/reports/denied?{PERIOD}&site=paris&group_by=site&format=csv") == [
        "site,denied", "paris,4"]
    assert both.get(f"/reports/funder?{PERIOD}&site=").status_code == 403


def test_picker_lists_only_the_managers_sites(app: Flask) -> None:
    client = login(app, "paris@example.org")
    for page in SITE_PAGES:
        html = client.get(f"{page}?{PERIOD}").get_data(as_text=True)
        assert picker(html) == [("paris", "Paris", True)], page
        assert "All sites" not in html, page
    admin = login(app, "admin@example.org")
    for page in SITE_PAGES:
        html = admin.get(f"{page}?{PERIOD}").get_data(as_text=True)
        assert picker(html) == [("", "All sites", True), ("hq", "HQ", False),
                                ("paris", "Paris", False)], page
        html = admin.get(f"{page}?{PERIOD}&site=hq").get_data(as_text=True)
        assert ("hq", "HQ", True) in picker(html), page


def test_admin_reads_any_site_and_the_consortium(app: Flask) -> None:
    admin = login(app, "admin@example.org")
    everything = ["machine,sessions,hours,active_hours,members,kwh", "cnc-1,1,1.0,0.0,1,0.0",
                  "laser-1,3,4.0,1.8333,3,0.0", "printer-1,2,2.9444,2.6667,2,0.0"]
    assert csv_lines(admin, f"/reports/?{PERIOD}&group_by=machine&format=csv") == everything
    assert csv_lines(admin, f"/reports/?{PERIOD}&site=&group_by=machine&format=csv") == everything
    assert csv_lines(admin, f"/reports/?{PERIOD}&site=hq&group_by=machine&format=csv")[1:] == [
        "cnc-1,1,1.0,0.0,1,0.0"]
    assert csv_lines(admin, f"/reports/denied?{PERIOD}&group_by=site&format=csv") == [
        "site,denied", "hq,1", "paris,4"]
    assert csv_lines(admin, f"/reports/denied?{PERIOD}&site=hq&group_by=site&format=csv") == [
        "site,denied", "hq,1"]
    assert "Activity report — all sites" in admin.get(f"/reports/funder?{PERIOD}").get_data(
        as_text=True)
    assert "Activity report — HQ" in admin.get(f"/reports/funder?{PERIOD}&site=hq").get_data(
        as_text=True)
    assert admin.get(f"/reports/funder?{PERIOD}&site=hq&format=csv").status_code == 200


def test_member_statements(app: Flask, module_db: Session, data: dict[str, Any]) -> None:
    sam = module_db.query(Member).filter_by(name="Shared Sam").one().id
    client = login(app, "paris@example.org")
    for member in (data["alice"], sam):  # their site's members, and shared ones
        assert client.get(f"/reports/members/{member}/statement?{PERIOD}").status_code == 200
    for suffix in ("", "&format=csv"):
        url = f"/reports/members/{data['carol']}/statement?{PERIOD}{suffix}"
        assert client.get(url).status_code == 403  # carol is at hq
        assert login(app, "admin@example.org").get(url).status_code == 200
    # grouped by member, paris usage lists carol (she used the paris laser) without a link
    html = client.get(f"/reports/?{PERIOD}&group_by=member").get_data(as_text=True)
    assert f'/reports/members/{data["alice"]}/statement' in html
    assert "Carol" in html and f'/reports/members/{data["carol"]}/statement' not in html


def test_machine_pages_and_maintenance(app: Flask, data: dict[str, Any]) -> None:
    client = login(app, "paris@example.org")
    assert client.get(f"/reports/machines/{data['laser']}").status_code == 200
    cnc = f"/reports/machines/{data['cnc']}"
    assert client.get(cnc).status_code == 403
    assert client.get(f"{cnc}?format=csv").status_code == 403
    token = CSRF_RE.search(client.get(f"/reports/machines/{data['laser']}").get_data(as_text=True))
    assert token
    for action in ("tasks", "log", "lock"):
        res = client.post(f"{cnc}/{action}", data={"name": "x", "interval": "1",
                                                   "csrf_token": token.group(1)})
        assert res.status_code == 403, action
    html = client.get("/reports/maintenance").get_data(as_text=True)
    assert f"/reports/machines/{data['laser']}" in html and f"/reports/machines/{data['cnc']}" not in html
    admin = login(app, "admin@example.org")
    assert admin.get(cnc).status_code == 200
    assert f"/reports/machines/{data['cnc']}" in admin.get("/reports/maintenance").get_data(
        as_text=True)
    # another site's machine page is refused (contract section 6), so its hours box and the
    # link to the maintenance page are shown only to those who may open both
    assert client.get(f"/machines/{data['cnc']}").status_code == 403
    page = client.get(f"/machines/{data['laser']}").get_data(as_text=True)
    assert 'id="machine-hours"' in page and f'href="/reports/machines/{data["laser"]}"' in page
    page = admin.get(f"/machines/{data['cnc']}").get_data(as_text=True)
    assert f'href="{cnc}"' in page


def test_manager_without_a_site_and_trainer(app: Flask, data: dict[str, Any]) -> None:
    nosite = login(app, "nosite@example.org")
    for page in SITE_PAGES:
        assert nosite.get(f"{page}?{PERIOD}").status_code == 403, page
    assert nosite.get("/reports/maintenance").status_code == 200
    trainer = login(app, "trainer@example.org")
    for url in [*SITE_PAGES, *(f"{p}?site=paris&format=csv" for p in SITE_PAGES),
                "/reports/maintenance", f"/reports/machines/{data['laser']}",
                f"/reports/members/{data['alice']}/statement"]:
        assert trainer.get(url).status_code == 403, url


def test_denied_page_groups_and_french(app: Flask) -> None:
    client = login(app, "paris@example.org")
    html = client.get(f"/reports/denied?{PERIOD}&group_by=week").get_data(as_text=True)
    assert '<option value="week" selected>Week</option>' in html
    assert "<td>2026-W45</td>" in html  # 3, 4 and 5 November (paris)
    fr = client.get(f"/reports/denied?{PERIOD}", headers={"Accept-Language": "fr"}).get_data(
        as_text=True)
    assert "Semaine" in fr and "ceux du site de la machine" in fr
