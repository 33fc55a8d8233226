"""Every aggregate against hand-computed values (see conftest.py for the data set)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.orm import Session

from server.reports import (
    ReportError,
    calendar,
    denied_report,
    member_statement,
    rows_to_csv,
    usage_report,
    visits_report,
)

from .conftest import T

H = 1 / 3600


def approx_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # no session of these fixtures has a plug: `kwh` (issue 16) is 0 wherever hours are
    return [{k: pytest.approx(v, abs=1e-3) if isinstance(v, float) else v
             for k, v in ({**r, "kwh": r.get("kwh", 0.0)} if "hours" in r else r).items()}
            for r in rows]


def test_by_machine_leaves_open_sessions_out(db: Session, data: dict[str, Any]) -> None:
    rows = usage_report(db, "machine")
    assert rows == approx_rows([
        {"machine": "cnc-1", "sessions": 1, "hours": 1.0, "active_hours": 0.0, "members": 1},
        # S7 + S1 + S2; dave's open S5 is not counted (nor is dave)
        {"machine": "laser-1", "sessions": 3, "hours": 4.0, "active_hours": (1200 + 3600 + 1800) * H,
         "members": 3},
        # S3 (duration_s 7000, not the 7200 s of wall clock) + S4
        {"machine": "printer-1", "sessions": 2, "hours": (7000 + 3600) * H,
         "active_hours": (6000 + 3600) * H, "members": 2},
    ])


def test_by_month_splits_in_the_site_time_zone(db: Session, data: dict[str, Any]) -> None:
    rows = usage_report(db, "month")
    # S1: 23:30-01:30 Paris, the month changes at 23:00Z: 0.5 h in October, 1.5 h in November
    # (a UTC split would give 1.5/0.5). S6 at the UTC site: 0.5 h each side of midnight UTC.
    assert rows == approx_rows([
        {"month": "2026-10", "sessions": 2, "hours": 1.0 + 0.5,
         "active_hours": 1200 * H + 0.25, "members": 2},
        {"month": "2026-11", "sessions": 4, "hours": 1.5 + 1.0 + 7000 * H + 1.0 + 0.5,
         "active_hours": 0.75 + 0.5 + 6000 * H + 1.0 + 0.0, "members": 3},
        {"month": "2026-12", "sessions": 0, "hours": 0.5, "active_hours": 0.0, "members": 1},
    ])
    assert sum(r["hours"] for r in rows) == pytest.approx(sum(
        r["hours"] for r in usage_report(db, "machine")), abs=1e-3)


def test_by_day_spans_midnight_and_clips(db: Session, data: dict[str, Any]) -> None:
    rows = usage_report(db, "day", since=T("2026-10-31T00:00:00Z"), until=T("2026-11-02T00:00:00Z"))
    assert rows == approx_rows([
        {"day": "2026-10-31", "sessions": 1, "hours": 0.5, "active_hours": 0.25, "members": 1},
        {"day": "2026-11-01", "sessions": 0, "hours": 1.5, "active_hours": 0.75, "members": 1},
    ])


def test_week_is_iso_in_site_zone(db: Session, data: dict[str, Any]) -> None:
    rows = {r["week"]: r for r in usage_report(db, "week", site="paris")}
    # Sat 31 Oct and Sun 1 Nov are both in ISO week 44: S1 is not split
    assert rows["2026-W44"]["hours"] == pytest.approx(2.0)
    assert rows["2026-W44"]["sessions"] == 1
    assert rows["2026-W45"]["sessions"] == 2  # S2 and S3 on Monday 2 Nov
    assert set(rows) == {"2026-W41", "2026-W44", "2026-W45", "2026-W46"}


def test_clipping_to_since_and_until(db: Session, data: dict[str, Any]) -> None:
    rows = usage_report(db, "machine", since=T("2026-11-01T00:00:00Z"),
                        until=T("2026-12-01T00:00:00Z"))
    assert rows == approx_rows([
        # S6 clipped to 23:30-24:00: half of its hour; it starts inside, so it counts
        {"machine": "cnc-1", "sessions": 1, "hours": 0.5, "active_hours": 0.0, "members": 1},
        # S1 clipped to 00:00-00:30 (a quarter of its 2 h), not counted as a session here
        {"machine": "laser-1", "sessions": 1, "hours": 0.5 + 1.0, "active_hours": 0.25 + 0.5,
         "members": 2},
        {"machine": "printer-1", "sessions": 2, "hours": (7000 + 3600) * H,
         "active_hours": (6000 + 3600) * H, "members": 2},
    ])


def test_member_with_two_badges_is_one_member(db: Session, data: dict[str, Any]) -> None:
    rows = {r["member"]: r for r in usage_report(db, "member")}
    assert set(rows) == {data["alice"], data["bob"], data["carol"]}  # not dave (open only)
    bob = rows[data["bob"]]
    assert (bob["sessions"], bob["members"]) == (2, 1)
    assert bob["hours"] == pytest.approx((3600 + 7000) * H, abs=1e-3)
    # carol's session before her authorization was revoked still counts
    assert rows[data["carol"]]["sessions"] == 2
    assert rows[data["carol"]]["hours"] == pytest.approx(2.0)


def test_site_tag_group_kind(db: Session, data: dict[str, Any]) -> None:
    assert usage_report(db, "site") == approx_rows([
        {"site": "hq", "sessions": 1, "hours": 1.0, "active_hours": 0.0, "members": 1},
        {"site": "paris", "sessions": 5, "hours": 2 + 1 + 7000 * H + 1 + 1,
         "active_hours": 1 + 0.5 + 6000 * H + 1 + 1200 * H, "members": 3},
    ])
    tags = {r["member_tag"]: r for r in usage_report(db, "member_tag")}
    assert set(tags) == {"student", "youth"}
    assert (tags["student"]["sessions"], tags["student"]["members"]) == (4, 2)
    assert tags["student"]["hours"] == pytest.approx(3 + (3600 + 7000) * H, abs=1e-3)
    assert (tags["youth"]["sessions"], tags["youth"]["members"]) == (2, 1)  # dave is open only
    assert [(r["machine_group"], r["sessions"], r["hours"]) for r in
            usage_report(db, "machine_group")] == [("lasers", 3, 4.0)]
    kinds = {r["kind"]: (r["sessions"], r["hours"]) for r in usage_report(db, "kind")}
    assert kinds == {"cnc": (1, 1.0), "laser_cutter": (3, 4.0),
                     "3d_printer": (2, pytest.approx((7000 + 3600) * H, abs=1e-3))}


def test_two_dimensions_and_site_filter(db: Session, data: dict[str, Any]) -> None:
    rows = usage_report(db, "month,machine", site="paris")
    got = {(r["month"], r["machine"]): (r["sessions"], round(r["hours"], 3)) for r in rows}
    assert got == {("2026-10", "laser-1"): (2, 1.5), ("2026-11", "laser-1"): (1, 2.5),
                   ("2026-11", "printer-1"): (2, round((7000 + 3600) * H, 3))}


def test_visits_are_member_days(db: Session, data: dict[str, Any]) -> None:
    # carol 10 Oct, alice 31 Oct (Paris), bob 2 Nov twice (two badges, one visit),
    # alice 15 Nov, carol 30 Nov (UTC); dave's open session is not a visit
    assert visits_report(db) == [{"visits": 5}]
    assert visits_report(db, "month") == [{"month": "2026-10", "visits": 2},
                                          {"month": "2026-11", "visits": 3}]
    by_member = {r["member"]: r["visits"] for r in visits_report(db, "member")}
    assert by_member == {data["alice"]: 2, data["bob"]: 1, data["carol"]: 2}
    # ISO weeks: Sat 10 Oct is W41, Sat 31 Oct W44, Mon 2 Nov W45, Sun 15 Nov W46, Mon 30 Nov
    # W49; bob's two sessions on 2 Nov, one per machine, are one visit but count per machine
    for use_rollups in (True, False):
        assert visits_report(db, "week", use_rollups=use_rollups) == [
            {"week": "2026-W41", "visits": 1}, {"week": "2026-W44", "visits": 1},
            {"week": "2026-W45", "visits": 1}, {"week": "2026-W46", "visits": 1},
            {"week": "2026-W49", "visits": 1}]
        assert visits_report(db, "week,machine", until=T("2026-11-03T00:00:00Z"),
                             use_rollups=use_rollups) == [
            {"week": "2026-W41", "machine": "laser-1", "visits": 1},
            {"week": "2026-W44", "machine": "laser-1", "visits": 1},
            {"week": "2026-W45", "machine": "laser-1", "visits": 1},
            {"week": "2026-W45", "machine": "printer-1", "visits": 1}]


def test_denied_by_reason(db: Session, data: dict[str, Any]) -> None:
    assert denied_report(db) == [{"reason": "expired", "denied": 1},
                                 {"reason": "not_authorized", "denied": 1},
                                 {"reason": "unknown_badge", "denied": 2}]
    rows = denied_report(db, "machine,reason", until=T("2026-12-01T00:00:00Z"))
    assert rows == [{"machine": "laser-1", "reason": "not_authorized", "denied": 1},
                    {"machine": "laser-1", "reason": "unknown_badge", "denied": 2}]


def test_member_statement(db: Session, data: dict[str, Any]) -> None:
    st = member_statement(db, data["alice"])
    assert [(r["machine"], r["hours"], r["rate"], r["amount"]) for r in st["rows"]] == [
        ("laser-1", 2.0, 10.0, 20.0), ("printer-1", 1.0, 2.0, 2.0)]
    assert st["total"] == 22.0
    assert member_statement(db, data["alice"], basis="active_hours")["total"] == 12.0
    nov = member_statement(db, data["alice"], since=T("2026-11-01T00:00:00Z"))
    # S1 clipped at midnight UTC keeps 00:00-00:30Z: a quarter of its 2 h
    assert nov["total"] == pytest.approx(0.5 * 10 + 1.0 * 2)


def test_csv_has_the_json_columns(db: Session, data: dict[str, Any]) -> None:
    rows = usage_report(db, "machine")
    lines = rows_to_csv(rows, "machine").splitlines()
    assert lines[0] == "machine,sessions,hours,active_hours,members,kwh"
    assert lines[1] == "cnc-1,1,1.0,0.0,1,0.0"
    assert len(lines) == 4


def test_bad_parameters(db: Session, data: dict[str, Any]) -> None:
    with pytest.raises(ReportError):
        usage_report(db, "colour")
    with pytest.raises(ReportError):
        usage_report(db, "day,month")
    with pytest.raises(ReportError):
        usage_report(db, "machine", site="nowhere")
    with pytest.raises(ReportError):
        usage_report(db, "machine", since=T("2026-12-01T00:00:00Z"), until=T("2026-11-01T00:00:00Z"))
    assert usage_report(db, "month", since=T("2030-01-01T00:00:00Z"),
                        until=T("2030-02-01T00:00:00Z")) == []


def test_calendar_dst_months() -> None:
    periods = calendar("Europe/Paris", "month", T("2026-03-01T00:00:00Z"), T("2026-05-01T00:00:00Z"))
    # clipped to the range; March ends at 22:00Z on 31 March (CEST), April at 22:00Z on 30 April
    assert periods == [
        ("2026-03", T("2026-03-01T00:00:00Z"), T("2026-03-31T22:00:00Z")),
        ("2026-04", T("2026-03-31T22:00:00Z"), T("2026-04-30T22:00:00Z")),
        ("2026-05", T("2026-04-30T22:00:00Z"), T("2026-05-01T00:00:00Z")),
    ]


def test_ranges_that_cannot_be_reported_are_refused(db: Session, data: dict[str, Any]) -> None:
    with pytest.raises(ReportError, match="between 1900"):
        usage_report(db, "day", since=T("0001-01-01T00:00:00Z"))
    # the SQL path builds a calendar of every day in the range: it refuses 229 years of days
    with pytest.raises(ReportError, match="too many days"):
        usage_report(db, "day", since=T("1970-01-01T00:00:00Z"), until=T("2199-01-01T00:00:00Z"),
                     use_rollups=False)
    # the roll-ups read only the days that have data
    rows = usage_report(db, "day", since=T("1970-01-01T00:00:00Z"),
                        until=T("2199-01-01T00:00:00Z"))
    assert rows == usage_report(db, "day")
    # the same range by month is fine (and empty outside the data)
    rows = usage_report(db, "month", since=T("1970-01-01T00:00:00Z"),
                        until=T("2026-10-01T00:00:00Z"))
    assert rows == []
