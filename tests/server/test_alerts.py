"""Alert rules on a fake clock: offline 10 min -> one alert; back -> one resolved; no flood."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.models import Node, OutgoingMail, Site, User, UserRole
from server.services import alerts

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def _manager(db: Session, email: str, locale: str | None = None) -> User:
    site = db.scalar(select(Site).where(Site.slug == "lab"))
    user = User(email=email, password_hash="x", role=UserRole.manager, sites=[site],
                locale=locale)
    db.add(user)
    db.commit()
    return user


def _mails(db: Session) -> list[OutgoingMail]:
    return list(db.scalars(select(OutgoingMail).order_by(OutgoingMail.id)))


def test_offline_ten_minutes_one_alert_then_one_resolved(db: Session, lab) -> None:  # type: ignore[no-untyped-def]
    _manager(db, "m@example.org")
    fr = _manager(db, "fr@example.org", "fr")
    quiet = _manager(db, "quiet@example.org")
    alerts.set_optouts(db, quiet.id, ["node_offline"])
    db.commit()
    node = db.scalar(select(Node).where(Node.slug == "laser-1"))
    assert node is not None
    for n in db.scalars(select(Node)):
        n.online, n.last_seen, n.clock_ok = True, T0, True
    node.online = False
    db.commit()

    def tick(minutes: float) -> list[alerts.Transition]:
        return alerts.run_alerts(db, T0 + timedelta(minutes=minutes), offline_after_s=600,
                                 public_url="https://fab.example.org")

    assert tick(5) == [] and _mails(db) == []
    opened = tick(10)
    assert [(t.kind, t.opened) for t in opened] == [("node_offline", True)]
    mails = _mails(db)
    assert sorted(m.to_addr for m in mails) == ["fr@example.org", "m@example.org"]
    by_to = {m.to_addr: m for m in mails}
    assert "laser-1" in by_to["m@example.org"].subject
    assert by_to["fr@example.org"].subject.startswith("Alerte fabpass")
    assert "https://fab.example.org/nodes" in by_to["m@example.org"].body_text
    for minutes in (11, 30, 600):
        assert tick(minutes) == []  # no flood while it stays offline
    assert len(_mails(db)) == 2
    node.online, node.last_seen = True, T0 + timedelta(hours=11)
    db.commit()
    resolved = tick(661)
    assert [(t.kind, t.opened) for t in resolved] == [("node_offline", False)]
    assert tick(662) == []
    new = _mails(db)[2:]
    assert sorted(m.to_addr for m in new) == ["fr@example.org", "m@example.org"]
    assert all("resol" in m.subject.lower() or "résolu" in m.subject for m in new)
    assert fr.id  # the French manager got French mails
    assert any(m.subject.startswith("fabpass : résolu") for m in new)


def test_clock_and_backlog_open_and_clear(db: Session, lab) -> None:  # type: ignore[no-untyped-def]
    _manager(db, "m@example.org")
    node = db.scalar(select(Node).where(Node.slug == "laser-1"))
    assert node is not None
    node.online, node.last_seen, node.clock_ok = True, T0, False
    node.last_status = {"backlog": 500}
    db.commit()
    kinds = {t.kind for t in alerts.run_alerts(db, T0, offline_after_s=600, public_url="x")}
    assert kinds == {"node_clock", "node_backlog"}
    node.clock_ok, node.last_status = True, {"backlog": 0}
    db.commit()
    cleared = alerts.run_alerts(db, T0, offline_after_s=600, public_url="x")
    assert {(t.kind, t.opened) for t in cleared} == {("node_clock", False), ("node_backlog", False)}


def test_evaluate_is_pure() -> None:
    view = alerts.NodeView(1, "n", 1, False, T0, True, None)
    after = timedelta(seconds=600)
    assert alerts.evaluate([view], set(), T0 + timedelta(seconds=599), after) == []
    (t,) = alerts.evaluate([view], set(), T0 + timedelta(seconds=600), after)
    assert (t.key, t.opened) == ("node_offline:1", True)
    assert alerts.evaluate([view], {"node_offline:1"}, T0 + timedelta(days=1), after) == []


def test_dead_letters_go_to_admins_and_maintenance_to_the_site(db: Session, lab) -> None:  # type: ignore[no-untyped-def]
    import uuid

    from server.models import DeadLetter, Machine, UsageSession
    from server.services import maintenance

    _manager(db, "m@example.org")
    db.add(User(email="admin@example.org", password_hash="x", role=UserRole.admin))
    laser = db.scalar(select(Machine).where(Machine.slug == "laser-1"))
    assert laser is not None
    maintenance.create_task(db, laser.id, "Clean the lens", 1.0)
    db.add(UsageSession(session_uuid=uuid.uuid4().hex, machine_id=laser.id, badge_uid="04AA",
                        started_at=T0 - timedelta(hours=5), ended_at=T0 - timedelta(hours=2),
                        duration_s=3 * 3600, active_s=3 * 3600, has_started_event=True,
                        has_ended_event=True))
    db.add(DeadLetter(topic="fabpass/v1/lab/x/event", payload=b"{}", reason="bad",
                      received_at=T0 - timedelta(minutes=5)))
    db.commit()
    opened = alerts.run_alerts(db, T0, offline_after_s=600, public_url="https://f")
    assert {t.kind for t in opened} == {"maintenance_overdue", "dead_letters"}
    by_to = {m.to_addr: m.subject for m in _mails(db)}
    assert "Clean the lens" in by_to["m@example.org"]
    assert "rejected" in by_to["admin@example.org"]
    assert alerts.run_alerts(db, T0 + timedelta(minutes=1), offline_after_s=600,
                             public_url="https://f") == []
    later = alerts.run_alerts(db, T0 + timedelta(hours=2), offline_after_s=600,
                              public_url="https://f")
    assert [(t.kind, t.opened) for t in later] == [("dead_letters", False)]


def test_training_expiry_notice_once_and_only_when_opted_in(db: Session, lab) -> None:  # type: ignore[no-untyped-def]
    from server.models import Authorization, AuthRole, Machine, Member
    from server.services import notices

    alice = db.scalar(select(Member).where(Member.email == "alice@example.org"))
    laser = db.scalar(select(Machine).where(Machine.slug == "laser-1"))
    assert alice is not None and laser is not None
    db.add(Authorization(member_id=alice.id, machine_id=laser.id, role=AuthRole.user,
                         granted_at=T0 - timedelta(days=300), expires_at=T0 + timedelta(days=10)))
    db.commit()
    assert notices.training_expiry_notices(db, T0) == 0  # not opted in
    notices.set_optins(db, alice.id, ["training_expiring"], actor="test")
    db.commit()
    assert notices.training_expiry_notices(db, T0 - timedelta(days=5)) == 0  # 15 days ahead
    assert notices.training_expiry_notices(db, T0) == 1
    assert notices.training_expiry_notices(db, T0 + timedelta(days=1)) == 0  # once
    (m,) = _mails(db)
    # a member with no login gets her mail in French (services/languages.py)
    assert m.to_addr == "alice@example.org" and "expire le" in m.subject


def test_weekly_summary_once_per_site_and_week(db: Session, lab) -> None:  # type: ignore[no-untyped-def]
    import uuid

    from server.models import Machine, UsageSession
    from server.services import summary

    _manager(db, "m@example.org", "fr")
    laser = db.scalar(select(Machine).where(Machine.slug == "laser-1"))
    assert laser is not None
    monday = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)  # a Monday
    db.add(UsageSession(session_uuid=uuid.uuid4().hex, machine_id=laser.id, badge_uid="04AA",
                        started_at=monday - timedelta(days=3), duration_s=5400, active_s=5000,
                        ended_at=monday - timedelta(days=3) + timedelta(seconds=5400),
                        has_started_event=True, has_ended_event=True))
    db.commit()
    assert summary.weekly_summaries(db, monday) == 1
    assert summary.weekly_summaries(db, monday + timedelta(days=2)) == 0
    (m,) = _mails(db)
    assert m.subject.startswith("fabpass, résumé de la semaine") and "2026-W48" in m.subject
    assert "Laser: 1.5 h" in m.body_text
