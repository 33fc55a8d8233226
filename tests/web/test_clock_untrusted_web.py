"""Sessions the server placed from the receive time (`clock_untrusted`, issue 13) are flagged on
the sessions page (a translated marker with a tooltip) and in the sessions CSV (a column)."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Flask

from server.models import UsageSession

TRUSTED = "11111111-1111-4111-8111-111111111111"
UNTRUSTED = "22222222-2222-4222-8222-222222222222"


def _sessions(app: Flask, seed: Any) -> None:
    from server.app import get_db

    t0 = datetime.now(UTC) - timedelta(hours=5)
    with app.app_context():
        db = get_db()
        for n, (uid, flag) in enumerate(((TRUSTED, False), (UNTRUSTED, True))):
            db.add(UsageSession(session_uuid=uid, machine_id=seed.laser, member_id=seed.alice,
                                badge_uid="04A1B2C3", started_at=t0 + timedelta(hours=n),
                                ended_at=t0 + timedelta(hours=n, minutes=30), duration_s=1800,
                                active_s=900, end_reason="badge_out", clock_untrusted=flag))
        db.commit()


def test_sessions_page_flags_untrusted_clock(app: Flask, seed: Any, actions: Any) -> None:
    _sessions(app, seed)
    actions.login("admin@example.org")
    html = actions.client.get("/sessions").get_data(as_text=True)
    assert html.count('class="badge clock-untrusted"') == 1
    assert "Node clock off" in html and "placed from the time the server received it" in html
    fr = actions.client.get("/sessions", headers={"Accept-Language": "fr"}).get_data(as_text=True)
    assert fr.count('class="badge clock-untrusted"') == 1
    assert "Horloge du nœud fausse" in fr and "l’heure où le serveur l’a reçue" in fr
    assert "Node clock off" not in fr


def test_sessions_csv_has_a_clock_untrusted_column(app: Flask, seed: Any, actions: Any) -> None:
    _sessions(app, seed)
    actions.login("admin@example.org")
    html = actions.client.get("/sessions").get_data(as_text=True)
    assert 'id="sessions-csv"' in html
    res = actions.client.get(f"/sessions?format=csv&raw=1&machine_id={seed.laser}")
    assert res.status_code == 200 and res.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(res.get_data(as_text=True))))
    assert [(r["clock_untrusted"], r["hours"]) for r in rows] == [("1", "0.5"), ("0", "0.5")]
    assert rows[0]["machine"] == "laser-1" and rows[0]["end_reason"] == "badge_out"
    # the French spreadsheet: translated headings, `;`, the reason labelled
    fr = actions.client.get("/sessions?format=csv", headers={"Accept-Language": "fr"})
    text = fr.get_data(as_text=True).lstrip("\ufeff")
    head = text.splitlines()[0].split(";")
    assert "Horloge du nœud fausse" in head and "Fin" in head
    assert [line.split(";")[head.index("Horloge du nœud fausse")]
            for line in text.splitlines()[1:3]] == ["1", "0"]
