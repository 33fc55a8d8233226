"""Admin pages: a manager's sites decide what they may change; sites and machines are added."""

from __future__ import annotations

import sys
from typing import Any

from sqlalchemy import select

from server.app import get_db
from server.models import Machine, Site, User


def test_manager_sites_are_set_by_the_admin(app: Any, seed: Any, client: Any) -> None:
    seedmod = sys.modules["fabpass_web_seed"]
    Actions, PASSWORD = seedmod.Actions, seedmod.PASSWORD  # noqa: N806
    admin_c = app.test_client()
    mgr_c = app.test_client()
    admin, mgr = Actions(admin_c), Actions(mgr_c)
    admin.login("admin@example.org")
    mgr.login("manager@example.org")
    assert mgr.post(f"/machines/{seed.printer}/lock", {"reason": "x"}).status_code == 403
    r = admin.post(f"/users/{seed.manager_user}", {"email": "manager@example.org",
                   "role": "manager", "sites": [str(seed.lab), str(seed.other)], "member": "",
                   "active": "y"}, page="/users")
    assert r.status_code == 302
    assert mgr.post(f"/machines/{seed.printer}/lock", {"reason": "x"}).status_code == 302
    with app.app_context():
        assert get_db().get(Machine, seed.printer).locked is True
    # an admin cannot lock themselves out
    with app.app_context():
        admin_id = get_db().scalar(select(User.id).where(User.email == "admin@example.org"))
    r = admin.post(f"/users/{admin_id}", {"email": "admin@example.org", "role": "manager",
                                          "member": ""}, page="/users")
    assert r.status_code == 400 and "your own admin access" in r.get_data(as_text=True)
    # a new trainer login with a password, then it logs in
    r = admin.post("/users/new", {"email": "t2@example.org", "password": "short", "role": "trainer",
                                  "member": str(seed.tom)}, page="/users")
    assert r.status_code == 400
    r = admin.post("/users/new", {"email": "t2@example.org", "password": PASSWORD,
                                  "role": "trainer", "member": str(seed.tom)}, page="/users")
    assert r.status_code == 302
    t2 = Actions(app.test_client())
    assert t2.login("t2@example.org").status_code == 302
    r = admin.post("/users/new", {"email": "t2@example.org", "password": PASSWORD,
                                  "role": "trainer", "member": ""}, page="/users")
    assert r.status_code == 400 and "already uses this email" in r.get_data(as_text=True)


def test_sites_and_machines(app: Any, seed: Any, actions: Any) -> None:
    actions.login("admin@example.org")
    r = actions.post("/sites", {"slug": "amiens", "name": "Amiens", "timezone": "Mars/Olympus"})
    assert r.status_code == 400 and "Unknown time zone" in r.get_data(as_text=True)
    r = actions.post("/sites", {"slug": "lab", "name": "Again", "timezone": "UTC"})
    assert r.status_code == 400 and "already used" in r.get_data(as_text=True)
    assert actions.post("/sites", {"slug": "amiens", "name": "Amiens",
                                   "timezone": "Europe/Paris"}).status_code == 302
    r = actions.post("/machines/new", {"name": "Router", "slug": "cnc-1", "site": "amiens",
                                       "kind": "cnc", "node": "laser-1"})
    assert r.status_code == 400 and "drives another machine" in r.get_data(as_text=True)
    r = actions.post("/machines/new", {"name": "Router", "slug": "cnc-1", "site": "amiens",
                                       "kind": "cnc", "node": "cnc-node",
                                       "requires_authorization": "y"})
    assert r.status_code == 302
    with app.app_context():
        db = get_db()
        m = db.scalar(select(Machine).where(Machine.slug == "cnc-1"))
        assert m is not None and m.node is not None and m.node.slug == "cnc-node"
        assert m.site_id == db.scalar(select(Site.id).where(Site.slug == "amiens"))
        assert m.requires_authorization is True


def test_my_page_shows_a_trainers_trainings_and_hours(app: Any, seed: Any, actions: Any) -> None:
    from datetime import UTC, datetime, timedelta

    from server.models import UsageSession

    with app.app_context():
        db = get_db()
        t0 = datetime.now(UTC) - timedelta(days=2)
        db.add(UsageSession(session_uuid="66666666-6666-4666-8666-666666666666",
                            machine_id=seed.laser, member_id=seed.tom, badge_uid="04FFEE01",
                            started_at=t0, ended_at=t0 + timedelta(hours=2), duration_s=7200,
                            active_s=3600, end_reason="badge_out"))
        db.commit()
    actions.login("trainer@example.org")
    html = actions.client.get("/me").get_data(as_text=True)
    assert "Tom Trainer" in html and "Laser cutter" in html and "Trainer" in html
    assert "<td>1</td><td>2.0</td>" in html  # one session, two hours
    actions.client.post("/logout", data={"csrf_token": actions.token("/")})
    actions.login("admin@example.org")
    assert "not linked to a member" in actions.client.get("/me").get_data(as_text=True)
