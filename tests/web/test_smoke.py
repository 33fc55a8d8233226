"""Every page renders for an admin, on SQLite and on PostgreSQL, with some data in it."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from typing import Any


def test_every_page_renders(db_url: str) -> None:
    from server.app import get_db
    from server.models import AuditLog, UsageSession

    seedmod = sys.modules["fabpass_web_seed"]
    app, seed = seedmod.make_app(db_url)
    with app.app_context():
        db = get_db()
        t0 = datetime.now(UTC) - timedelta(hours=3)
        db.add(UsageSession(session_uuid="44444444-4444-4444-8444-444444444444",
                            machine_id=seed.laser, member_id=seed.alice, badge_uid="04A1B2C3",
                            started_at=t0, ended_at=t0 + timedelta(minutes=90), duration_s=5400,
                            active_s=3000, end_reason="badge_out"))
        db.add(UsageSession(session_uuid="55555555-5555-4555-8555-555555555555",
                            machine_id=seed.laser, member_id=seed.alice, badge_uid="04A1B2C3",
                            started_at=datetime.now(UTC) - timedelta(minutes=5)))
        db.commit()
        audits = db.query(AuditLog).count()
    c = app.test_client()
    page = c.get("/login").get_data(as_text=True)
    import re

    token = re.search(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    assert c.post("/login", data={"email": "admin@example.org", "password": seedmod.PASSWORD,
                                  "csrf_token": token}).status_code == 302
    checks: dict[str, list[str]] = {
        "/": ["Alice Martin", "In use"],
        "/members?q=alice": ["Alice Martin"],
        "/members?q=04A1": ["Alice Martin"],
        f"/members/{seed.alice}": ["04A1B2C3", "Laser cutter", "1:30"],
        "/members/new": ["Full name"],
        "/badges/unknown": ["04DEAD01"],
        "/machines": ["Laser cutter", "All laser cutters"],
        f"/machines/{seed.laser}": ["Lock the machine", "Alice Martin"],
        f"/groups/{seed.group}": ["lasers"],
        "/authorizations": ["Bob Durand", "Tom Trainer"],
        f"/authorizations?machine_id={seed.laser}": ["Alice Martin"],
        "/authorizations/new": ["Record the training"],
        "/sessions?open=1": ["running"],
        f"/sessions?machine_id={seed.laser}&since=2020-01-01&until=2100-01-01": ["badged out"],
        "/audit?action=authorization.grant": ["granted the Laser cutter training to Alice Martin"],
        "/nodes": ["laser-1", "printer-1"],
    }
    for path, needles in checks.items():
        r = c.get(path)
        assert r.status_code == 200, (path, r.get_data(as_text=True)[-2000:])
        html = r.get_data(as_text=True)
        for n in needles:
            assert n in html, (path, n)
    state: Any = c.get("/dashboard/state.json").get_json()
    laser = next(m for m in state["machines"] if m["id"] == seed.laser)
    assert laser["state"] == "in_use" and laser["member"] == "Alice Martin" and laser["since"]
    with app.app_context():
        assert get_db().query(AuditLog).count() == audits
    app.extensions["fabpass.engine"].dispose()
