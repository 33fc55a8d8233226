"""Smart-plug readings through the ingest (issue 16): live power, plug online, found on alone,
energy per session with its plausibility bound, and the managers' alerts. SQLite and PostgreSQL."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

from server_helpers import T0, ended, ev_in, event, heartbeat, incoming, started, status
from sqlalchemy import select
from sqlalchemy.orm import Session

from server.models import DeadLetter, Event, Node, NodePlug, OutgoingMail, Site, User, UserRole
from server.services import alerts


def _node(db: Session) -> Node:
    db.rollback()
    node = db.scalar(select(Node).where(Node.slug == "laser-1"))
    assert node is not None
    return node


def _plug_status(power: float | None, online: bool | None) -> bytes:
    d = json.loads(status())
    if power is not None:
        d["power_w"] = power
    if online is not None:
        d["actuator_online"] = online
    return json.dumps(d).encode()


def test_unexpected_on_is_stored_and_kept_per_node(db, lab, ingest) -> None:  # type: ignore[no-untyped-def]
    ev = event("actuator.unexpected_on", {"action": "switched_off",
                                          "device": "shellyplugsg3-a1", "power_w": 12.5})
    [out] = ingest.handle_batch([ev_in(ev)])
    assert out.accepted and not out.rejected
    node = _node(db)
    assert db.scalar(select(Event.type).where(Event.event_id == ev.id)) == "actuator.unexpected_on"
    plug = db.get(NodePlug, node.id)
    assert plug is not None and plug.unexpected_at is not None
    assert plug.unexpected == {"action": "switched_off", "device": "shellyplugsg3-a1",
                               "power_w": 12.5}
    assert plug.power_w == 12.5
    assert db.scalar(select(DeadLetter.id)) is None


def test_unexpected_on_with_a_bad_action_is_dead_lettered(db, lab, ingest) -> None:  # type: ignore[no-untyped-def]
    ev = event("actuator.unexpected_on", {"action": "exploded"})
    [out] = ingest.handle_batch([ev_in(ev)])
    assert out.rejected
    db.rollback()
    reason = db.scalar(select(DeadLetter.reason))
    assert reason is not None and "action" in reason


def test_status_and_heartbeat_power_latest_wins(db, lab, ingest) -> None:  # type: ignore[no-untyped-def]
    topic = "fabpass/v1/lab/laser-1/status"
    ingest.handle_batch([incoming(topic, _plug_status(230.0, True))])
    node = _node(db)
    plug = db.get(NodePlug, node.id)
    assert plug is not None and plug.power_w == 230.0 and plug.online is True
    sid = str(uuid.uuid4())
    hb = heartbeat(sid, 60, 60, member=lab["alice"].id)
    hb.data["power_w"] = 180.5
    ingest.handle_batch([ev_in(started(sid, member=lab["alice"].id)), ev_in(hb)])
    db.rollback()
    plug = db.get(NodePlug, node.id)
    assert plug is not None and plug.power_w == 180.5
    ingest.handle_batch([incoming(topic, _plug_status(None, False))])
    db.rollback()
    plug = db.get(NodePlug, node.id)
    assert plug is not None and plug.online is False and plug.power_w == 180.5


def test_relay_status_writes_no_plug_row(db, lab, ingest) -> None:  # type: ignore[no-untyped-def]
    ingest.handle_batch([incoming("fabpass/v1/lab/laser-1/status", status())])
    node = _node(db)
    assert db.get(NodePlug, node.id) is None


def test_energy_stored_on_the_session(db, lab, ingest) -> None:  # type: ignore[no-untyped-def]
    from server.models import UsageSession

    sid = str(uuid.uuid4())
    ev = ended(sid, T0, 3600, 3000, member=lab["alice"].id)
    ev.data["energy_wh"] = 152.25
    [out] = ingest.handle_batch([ev_in(ev)])
    assert out.accepted
    db.rollback()
    row = db.scalar(select(UsageSession).where(UsageSession.session_uuid == sid))
    assert row is not None and row.energy_wh == 152.25
    sid2 = str(uuid.uuid4())
    ingest.handle_batch([ev_in(ended(sid2, T0, 60, 60, member=lab["alice"].id))])
    db.rollback()
    row2 = db.scalar(select(UsageSession).where(UsageSession.session_uuid == sid2))
    assert row2 is not None and row2.energy_wh is None  # a relay measures nothing


def test_absurd_or_negative_energy_is_rejected_with_a_reason(db, lab, ingest) -> None:  # type: ignore[no-untyped-def]
    from server.models import UsageSession

    absurd = ended(str(uuid.uuid4()), T0, 60, 60)
    absurd.data["energy_wh"] = 50_000.0  # 50 kWh in one minute
    negative = ended(str(uuid.uuid4()), T0, 60, 60)
    negative.data["energy_wh"] = -1
    outs = ingest.handle_batch([ev_in(absurd), ev_in(negative)])
    assert all(o.rejected for o in outs)
    db.rollback()
    reasons = list(db.scalars(select(DeadLetter.reason).order_by(DeadLetter.id)))
    assert len(reasons) == 2 and all("energy_wh" in r for r in reasons)
    assert "implausible" in reasons[0]
    assert db.scalar(select(UsageSession.id)) is None


def _manager(db: Session) -> None:
    site = db.scalar(select(Site).where(Site.slug == "lab"))
    db.add(User(email="m@example.org", password_hash="x", role=UserRole.manager, sites=[site],
                locale="fr"))
    db.commit()


def test_plug_alerts_one_per_condition(db, lab, ingest) -> None:  # type: ignore[no-untyped-def]
    _manager(db)
    for n in db.scalars(select(Node)):
        n.online, n.last_seen, n.clock_ok = True, datetime.now(UTC), True
    db.commit()
    ingest.handle_batch([incoming("fabpass/v1/lab/laser-1/status", _plug_status(0.0, False)),
                         ev_in(event("actuator.unexpected_on", {"action": "switched_off"}))])
    db.rollback()
    now = datetime.now(UTC)

    def tick(at: datetime) -> set[tuple[str, bool]]:
        return {(t.kind, t.opened) for t in alerts.run_alerts(
            db, at, offline_after_s=600, public_url="https://fab.example.org")}

    assert tick(now) == {("plug_offline", True), ("plug_unexpected_on", True)}
    assert tick(now + timedelta(minutes=5)) == set()  # one alert, no flood
    subjects = [m.subject for m in db.scalars(select(OutgoingMail))]
    assert len(subjects) == 2 and any("prise connectée" in s for s in subjects)
    ingest.handle_batch([incoming("fabpass/v1/lab/laser-1/status", _plug_status(0.0, True))])
    db.rollback()
    assert tick(now + timedelta(minutes=6)) == {("plug_offline", False)}
    assert tick(now + timedelta(minutes=61)) == {("plug_unexpected_on", False)}
