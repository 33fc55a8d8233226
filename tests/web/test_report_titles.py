"""Site names, not slugs, where a person reads them in reports (issue 15): the titles of the
usage, refusals and activity reports, and the rows of a report grouped by site."""

from __future__ import annotations

import re
import sys
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

_today = date.today()
PERIOD = f"from={_today - timedelta(days=40)}&to={_today + timedelta(days=1)}"


@pytest.fixture()
def fr(app: Any, seed: Any, actions: Any) -> Any:
    import importlib.util

    from server.app import get_db

    spec = importlib.util.spec_from_file_location("fabpass_french_seed",
                                                  Path(__file__).with_name("french_seed.py"))
    assert spec is not None and spec.loader is not None
    fseed = sys.modules.get("fabpass_french_seed") or importlib.util.module_from_spec(spec)
    if "fabpass_french_seed" not in sys.modules:
        sys.modules["fabpass_french_seed"] = fseed
        spec.loader.exec_module(fseed)
    with app.app_context():
        db = get_db()
        fseed.enrich(db, seed)
        _refusal_on_the_laser(db, seed)
    actions.post("/lang", {"lang": "fr"}, page="/login")
    actions.login("admin@example.org")
    return actions.client


def _refusal_on_the_laser(db: Any, seed: Any) -> None:
    """A refusal by the laser's own node (the French seed's have no node row): it has a site."""
    import uuid
    from datetime import UTC, datetime

    from server.models import Event, Machine

    laser = db.get(Machine, seed.laser)
    db.add(Event(event_id=str(uuid.uuid4()), node_id=laser.node_id, node_slug="laser-1",
                 type="badge.denied", ts=datetime.now(UTC) - timedelta(days=1),
                 boot=str(uuid.uuid4()), seq=0, data={"uid": "04ABCDEF", "reason": "expired"}))
    db.commit()


def h1(html: str) -> str:
    m = re.search(r"<h1>(.*?)</h1>", html, re.S)
    assert m, "no <h1>"
    return re.sub(r"\s+", " ", m.group(1)).strip()


def cells(html: str) -> list[str]:
    body = html.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    return [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td>(.*?)</td>", body, re.S)]


def test_report_titles_name_the_site(fr: Any) -> None:
    assert h1(fr.get(f"/reports/?site=lab&{PERIOD}").get_data(as_text=True)) \
        == "Utilisation — Main lab"
    assert h1(fr.get(f"/reports/denied?site=lab&{PERIOD}").get_data(as_text=True)).endswith(
        "— Main lab")
    funder = fr.get(f"/reports/funder?site=lab&{PERIOD}").get_data(as_text=True)
    assert h1(funder).endswith("— Main lab") and "<title>" in funder
    assert "Main lab" in funder.split("<title>", 1)[1].split("</title>", 1)[0]
    # the period in words, not ISO dates: "Du 24 octobre 2026 au 4 décembre 2026 (inclus)."
    period = re.search(r"<h1>.*?</h1>\s*<p>(.*?)</p>", funder, re.S)
    assert period and not re.search(r"\d{4}-\d{2}-\d{2}", period.group(1)), period
    assert re.search(r"\d{1,2} \w+ \d{4}", period.group(1)), period.group(1)
    everything = h1(fr.get(f"/reports/?site=&{PERIOD}").get_data(as_text=True))
    assert everything.endswith("— tous les sites"), everything


def test_reports_grouped_by_site_show_names(fr: Any) -> None:
    usage = fr.get(f"/reports/?site=&group_by=site&{PERIOD}").get_data(as_text=True)
    shown = cells(usage)
    assert "Main lab" in shown and "lab" not in shown
    denied = fr.get(f"/reports/denied?site=&group_by=site&{PERIOD}").get_data(as_text=True)
    shown = cells(denied)
    assert "Main lab" in shown and "lab" not in shown
