"""Rules that used to live in the views, now in services: the same answer everywhere.

- a login's e-mail changed to one another login uses is a form error, not an error page;
- retiring a maintenance task and renaming a group write their audit rows;
- the web sessions page lists the sessions *overlapping* the range, as the API does;
- a manager's members list shows e-mails only of members homed at the manager's sites, and a
  search by a hidden e-mail finds nobody.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from server import services
from server.app import get_db
from server.models import AuditLog, UsageSession, User


def _actions(app: Any, email: str) -> Any:
    seedmod = sys.modules["fabpass_web_seed"]
    a = seedmod.Actions(app.test_client())
    assert a.login(email).status_code == 302
    return a


def _audit(app: Any, action: str) -> list[AuditLog]:
    with app.app_context():
        return list(get_db().scalars(select(AuditLog).where(AuditLog.action == action)))


def test_login_email_in_use_is_a_form_error(app: Any, seed: Any) -> None:
    admin = _actions(app, "admin@example.org")
    r = admin.post(f"/users/{seed.manager_user}", {"email": "ADMIN@example.org",
                   "role": "manager", "sites": [str(seed.lab)], "member": "", "active": "y"},
                   page="/users")
    assert r.status_code == 400
    assert "Another login already uses this email." in r.get_data(as_text=True)
    with app.app_context():
        assert get_db().get(User, seed.manager_user).email == "manager@example.org"
    # the same form with a free address saves, audited
    r = admin.post(f"/users/{seed.manager_user}", {"email": "boss@example.org",
                   "role": "manager", "sites": [str(seed.lab)], "member": "", "active": "y"},
                   page="/users")
    assert r.status_code == 302
    assert any(row.details.get("email") == "boss@example.org"
               for row in _audit(app, "user.update"))


def test_retiring_a_task_and_renaming_a_group_are_audited(app: Any, seed: Any) -> None:
    with app.app_context():
        db = get_db()
        task = services.maintenance.create_task(db, seed.laser, "Clean the lenses", 10.0)
        db.commit()
        task_id = task.id
    admin = _actions(app, "admin@example.org")
    page = f"/reports/machines/{seed.laser}"
    r = admin.post(f"/reports/machines/{seed.laser}/tasks/{task_id}/retire", {}, page=page)
    assert r.status_code == 302
    rows = _audit(app, "maintenance.task_retire")
    assert [(row.entity_id, row.details["task_id"]) for row in rows] == [(str(seed.laser),
                                                                         task_id)]
    r = admin.post(f"/groups/{seed.group}", {"slug": "all-lasers", "name": "Every laser",
                                             "machines": [str(seed.laser)]},
                   page=f"/groups/{seed.group}")
    assert r.status_code == 302
    rows = _audit(app, "group.update")
    assert rows and rows[-1].details["slug"] == "all-lasers"
    assert rows[-1].details["was"] == {"slug": "lasers", "name": "All laser cutters"}


def test_web_sessions_page_lists_sessions_overlapping_the_range(app: Any, seed: Any) -> None:
    with app.app_context():
        db = get_db()
        db.add(UsageSession(session_uuid="33333333-3333-4333-8333-333333333333",
                            machine_id=seed.laser, member_id=seed.alice, badge_uid="04A1B2C3",
                            started_at=datetime(2026, 11, 19, 23, 0, tzinfo=UTC),
                            ended_at=datetime(2026, 11, 20, 1, 0, tzinfo=UTC),
                            duration_s=7200, active_s=3600, end_reason="badge_out"))
        db.commit()
    mgr = _actions(app, "manager@example.org")
    html = mgr.client.get("/sessions?since=2026-11-20&until=2026-11-20").get_data(as_text=True)
    assert "Alice Martin" in html.split("<tbody>", 1)[1]  # started the day before, overlaps
    html = mgr.client.get("/sessions?since=2026-11-21&until=2026-11-22").get_data(as_text=True)
    assert "Alice Martin" not in html.split("<tbody>", 1)[1]
    # the API answers the same for the same range
    api = app.test_client()
    r = api.get("/api/v1/sessions?since=2026-11-20T00:00:00Z&until=2026-11-21T00:00:00Z",
                headers={"Authorization": f"Bearer {seed.manager_token}"})
    assert [s["session"] for s in r.get_json()["items"]] == [
        "33333333-3333-4333-8333-333333333333"]


def test_members_list_hides_contact_of_other_sites(app: Any, seed: Any) -> None:
    with app.app_context():
        db = get_db()
        services.update_member(db, seed.bob, email="bob@other.example", actor="test")
        db.commit()
    mgr = _actions(app, "manager@example.org")
    html = mgr.client.get("/members").get_data(as_text=True)
    assert "Bob Durand" in html and "bob@other.example" not in html
    assert "alice@example.org" in html
    assert "bob@other.example" not in mgr.client.get(f"/members/{seed.bob}").get_data(
        as_text=True)
    html = mgr.client.get("/members?q=bob@other").get_data(as_text=True)
    assert "Bob Durand" not in html.split("<tbody>", 1)[1]
    admin = _actions(app, "admin@example.org")
    assert "bob@other.example" in admin.client.get("/members").get_data(as_text=True)
    assert "Bob Durand" in admin.client.get("/members?q=bob@other").get_data(as_text=True)
