"""Ingest without MQTT (handle_batch): exactly-once storage, sessions in any order, dead letters,
sign-off, status tracking. Every test runs on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

from server_helpers import T0, ended, ev_in, event, heartbeat, incoming, started, status
from sqlalchemy import func, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from server import services as s
from server.models import (
    AclDirty,
    Authorization,
    DeadLetter,
    Event,
    Node,
    TrainingSignoff,
    UnknownBadge,
    UsageSession,
)


def _count(db: Session, model: type) -> int:
    db.rollback()
    return int(db.scalar(select(func.count()).select_from(model)) or 0)


def test_duplicate_delivery_of_every_event_type_stores_one_row(db, lab, ingest) -> None:
    alice = lab["alice"]
    trainer = s.create_member(db, "Tom Trainer", actor="cli")
    s.enrol_badge(db, trainer.id, "04T0T0T0".replace("T", "E"), actor="cli")
    s.grant(db, trainer.id, machine_id=lab["laser"].id, role="trainer", actor="cli")
    db.commit()
    sid = str(uuid.uuid4())
    events = [
        started(sid, member=alice.id, ts=T0),
        heartbeat(sid, 60, 30, member=alice.id, ts=T0 + timedelta(seconds=60)),
        ended(sid, T0, 120, 80, member=alice.id),
        event("badge.denied", {"uid": "04DEAD00", "reason": "unknown_badge"}),
        event("badge.denied", {"uid": "04A1B2C3", "reason": "not_authorized"}),
        event("training.signed", {"trainer_uid": "04E0E0E0", "trainee_uid": "04A1B2C3"}),
        event("door.opened", {"anything": [1, 2]}),  # unknown type: stored raw
    ]
    first = ingest.handle_batch([ev_in(e) for e in events] + [ev_in(events[0])])
    assert all(o.accepted for o in first)
    again = ingest.handle_batch([ev_in(e) for e in reversed(events)])
    assert all(o.accepted for o in again)  # duplicates are acked too
    assert {o.event_id for o in again} == {e.id for e in events}
    assert _count(db, Event) == len(events)
    assert _count(db, UsageSession) == 1
    assert _count(db, TrainingSignoff) == 1
    assert db.scalar(select(UnknownBadge.count).where(UnknownBadge.uid == "04DEAD00")) == 1
    assert _count(db, Authorization) == 2  # the trainer's and the one sign-off grant
    assert ingest.stats.duplicates == len(events) + 1
    raw = db.scalar(select(Event).where(Event.type == "door.opened"))
    assert raw is not None and raw.data == {"anything": [1, 2]}


def test_ended_before_started_makes_one_complete_session(db, lab, ingest) -> None:
    sid = str(uuid.uuid4())
    alice = lab["alice"]
    ingest.handle_batch([ev_in(ended(sid, T0, 600, 500, member=alice.id))])
    ingest.handle_batch([ev_in(started(sid, member=alice.id, ts=T0)),
                         ev_in(heartbeat(sid, 300, 250, member=alice.id,
                                         ts=T0 + timedelta(seconds=300)))])
    db.rollback()
    rows = list(db.scalars(select(UsageSession)))
    assert len(rows) == 1
    row = rows[0]
    assert row.started_at == T0 and row.ended_at == T0 + timedelta(seconds=600)
    assert row.duration_s == 600 and row.active_s == 500 and row.end_reason == "badge_out"
    assert row.member_id == alice.id and row.machine_id == lab["laser"].id
    assert row.has_started_event and row.has_ended_event


def test_replayed_ended_alone_is_a_complete_session(db, lab, ingest) -> None:
    sid = str(uuid.uuid4())
    ingest.handle_batch([ev_in(ended(sid, T0, 90, 10, reason="power_loss"))])
    db.rollback()
    row = db.scalar(select(UsageSession))
    assert row is not None and row.duration_s == 90 and row.end_reason == "power_loss"
    assert row.member_id == lab["alice"].id  # from the badge when the event names no member


def test_open_session_closed_lost_then_replaced_by_late_ended(db, lab, ingest) -> None:
    sid = str(uuid.uuid4())
    ingest.handle_batch([ev_in(started(sid, ts=T0)),
                         ev_in(heartbeat(sid, 120, 100, ts=T0 + timedelta(seconds=120)))])
    db.rollback()
    row = db.scalar(select(UsageSession))
    assert row is not None and row.ended_at is None  # open, visible as such
    # the node reports a status with another session: ours is lost
    other = {"id": str(uuid.uuid4()), "uid": "04A1B2C3", "member": None,
             "started": "2026-11-22T10:30:00.000Z"}
    ingest.handle_batch([incoming("fabpass/v1/lab/laser-1/status",
                                  status(session=other, ts=T0 + timedelta(minutes=31)))])
    db.rollback()
    row = db.scalar(select(UsageSession).where(UsageSession.session_uuid == sid))
    assert row.end_reason == "lost" and row.duration_s == 120
    assert row.ended_at == T0 + timedelta(seconds=120)
    ingest.handle_batch([ev_in(ended(sid, T0, 150, 130, reason="badge_out"))])
    db.rollback()
    row = db.scalar(select(UsageSession).where(UsageSession.session_uuid == sid))
    assert row.end_reason == "badge_out" and row.duration_s == 150


def test_status_older_than_session_does_not_close_it(db, lab, ingest) -> None:
    sid = str(uuid.uuid4())
    ingest.handle_batch([ev_in(started(sid, ts=T0))])
    ingest.handle_batch([incoming("fabpass/v1/lab/laser-1/status",
                                  status(session=None, ts=T0 - timedelta(seconds=5)))])
    db.rollback()
    assert db.scalar(select(UsageSession.ended_at)) is None


def test_events_on_another_nodes_topic_are_rejected(db, lab, ingest) -> None:
    ev = started(str(uuid.uuid4()), node="printer-1")
    out = ingest.handle_batch([ev_in(ev, node="laser-1")])
    assert out[0].rejected and out[0].event_id == ev.id and out[0].node == "laser-1"
    ghost = started(str(uuid.uuid4()), node="ghost-1")
    out = ingest.handle_batch([ev_in(ghost), ev_in(ghost),
                               ev_in(started(str(uuid.uuid4()), node="laser-1"), site="other")])
    assert all(o.rejected for o in out)
    assert _count(db, Event) == 0 and _count(db, UsageSession) == 0
    reasons = list(db.scalars(select(DeadLetter.reason).order_by(DeadLetter.id)))
    assert "mismatch" in reasons[0] and "not registered" in reasons[1]
    assert len(reasons) == 3  # the duplicate dead letter is stored once


def test_malformed_payloads_are_dead_lettered_never_raise(db, lab, ingest) -> None:
    good_id = str(uuid.uuid4())
    bad = [
        incoming("fabpass/v1/lab/laser-1/event", b"\xff\xfe not json"),
        incoming("fabpass/v1/lab/laser-1/event", b"[1,2]"),
        incoming("fabpass/v1/lab/laser-1/event", json.dumps({"v": 2, "id": good_id}).encode()),
        incoming("fabpass/v1/lab/laser-1/event", json.dumps(
            {"v": 1, "id": good_id, "node": "laser-1", "type": "badge.denied"}).encode()),
        incoming("fabpass/v1/lab/laser-1/status", b"{}"),
        incoming("fabpass/v1/Bad Site/x/event", b"{}"),
        incoming("fabpass/v1/lab/laser-1/acl", b"{}"),
        incoming("elsewhere/topic", b"{}"),
    ]
    out = ingest.handle_batch(bad)
    assert [o.rejected for o in out] == [False, False, True, True, False, False, False, False]
    assert _count(db, DeadLetter) == 7  # the second one with id good_id is the same dead letter
    assert ingest.stats.dead_letters == 8
    assert _count(db, Event) == 0


def test_clock_skew_flagged_and_received_at_kept(db, lab, ingest) -> None:
    ev = event("badge.denied", {"uid": "04A1B2C3", "reason": "expired"},
               ts=datetime.now(UTC) - timedelta(minutes=10))
    ok = event("badge.denied", {"uid": "04A1B2C3", "reason": "expired"})
    ingest.handle_batch([ev_in(ev), ev_in(ok)])
    db.rollback()
    rows = {r.event_id: r for r in db.scalars(select(Event))}
    assert rows[ev.id].clock_skewed and rows[ev.id].skew_s > 590
    assert not rows[ok.id].clock_skewed and rows[ok.id].received_at is not None


def test_signoff_only_by_a_real_trainer(db, lab, ingest) -> None:
    laser = lab["laser"]
    trainer = s.create_member(db, "Tom Trainer", actor="cli")
    s.enrol_badge(db, trainer.id, "04E0E0E0", actor="cli")
    s.grant(db, trainer.id, group_id=lab["group"].id, role="trainer", actor="cli")  # lasers only
    bob = s.create_member(db, "Bob", actor="cli")
    s.enrol_badge(db, bob.id, "04B0B0B0", actor="cli")
    fake = s.create_member(db, "Fake Trainer", actor="cli")
    s.enrol_badge(db, fake.id, "04F0F0F0", actor="cli")
    s.grant(db, fake.id, machine_id=laser.id, role="user", actor="cli")
    db.commit()
    db.execute(AclDirty.__table__.delete())
    db.commit()
    signed = lambda trainer_uid, node="laser-1": event(  # noqa: E731
        "training.signed", {"trainer_uid": trainer_uid, "trainee_uid": "04B0B0B0"}, node=node)
    ingest.handle_batch([ev_in(signed("04F0F0F0")),                 # a user, not a trainer
                         ev_in(signed("04E0E0E0", "printer-1"))])   # trainer, not of printers
    db.rollback()
    assert s.valid_machine_ids_for(db, bob.id) == set()
    assert list(db.scalars(select(TrainingSignoff.outcome))) == ["refused", "refused"]
    ingest.handle_batch([ev_in(signed("04E0E0E0"))])
    db.rollback()
    auth = db.scalar(select(Authorization).where(Authorization.member_id == bob.id))
    assert auth is not None and auth.machine_id == laser.id and auth.role.value == "user"
    assert auth.granted_by_member_id == trainer.id and auth.granted_via == "signoff"
    assert set(db.scalars(select(AclDirty.node_id))) == {laser.node_id}  # list pushed
    ingest.handle_batch([ev_in(signed("04E0E0E0"))])
    db.rollback()
    assert _count(db, Authorization) == 3  # no second grant
    assert db.scalars(select(TrainingSignoff.outcome).order_by(TrainingSignoff.id)).all()[-1] \
        == "already"


def test_status_and_last_will_tracked(db, lab, ingest) -> None:
    node = lab["laser"].node
    node.acl_published_version = 50
    node.acl_published_at = datetime.now(UTC) - timedelta(minutes=1)
    db.commit()
    db.execute(AclDirty.__table__.delete())
    db.commit()
    ingest.handle_batch([incoming("fabpass/v1/lab/laser-1/status", status(acl_version=7))])
    assert _count(db, DeadLetter) == 0, db.scalars(select(DeadLetter.reason)).all()
    db.rollback()
    node = db.scalar(select(Node).where(Node.slug == "laser-1"))
    assert node.online and node.state == "idle" and node.acl_version == 7
    assert node.software == "0.1.0" and node.last_seen is not None
    assert set(db.scalars(select(AclDirty.node_id))) == {node.id}  # older list: resend
    will = json.dumps({"v": 1, "node": "laser-1", "online": False}).encode()
    ingest.handle_batch([incoming("fabpass/v1/lab/laser-1/status", will)])
    db.rollback()
    assert db.scalar(select(Node.online).where(Node.slug == "laser-1")) is False
    # a status on another node's topic is a dead letter
    ingest.handle_batch([incoming("fabpass/v1/lab/laser-1/status",
                                  status(node="printer-1"))])
    assert _count(db, DeadLetter) == 1


def test_two_workers_racing_on_the_same_events_store_each_once(db, lab, writer_sessions) -> None:
    """As with shared subscriptions plus redeliveries: concurrent batches, no duplicates."""
    import threading

    from protocol import Topics
    from server.messaging.ingest import Ingest

    evs = []
    for _ in range(60):
        sid = str(uuid.uuid4())
        evs += [started(sid, ts=T0), heartbeat(sid, 5, 1, ts=T0 + timedelta(seconds=5)),
                ended(sid, T0, 10, 2)]
    workers = [Ingest(writer_sessions, Topics("fabpass")) for _ in range(2)]
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def run(w: Ingest, order: list) -> None:  # type: ignore[type-arg]
        try:
            barrier.wait(5)
            for i in range(0, len(order), 30):
                for attempt in range(5):  # as the writer thread does: retry DB errors
                    try:
                        w.handle_batch([ev_in(e) for e in order[i:i + 30]])
                        break
                    except DBAPIError:
                        if attempt == 4:
                            raise
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(workers[0], evs)),
               threading.Thread(target=run, args=(workers[1], list(reversed(evs))))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert _count(db, Event) == len(evs)
    assert _count(db, UsageSession) == 60
    db.rollback()
    assert set(db.scalars(select(UsageSession.duration_s))) == {10}
    assert sum(w.stats.stored for w in workers) == len(evs)


def test_dead_letters_counted_per_node(db, lab, ingest) -> None:
    ingest.handle_batch([incoming("fabpass/v1/lab/laser-1/event", b"junk"),
                         incoming("fabpass/v1/lab/laser-1/event", b"more junk"),
                         incoming("nowhere", b"x")])
    db.rollback()
    assert s.dead_letter_counts(db) == {"laser-1": 2, None: 1}
    assert ingest.stats.as_dict()["dead_letters"] == 3
