"""The dashboard and the machine page show a smart plug's live power, offline plug and a plug
found on without a session (issue 16), in English and French."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select


def _plug(app: Any, seed: Any, **fields: Any) -> None:
    from server.app import get_db
    from server.models import Machine, NodePlug

    with app.app_context():
        db = get_db()
        m = db.get(Machine, seed.laser)
        assert m is not None and m.node is not None
        m.node.online, m.node.state = True, "idle"
        db.merge(NodePlug(node_id=m.node.id, **fields))
        db.commit()


def test_dashboard_and_machine_page_show_the_plug(app: Any, seed: Any, actions: Any) -> None:
    _plug(app, seed, power_w=231.6, online=True, online_at=datetime.now(UTC))
    actions.login("admin@example.org")
    c = actions.client
    state = c.get("/dashboard/state.json").get_json()
    laser = next(m for m in state["machines"] if m["id"] == seed.laser)
    assert laser["power_w"] == 231.6 and laser["plug"] == "232 W now"
    printer = next(m for m in state["machines"] if m["id"] != seed.laser)
    assert printer["plug"] == ""  # a relay: no plug line
    assert "232 W now" in c.get("/").get_data(as_text=True)
    _plug(app, seed, power_w=0.0, online=False, unexpected_at=datetime.now(UTC),
          unexpected={"action": "switched_off"})
    app.extensions.pop("fabpass.web.machine_states", None)
    page = c.get(f"/machines/{seed.laser}").get_data(as_text=True)
    assert "Plug offline: new sessions refused" in page
    assert "Plug found on without a session (switched off)" in page
    actions.post("/lang", {"lang": "fr"}, page="/")
    app.extensions.pop("fabpass.web.machine_states", None)
    body = c.get("/").get_data(as_text=True)
    assert "Prise hors ligne : nouvelles sessions refusées" in body
    assert "Prise trouvée allumée sans session (éteinte)" in body
    assert "0 W en ce moment" in body


def test_node_offline_hides_stale_power(app: Any, seed: Any, actions: Any) -> None:
    from server.app import get_db
    from server.models import Node

    _plug(app, seed, power_w=120.0, online=True)
    with app.app_context():
        db = get_db()
        node = db.scalar(select(Node).where(Node.slug == "laser-1"))
        assert node is not None
        node.online = False
        db.commit()
    actions.login("admin@example.org")
    state = actions.client.get("/dashboard/state.json").get_json()
    laser = next(m for m in state["machines"] if m["id"] == seed.laser)
    assert laser["power_w"] is None and laser["plug"] == ""


def test_admin_sets_a_plug_on_the_nodes_page(app: Any, seed: Any, actions: Any,
                                             monkeypatch: Any) -> None:
    import io
    import zipfile

    from firmware_config.mosquitto import verify_password
    from server.app import get_db
    from server.models import NodeActuator

    actions.login("admin@example.org")
    page = actions.client.get("/nodes").get_data(as_text=True)
    assert 'action="/nodes/laser-1/plug"' in page
    r = actions.post("/nodes/laser-1/plug", {"plug": "shelly:shellyplug-web1"}, page="/nodes")
    assert r.status_code == 200 and "no-store" in r.headers["Cache-Control"]
    html = r.get_data(as_text=True)
    password = html.split('id="plug-password">', 1)[1].split("<", 1)[0]
    assert len(password) >= 16 and "[actuator]" in html
    with app.app_context():
        row = get_db().scalar(select(NodeActuator))
        assert row is not None and row.device == "shellyplug-web1"
        assert row.mqtt_password_hash and verify_password(row.mqtt_password_hash, password)
    assert 'value="shelly:shellyplug-web1"' in actions.client.get("/nodes").get_data(as_text=True)
    monkeypatch.setenv("FABPASS_MQTT_URL", "mqtt://fabpass-server:pw-for-tests@127.0.0.1:1883")
    z = actions.post("/nodes/broker-files", page="/nodes")
    files = zipfile.ZipFile(io.BytesIO(z.data))
    assert "user shellyplug-web1" in files.read("acl").decode()
    bad = actions.post("/nodes/laser-1/plug", {"plug": "shelly:a/b"}, page="/nodes")
    assert bad.status_code == 302
    assert "plain topic level" in actions.client.get("/nodes").get_data(as_text=True)


def test_manager_cannot_set_a_plug(actions: Any) -> None:
    actions.login("manager@example.org")
    r = actions.post("/nodes/laser-1/plug", {"plug": "shelly:x1"}, page="/")
    assert r.status_code == 403


def _denied(db: Any, node: Any, reason: str) -> None:
    """A `badge.denied` as the ingest stores it: the event and the server's explanation."""
    import uuid

    from server.models import Event
    from server.services import refusals

    now, eid = datetime.now(UTC), str(uuid.uuid4())
    data = {"uid": "04A1B2C3", "reason": reason}
    db.add(Event(event_id=eid, node_id=node.id, node_slug=node.slug, type="badge.denied",
                 ts=now, received_at=now, boot=str(uuid.uuid4()), seq=1, data=data))
    refusals.record(db, eid, node, data, now)
    db.commit()


def test_plug_refusals_in_french_on_dashboard_and_report(app: Any, seed: Any,
                                                         actions: Any) -> None:
    from server.app import get_db
    from server.models import Node

    with app.app_context():
        db = get_db()
        node = db.scalar(select(Node).where(Node.slug == "laser-1"))
        assert node is not None
        _denied(db, node, "actuator_failed")
    actions.login("admin@example.org")
    actions.post("/lang", {"lang": "fr"}, page="/")
    assert "la prise ne s’est pas allumée" in actions.client.get("/").get_data(as_text=True)
    with app.app_context():
        db = get_db()
        node = db.scalar(select(Node).where(Node.slug == "laser-1"))
        assert node is not None
        _denied(db, node, "actuator_offline")
    day = datetime.now(UTC).date()
    report = actions.client.get(f"/reports/denied?group_by=reason&from={day}&to={day}"
                                ).get_data(as_text=True)
    assert "la prise est hors ligne" in report and "la prise ne s’est pas allumée" in report
