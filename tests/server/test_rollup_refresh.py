"""The report roll-ups are refreshed by the server's background thread and by `fabpass db
rollups`, on SQLite and PostgreSQL; a concurrent report and refresher do not trip each other."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from click.testing import CliRunner
from sqlalchemy.orm import Session

from server.cli import db as db_cli
from server.jobs import RollupRefresher
from server.models import UsageRollup, UsageRollupDirty, UsageSession
from server.reports import usage_report


def _sessions(db: Session, lab: dict[str, Any], n: int, day: int = 0) -> None:
    t0 = datetime(2026, 11, 1, 21, 0, tzinfo=UTC) + timedelta(days=day)
    for i in range(n):
        start = t0 + timedelta(minutes=37 * i)
        db.add(UsageSession(session_uuid=uuid.uuid4().hex, badge_uid="04A1B2C3",
                            machine_id=lab["laser" if i % 2 else "printer"].id,  # type: ignore[attr-defined]
                            member_id=lab["alice"].id,  # type: ignore[attr-defined]
                            started_at=start, ended_at=start + timedelta(minutes=90),
                            duration_s=5400.0, active_s=600.0, end_reason="badge_out"))
    db.commit()


def _count(db: Session, model: Any) -> int:
    return int(db.scalar(sa.select(sa.func.count()).select_from(model)) or 0)


def test_background_refresher_keeps_cells_fresh(db: Session, lab: dict[str, Any],
                                                writer_sessions: Any) -> None:
    _sessions(db, lab, 20)
    assert _count(db, UsageRollupDirty) == 20
    refresher = RollupRefresher(writer_sessions, interval_s=0.05)
    refresher.start()
    try:
        deadline = time.monotonic() + 15
        while _count(db, UsageRollupDirty) and time.monotonic() < deadline:
            time.sleep(0.05)
            db.rollback()  # a fresh snapshot on PostgreSQL
        assert _count(db, UsageRollupDirty) == 0
        assert _count(db, UsageRollup) > 0
        _sessions(db, lab, 5, day=3)  # more traffic, picked up by the next round
        runs = refresher.runs
        while (_count(db, UsageRollupDirty) or refresher.runs == runs) and \
                time.monotonic() < deadline:
            time.sleep(0.05)
            db.rollback()
        assert _count(db, UsageRollupDirty) == 0
    finally:
        refresher.stop()
    assert not refresher.is_alive()
    for dims in ("day", "month,machine", "site"):
        assert usage_report(db, dims) == usage_report(db, dims, use_rollups=False)


def test_reports_racing_the_refresher(db: Session, lab: dict[str, Any], writer_sessions: Any,
                                      engine: Any) -> None:
    """Reports in other sessions while sessions keep arriving: no error, no lost mark."""
    from server.db import make_sessionmaker

    stop = threading.Event()
    errors: list[BaseException] = []

    def reporter() -> None:
        readers = make_sessionmaker(engine)
        try:
            while not stop.is_set():
                with readers() as r:
                    usage_report(r, "day,machine")
                    r.commit()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    refresher = RollupRefresher(writer_sessions, interval_s=0.01)
    threads = [threading.Thread(target=reporter) for _ in range(2)]
    refresher.start()
    for t in threads:
        t.start()
    try:
        for day in range(8):
            _sessions(db, lab, 6, day=day)
            time.sleep(0.05)
    finally:
        stop.set()
        for t in threads:
            t.join(30)
        refresher.stop()
    assert errors == []
    db.rollback()
    for dims in ("day,machine", "month", "week,kind"):
        assert usage_report(db, dims) == usage_report(db, dims, use_rollups=False)
    db.commit()
    assert _count(db, UsageRollupDirty) == 0


def test_db_rollups_command(db_url: str, db: Session, lab: dict[str, Any]) -> None:
    _sessions(db, lab, 10)
    runner = CliRunner(env={"FABPASS_DATABASE_URL": db_url})
    result = runner.invoke(db_cli.db, ["rollups"])
    assert result.exit_code == 0, result.output
    assert "2 machines" in result.output and "from 10 marks" in result.output
    db.rollback()
    assert _count(db, UsageRollupDirty) == 0
    cells = _count(db, UsageRollup)
    assert cells > 0
    result = runner.invoke(db_cli.db, ["rollups", "--rebuild"])
    assert result.exit_code == 0, result.output
    db.rollback()
    assert _count(db, UsageRollup) == cells


def test_bounded_refresh_takes_whole_machines_and_stays_exact(db: Session, lab: dict[str, Any],
                                                              writer_sessions: Any) -> None:
    """The background refresher works in short transactions (whole machines of about
    `max_marks` marks each) so the ingest never waits long for the write lock."""
    from server.reports.rollups import refresh

    _sessions(db, lab, 20)
    with writer_sessions() as w:
        part = refresh(w, max_marks=5)
        w.commit()
    assert part.more and part.machines == 1 and part.dirty_rows == 10
    db.rollback()
    left = db.execute(sa.select(UsageRollupDirty.machine_id).distinct()).scalars().all()
    assert len(left) == 1  # the other machine's marks, all of them, for the next transaction
    with writer_sessions() as w:
        part = refresh(w, max_marks=5)
        w.commit()
    assert not part.more and part.machines == 1
    db.rollback()
    assert _count(db, UsageRollupDirty) == 0
    for dims in ("day,machine", "month", "site"):
        assert usage_report(db, dims) == usage_report(db, dims, use_rollups=False)
    _sessions(db, lab, 12, day=4)
    refresher = RollupRefresher(writer_sessions, interval_s=60, max_marks=3, pause_s=0.0)
    result = refresher.run_once()  # one round does every part
    assert result.machines == 2 and result.dirty_rows == 12
    db.rollback()
    assert _count(db, UsageRollupDirty) == 0
    for dims in ("day,machine", "week,kind"):
        assert usage_report(db, dims) == usage_report(db, dims, use_rollups=False)


def test_a_round_groups_the_marks_once_and_each_part_takes_only_its_machines(
        db: Session, lab: dict[str, Any], writer_sessions: Any, monkeypatch: Any) -> None:
    """The refresher's round is planned from one grouping of the marks (`plan`); each of its
    transactions reads and deletes only its own machines' marks, so marks of a machine that a
    part did not name (here: one written after the plan) stay for the next round, and the
    cells are exact after every part."""
    from server.reports import rollups

    _sessions(db, lab, 20)  # 10 marks on each of two machines
    with writer_sessions() as w:
        parts = rollups.plan(w, 5)
    laser, printer = lab["laser"].id, lab["printer"].id  # type: ignore[attr-defined]
    assert sorted(m for p in parts for m in p if m is not None) == sorted([laser, printer])
    assert all(len(p) == 1 for p in parts)  # 10 marks each > 5: a machine per part
    with writer_sessions() as w:
        part = rollups.refresh(w, machines=parts[0])
        w.commit()
    assert part.dirty_rows == 10 and part.machines == 1 and not part.more
    db.rollback()
    left = set(db.execute(sa.select(UsageRollupDirty.machine_id)).scalars())
    assert left == set(parts[1])
    groupings: list[int] = []
    real_plan = rollups.plan

    def counted(w: Session, max_marks: int) -> list[list[int | None]]:
        groupings.append(1)
        return real_plan(w, max_marks)

    import server.jobs as jobs

    monkeypatch.setattr(jobs, "plan", counted)
    result = RollupRefresher(writer_sessions, interval_s=60, max_marks=1, pause_s=0.0).run_once()
    assert groupings == [1] and result.dirty_rows == 10
    db.rollback()
    assert _count(db, UsageRollupDirty) == 0
    for dims in ("day,machine", "month", "site"):
        assert usage_report(db, dims) == usage_report(db, dims, use_rollups=False)
    with writer_sessions() as w:  # a part naming no machine with marks does nothing
        assert rollups.refresh(w, machines=[laser]).dirty_rows == 0
        assert rollups.refresh(w, machines=[]).dirty_rows == 0


def test_a_round_with_no_marks_rebuilds_a_site_whose_zone_changed(
        db: Session, lab: dict[str, Any], writer_sessions: Any) -> None:
    """No dirty marks, but a site's zone changed (its cells are in the old zone): the planned
    round is empty, and the refresher still rebuilds that site's machines in one refresh."""
    from server.models import Site
    from server.reports.rollups import pending

    _sessions(db, lab, 8)
    refresher = RollupRefresher(writer_sessions, interval_s=60, max_marks=3, pause_s=0.0)
    refresher.run_once()
    db.rollback()
    assert _count(db, UsageRollupDirty) == 0
    site = db.get(Site, lab["site"].id)  # type: ignore[attr-defined]
    assert site is not None
    site.timezone = "Pacific/Chatham"
    db.commit()
    assert pending(db) and _count(db, UsageRollupDirty) == 0
    result = refresher.run_once()
    assert result.machines == 2
    db.rollback()
    assert not pending(db)
    tz = set(db.execute(sa.select(UsageRollup.tz)).scalars())
    assert tz == {"Pacific/Chatham"}
    for dims in ("day,machine", "month"):
        assert usage_report(db, dims) == usage_report(db, dims, use_rollups=False)
