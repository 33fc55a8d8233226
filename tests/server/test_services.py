"""Domain services on SQLite and PostgreSQL: validation, conflicts, audit, dirty marks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from server import services as s
from server.errors import Conflict, Invalid, NotFound
from server.models import AclDirty, AuditLog, Badge, OutgoingCommand, UnknownBadge


def _dirty(db: Session) -> set[int | None]:
    return set(db.scalars(select(AclDirty.node_id)))


def test_site_slug_conflict_and_timezone(db: Session) -> None:
    s.create_site(db, "lab", "Lab", "Europe/Paris", actor="cli")
    with pytest.raises(Conflict):
        s.create_site(db, "lab", "Lab again", actor="cli")
    with pytest.raises(Invalid) as exc:
        s.create_site(db, "other", "Other", "Mars/Olympus", actor="cli")
    assert "timezone" in exc.value.fields
    with pytest.raises(Invalid) as exc:
        s.create_site(db, "Bad Slug", "x", actor="cli")
    assert "slug" in exc.value.fields


def test_member_validation_and_audit(db: Session, lab: dict) -> None:
    with pytest.raises(Invalid) as exc:
        s.create_member(db, "", "not-an-email", actor="cli")
    assert "name" in exc.value.fields
    with pytest.raises(Invalid) as exc:
        s.create_member(db, "Bob", "nope", actor="cli")
    assert exc.value.fields == {"email": "not an e-mail address"}
    alice = lab["alice"]
    s.update_member(db, alice.id, name="Alice D.", tags="a; b", actor="user:1 x@y")
    assert alice.tags == ["a", "b"]
    s.deactivate_member(db, alice.id, actor="cli")
    assert alice.active is False
    actions = list(db.scalars(select(AuditLog.action).where(AuditLog.entity_type == "member")))
    assert actions == ["member.create", "member.update", "member.deactivate"]
    with pytest.raises(NotFound):
        s.get_member(db, 9999)


def test_enrol_badge_normalises_conflicts_and_clears_unknown(db: Session, lab: dict) -> None:
    bob = s.create_member(db, "Bob", actor="cli")
    db.add(UnknownBadge(uid="04AABBCC"))
    db.flush()
    badge = s.enrol_badge(db, bob.id, "04-aa-bb-cc", actor="cli")
    assert badge.uid == "04AABBCC"
    assert db.scalar(select(func.count()).select_from(UnknownBadge)) == 0
    with pytest.raises(Conflict):
        s.enrol_badge(db, bob.id, "04A1B2C3", actor="cli")  # Alice's
    assert s.enrol_badge(db, bob.id, "04AABBCC", actor="cli").id == badge.id  # idempotent
    with pytest.raises(Invalid):
        s.enrol_badge(db, bob.id, "XYZ", actor="cli")
    s.set_badge_status(db, "04aabbcc", "lost", actor="cli")
    assert db.scalar(select(Badge.status).where(Badge.uid == "04AABBCC")).value == "lost"
    with pytest.raises(Invalid):
        s.set_badge_status(db, "04AABBCC", "stolen", actor="cli")


def test_machine_policy_validation_and_node_binding(db: Session, lab: dict) -> None:
    with pytest.raises(Invalid) as exc:
        s.create_machine(db, "cnc-1", "CNC", "lab", "cnc",
                         policy={"mode": "hover", "grace_s": -1}, actor="cli")
    assert set(exc.value.fields) == {"policy.mode", "policy.grace_s"}
    with pytest.raises(Conflict):
        s.create_machine(db, "cnc-1", "CNC", "lab", "cnc", node="laser-1", actor="cli")
    with pytest.raises(Invalid) as exc:
        s.create_machine(db, "cnc-2", "CNC", "nowhere", "cnc", actor="cli")
    assert "site" in exc.value.fields
    with pytest.raises(Invalid):
        s.create_machine(db, "cnc-3", "CNC", "lab", "spaceship", actor="cli")
    m = s.create_machine(db, "cnc-4", "CNC", "lab", "cnc", node="cnc-4",
                         policy={"mode": "present", "grace_s": 10}, actor="cli")
    assert m.node is not None and m.node.slug == "cnc-4"
    db.execute(AclDirty.__table__.delete())
    s.update_machine(db, m.id, policy={"mode": "tap"}, actor="cli")
    assert _dirty(db) == {m.node_id}
    db.execute(AclDirty.__table__.delete())
    s.set_machine_lock(db, m.id, True, "lens broken", actor="cli")
    assert m.locked and m.lock_reason == "lens broken" and _dirty(db) == {m.node_id}


def test_grant_conflict_revoke_and_dirty(db: Session, lab: dict) -> None:
    alice, laser, printer, group = lab["alice"], lab["laser"], lab["printer"], lab["group"]
    db.execute(AclDirty.__table__.delete())
    auth = s.grant(db, alice.id, machine_id=printer.id, role="user", actor="cli")
    assert _dirty(db) == {printer.node_id}
    with pytest.raises(Conflict):
        s.grant(db, alice.id, machine_id=printer.id, role="user", actor="cli")
    with pytest.raises(Invalid):
        s.grant(db, alice.id, actor="cli")
    with pytest.raises(Invalid):
        s.grant(db, alice.id, machine_id=printer.id, role="boss", actor="cli")
    with pytest.raises(Invalid):
        s.grant(db, alice.id, machine_id=laser.id,
                expires_at=datetime.now(UTC) - timedelta(days=1), actor="cli")
    g = s.grant(db, alice.id, group_id=group.id, role="trainer", expires_at="2099-01-01",
                actor="cli")
    assert g.expires_at == datetime(2099, 1, 1, 23, 59, 59, tzinfo=UTC)
    assert s.trainer_machine_ids(db, alice.id) == {laser.id}
    db.execute(AclDirty.__table__.delete())
    s.revoke(db, auth.id, reason="misuse", actor="cli")
    assert auth.revoked_at is not None and _dirty(db) == {printer.node_id}
    # a revoked one no longer blocks a new grant
    s.grant(db, alice.id, machine_id=printer.id, role="user", actor="cli")
    page = s.list_authorizations(db, machine_id=laser.id)
    assert [a.id for a in page.items] == [g.id]
    assert s.list_authorizations(db, member_id=alice.id, valid_only=True).total == 2
    audit = db.scalars(select(AuditLog.action).where(AuditLog.entity_type == "authorization"))
    assert list(audit).count("authorization.grant") == 3


def test_group_membership_change_marks_nodes(db: Session, lab: dict) -> None:
    db.execute(AclDirty.__table__.delete())
    s.set_group_machines(db, lab["group"].id, [lab["laser"].id, lab["printer"].id], actor="cli")
    assert _dirty(db) == {lab["printer"].node_id}
    with pytest.raises(Invalid):
        s.set_group_machines(db, lab["group"].id, [999], actor="cli")


def test_list_members_search_and_pagination(db: Session, lab: dict) -> None:
    for i in range(7):
        s.create_member(db, f"Member {i}", f"m{i}@example.org", actor="cli")
    page = s.list_members(db, q="member", page=2, per_page=3)
    assert page.total == 7 and len(page.items) == 3 and page.page == 2
    assert [m.name for m in s.list_members(db, q="04a1").items] == ["Alice Dupont"]
    with pytest.raises(Invalid):
        s.list_members(db, per_page=501)


def test_send_command_queues(db: Session, lab: dict) -> None:
    cmd = s.send_command(db, lab["laser"].id, "stop", actor="cli")
    row = db.scalar(select(OutgoingCommand))
    assert row is not None and row.command_id == cmd.command_id and row.published_at is None
    with pytest.raises(Invalid):
        s.send_command(db, lab["laser"].id, "explode", actor="cli")


def test_users_and_tokens(db: Session) -> None:
    user = s.create_user(db, "Admin@Example.org", "correct horse", "admin", actor="cli")
    assert user.email == "admin@example.org" and user.password_hash != "correct horse"
    with pytest.raises(Conflict):
        s.create_user(db, "admin@example.org", "another pass", "manager", actor="cli")
    with pytest.raises(Invalid):
        s.create_user(db, "b@example.org", "short", "admin", actor="cli")
    token, plain = s.create_token(db, "erp", actor="cli")
    assert plain.startswith("fp_") and token.token_hash != plain
    with pytest.raises(Invalid):
        s.create_token(db, "erp", "trainer", actor="cli")


def test_migrations_reach_head_and_match_the_models(db_url: str) -> None:
    from sqlalchemy import inspect

    from server.db import DatabaseError, check_migrated, make_engine, upgrade
    from server.models import Base

    engine = make_engine(db_url)
    try:
        with pytest.raises(DatabaseError, match="fabpass db upgrade"):
            check_migrated(engine)
        upgrade(db_url)
        check_migrated(engine)
        assert set(inspect(engine).get_table_names()) >= set(Base.metadata.tables)
    finally:
        engine.dispose()
