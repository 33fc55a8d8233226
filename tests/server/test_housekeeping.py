"""The server's daily housekeeping runs the privacy retention job (pseudonymisation)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.models import UsageSession
from server.runner import Housekeeping


def test_housekeeping_pseudonymises_old_sessions(db: Session, writer_sessions) -> None:  # type: ignore[no-untyped-def]
    old = datetime.now(UTC) - timedelta(days=800)
    recent = datetime.now(UTC) - timedelta(days=1)
    for uuid_, started in (("00000000-0000-4000-8000-000000000001", old),
                           ("00000000-0000-4000-8000-000000000002", recent)):
        db.add(UsageSession(session_uuid=uuid_, badge_uid="04A1B2C3", started_at=started,
                            ended_at=started + timedelta(hours=1), duration_s=3600.0,
                            active_s=10.0, end_reason="badge_out"))
    db.commit()

    job = Housekeeping(writer_sessions, first_delay_s=0.0)
    job.start()
    try:
        deadline = time.monotonic() + 20
        while job.runs < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert job.runs == 1
    finally:
        job.stop()

    db.expire_all()
    rows = {s.session_uuid[-1]: s for s in db.scalars(select(UsageSession))}
    assert rows["1"].pseudonymised_at is not None and rows["1"].badge_uid != "04A1B2C3"
    assert rows["2"].pseudonymised_at is None and rows["2"].badge_uid == "04A1B2C3"
    assert rows["1"].duration_s == 3600.0  # totals are kept
