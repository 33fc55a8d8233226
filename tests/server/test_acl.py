"""Access-list computation: who is listed, with which role and until when; versions only grow."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from sqlalchemy.orm import Session

from protocol import AccessList
from server import services as s
from server.services.acl import compute_acl, epoch_ms

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def _acl(db: Session, machine) -> AccessList:  # type: ignore[no-untyped-def]
    db.flush()
    acl = compute_acl(db, machine.node, NOW)
    assert acl is not None
    return AccessList.decode(acl.encode())  # what a node decodes


def test_authorized_members_roles_and_until(db: Session, lab) -> None:  # type: ignore[no-untyped-def]
    laser, alice, group = lab["laser"], lab["alice"], lab["group"]
    assert _acl(db, laser).badges == []
    s.grant(db, alice.id, machine_id=laser.id, expires_at="2027-01-31", actor="cli")
    s.grant(db, alice.id, group_id=group.id, role="trainer", actor="cli")  # trainer wins
    bob = s.create_member(db, "Bob Martin", active_until=date(2026, 12, 31), actor="cli")
    s.enrol_badge(db, bob.id, "04B0B0B0", actor="cli")
    s.enrol_badge(db, bob.id, "04B1B1B1", actor="cli")
    s.grant(db, bob.id, group_id=group.id, expires_at="2027-06-30", actor="cli")
    acl = _acl(db, laser)
    by = acl.by_uid()
    assert set(by) == {"04A1B2C3", "04B0B0B0", "04B1B1B1"}
    assert by["04A1B2C3"].role == "trainer" and by["04A1B2C3"].until is None
    assert by["04A1B2C3"].label == "Alice D."
    # Bob: membership ends before the authorization; the site is in Europe/Paris
    assert by["04B0B0B0"].until == datetime(2026, 12, 31, 23, 0, tzinfo=UTC)
    assert acl.valid_until == NOW + timedelta(days=7) and acl.machine == "laser-1"
    assert acl.version >= epoch_ms(NOW)


def test_excluded_lost_inactive_expired_revoked(db: Session, lab) -> None:  # type: ignore[no-untyped-def]
    laser, alice = lab["laser"], lab["alice"]
    auth = s.grant(db, alice.id, machine_id=laser.id, actor="cli")
    s.set_badge_status(db, "04A1B2C3", "lost", actor="cli")
    assert _acl(db, laser).badges == []
    s.set_badge_status(db, "04A1B2C3", "active", actor="cli")
    assert len(_acl(db, laser).badges) == 1
    s.update_member(db, alice.id, active_until="2026-11-21", actor="cli")  # yesterday
    assert _acl(db, laser).badges == []
    s.update_member(db, alice.id, active_until=None, actor="cli")
    s.deactivate_member(db, alice.id, actor="cli")
    assert _acl(db, laser).badges == []
    s.update_member(db, alice.id, active=True, actor="cli")
    s.revoke(db, auth.id, actor="cli")
    assert _acl(db, laser).badges == []
    bob = s.create_member(db, "Bob", actor="cli")
    s.enrol_badge(db, bob.id, "04B0B0B0", actor="cli")
    expired = s.grant(db, bob.id, machine_id=laser.id, expires_at="2099-01-01", actor="cli")
    expired.expires_at = NOW - timedelta(seconds=1)
    assert _acl(db, laser).badges == []


def test_open_machine_lists_every_active_member_and_lock_policy(db: Session, lab) -> None:  # type: ignore[no-untyped-def]
    printer = lab["printer"]
    bob = s.create_member(db, "Bob", actor="cli")
    s.enrol_badge(db, bob.id, "04B0B0B0", actor="cli")
    assert _acl(db, printer).badges == []
    s.update_machine(db, printer.id, requires_authorization=False,
                     policy={"mode": "present", "power_off": "when_idle"}, actor="cli")
    s.set_machine_lock(db, printer.id, True, "nozzle", actor="cli")
    acl = _acl(db, printer)
    assert {b.uid for b in acl.badges} == {"04A1B2C3", "04B0B0B0"}
    assert all(b.role == "user" for b in acl.badges)
    assert acl.locked and acl.policy == {"mode": "present", "power_off": "when_idle"}


def test_version_grows_even_after_a_restore(db: Session, lab) -> None:  # type: ignore[no-untyped-def]
    node = lab["laser"].node
    first = compute_acl(db, node, NOW)
    assert first is not None
    node.acl_published_version = first.version
    # a node that already holds a far newer list (e.g. issued before a DB restore with a
    # clock ahead): the next one is still greater than what it reports
    node.acl_version = first.version + 10_000_000
    node.acl_published_version = None  # the restored database forgot
    again = compute_acl(db, node, NOW)
    assert again is not None and again.version > node.acl_version
    later = compute_acl(db, node, NOW + timedelta(seconds=1))
    assert later is not None and later.version > first.version
