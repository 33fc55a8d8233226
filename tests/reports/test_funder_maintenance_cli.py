"""Funder report masking, maintenance by active hours, and the `fabpass report` commands."""

from __future__ import annotations

import json
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy.orm import Session

from server.models import Machine, MachineKind, Member, UsageSession
from server.reports import funder_report, mask
from server.services.maintenance import (
    MaintenanceError,
    create_task,
    due_maintenance,
    log_intervention,
    maintenance_status,
)

from .conftest import T

H = 1 / 3600


def test_mask() -> None:
    assert [mask(n) for n in (0, 1, 4, 5, 12)] == [0, "<5", "<5", 5, 12]


def test_funder_masks_small_counts(db: Session, data: dict[str, Any]) -> None:
    rep = funder_report(db, T("2026-10-01T00:00:00Z"), T("2027-01-01T00:00:00Z"))
    # 3 members, 6 sessions, 5 visits: the people counts and the hours of 3 people are masked
    assert rep["summary"] == {"members": "<5", "new_members": 0, "visits": 5, "sessions": 6,
                              "hours": "<5", "active_hours": "<5"}
    assert {r["kind"]: r["members"] for r in rep["by_kind"]} == {
        "3d_printer": "<5", "cnc": "<5", "laser_cutter": "<5"}
    assert all(r["hours"] == "<5" for r in rep["by_kind"])
    assert rep["by_tag"] == [{"tag": "student", "members": "<5"}, {"tag": "youth", "members": "<5"}]


def test_funder_shows_counts_of_five_and_more(db: Session, data: dict[str, Any]) -> None:
    """Six new members in September 2026, one session each on the printer (one of them twice)."""
    for i in range(6):
        m = Member(name=f"Crowd {i}", tags=["senior"] + (["youth"] if i == 0 else []),
                   site_id=data["paris"], created_at=T("2026-09-01T10:00:00Z"))
        db.add(m)
        db.flush()
        for j in range(2 if i == 0 else 1):
            db.add(UsageSession(session_uuid=f"crowd-{i}-{j}", member_id=m.id,
                                machine_id=data["printer"], badge_uid=f"05{i:06X}",
                                started_at=T(f"2026-09-{10 + i}T1{j}:00:00Z"),
                                ended_at=T(f"2026-09-{10 + i}T1{j}:30:00Z"), duration_s=1800,
                                active_s=900, has_started_event=True, has_ended_event=True))
    db.flush()
    rep = funder_report(db, T("2026-09-01T00:00:00Z"), T("2026-10-01T00:00:00Z"), site="paris")
    assert rep["site"] == "paris"
    assert rep["summary"] == {"members": 6, "new_members": 6, "visits": 6, "sessions": 7,
                              "hours": 3.5, "active_hours": 1.8}
    assert rep["by_kind"] == [{"kind": "3d_printer", "members": 6, "sessions": 7, "hours": 3.5,
                               "active_hours": 1.8}]
    assert rep["by_tag"] == [{"tag": "senior", "members": 6}, {"tag": "youth", "members": "<5"}]
    assert {"section": "tag", "key": "youth", "metric": "members", "value": "<5"} in rep["rows"]
    # the other site saw nobody
    hq = funder_report(db, T("2026-09-01T00:00:00Z"), T("2026-10-01T00:00:00Z"), site="hq")
    assert hq["summary"]["members"] == 0 and hq["summary"]["new_members"] == 0


def test_maintenance_due_overdue_and_logging(db: Session, data: dict[str, Any]) -> None:
    laser = data["laser"]
    total = (1200 + 3600 + 1800) * H  # S7 + S1 + S2 active; the open S5 does not count
    lens = create_task(db, laser, "Clean lenses", 2.0)      # 0.17 h left of 2: due (<10 %)
    tube = create_task(db, laser, "Tube check", 1.5)        # past its interval: overdue
    belt = create_task(db, laser, "Belt tension", 100.0)    # ok
    st = maintenance_status(db, laser)
    assert st["active_hours"] == pytest.approx(total, abs=0.01)
    assert st["hours_since_maintenance"] is None
    states = {t["name"]: (t["state"], t["remaining_h"]) for t in st["tasks"]}
    assert states == {"Belt tension": ("ok", pytest.approx(100 - total, abs=0.01)),
                      "Clean lenses": ("due", pytest.approx(2 - total, abs=0.01)),
                      "Tube check": ("overdue", pytest.approx(1.5 - total, abs=0.01))}
    due = due_maintenance(db)
    assert list(due) == [laser]
    assert [t["name"] for t in due[laser]] == ["Tube check", "Clean lenses"]

    # tube done on 1 Nov at noon: S7 and S1 had ended (0.33 + 1.0 active h), S2 had not;
    # the machine stays locked until the new tube is aligned
    entry = log_intervention(db, laser, tube.id, user_id=None, note="new tube",
                             done_at=T("2026-11-01T12:00:00Z"), lock=True, actor="test")
    assert entry.active_hours_at == pytest.approx((1200 + 3600) * H, abs=1e-6)
    machine = db.get(Machine, laser)
    assert machine is not None and machine.locked
    assert (machine.lock_reason or "").startswith("maintenance: ")
    st = maintenance_status(db, laser)
    assert st["hours_since_maintenance"] == pytest.approx(0.5, abs=0.01)
    assert {t["name"]: t["state"] for t in st["tasks"]}["Tube check"] == "ok"
    assert [t["name"] for t in due_maintenance(db)[laser]] == ["Clean lenses"]

    log_intervention(db, laser, tube.id, user_id=None, note="aligned",
                     done_at=T("2026-11-01T13:00:00Z"), actor="test")
    assert not db.get(Machine, laser).locked  # type: ignore[union-attr]
    assert belt.id and lens.id


def test_maintenance_does_not_unlock_a_machine_locked_for_another_reason(
        db: Session, data: dict[str, Any]) -> None:
    machine = db.get(Machine, data["printer"])
    assert machine is not None
    machine.locked, machine.lock_reason = True, "broken door"
    db.flush()
    log_intervention(db, data["printer"], None, user_id=None, note="oiled", actor="test")
    assert machine.locked and machine.lock_reason == "broken door"


def test_maintenance_bad_input(db: Session, data: dict[str, Any]) -> None:
    with pytest.raises(MaintenanceError):
        create_task(db, data["laser"], "x", -1)
    with pytest.raises(MaintenanceError):
        create_task(db, data["laser"], "", 10)
    with pytest.raises(MaintenanceError):
        create_task(db, 999_999, "x", 10)
    other = create_task(db, data["printer"], "Nozzle", 10)
    with pytest.raises(MaintenanceError):
        log_intervention(db, data["laser"], other.id, user_id=None)
    assert MachineKind.cnc.value == "cnc"


def test_cli_usage_and_funder(module_db_url: str, data: dict[str, Any],
                              monkeypatch: pytest.MonkeyPatch) -> None:
    from fabpass.cli import main

    monkeypatch.setenv("FABPASS_DATABASE_URL", module_db_url)
    runner = CliRunner()
    res = runner.invoke(main, ["report", "usage", "--group-by", "month", "--site", "paris",
                               "--since", "2026-10-01", "--until", "2026-11-01T00:00:00Z"])
    assert res.exit_code == 0, res.output
    # until midnight UTC is 01:00 in Paris: the first Paris hour of November is in the range
    assert res.output.splitlines() == ["month,sessions,hours,active_hours,members,kwh",
                                       "2026-10,2,1.5,0.5833,2,0.0", "2026-11,0,1.0,0.5,1,0.0"]
    res = runner.invoke(main, ["report", "usage", "--group-by", "machine", "--format", "json"])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.output)["rows"]
    assert [(r["machine"], r["sessions"]) for r in rows] == [
        ("cnc-1", 1), ("laser-1", 3), ("printer-1", 2)]
    res = runner.invoke(main, ["report", "usage", "--group-by", "colour"])
    assert res.exit_code == 2 and "unknown dimension" in res.output
    res = runner.invoke(main, ["report", "funder", "--since", "2026-10-01",
                               "--until", "2027-01-01"])
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert lines[0] == "section,key,metric,value"
    assert "summary,members,members,<5" in lines and "summary,sessions,sessions,6" in lines


def test_cli_unmigrated_database_is_a_message(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from fabpass.cli import main

    monkeypatch.setenv("FABPASS_DATABASE_URL", f"sqlite:///{tmp_path}/empty.db")
    res = CliRunner().invoke(main, ["report", "usage"])
    assert res.exit_code == 1 and "fabpass db upgrade" in res.output
