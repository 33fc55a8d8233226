"""The roll-up path against the SQL reference path, on random data and random ranges.

`usage_report(..., use_rollups=False)` computes everything from the sessions in SQL (and is
itself checked by hand in test_usage.py); the roll-ups must give the same rows for every
dimension, range and time zone, and stay right while sessions are inserted, changed and deleted
(the triggers mark them dirty; every report refreshes first).
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from server.db import make_engine, make_sessionmaker, upgrade
from server.models import (
    Machine,
    MachineGroup,
    MachineKind,
    Member,
    Site,
    UsageRollup,
    UsageRollupDirty,
    UsageSession,
)
from server.reports import funder_report, periods, rollups, usage_report, visits_report

# zones with DST on different dates, a half-hour offset with a half-hour DST step, and a
# zone unknown to this system (reported in UTC)
ZONES = ["Europe/Paris", "America/Montreal", "Pacific/Noumea", "Australia/Lord_Howe",
         "Asia/Kolkata", "Mars/Olympus"]
START = datetime(2025, 9, 1, tzinfo=UTC)
SPAN_DAYS = 240  # two DST changes in each hemisphere
DIM_SETS = ["machine", "site", "kind", "machine_group", "month", "week", "day", "month,machine",
            "week,site", "day,kind", "month,machine_group", "site,kind"]


@pytest.fixture(scope="module")
def rdb(module_db_url: str) -> Iterator[Session]:
    upgrade(module_db_url)
    engine = make_engine(module_db_url)
    with make_sessionmaker(engine)() as db:
        _build(db, random.Random(7))
        yield db
    engine.dispose()


def _session(rng: random.Random, machines: list[int], members: list[int]) -> UsageSession:
    start = START + timedelta(seconds=rng.randrange(SPAN_DAYS * 86400))
    shape = rng.random()
    if shape < 0.05:
        wall = 0.0  # zero-length
    elif shape < 0.08:
        wall = -rng.randrange(60, 7200)  # a skewed clock: ends before it starts
    elif shape < 0.15:
        wall = rng.randrange(86400, 4 * 86400)  # forgotten for days: spans midnights
    else:
        wall = rng.randrange(60, 5 * 3600)
    end = start + timedelta(seconds=wall)
    # the node's monotonic duration: positive even when the wall clock went backwards
    dur = None if rng.random() < 0.1 else abs(wall) * rng.uniform(0.8, 1.1)
    active = None if rng.random() < 0.1 else (dur or 0.0) * rng.uniform(0, 1)
    # a smart plug's energy on some machines (issue 16): split like the active time
    energy = None if rng.random() < 0.5 else (dur or 0.0) / 3600 * rng.uniform(0, 2000)
    return UsageSession(energy_wh=energy,
        session_uuid=uuid.uuid4().hex, machine_id=rng.choice(machines),
        member_id=None if rng.random() < 0.05 else rng.choice(members), badge_uid="04AABBCC",
        started_at=start, ended_at=end, duration_s=dur, active_s=active, end_reason="badge_out")


def _build(db: Session, rng: random.Random) -> None:
    sites = [Site(slug=f"s{i}", name=f"S{i}", timezone=z) for i, z in enumerate(ZONES)]
    db.add_all(sites)
    db.flush()
    kinds = list(MachineKind)
    machines = [Machine(slug=f"m{i}", name=f"M{i}", site_id=sites[i % len(sites)].id,
                        kind=kinds[i % len(kinds)]) for i in range(14)]
    db.add_all(machines)
    db.flush()
    # machine 0 in two groups, machine 1 in none
    db.add(MachineGroup(slug="g-a", name="A", machines=[machines[0], machines[2], machines[3]]))
    db.add(MachineGroup(slug="g-b", name="B", machines=[machines[0], *machines[4:9]]))
    members = [Member(name=f"P{i}", tags=rng.sample(["a", "b", "c"], rng.randrange(3)))
               for i in range(60)]
    db.add_all(members)
    db.flush()
    mids, pids = [m.id for m in machines], [p.id for p in members]
    db.add_all(_session(rng, mids, pids) for _ in range(1500))
    # an open session: never counted
    db.add(UsageSession(session_uuid=uuid.uuid4().hex, machine_id=mids[0], member_id=pids[0],
                        badge_uid="04AABBCC", started_at=START + timedelta(days=3)))
    db.commit()


def _ranges(rng: random.Random, n: int) -> list[tuple[datetime | None, datetime | None]]:
    out: list[tuple[datetime | None, datetime | None]] = [(None, None)]
    for _ in range(n):
        a = START + timedelta(seconds=rng.randrange(-5 * 86400, SPAN_DAYS * 86400))
        if rng.random() < 0.3:  # aligned on a UTC midnight, as the bench and UI ask
            a = a.replace(hour=0, minute=0, second=0)
        b = a + timedelta(seconds=rng.choice([3600, 20 * 3600, 86400, 3 * 86400, 40 * 86400,
                                              150 * 86400, rng.randrange(60, 300 * 86400)]))
        out.append((a, b))
    out += [(START + timedelta(days=30), None), (None, START + timedelta(days=100, hours=5))]
    return out


def _close(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> None:
    assert len(a) == len(b), (a, b)
    for x, y in zip(a, b, strict=True):
        assert x.keys() == y.keys()
        for k in x:
            if isinstance(x[k], float) or isinstance(y[k], float):
                assert x[k] == pytest.approx(y[k], abs=2e-3), (k, x, y)
            else:
                assert x[k] == y[k], (k, x, y)


def _compare(db: Session, ranges: list[tuple[datetime | None, datetime | None]],
             sites: list[str | None]) -> int:
    checked = 0
    for i, (since, until) in enumerate(ranges):
        site = sites[i % len(sites)]
        for dims in DIM_SETS:
            fast = usage_report(db, dims, since, until, site)
            slow = usage_report(db, dims, since, until, site, use_rollups=False)
            _close(fast, slow)
            checked += 1
        for dims in ("", "day", "week,site", "month,machine", "kind"):
            assert visits_report(db, dims, since, until, site) == visits_report(
                db, dims, since, until, site, use_rollups=False), (dims, since, until, site)
            checked += 1
    return checked


def test_rollups_match_the_sql_reports(rdb: Session) -> None:
    rng = random.Random(11)
    n = _compare(rdb, _ranges(rng, 25), [None, "s0", "s3", None, "s5"])
    assert n > 400
    # and a machine filter (the machine page)
    mid = rdb.scalar(sa.select(Machine.id).where(Machine.slug == "m3"))
    for since, until in _ranges(rng, 5):
        _close(usage_report(rdb, "month", since, until, machine_id=mid),
               usage_report(rdb, "month", since, until, machine_id=mid, use_rollups=False))


def _assert_rebuild_changes_nothing(db: Session) -> None:
    """The cells equal those of a rebuild from scratch (seconds within float error)."""
    r = rollups.ROLLUP
    order = (r.c.grain, r.c.machine_id, r.c.period)
    before = db.execute(sa.select(r).order_by(*order)).all()
    rollups.rebuild_all(db)
    db.commit()
    after = db.execute(sa.select(r).order_by(*order)).all()

    def exact(rows: Any) -> list[tuple[Any, ...]]:
        return [(x.grain, x.machine_id, x.period, x.sessions, x.member_ids, x.starter_ids)
                for x in rows]

    assert exact(before) == exact(after)
    assert [x.seconds for x in before] == pytest.approx([x.seconds for x in after], abs=1e-3)
    assert [x.energy_wh for x in before] == pytest.approx([x.energy_wh for x in after], abs=1e-3)
    assert sum(x.energy_wh for x in after) > 0


def test_rollups_follow_every_write(rdb: Session) -> None:
    rng = random.Random(12)
    usage_report(rdb, "machine")  # refreshed
    assert rdb.scalar(sa.select(sa.func.count()).select_from(UsageRollupDirty)) == 0
    sessions = list(rdb.scalars(sa.select(UsageSession).where(UsageSession.ended_at.is_not(None))
                                .order_by(UsageSession.id)))
    mids = list(rdb.scalars(sa.select(Machine.id)))
    pids = list(rdb.scalars(sa.select(Member.id)))
    for round_ in range(3):
        for s in rng.sample(sessions, 40):  # moved, lengthened, reassigned
            s.started_at = s.started_at + timedelta(hours=rng.randrange(-30, 30))
            s.ended_at = s.started_at + timedelta(hours=rng.randrange(0, 50))
            s.member_id = rng.choice(pids)
            s.machine_id = rng.choice(mids)
        for s in rng.sample(sessions, 10):
            if s in rdb:
                rdb.delete(s)
        sessions = [s for s in sessions if s not in rdb.deleted]
        rdb.add_all(_session(rng, mids, pids) for _ in range(30))
        # a session closing (open -> closed) is a write too
        rdb.add(UsageSession(session_uuid=uuid.uuid4().hex, machine_id=mids[1],
                             member_id=pids[1], badge_uid="04AABBCC",
                             started_at=START + timedelta(days=20 + round_)))
        rdb.flush()
        opened = rdb.scalars(sa.select(UsageSession).where(UsageSession.ended_at.is_(None))).all()
        for s in opened[:1]:
            s.ended_at = s.started_at + timedelta(days=2, hours=3)
        rdb.commit()
        assert rdb.scalar(sa.select(sa.func.count()).select_from(UsageRollupDirty)) > 0
        _compare(rdb, _ranges(rng, 4), [None, "s1"])
    # a machine moved to a site in another time zone: its cells are rebuilt in the new zone
    m = rdb.scalars(sa.select(Machine).where(Machine.slug == "m0")).one()
    m.site_id = rdb.scalar(sa.select(Site.id).where(Site.slug == "s2"))
    rdb.commit()
    _compare(rdb, _ranges(rng, 3), [None, "s2"])
    # and a full rebuild gives the same cells as the incremental refreshes did
    _assert_rebuild_changes_nothing(rdb)


def test_new_sessions_are_added_to_existing_cells(rdb: Session) -> None:
    """Sessions inserted closed, or closed, are added to the cells (no rebuild), and the cells
    then equal a rebuild from scratch."""
    rng = random.Random(13)
    usage_report(rdb, "machine")
    rdb.commit()
    mids = list(rdb.scalars(sa.select(Machine.id)))
    pids = list(rdb.scalars(sa.select(Member.id)))
    for _ in range(2):
        rdb.add_all(_session(rng, mids, pids) for _ in range(60))
        opened = UsageSession(session_uuid=uuid.uuid4().hex, machine_id=mids[2],
                              member_id=pids[3], badge_uid="04AABBCC",
                              started_at=START + timedelta(days=50, hours=23))
        rdb.add(opened)
        rdb.flush()
        opened.ended_at = opened.started_at + timedelta(hours=30)
        opened.duration_s = 30 * 3600.0
        rdb.commit()
        res = rollups.refresh(rdb)
        rdb.commit()
        assert res.added_sessions == 61 and res.dirty_rows == 61
        _compare(rdb, _ranges(rng, 3), [None, "s2"])
    _assert_rebuild_changes_nothing(rdb)


def test_many_new_sessions_rebuild_their_days(rdb: Session,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Past ADD_MAX new sessions on a machine (a bulk import), its days are rebuilt instead."""
    monkeypatch.setattr(rollups, "ADD_MAX", 3)
    rng = random.Random(14)
    usage_report(rdb, "machine")
    rdb.commit()
    mids = list(rdb.scalars(sa.select(Machine.id)))
    pids = list(rdb.scalars(sa.select(Member.id)))
    rdb.add_all(_session(rng, mids[:2], pids) for _ in range(40))  # ~20 per machine
    rdb.add_all(_session(rng, mids[5:6], pids) for _ in range(2))  # 2: added
    rdb.commit()
    res = rollups.refresh(rdb)
    rdb.commit()
    assert res.dirty_rows == 42 and res.added_sessions == 2 and res.machines == 3
    _compare(rdb, _ranges(rng, 3), [None, "s0"])


def test_funder_report_from_rollups_matches_sql(rdb: Session) -> None:
    since, until = START + timedelta(days=10, hours=7), START + timedelta(days=130)
    for site in (None, "s0", "s4"):
        rep = funder_report(rdb, since, until, site)
        total = usage_report(rdb, (), since, until, site, use_rollups=False)[0]
        assert rep["summary"]["sessions"] == (total["sessions"] if total["sessions"] >= 5
                                              else "<5")
        assert rep["summary"]["members"] == (total["members"] if total["members"] >= 5 else "<5")
        visits = visits_report(rdb, "", since, until, site, use_rollups=False)[0]["visits"]
        assert rep["summary"]["visits"] == (visits if visits >= 5 else "<5")
        tags = usage_report(rdb, "member_tag", since, until, site, use_rollups=False)
        assert [(t["tag"], t["members"]) for t in rep["by_tag"]] == [
            (t["member_tag"], t["members"] if t["members"] >= 5 else "<5") for t in tags]


def test_split_follows_local_days_across_dst() -> None:
    days = periods.LocalDays("Europe/Paris")
    # 2025-10-26 is 25 hours long in Paris: 22:00 UTC on the 25th to 23:00 UTC on the 26th
    s, e = datetime(2025, 10, 25, 21, 0, tzinfo=UTC), datetime(2025, 10, 27, 0, 0, tzinfo=UTC)
    parts = list(periods.split(days, s, e))
    assert [(d.isoformat(), starts) for d, starts, _ in parts] == [
        ("2025-10-25", True), ("2025-10-26", False), ("2025-10-27", False)]
    wall = (e - s).total_seconds()
    assert [round(f * wall) for _, _, f in parts] == [3600, 25 * 3600, 3600]
    # a session ending exactly at a local midnight does not touch the next day
    assert [d.isoformat() for d, _, _ in periods.split(
        days, s, datetime(2025, 10, 25, 22, 0, tzinfo=UTC))] == ["2025-10-25"]
    # a skewed session counts whole where it starts
    assert list(periods.split(days, s, s - timedelta(hours=3))) == [
        (datetime(2025, 10, 25).date(), True, 1.0)]


def test_cells_hold_member_sets(rdb: Session) -> None:
    usage_report(rdb, "machine")
    row = rdb.execute(sa.select(UsageRollup).where(UsageRollup.grain == "month").limit(1)).scalar_one()
    ids = rollups.unpack(row.member_ids)
    assert list(ids) == sorted(set(ids)) and len(ids) == row.members
    assert rollups.pack(reversed(list(ids))) == row.member_ids
