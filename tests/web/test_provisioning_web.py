"""Node provisioning downloads on the Nodes page (admin only) and maintenance on the dashboard."""

from __future__ import annotations

import io
import re
import zipfile
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from firmware_config.mosquitto import verify_password


def _audit(app: Flask, action: str) -> list[Any]:
    from server.app import get_db
    from server.models import AuditLog

    with app.app_context():
        return list(get_db().scalars(select(AuditLog).where(AuditLog.action == action)))


def _audit_total(app: Flask) -> int:
    from server.app import get_db
    from server.models import AuditLog

    with app.app_context():
        return int(get_db().scalar(select(func.count()).select_from(AuditLog)) or 0)


def _node_hash(app: Flask, slug: str) -> str | None:
    from server.app import get_db
    from server.models import Node

    with app.app_context():
        return get_db().scalar(select(Node.mqtt_password_hash).where(Node.slug == slug))


def test_config_download_is_an_attachment_without_password(app: Flask, actions: Any) -> None:
    actions.login("admin@example.org")
    page = actions.client.get("/nodes").get_data(as_text=True)
    assert 'href="/nodes/laser-1/config.toml"' in page
    before = _audit_total(app)
    r = actions.client.get("/nodes/laser-1/config.toml")
    assert r.status_code == 200
    assert r.headers["Content-Disposition"] == 'attachment; filename="laser-1.toml"'
    assert "no-store" in r.headers["Cache-Control"]
    text = r.get_data(as_text=True)
    assert 'node_id = "laser-1"' in text and 'site = "lab"' in text
    assert not re.search(r"^password\s*=", text, re.M)
    assert _audit_total(app) == before  # a GET changes nothing
    assert actions.client.get("/nodes/nope/config.toml").status_code == 404


def test_manager_sees_no_provisioning(actions: Any) -> None:
    actions.login("manager@example.org")
    page = actions.client.get("/nodes").get_data(as_text=True)
    assert "config.toml" not in page and "broker-files" not in page
    assert actions.client.get("/nodes/laser-1/config.toml").status_code == 403


def test_new_credentials_shown_once_and_audited(app: Flask, actions: Any) -> None:
    actions.login("admin@example.org")
    old = _node_hash(app, "laser-1")
    page = actions.client.get("/nodes").get_data(as_text=True)
    assert 'action="/nodes/laser-1/credentials"' in page and "data-confirm=" in page
    r = actions.post("/nodes/laser-1/credentials", page="/nodes")
    assert r.status_code == 200
    assert "no-store" in r.headers["Cache-Control"]
    html = r.get_data(as_text=True)
    m = re.search(r'password = &#34;([^&]+)&#34;', html)
    assert m, html[-2000:]
    password = m.group(1)
    new = _node_hash(app, "laser-1")
    assert new and new != old and verify_password(new, password)
    assert 'download="laser-1.toml"' in html and "data:application/toml" in html
    # one audit row, naming the admin who did it (not a generic "cli")
    rows = [r for r in _audit(app, "node.credentials") if r.details.get("rotated")]
    assert len(rows) == 1
    assert rows[0].actor.endswith("admin@example.org") and rows[0].entity_type == "node"
    # the next download of the config does not show it again
    text = actions.client.get("/nodes/laser-1/config.toml").get_data(as_text=True)
    assert password not in text


def test_new_credentials_need_csrf_and_admin(app: Flask, actions: Any) -> None:
    actions.login("admin@example.org")
    old = _node_hash(app, "laser-1")
    assert actions.client.post("/nodes/laser-1/credentials").status_code == 400
    assert _node_hash(app, "laser-1") == old
    actions.client.post("/logout", data={"csrf_token": actions.token("/")})
    actions.login("manager@example.org")
    assert actions.post("/nodes/laser-1/credentials").status_code == 403
    assert _node_hash(app, "laser-1") == old


def test_new_credentials_for_a_node_without_machine(app: Flask, actions: Any, seed: Any) -> None:
    from server.app import get_db
    from server.models import Node

    with app.app_context():
        db = get_db()
        db.add(Node(slug="spare-1", site_id=seed.lab))
        db.commit()
    actions.login("admin@example.org")
    r = actions.post("/nodes/spare-1/credentials", page="/nodes")
    assert r.status_code == 302 and r.headers["Location"].endswith("/nodes")
    page = actions.client.get("/nodes").get_data(as_text=True)
    assert "No new credentials" in page and "drives no machine" in page
    assert [r for r in _audit(app, "node.credentials") if r.details.get("rotated")] == []


def test_broker_files_zip(app: Flask, actions: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    actions.login("admin@example.org")
    r = actions.post("/nodes/broker-files", page="/nodes")
    assert r.status_code == 302  # no server MQTT password known yet
    assert "cannot be made yet" in actions.client.get("/nodes").get_data(as_text=True)
    monkeypatch.setenv("FABPASS_MQTT_URL", "mqtt://fabpass-server:s3cret@127.0.0.1:1883")
    assert actions.post("/nodes/laser-1/credentials", page="/nodes").status_code == 200
    r = actions.post("/nodes/broker-files", page="/nodes")
    assert r.status_code == 200
    assert r.headers["Content-Disposition"] == 'attachment; filename="fabpass-broker.zip"'
    with zipfile.ZipFile(io.BytesIO(r.get_data())) as z:
        assert sorted(z.namelist()) == ["acl", "mosquitto.conf", "passwd"]
        passwd = z.read("passwd").decode()
        acl = z.read("acl").decode()
    assert "s3cret" not in passwd
    assert passwd.startswith("fabpass-server:") or "\nfabpass-server:" in passwd
    assert "laser-1:" in passwd and "laser-1" in acl
    assert actions.client.get("/nodes/broker-files").status_code == 405  # never a GET


def test_nodes_page_in_french(actions: Any) -> None:
    actions.post("/lang", {"lang": "fr"}, page="/login")
    actions.login("admin@example.org")
    page = actions.client.get("/nodes").get_data(as_text=True)
    assert "Télécharger la configuration" in page
    assert "Nouveaux identifiants" in page


# ---------------------------------------------------------------- maintenance on the dashboard


def _overdue_laser(app: Flask, seed: Any) -> None:
    from server.app import get_db
    from server.models import UsageSession
    from server.services import maintenance

    with app.app_context():
        db = get_db()
        t0 = datetime.now(UTC) - timedelta(hours=5)
        db.add(UsageSession(session_uuid="66666666-6666-4666-8666-666666666666",
                            machine_id=seed.laser, member_id=seed.alice, badge_uid="04A1B2C3",
                            started_at=t0, ended_at=t0 + timedelta(hours=3), duration_s=10800,
                            active_s=7200, end_reason="badge_out"))
        maintenance.create_task(db, seed.laser, "Clean the lenses", 1.0)  # 2 h > 1 h: overdue
        maintenance.create_task(db, seed.laser, "Tube check", 2.1)  # 0.1 h left: due
        maintenance.create_task(db, seed.laser, "Belts", 500.0)  # ok: not shown
        db.commit()


def test_dashboard_shows_due_maintenance(app: Flask, actions: Any, seed: Any) -> None:
    _overdue_laser(app, seed)
    actions.login("trainer@example.org")
    page = actions.client.get("/").get_data(as_text=True)
    assert "Maintenance overdue: Clean the lenses" in page
    assert "Maintenance due: Tube check" in page
    assert "Belts" not in page
    state = actions.client.get("/dashboard/state.json").get_json()
    by_id = {m["id"]: m for m in state["machines"]}
    assert by_id[seed.laser]["maintenance"] == [
        {"task": "Clean the lenses", "state": "overdue",
         "label": "Maintenance overdue: Clean the lenses"},
        {"task": "Tube check", "state": "due", "label": "Maintenance due: Tube check"},
    ]
    assert by_id[seed.printer]["maintenance"] == []
    # the trainer's machine page lists them too (no hours fragment: that is for managers)
    page = actions.client.get(f"/machines/{seed.laser}").get_data(as_text=True)
    assert 'id="machine-maintenance"' in page and "Maintenance overdue: Clean the lenses" in page
    assert 'id="machine-hours"' not in page


def test_dashboard_maintenance_in_french(app: Flask, actions: Any, seed: Any) -> None:
    _overdue_laser(app, seed)
    actions.post("/lang", {"lang": "fr"}, page="/login")
    actions.login("admin@example.org")
    state = actions.client.get("/dashboard/state.json").get_json()
    labels = [t["label"] for m in state["machines"] for t in m["maintenance"]]
    assert "Maintenance en retard : Clean the lenses" in labels


def test_machine_page_shows_hours_for_managers(app: Flask, actions: Any, seed: Any) -> None:
    _overdue_laser(app, seed)
    actions.login("manager@example.org")
    page = actions.client.get(f"/machines/{seed.laser}").get_data(as_text=True)
    assert 'id="machine-hours"' in page
    assert "Active hours in total: 2.0" in page
    assert "Clean the lenses" in page
    assert f'href="/reports/machines/{seed.laser}"' in page


def test_dashboard_maintenance_is_cached_but_follows_new_tasks_and_interventions(
        app: Flask, actions: Any, seed: Any) -> None:
    from server.app import get_db
    from server.models import UsageSession
    from server.services import maintenance

    def laser_due() -> list[str]:
        state = actions.client.get("/dashboard/state.json").get_json()
        return [t["task"] for m in state["machines"] if m["id"] == seed.laser
                for t in m["maintenance"]]

    app.config["DASHBOARD_STATES_TTL_S"] = 0  # this test is about the maintenance cache
    actions.login("admin@example.org")
    assert laser_due() == []
    with app.app_context():
        db = get_db()
        task = maintenance.create_task(db, seed.laser, "Clean the lenses", 1.0)
        task_id = task.id
        db.commit()
    assert laser_due() == []  # a new task is seen at once; no hours yet
    with app.app_context():
        db = get_db()
        t0 = datetime.now(UTC) - timedelta(hours=3)
        db.add(UsageSession(session_uuid="77777777-7777-4777-8777-777777777777",
                            machine_id=seed.laser, member_id=seed.alice, badge_uid="04A1B2C3",
                            started_at=t0, ended_at=t0 + timedelta(hours=2), duration_s=7200,
                            active_s=7200, end_reason="badge_out"))
        db.commit()
    assert laser_due() == []  # hours are picked up within the cache's lifetime, not at once
    app.config["DASHBOARD_MAINTENANCE_TTL_S"] = 0
    assert laser_due() == ["Clean the lenses"]
    app.config["DASHBOARD_MAINTENANCE_TTL_S"] = 3600
    assert laser_due() == ["Clean the lenses"]
    with app.app_context():
        db = get_db()
        maintenance.log_intervention(db, seed.laser, task_id, user_id=None, note="done")
        db.commit()
    assert laser_due() == []  # an intervention is seen at once


def test_dashboard_states_are_shared_for_a_second_and_follow_writes(
        app: Flask, actions: Any, seed: Any) -> None:
    """Many open dashboards share one computation per second; a change made through the
    app (a POST) shows at once, a change from elsewhere (the ingest) within the TTL."""
    from server.app import get_db
    from server.models import UsageSession

    def laser_state() -> str:
        state = actions.client.get("/dashboard/state.json").get_json()
        return next(m["state"] for m in state["machines"] if m["id"] == seed.laser)

    app.config["DASHBOARD_STATES_TTL_S"] = 3600
    actions.login("admin@example.org")
    before = laser_state()
    with app.app_context():
        db = get_db()
        db.add(UsageSession(session_uuid="88888888-8888-4888-8888-888888888888",
                            machine_id=seed.laser, member_id=seed.alice, badge_uid="04A1B2C3",
                            started_at=datetime.now(UTC)))
        db.commit()
    assert laser_state() == before  # served from the shared result
    actions.post(f"/machines/{seed.laser}/lock", page=f"/machines/{seed.laser}")
    assert laser_state() == "locked"  # a write through the app invalidates it
    app.config["DASHBOARD_STATES_TTL_S"] = 0
    with app.app_context():
        db = get_db()
        from server.models import Machine

        db.get(Machine, seed.laser).locked = False  # type: ignore[union-attr]
        db.commit()
    assert laser_state() in ("in_use", "offline")  # recomputed: the open session counts
