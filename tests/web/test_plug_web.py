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
