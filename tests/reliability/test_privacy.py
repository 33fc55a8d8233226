"""Promise 8 — personal data: export is complete, erasure keeps anonymous totals, old detail is
pseudonymised. Checked by scanning every column of every table, not by trusting the code's list.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import select
from sqlalchemy.orm import Session

from server import services as s
from server.models import (
    AclDirty,
    AuditLog,
    Badge,
    BadgeStatus,
    Base,
    DeadLetter,
    Event,
    Machine,
    Member,
    Node,
    TrainingSignoff,
    UnknownBadge,
    UsageSession,
    User,
)
from server.reports import usage_report
from server.services.privacy import (
    ERASED_NAME,
    daily_job,
    erase_member,
    export_member,
    pseudonym,
    pseudonym_key,
    pseudonymise,
)

NOW = datetime.now(UTC).replace(microsecond=0)
ALICE_UIDS = ("04A1B2C3", "04D5E6F7A1B2C3")
BOB_UID = "04BBBBBB"
# Which export key holds rows of which table.
EXPORT_KEYS = {
    "members": "member", "badges": "badges", "authorizations": "authorizations",
    "sessions": "sessions", "events": "events", "training_signoffs": "training_signoffs",
    "users": "web_users", "audit_log": "audit_log", "dead_letters": "dead_letters",
    "nodes": "node_statuses",
}
MEMBER_FKS = {
    "badges": ("member_id",), "authorizations": ("member_id", "granted_by_member_id"),
    "sessions": ("member_id",), "users": ("member_id",),
    "training_signoffs": ("trainer_member_id", "trainee_member_id"), "members": ("id",),
}


def _session(db: Session, machine_id: int, member_id: int, uid: str, started: datetime,
             hours: float) -> UsageSession:
    row = UsageSession(session_uuid=str(uuid.uuid4()), machine_id=machine_id, member_id=member_id,
                       badge_uid=uid, started_at=started,
                       ended_at=started + timedelta(hours=hours), duration_s=hours * 3600,
                       active_s=hours * 1800, end_reason="badge_out", has_started_event=True,
                       has_ended_event=True)
    db.add(row)
    return row


def _event(db: Session, node: str, type_: str, data: dict[str, Any], at: datetime) -> Event:
    row = Event(event_id=str(uuid.uuid4()), node_slug=node, type=type_, ts=at, received_at=at,
                boot=str(uuid.uuid4()), seq=1, data=data)
    db.add(row)
    return row


@pytest.fixture()
def people(db: Session) -> dict[str, Any]:
    """Alice (two badges, a login, old and recent usage, a sign-off as trainer) and Bob."""
    s.create_site(db, "lab", "The Lab", "Europe/Paris", actor="cli")
    laser = s.create_machine(db, "laser-1", "Laser", "lab", "laser_cutter", node="laser-1",
                             actor="cli")
    printer = s.create_machine(db, "printer-1", "Printer", "lab", "3d_printer",
                               node="printer-1", actor="cli")
    alice = s.create_member(db, "Alice Dupont", "alice@example.org", "A-1001", "lab", ["youth"],
                            actor="cli")
    bob = s.create_member(db, "Bob Martin", "bob@example.org", "B-2002", "lab", actor="cli")
    for uid in ALICE_UIDS:
        s.enrol_badge(db, alice.id, uid, actor="cli")
    s.enrol_badge(db, bob.id, BOB_UID, actor="cli")
    auth = s.grant(db, alice.id, machine_id=laser.id, role="trainer", actor="cli")
    s.grant(db, bob.id, machine_id=laser.id, actor="cli")
    user = s.create_user(db, "alice.login@example.org", "correct horse battery", "trainer",
                         member_id=alice.id, actor="cli")
    s.audit(db, f"user:{user.id} alice.login@example.org", "authorization.grant",
            "authorization", auth.id, {"note": "by Alice Dupont's login"})
    recent = NOW - timedelta(days=2)
    old = NOW - timedelta(days=400)
    sessions = [
        _session(db, laser.id, alice.id, ALICE_UIDS[0], recent, 1.0),
        _session(db, printer.id, alice.id, ALICE_UIDS[1], old, 2.0),
        _session(db, laser.id, alice.id, ALICE_UIDS[1], old + timedelta(days=1), 0.5),
        _session(db, laser.id, bob.id, BOB_UID, recent + timedelta(hours=3), 0.5),
    ]
    db.flush()
    ev = [
        _event(db, "laser-1", "session.started",
               {"session": sessions[0].session_uuid, "uid": ALICE_UIDS[0], "member": alice.id},
               recent),
        _event(db, "printer-1", "session.ended",
               {"session": sessions[1].session_uuid, "uid": ALICE_UIDS[1], "member": alice.id,
                "duration_s": 7200}, old),
        _event(db, "laser-1", "badge.denied", {"uid": ALICE_UIDS[1], "reason": "in_use"}, old),
        _event(db, "laser-1", "session.started",
               {"session": sessions[3].session_uuid, "uid": BOB_UID, "member": bob.id}, recent),
        _event(db, "laser-1", "badge.denied", {"uid": "04CCCCCC", "reason": "unknown_badge"},
               old),
    ]
    db.add(TrainingSignoff(event_id=str(uuid.uuid4()), machine_id=laser.id,
                           trainer_uid=ALICE_UIDS[0], trainee_uid=BOB_UID,
                           trainer_member_id=alice.id, trainee_member_id=bob.id,
                           outcome="granted", created_at=old))
    db.add(DeadLetter(topic="fabpass/v1/lab/laser-1/event",
                      payload=json.dumps({"uid": ALICE_UIDS[0], "v": 9}).encode(),
                      reason="unknown version", received_at=recent))
    db.add(DeadLetter(topic="fabpass/v1/lab/laser-1/event", payload=b"garbage",
                      reason="not json", received_at=old))
    db.add(UnknownBadge(uid="04CCCCCC", first_seen=old, last_seen=old))
    node = db.scalar(select(Node).where(Node.slug == "laser-1"))
    assert node is not None
    node.last_status = {"v": 1, "node": "laser-1", "online": True, "state": "in_use",
                        "session": {"id": sessions[0].session_uuid, "uid": ALICE_UIDS[0],
                                    "member": alice.id, "started": "2026-11-20T10:00:00.000Z"}}
    db.commit()
    return {"alice": alice, "bob": bob, "laser": laser, "printer": printer, "user": user,
            "sessions": sessions, "events": ev}


def _all_rows(db: Session) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for table in Base.metadata.sorted_tables:
        for row in db.execute(select(table)).mappings():
            out.append((table.name, dict(row)))
    return out


def _text(row: dict[str, Any]) -> str:
    return " ".join(
        v.decode("utf-8", "replace") if isinstance(v, bytes) else json.dumps(v, default=str)
        for v in row.values())


def _identity(member: Member, email_login: str) -> list[str]:
    return [member.name, member.email or "", member.member_no or "", email_login, *ALICE_UIDS]


def _reports(db: Session) -> dict[str, Any]:
    return {g: usage_report(db, g) for g in ("machine", "month", "site", "member", "kind")}


def test_export_contains_every_row_about_the_member(db: Session, people: dict[str, Any]) -> None:
    alice = people["alice"]
    export = export_member(db, alice.id)
    json.dumps(export)  # JSON-ready as a whole
    exported: dict[str, set[Any]] = {}
    for key in EXPORT_KEYS.values():
        rows = export[key] if isinstance(export[key], list) else [export[key]]
        exported[key] = {r["id"] if "id" in r else r.get("key") for r in rows}
    needles = _identity(alice, "alice.login@example.org")
    missing = []
    for table, row in _all_rows(db):
        about = any(row.get(col) == alice.id for col in MEMBER_FKS.get(table, ()))
        about = about or any(n and n in _text(row) for n in needles)
        if not about or table in ("acl_dirty",):
            continue
        key = EXPORT_KEYS.get(table)
        if key is None or row["id"] not in exported[key]:
            missing.append((table, row.get("id")))
    assert missing == []
    assert export["member"]["email"] == "alice@example.org"
    assert export["member"]["site"] == "lab"
    assert {b["uid"] for b in export["badges"]} == set(ALICE_UIDS)
    assert len(export["sessions"]) == 3
    assert all(s_["member_id"] == alice.id for s_ in export["sessions"])
    assert len(export["events"]) == 3
    assert export["web_users"] and "password_hash" not in export["web_users"][0]
    assert BOB_UID not in {e["data"].get("uid") for e in export["events"]}


def test_erasure_removes_identity_everywhere_and_keeps_totals(
        db: Session, people: dict[str, Any]) -> None:
    alice, bob = people["alice"], people["bob"]
    before = _reports(db)
    dirty_before = db.query(AclDirty).count()
    needles = _identity(alice, "alice.login@example.org")

    result = erase_member(db, alice.id, actor="cli")
    db.commit()

    leaks = [(table, row.get("id") or row.get("key"), n) for table, row in _all_rows(db)
             for n in needles if n and n in _text(row)]
    assert leaks == []
    assert _reports(db) == before  # hours, sessions, member counts: unchanged
    member = db.get(Member, alice.id)
    assert member is not None and member.name == ERASED_NAME and not member.active
    assert member.erased_at is not None and member.tags == ["youth"]
    badges = list(db.scalars(select(Badge).where(Badge.member_id == alice.id)))
    assert len(badges) == 2 and all(b.status == BadgeStatus.inactive for b in badges)
    assert all(b.uid.startswith("E") and len(b.uid) == 20 for b in badges)
    assert result.sessions == 3 and result.badges == 2 and result.web_users == 1
    user = db.get(User, people["user"].id)
    assert user is not None and not user.active and user.member_id is None
    # Her badges leave the lists: the laser's list is queued for republishing.
    assert db.query(AclDirty).count() > dirty_before
    # Bob is untouched, the sign-off keeps Bob's side, the garbage dead letter stays.
    assert db.get(Member, bob.id).name == "Bob Martin"  # type: ignore[union-attr]
    assert db.scalar(select(UsageSession.badge_uid).where(
        UsageSession.member_id == bob.id)) == BOB_UID
    assert db.scalar(select(TrainingSignoff.trainee_uid)) == BOB_UID
    assert db.query(DeadLetter).count() == 1
    assert db.scalar(select(AuditLog.id).where(AuditLog.action == "member.erase")) is not None
    # The card itself can be enrolled again for someone else.
    s.enrol_badge(db, bob.id, ALICE_UIDS[0], actor="cli")
    # Erasing again is harmless; the export of an erased member names nobody.
    erase_member(db, alice.id, actor="cli")
    export = json.dumps(export_member(db, alice.id))
    assert not any(n in export for n in needles if n != ALICE_UIDS[0])


def test_pseudonymise_old_detail_and_keep_reports(db: Session, people: dict[str, Any]) -> None:
    before = _reports(db)
    result = pseudonymise(db, 365)
    key = pseudonym_key(db)
    old = list(db.scalars(select(UsageSession).where(
        UsageSession.started_at < NOW - timedelta(days=365)).order_by(UsageSession.id)))
    recent = list(db.scalars(select(UsageSession).where(
        UsageSession.started_at > NOW - timedelta(days=365))))
    assert result.sessions == 2 and len(old) == 2
    # The same card gives the same pseudonym: old sessions stay linkable to each other.
    assert {o.badge_uid for o in old} == {pseudonym(key, ALICE_UIDS[1])}
    assert all(o.pseudonymised_at is not None and o.member_id is not None for o in old)
    assert {r.badge_uid for r in recent} == {ALICE_UIDS[0], BOB_UID}
    old_events = [e for e in db.scalars(select(Event))
                  if e.received_at < NOW - timedelta(days=365)]
    assert len(old_events) == 3 and result.events == 3
    assert all(e.data["uid"].startswith("P") for e in old_events)
    recent_uids = {e.data["uid"] for e in db.scalars(select(Event))
                   if e.received_at > NOW - timedelta(days=365)}
    assert recent_uids == {ALICE_UIDS[0], BOB_UID}
    so = db.scalar(select(TrainingSignoff))
    assert so is not None and so.trainer_uid == pseudonym(key, ALICE_UIDS[0])
    assert db.query(DeadLetter).count() == 1 and db.query(UnknownBadge).count() == 0
    assert _reports(db) == before
    # Idempotent, and the runner's entry point finds nothing more to do.
    engine = db.get_bind()
    from server.db import make_sessionmaker

    again = daily_job(make_sessionmaker(engine), older_than_days=365)  # type: ignore[arg-type]
    assert (again.sessions, again.events, again.signoffs, again.dead_letters) == (0, 0, 0, 0)


def test_cli_export_erase_pseudonymise(db: Session, people: dict[str, Any], db_url: str,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from fabpass.cli import main

    monkeypatch.setenv("FABPASS_DATABASE_URL", db_url)
    alice_id = people["alice"].id
    db.close()
    runner = CliRunner()
    out = runner.invoke(main, ["member", "export", str(alice_id)])
    assert out.exit_code == 0, out.output
    assert json.loads(out.output)["member"]["name"] == "Alice Dupont"
    out = runner.invoke(main, ["member", "export", "999999"])
    assert out.exit_code == 1 and "999999" in out.output
    out = runner.invoke(main, ["member", "erase", str(alice_id)])
    assert out.exit_code != 0 and "--yes" in out.output
    out = runner.invoke(main, ["member", "erase", str(alice_id), "--yes"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.output)["sessions"] == 3
    out = runner.invoke(main, ["privacy", "pseudonymise", "--older-than-days", "30"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.output)["sessions"] >= 1
    out = runner.invoke(main, ["privacy", "pseudonymise", "--older-than-days", "0"])
    assert out.exit_code == 2
    out = runner.invoke(main, ["member", "export", str(alice_id)])
    assert "Alice" not in out.output and ERASED_NAME in out.output


def _canon(text: str) -> str:
    """Every spelling of a UID folds to its canonical form here (as the matcher does)."""
    import re

    return re.sub(r"[\s:\-._]", "", text).upper()


def test_identity_in_any_spelling_is_exported_and_erased(
        db: Session, people: dict[str, Any], caplog: pytest.LogCaptureFixture) -> None:
    """Issue 13 item 8: refused sign-off audits keep the trainer's UID; dead letters hold UIDs
    in lower case or with separators; logs at INFO carry no UID and no name."""
    from server.services.trainings import sign_off

    alice, bob = people["alice"], people["bob"]
    node = db.scalar(select(Node).where(Node.slug == "laser-1"))
    assert node is not None
    caplog.set_level("INFO")
    # Alice (a trainer) signs off a card nobody enrolled: refused, audited with her UID.
    row = sign_off(db, str(uuid.uuid4()), node, ALICE_UIDS[0], "04EEEEEE", at=NOW)
    assert row.outcome == "refused"
    spelled = [b'{"v": 1, "data": {"uid": "04:a1-b2:c3"}}',  # lower case, mixed separators
               b'{"trainer_uid": "04 d5 e6 f7 a1 b2 c3", "x": 1}',
               b"reader said 04.D5.E6.F7.A1.B2.C3 twice"]
    for payload in spelled:
        db.add(DeadLetter(topic="fabpass/v1/lab/laser-1/event", payload=payload,
                          reason="schema", received_at=NOW))
    db.add(DeadLetter(topic="fabpass/v1/lab/laser-1/event", reason="schema", received_at=NOW,
                      payload=b'{"uid": "04:bb:bb:bb"}'))  # Bob's: stays
    db.add(DeadLetter(topic="fabpass/v1/lab/laser-1/event", reason="schema", received_at=NOW,
                      payload=b'{"uid": "FF04A1B2C3FF"}'))  # not a UID of hers: stays
    db.commit()

    export = export_member(db, alice.id)
    assert {bytes(d["payload"], "utf-8") if isinstance(d["payload"], str) else d["payload"]
            for d in export["dead_letters"]} >= set(spelled)
    assert not any("04BBBBBB" in _canon(str(d["payload"])) for d in export["dead_letters"])
    assert any(a["action"] == "training.refused" for a in export["audit_log"])

    erase_member(db, alice.id, actor="cli")
    db.commit()
    longer = b'{"uid": "FF04A1B2C3FF"}'  # holds her UID's digits inside a longer hex string
    leaks = [(table, row.get("id"), uid) for table, row in _all_rows(db) for uid in ALICE_UIDS
             if uid in _canon(_text(row)) and row.get("payload") != longer]
    assert leaks == []
    refused = db.scalar(select(AuditLog).where(AuditLog.action == "training.refused"))
    assert refused is not None and refused.details["trainee_uid"] == "04EEEEEE"
    assert refused.details["trainer_uid"].startswith("E")
    remaining = {bytes(d.payload) for d in db.scalars(select(DeadLetter))}
    assert b'{"uid": "04:bb:bb:bb"}' in remaining and b'{"uid": "FF04A1B2C3FF"}' in remaining
    assert db.get(Member, bob.id).name == "Bob Martin"  # type: ignore[union-attr]

    info = "\n".join(r.getMessage() for r in caplog.records if r.levelname == "INFO")
    assert "sign-off on laser-1 by uid#" in info
    for secret in (*ALICE_UIDS, "04EEEEEE", "Alice Dupont", "alice@example.org"):
        assert secret not in _canon(info) and secret not in info


def test_erasure_is_final(db: Session, people: dict[str, Any]) -> None:
    from server.errors import Conflict

    alice = people["alice"]
    badge_uid = ALICE_UIDS[0]
    laser_id = db.scalar(select(Machine.id).where(Machine.slug == "laser-1"))
    erase_member(db, alice.id, actor="cli")
    db.commit()
    erased = [b.uid for b in db.scalars(select(Badge).where(Badge.member_id == alice.id))]
    for attempt in (lambda: s.update_member(db, alice.id, active=True, actor="cli"),
                    lambda: s.update_member(db, alice.id, name="Alice Dupont", actor="cli"),
                    lambda: s.set_badge_status(db, erased[0], "active", actor="cli"),
                    lambda: s.enrol_badge(db, alice.id, badge_uid, actor="cli"),
                    lambda: s.grant(db, alice.id, machine_id=laser_id, actor="cli")):
        with pytest.raises(Conflict, match="erased"):
            attempt()
        db.rollback()
    member = db.get(Member, alice.id)
    assert member is not None and not member.active and member.name == ERASED_NAME
    assert all(b.status == BadgeStatus.inactive
               for b in db.scalars(select(Badge).where(Badge.member_id == alice.id)))
