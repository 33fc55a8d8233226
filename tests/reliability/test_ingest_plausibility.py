"""Plausibility and identity of session events (contract section 6; issue 13, items 3 and 6).

Each rule through the ingest's batch handler on SQLite and PostgreSQL: a rejected event is
acked under `rejected`, dead-lettered with its reason, and changes nothing; an event with
untrusted wall-clock times is stored, placed from the receive time, and flagged.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from ingest_live import GOOD, SITE, event, session_events, setup_lab
from sqlalchemy import select
from sqlalchemy.orm import Session

from protocol import Topics, format_ts
from server.db import make_sessionmaker
from server.messaging.ingest import Incoming, Ingest, Outcome
from server.models import DeadLetter, Event, UsageSession

OTHER_NODE = "printer-1"
DAY = 86400.0


@pytest.fixture()
def ingest(db: Session) -> Ingest:
    setup_lab(db, GOOD, OTHER_NODE)
    return Ingest(make_sessionmaker(db.get_bind()), Topics())  # type: ignore[arg-type]


def _send(ingest: Ingest, *events: dict[str, Any], node: str | None = None,
          raw: bytes | None = None, at: datetime | None = None) -> list[Outcome]:
    now = at or datetime.now(UTC)
    batch = [Incoming(f"fabpass/v1/{SITE}/{node or ev['node']}/event",
                      raw if raw is not None else json.dumps(ev).encode(), i, 1,
                      now + timedelta(microseconds=i)) for i, ev in enumerate(events)]
    return ingest.handle_batch(batch)


def _ended(start: datetime, end: datetime, duration: float, active: float | None = None,
           node: str = GOOD, sid: str | None = None) -> dict[str, Any]:
    return event("session.ended", {
        "session": sid or str(uuid.uuid4()), "uid": "04A1B2C3", "member": None,
        "started": format_ts(start), "ended": format_ts(end), "duration_s": duration,
        "active_s": duration / 2 if active is None else active, "reason": "badge_out"},
        node=node, ts=end)


def _reason(db: Session, eid: str) -> str | None:
    db.expire_all()
    return db.scalar(select(DeadLetter.reason).where(DeadLetter.event_id == eid))


def _session(db: Session, sid: str) -> UsageSession | None:
    db.expire_all()
    return db.scalar(select(UsageSession).where(UsageSession.session_uuid == sid))


def _assert_rejected(db: Session, out: Outcome, ev: dict[str, Any], words: str) -> None:
    assert out.rejected and not out.accepted and out.event_id == ev["id"]
    reason = _reason(db, ev["id"])
    assert reason is not None and words in reason, reason
    assert db.scalar(select(Event.id).where(Event.event_id == ev["id"])) is None
    assert _session(db, ev["data"]["session"]) is None


NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.mark.parametrize(("start", "end", "duration", "active", "words"), [
    (NOW - timedelta(days=8), NOW, 8 * DAY, 10.0, "maximum session length"),
    (NOW - timedelta(hours=1), NOW, 1e308, 10.0, "maximum session length"),
    (NOW - timedelta(hours=1), NOW, 3600.0, 3601.0, "must not exceed"),
    (NOW - timedelta(hours=1), NOW, 3600.0 + 301, 10.0, "ended - started"),
    (NOW - timedelta(hours=1), NOW, -1.0, 0.0, "must not be negative"),
], ids=["over-max", "1e308", "active-over-duration", "over-wall-span", "negative"])
def test_implausible_session_end_is_rejected(db: Session, ingest: Ingest, start: datetime,
                                             end: datetime, duration: float, active: float,
                                             words: str) -> None:
    ev = _ended(start, end, duration, active)
    [out] = _send(ingest, ev)
    _assert_rejected(db, out, ev, words)


@pytest.mark.parametrize("spelling", [b"NaN", b"Infinity", b"-Infinity", b"1e400"])
def test_non_finite_durations_are_rejected(db: Session, ingest: Ingest, spelling: bytes) -> None:
    ev = _ended(NOW - timedelta(minutes=1), NOW, 60.0)
    raw = json.dumps(ev).encode().replace(b'"duration_s": 60.0', b'"duration_s": ' + spelling)
    [out] = _send(ingest, ev, raw=raw)
    _assert_rejected(db, out, ev, "")


def test_duration_within_the_skew_allowance_is_stored(db: Session, ingest: Ingest) -> None:
    ev = _ended(NOW - timedelta(hours=1), NOW, 3600.0 + 299)
    [out] = _send(ingest, ev)
    assert out.accepted
    row = _session(db, ev["data"]["session"])
    assert row is not None and row.duration_s == 3899 and not row.clock_untrusted


def test_max_session_length_is_a_setting(db: Session, monkeypatch: pytest.MonkeyPatch) -> None:
    setup_lab(db, GOOD)
    monkeypatch.setenv("FABPASS_MAX_SESSION_S", "100")
    ingest = Ingest(make_sessionmaker(db.get_bind()), Topics())  # type: ignore[arg-type]
    long_ = _ended(NOW - timedelta(seconds=200), NOW, 200.0)
    short = _ended(NOW - timedelta(seconds=90), NOW, 90.0)
    heartbeat = event("session.heartbeat", {"session": str(uuid.uuid4()), "uid": "04A1B2C3",
                                            "member": None, "elapsed_s": 150.0,
                                            "active_s": 1.0})
    out_long, out_short, out_hb = _send(ingest, long_, short, heartbeat)
    _assert_rejected(db, out_long, long_, "FABPASS_MAX_SESSION_S")
    _assert_rejected(db, out_hb, heartbeat, "elapsed_s")
    assert out_short.accepted and _session(db, short["data"]["session"]) is not None


def _aware(t: datetime) -> datetime:
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t


@pytest.mark.parametrize(("start", "end", "end_trusted"), [
    (datetime(1970, 1, 1, 0, 5, tzinfo=UTC), datetime(1970, 1, 1, 0, 6, tzinfo=UTC), False),
    (datetime(2019, 12, 31, 23, 59, 30, tzinfo=UTC), datetime(2020, 1, 1, 0, 0, 30, tzinfo=UTC),
     True),
    (NOW + timedelta(days=400), NOW + timedelta(days=400, seconds=60), False),
    (datetime(9999, 12, 31, 23, 58, tzinfo=UTC), datetime(9999, 12, 31, 23, 59, tzinfo=UTC), False),
], ids=["1970", "across-2020", "next-year", "year-9999"])
def test_untrusted_wall_clock_is_placed_from_the_receive_time(
        db: Session, ingest: Ingest, start: datetime, end: datetime, end_trusted: bool) -> None:
    received = datetime.now(UTC)
    ev = _ended(start, end, 60.0)
    [out] = _send(ingest, ev, at=received)
    assert out.accepted
    row = _session(db, ev["data"]["session"])
    assert row is not None and row.clock_untrusted and row.duration_s == 60.0
    assert row.ended_at is not None
    ended_at, started_at = _aware(row.ended_at), _aware(row.started_at)
    assert abs((ended_at - (end if end_trusted else received)).total_seconds()) < 1
    assert (ended_at - started_at).total_seconds() == pytest.approx(60.0, abs=0.01)


def test_untrusted_start_and_heartbeat_are_placed_and_flagged(db: Session,
                                                              ingest: Ingest) -> None:
    received = datetime.now(UTC)
    evs = session_events(GOOD, start=datetime(1970, 1, 1, tzinfo=UTC), duration=60.0)
    out = _send(ingest, evs[0], evs[1], at=received)
    assert all(o.accepted for o in out)
    row = _session(db, evs[0]["data"]["session"])
    assert row is not None and row.clock_untrusted and row.ended_at is None
    started_at = _aware(row.started_at)
    assert abs((started_at - received).total_seconds()) < 60


def test_a_session_spanning_years_is_placed_from_its_end(db: Session, ingest: Ingest) -> None:
    """Trusted but years apart, with a short monotonic duration: a clock jump during the session.
    Placed from its end (so one session never spans thousands of report cells) and flagged."""
    ev = _ended(datetime(2020, 1, 2, tzinfo=UTC), NOW, 60.0)
    [out] = _send(ingest, ev)
    assert out.accepted
    row = _session(db, ev["data"]["session"])
    assert row is not None and row.clock_untrusted
    assert row.ended_at is not None
    assert (row.ended_at - row.started_at).total_seconds() == pytest.approx(60.0, abs=0.01)


@pytest.mark.parametrize("with_company", [False, True], ids=["alone", "in-a-batch"])
def test_a_node_cannot_change_another_nodes_session(db: Session, ingest: Ingest,
                                                    with_company: bool) -> None:
    own = session_events(GOOD, duration=60.0)
    assert all(o.accepted for o in _send(ingest, *own[:2]))  # laser-1's open session
    sid = own[0]["data"]["session"]
    forged = _ended(NOW - timedelta(days=6), NOW, 6 * DAY, node=OTHER_NODE, sid=sid)
    forged_hb = event("session.heartbeat", {"session": sid, "uid": "04A1B2C3", "member": None,
                                            "elapsed_s": 5000.0, "active_s": 1.0},
                      node=OTHER_NODE)
    company = session_events(OTHER_NODE, duration=30.0) if with_company else []
    outs = _send(ingest, *company, forged, forged_hb)
    *company_out, out, out_hb = outs
    for o, ev in ((out, forged), (out_hb, forged_hb)):
        assert o.rejected and not o.accepted and o.node == OTHER_NODE
        reason = _reason(db, ev["id"])
        assert reason is not None and reason.startswith("identity:"), reason
        assert db.scalar(select(Event.id).where(Event.event_id == ev["id"])) is None
    assert all(o.accepted for o in company_out)
    row = _session(db, sid)
    assert row is not None and row.ended_at is None and row.elapsed_s == 30.0
    # and laser-1 still ends its own session
    assert _send(ingest, own[2])[0].accepted
    row = _session(db, sid)
    assert row is not None and row.duration_s == 60.0


@pytest.mark.parametrize("stored", [1e308, float("inf"), -5.0], ids=["1e308", "inf", "negative"])
def test_reports_never_emit_a_non_finite_number(db: Session, ingest: Ingest,
                                                stored: float) -> None:
    """Rows stored before the ingest's bounds (or by hand) count their wall-clock span."""
    import math

    from server.models import Machine
    from server.reports import usage_report

    mid = db.scalar(select(Machine.id).where(Machine.slug == GOOD))
    start = datetime(2026, 11, 2, 10, tzinfo=UTC)
    for i in range(2):
        db.add(UsageSession(session_uuid=str(uuid.uuid4()), machine_id=mid, badge_uid="04A1B2C3",
                            started_at=start + timedelta(hours=i),
                            ended_at=start + timedelta(hours=i, minutes=30),
                            duration_s=stored, active_s=stored, has_ended_event=True))
    db.commit()
    for dims in (["machine"], ["month"], ["machine", "month"]):
        for rollups in (True, False):
            rows = usage_report(db, dims, use_rollups=rollups)
            numbers = [v for r in rows for v in r.values() if isinstance(v, float)]
            assert numbers and all(math.isfinite(v) for v in numbers), rows
            assert json.dumps(rows, allow_nan=False)
            assert sum(r["hours"] for r in rows) == pytest.approx(1.0)
    db.commit()
