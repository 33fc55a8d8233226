"""What one report request can make the server build is bounded (issue 13, item 6): too many
periods or rows, or too long a range, is a 400 naming the field on the API and a translated
message on the web page; a stored 1e308 duration never reaches JSON as a non-finite number."""

from __future__ import annotations

import json
import math
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from server.app import get_db
from server.models import UsageSession

seedmod = sys.modules["fabpass_web_seed"]


def _strict(text: str) -> Any:
    def refuse(name: str) -> Any:
        raise ValueError(f"non-finite number in JSON: {name}")

    return json.loads(text, parse_constant=refuse)


def _sessions(api_app: Any, seed: Any, duration: float = 1800.0) -> None:
    t0 = datetime(2026, 10, 5, 9, 0, tzinfo=UTC)
    with api_app[0].app_context():
        db = get_db()
        for n, (machine, member) in enumerate(((seed.laser, seed.alice), (seed.printer, seed.bob))):
            db.add(UsageSession(session_uuid=f"77777777-7777-4777-8777-77777777777{n}",
                                machine_id=machine, member_id=member, badge_uid="04A1B2C3",
                                started_at=t0 + timedelta(days=n),
                                ended_at=t0 + timedelta(days=n, minutes=30),
                                duration_s=duration, active_s=duration, end_reason="badge_out"))
        db.commit()


def _fields(r: Any) -> dict[str, str]:
    assert r.status_code == 400, r.get_data(as_text=True)
    err = r.get_json()["error"]
    assert err["code"] == "bad_request"
    return dict(err["fields"])


def test_too_many_periods_is_400_naming_the_field(api: Any, api_app: Any, seed: Any,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from server.reports import periods, sql

    _sessions(api_app, seed)
    monkeypatch.setattr(sql, "MAX_PERIODS", 100)
    monkeypatch.setattr(periods, "MAX_PERIODS", 100)
    r = api("GET", "/reports/usage?group_by=member,day&since=2026-01-01T00:00:00Z"
                   "&until=2026-12-31T00:00:00Z")
    assert "group_by" in _fields(r) and "too many days" in r.get_json()["error"]["message"]
    ok = api("GET", "/reports/usage?group_by=member,month&since=2026-01-01T00:00:00Z"
                    "&until=2026-12-31T00:00:00Z")
    assert ok.status_code == 200


def test_too_many_rows_is_400_naming_the_field(api: Any, api_app: Any, seed: Any,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from server.reports import queries

    _sessions(api_app, seed)
    assert api("GET", "/reports/usage?group_by=machine").status_code == 200
    monkeypatch.setattr(queries, "MAX_CELLS", 1)
    for group in ("machine", "member", "machine,day"):
        r = api("GET", f"/reports/usage?group_by={group}")
        assert "group_by" in _fields(r), group


def test_range_bounds_name_the_field(api: Any) -> None:
    r = api("GET", "/reports/usage?group_by=machine&since=1970-01-01T00:00:00Z"
                   "&until=2199-01-01T00:00:00Z")
    assert "until" in _fields(r)
    r = api("GET", "/reports/usage?group_by=machine&since=1800-01-01T00:00:00Z")
    assert "since" in _fields(r)
    r = api("GET", "/reports/usage?group_by=machine&since=2026-02-01T00:00:00Z"
                   "&until=2026-01-01T00:00:00Z")
    assert "until" in _fields(r)


@pytest.mark.parametrize("stored", [1e308, float("inf"), float("nan")], ids=["1e308", "inf", "nan"])
def test_a_stored_absurd_duration_never_yields_a_non_finite_number(
        api: Any, api_app: Any, seed: Any, stored: float) -> None:
    _sessions(api_app, seed, duration=stored)
    for group in ("machine", "month", "member", "machine,day", "site,week"):
        r = api("GET", f"/reports/usage?group_by={group}")
        assert r.status_code == 200, r.get_data(as_text=True)
        rows = _strict(r.get_data(as_text=True))["rows"]
        numbers = [v for row in rows for v in row.values() if isinstance(v, float)]
        assert numbers and all(math.isfinite(v) for v in numbers), (group, rows)
        assert sum(row["hours"] for row in rows) == pytest.approx(1.0), group
        csv = api("GET", f"/reports/usage?group_by={group}&format=csv").get_data(as_text=True)
        assert "inf" not in csv.lower() and "nan" not in csv.lower()


def test_web_report_page_says_so_in_the_users_language(api_app: Any, seed: Any,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from server.reports import queries

    _sessions(api_app, seed)
    monkeypatch.setattr(queries, "MAX_CELLS", 1)
    web = seedmod.Actions(api_app[0].test_client())
    assert web.login("admin@example.org").status_code == 302
    period = "from=2026-01-01&to=2026-12-31"
    for lang, text in (("en", "more than 1 rows"), ("fr", "plus de 1 lignes")):
        for page in (f"/reports/?group_by=machine&{period}", f"/reports/?group_by=member&{period}"):
            res = web.client.get(page, headers={"Accept-Language": lang})
            assert res.status_code == 200, page
            assert text in res.get_data(as_text=True), (lang, page)
