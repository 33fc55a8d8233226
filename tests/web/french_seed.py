"""Demo-like data on top of tests/web/seed.py for the French page tests: sessions ended for
every end reason, refusals for every reason, a revoked and an expired training, a locked
machine with its reason, an erased member, a member whose name is a formula, accents.

Loaded by importlib (tests are not a package), like seed.py.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from protocol.messages import DENY_REASONS, END_REASONS

FORMULA_NAME = "=HYPERLINK(\"http://x\")"
FORMULA_TAG = "+cmd"


def enrich(db: Any, seed: Any) -> dict[str, Any]:
    from server import services
    from server.models import Authorization, Event, Member, UsageSession
    from server.services import privacy

    now = datetime.now(UTC).replace(microsecond=0)
    zoe = services.create_member(db, "Zoé Lambert", email="zoe@example.org", site="lab",
                                 tags=["étudiant"], actor="test")
    services.enrol_badge(db, zoe.id, "04ABCDEF", actor="test")
    formula = services.create_member(db, FORMULA_NAME, site="lab", tags=[FORMULA_TAG],
                                     actor="test")
    grant = services.grant(db, zoe.id, machine_id=seed.laser, actor="user:1 admin@example.org")
    services.revoke(db, grant.id, reason="usage dangereux", actor="user:1 admin@example.org")
    db.add(Authorization(member_id=formula.id, machine_id=seed.laser,
                         granted_at=now - timedelta(days=400), expires_at=now - timedelta(days=30)))
    t0 = now - timedelta(days=2)
    for i, reason in enumerate(END_REASONS):
        start = t0 + timedelta(minutes=10 * i)
        who = (seed.alice, "04A1B2C3") if i % 2 else (zoe.id, "04ABCDEF")
        db.add(UsageSession(session_uuid=str(uuid.uuid4()), machine_id=seed.laser,
                            member_id=who[0], badge_uid=who[1], started_at=start,
                            ended_at=start + timedelta(minutes=5, seconds=30), duration_s=330.5,
                            active_s=200.25, end_reason=reason))
    db.add(UsageSession(session_uuid=str(uuid.uuid4()), machine_id=seed.laser,
                        member_id=formula.id, badge_uid="04A1B2C3", started_at=t0,
                        ended_at=t0 + timedelta(hours=1), duration_s=3600, active_s=1800,
                        end_reason="badge_out"))
    for i, reason in enumerate(DENY_REASONS):
        db.add(Event(event_id=str(uuid.uuid4()), node_slug="laser-1", type="badge.denied",
                     ts=t0 + timedelta(minutes=i), boot=str(uuid.uuid4()), seq=i,
                     data={"uid": "04ABCDEF", "reason": reason}))
    services.set_machine_lock(db, seed.printer, True, reason="Buse bouchée",
                              actor="user:1 admin@example.org")
    gone = services.create_member(db, "Ernest Effacé", site="lab", actor="test")
    services.enrol_badge(db, gone.id, "04EEEEEE", actor="test")
    db.flush()
    privacy.erase_member(db, gone.id, actor="user:1 admin@example.org")
    db.commit()
    from server.reports import rollups

    rollups.refresh(db)  # what the server's periodic job does every few seconds
    db.commit()
    assert db.get(Member, gone.id).erased_at is not None
    return {"zoe": zoe.id, "formula": formula.id, "erased": gone.id}
