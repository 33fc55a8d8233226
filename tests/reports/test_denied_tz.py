"""Denied attempts by day / ISO week / month in the time zone of the machine's site.

A data set of its own (not tests/reports/conftest.py's), on SQLite and PostgreSQL; every
expected label below is computed by hand from the UTC timestamp:

- Europe/Paris: CET (UTC+1) from 25 Oct 2026 01:00 UTC, CEST (UTC+2) from 29 Mar 2026 01:00 UTC;
  25 Oct 2026 is a 25-hour day (22:00 UTC on the 24th to 23:00 UTC on the 25th), 29 Mar 2026 a
  23-hour one (23:00 UTC on the 28th to 22:00 UTC on the 29th).
- Pacific/Chatham: UTC+13:45 in (southern) summer, from 27 Sep 2026; local midnight of 1 Nov 2026
  is 10:15 UTC on 31 Oct (a quarter-hour offset: hour buckets would get it wrong).
- ISO weeks: 1 Nov 2026 is a Sunday (2026-W44), 2 Nov a Monday (2026-W45); 2026 has 53 weeks
  (1 Jan 2026 is a Thursday), so Friday 1 Jan 2027 is in 2026-W53.
- UTC for a UTC site, a site whose zone is unknown here, a node without a machine and an event
  whose node the server does not know.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.orm import Session

from server.models import Event, Machine, Node, Site
from server.reports import ReportError, denied_report
from tests.reports.conftest import T

# (machine or node key, UTC timestamp, reason) → hand-computed local day
EVENTS: list[tuple[str, str, str, str]] = [
    # Paris, CET: 23:30 UTC on 31 Oct is 00:30 on 1 Nov
    ("paris", "2026-10-31T23:30:00Z", "expired", "2026-11-01"),
    # Paris, Sunday 23:30 UTC is Monday 00:30: another ISO week
    ("paris", "2026-11-01T23:30:00Z", "expired", "2026-11-02"),
    # Paris, 31 Dec 23:30 UTC is 1 Jan 2027 00:30 (month 2027-01, week 2026-W53)
    ("paris", "2026-12-31T23:30:00Z", "expired", "2027-01-01"),
    # Paris, autumn change (25 Oct: 22:00 UTC on the 24th to 23:00 UTC on the 25th)
    ("paris", "2026-10-24T21:59:00Z", "unknown_badge", "2026-10-24"),  # 23:59 CEST
    ("paris", "2026-10-24T22:00:00Z", "unknown_badge", "2026-10-25"),  # 00:00 CEST
    ("paris", "2026-10-25T00:30:00Z", "unknown_badge", "2026-10-25"),  # 02:30 CEST (first)
    ("paris", "2026-10-25T01:30:00Z", "unknown_badge", "2026-10-25"),  # 02:30 CET (second)
    ("paris", "2026-10-25T22:59:59Z", "unknown_badge", "2026-10-25"),  # 23:59:59 CET
    ("paris", "2026-10-25T23:00:00Z", "unknown_badge", "2026-10-26"),  # 00:00 CET
    # Paris, spring change (29 Mar: 23:00 UTC on the 28th to 22:00 UTC on the 29th)
    ("paris", "2026-03-28T22:59:00Z", "not_authorized", "2026-03-28"),  # 23:59 CET
    ("paris", "2026-03-28T23:00:00Z", "not_authorized", "2026-03-29"),  # 00:00 CET
    ("paris", "2026-03-29T21:59:00Z", "not_authorized", "2026-03-29"),  # 23:59 CEST
    ("paris", "2026-03-29T22:00:00Z", "not_authorized", "2026-03-30"),  # 00:00 CEST
    # Chatham, +13:45: midnight of 1 Nov is 10:15 UTC on 31 Oct
    ("chatham", "2026-10-31T10:14:59Z", "expired", "2026-10-31"),  # 23:59:59
    ("chatham", "2026-10-31T10:15:00Z", "expired", "2026-11-01"),  # 00:00
    # UTC site, unknown zone, node without a machine, unknown node: the UTC date
    ("hq", "2026-10-31T23:30:00Z", "expired", "2026-10-31"),
    ("mars", "2026-10-31T23:30:00Z", "expired", "2026-10-31"),
    ("spare", "2026-10-31T23:30:00Z", "expired", "2026-10-31"),
    ("ghost", "2026-10-31T23:30:00Z", "expired", "2026-10-31"),
]


@pytest.fixture(scope="module")
def tz_db(module_db: Session) -> Session:
    db = module_db
    sites = {"paris": Site(slug="paris", name="Paris", timezone="Europe/Paris"),
             "chatham": Site(slug="chatham", name="Chatham", timezone="Pacific/Chatham"),
             "hq": Site(slug="hq", name="HQ", timezone="UTC"),
             "mars": Site(slug="mars", name="Mars", timezone="Mars/Olympus_Mons")}
    db.add_all(sites.values())
    db.flush()
    nodes = {k: Node(slug=f"node-{k}", site_id=s.id) for k, s in sites.items()}
    nodes["spare"] = Node(slug="node-spare", site_id=sites["paris"].id)  # no machine
    db.add_all(nodes.values())
    db.flush()
    db.add_all([Machine(slug=f"m-{k}", name=k, site_id=s.id, node_id=nodes[k].id)
                for k, s in sites.items()])
    for i, (key, ts, reason, _day) in enumerate(EVENTS, start=1):
        node = nodes.get(key)
        db.add(Event(event_id=f"00000000-0000-4000-8000-{i:012d}",
                     node_id=node.id if node else None, node_slug=node.slug if node else key,
                     type="badge.denied", ts=T(ts), boot="b", seq=i,
                     data={"uid": "04FFFFFF", "reason": reason}))
    # not a denied attempt: never counted
    db.add(Event(event_id="00000000-0000-4000-8000-999999999999", node_id=nodes["paris"].id,
                 node_slug="node-paris", type="badge.accepted", ts=T("2026-10-31T23:30:00Z"),
                 boot="b", seq=999, data={"uid": "04FFFFFF"}))
    db.commit()
    return db


def _count(labels: list[str]) -> list[tuple[str, int]]:
    return sorted((k, labels.count(k)) for k in set(labels))


def _rows(rows: list[dict[str, Any]], *keys: str) -> list[tuple[Any, ...]]:
    return [(*(r[k] for k in keys), r["denied"]) for r in rows]


def test_days_are_local_to_the_machine_site(tz_db: Session) -> None:
    assert _rows(denied_report(tz_db, "day"), "day") == _count([e[3] for e in EVENTS])
    assert _rows(denied_report(tz_db, "day"), "day") == [
        ("2026-03-28", 1), ("2026-03-29", 2), ("2026-03-30", 1),
        ("2026-10-24", 1), ("2026-10-25", 4), ("2026-10-26", 1),
        ("2026-10-31", 5), ("2026-11-01", 2), ("2026-11-02", 1), ("2027-01-01", 1)]


def test_23_30_utc_on_31_october_by_site(tz_db: Session) -> None:
    rows = denied_report(tz_db, "site,day", since=T("2026-10-31T00:00:00Z"),
                         until=T("2026-11-01T00:00:00Z"))
    # unknown node and node without a machine: no site, UTC, listed last
    assert _rows(rows, "site", "day") == [
        ("chatham", "2026-10-31", 1), ("chatham", "2026-11-01", 1),
        ("hq", "2026-10-31", 1), ("mars", "2026-10-31", 1), ("paris", "2026-11-01", 1),
        (None, "2026-10-31", 2)]


def test_dst_change_days_in_paris(tz_db: Session) -> None:
    rows = denied_report(tz_db, "day", site="paris", since=T("2026-10-24T00:00:00Z"),
                         until=T("2026-10-27T00:00:00Z"))
    assert _rows(rows, "day") == [("2026-10-24", 1), ("2026-10-25", 4), ("2026-10-26", 1)]
    rows = denied_report(tz_db, "day", site="paris", since=T("2026-03-28T00:00:00Z"),
                         until=T("2026-03-31T00:00:00Z"))
    assert _rows(rows, "day") == [("2026-03-28", 1), ("2026-03-29", 2), ("2026-03-30", 1)]


def test_months_and_iso_weeks(tz_db: Session) -> None:
    assert _rows(denied_report(tz_db, "month", site="paris"), "month") == [
        ("2026-03", 4), ("2026-10", 6), ("2026-11", 2), ("2027-01", 1)]
    assert _rows(denied_report(tz_db, "month", site="hq"), "month") == [("2026-10", 1)]
    # 25 Oct 2026 is a Sunday (W43); 26 Oct to 1 Nov is W44; 2 Nov starts W45
    assert _rows(denied_report(tz_db, "week", site="paris", since=T("2026-10-01T00:00:00Z")),
                 "week") == [("2026-W43", 5), ("2026-W44", 2), ("2026-W45", 1), ("2026-W53", 1)]
    # the same instants in UTC (hq): Saturday 31 October is W44
    assert _rows(denied_report(tz_db, "week", site="hq"), "week") == [("2026-W44", 1)]
    rows = denied_report(tz_db, "reason,month", site="chatham")
    assert _rows(rows, "reason", "month") == [("expired", "2026-10", 1), ("expired", "2026-11", 1)]


def test_unknown_nodes_and_zones_are_utc(tz_db: Session) -> None:
    rows = denied_report(tz_db, "machine,day", since=T("2026-10-31T12:00:00Z"),
                         until=T("2026-11-01T12:00:00Z"))
    assert _rows(rows, "machine", "day") == [
        ("m-hq", "2026-10-31", 1), ("m-mars", "2026-10-31", 1), ("m-paris", "2026-11-01", 1),
        (None, "2026-10-31", 2)]


def test_without_a_time_dimension_and_bad_dimensions(tz_db: Session) -> None:
    assert _rows(denied_report(tz_db, "reason"), "reason") == [
        ("expired", 9), ("not_authorized", 4), ("unknown_badge", 6)]
    assert denied_report(tz_db, ()) == [{"denied": len(EVENTS)}]
    with pytest.raises(ReportError):
        denied_report(tz_db, "hour")
    with pytest.raises(ReportError):
        denied_report(tz_db, "day,day")
