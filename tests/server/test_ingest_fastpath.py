"""The ingest's fast path (issue 21: sessions as plain rows written with Core, refusals explained
from a batch's lookups): the same records as message-by-message handling, in the cases where
the two paths could part: a status of the same batch closing a session as lost before its
`ended`, pricing of sessions the batch closed, and the counters of a batch that is redone."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from server_helpers import T0, ended, ev_in, event, heartbeat, incoming, started, status
from sqlalchemy import select

from server import services as s
from server.messaging import ingest as ingest_module
from server.models import Charge, Refusal, UsageSession
from server.services import billing


def _price(db: Any, lab: Any) -> None:
    billing.set_tariff(db, lab["laser"].id, {"per_minute_cents": 10}, actor="test",
                       now=T0 - timedelta(days=1))
    db.commit()


def test_a_status_and_the_ended_event_in_one_batch_leave_the_ended_session(db, lab, ingest) -> None:
    _price(db, lab)
    sid = str(uuid.uuid4())
    ingest.handle_batch([ev_in(started(sid, member=lab["alice"].id, ts=T0)),
                         ev_in(heartbeat(sid, 120, 100, ts=T0 + timedelta(seconds=120)))])
    other = {"id": str(uuid.uuid4()), "uid": "04A1B2C3", "member": None,
             "started": "2026-11-22T10:30:00.000Z"}
    # one batch: the status closes ours as lost (ORM), then its `ended` arrives (fast path)
    out = ingest.handle_batch([
        incoming("fabpass/v1/lab/laser-1/status", status(session=other, ts=T0 + timedelta(minutes=31))),
        ev_in(ended(sid, T0, 600, 500, member=lab["alice"].id, reason="badge_out"))])
    assert out[1].accepted
    db.rollback()
    row = db.scalar(select(UsageSession).where(UsageSession.session_uuid == sid))
    assert row is not None and row.end_reason == "badge_out" and row.duration_s == 600
    charge = db.scalar(select(Charge).where(Charge.session_id == row.id))
    assert charge is not None and charge.minutes_billed == 10 and charge.amount_cents == 100


def test_sessions_opened_and_closed_in_one_batch_are_priced_once(db, lab, ingest) -> None:
    _price(db, lab)
    sids = [str(uuid.uuid4()) for _ in range(3)]
    batch = []
    for i, sid in enumerate(sids):
        start = T0 + timedelta(hours=i)
        batch += [ev_in(started(sid, member=lab["alice"].id, ts=start)),
                  ev_in(ended(sid, start, 60 * (i + 1), 30, member=lab["alice"].id))]
    ingest.handle_batch(batch)
    ingest.handle_batch(batch)  # replayed: duplicates, nothing charged twice
    db.rollback()
    charges = db.scalars(select(Charge).order_by(Charge.started_at)).all()
    assert [c.amount_cents for c in charges] == [10, 20, 30]


def test_a_batch_redone_message_by_message_counts_each_event_once(db, lab, ingest,
                                                                   monkeypatch) -> None:
    calls = {"n": 0}
    real = ingest_module.Ingest._write_sessions

    def fail_once(self: Any, db_: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("a bug on odd data")
        real(self, db_)

    monkeypatch.setattr(ingest_module.Ingest, "_write_sessions", fail_once)
    sid = str(uuid.uuid4())
    events = [started(sid, ts=T0), heartbeat(sid, 60, 30, ts=T0 + timedelta(seconds=60)),
              event("badge.denied", {"uid": "04DEAD00", "reason": "unknown_badge"})]
    bad = incoming("fabpass/v1/lab/laser-1/event", b"{not json")  # a dead letter in the batch
    out = ingest.handle_batch([ev_in(e) for e in events] + [bad])
    assert all(o.accepted for o in out[:3]) and calls["n"] == 1  # the slow path needs no rewrite
    assert (ingest.stats.stored, ingest.stats.duplicates, ingest.stats.received) == (3, 0, 4)
    # the dead letter is counted once, in its total and under its reason
    assert ingest.stats.dead_letters == 1
    assert sum(ingest.stats.by_reason.values()) == 1


def test_refusals_of_a_batch_are_explained_as_one_by_one(db, lab, ingest) -> None:
    alice = lab["alice"]
    auth = s.grant(db, alice.id, lab["laser"].id, None, "user", actor="cli")
    db.commit()
    s.revoke(db, auth.id, actor="cli", reason="safety")
    db.commit()
    bob = s.create_member(db, "Bob", actor="cli")
    s.enrol_badge(db, bob.id, "04B0B0B0", actor="cli")
    db.commit()
    now = datetime.now(UTC)
    denials = [event("badge.denied", {"uid": "04A1B2C3", "reason": "unknown_badge"}, ts=now),
               event("badge.denied", {"uid": "04B0B0B0", "reason": "unknown_badge"}, ts=now),
               event("badge.denied", {"uid": "04DEAD00", "reason": "unknown_badge"}, ts=now),
               event("badge.denied", {"uid": "04A1B2C3", "reason": "machine_locked"}, ts=now)]
    ingest.handle_batch([ev_in(e) for e in denials])
    db.rollback()
    got = {r.event_uuid: r.reason for r in db.scalars(select(Refusal))}
    assert [got[e.id] for e in denials] == ["revoked", "not_authorized", "unknown_badge",
                                            "machine_locked"]
